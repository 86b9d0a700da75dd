package httpcache

import "github.com/dogpile-go/dogpile/region"

// Stats counts what a Cache did with requests since it was made. Every field only grows.
// Hits, Stale and Misses are requests answered with a response of the cache (or one made for
// them); Bypassed and Passed requests went to the handler.
type Stats struct {
	// Hits are requests answered with a fresh cached response.
	Hits uint64
	// Stale are requests answered with an expired response: while another request regenerates
	// it, or because regenerating it failed (region.WithStaleIfError).
	Stale uint64
	// Misses are requests answered with a response the handler made for them or for a request
	// they waited for, 5xx responses included.
	Misses uint64
	// NotModified are the hits, stale and misses answered 304 Not Modified.
	NotModified uint64
	// Bypassed are requests the cache does not handle (methods other than GET and HEAD, Range
	// requests, credentials without WithCredentialedKey, keys WithKeyFunc refused) and, under
	// WithClientBypass, requests whose no-cache made the handler run.
	Bypassed uint64
	// Passed are requests sent to the handler because their URL's response cannot be stored
	// (hit-for-pass, WithPassTTL), and the requests that waited for such a response.
	Passed uint64
	// Uncacheable are responses the handler made that were not stored: too large, no-store,
	// private, no-cache, Set-Cookie, a status not stored, 5xx.
	Uncacheable uint64
	// Region are the region's counts for the Cache's view (ViewName): reads (two for a URL with
	// variants), hits, misses, stale answers, creations, waits and errors.
	Region region.Stats
}

// Stats returns the Cache's counts. It costs a few atomic loads and region.View.Stats.
func (c *Cache) Stats() Stats {
	return Stats{
		Hits:        c.n.hits.Load(),
		Stale:       c.n.stale.Load(),
		Misses:      c.n.misses.Load(),
		NotModified: c.n.notModified.Load(),
		Bypassed:    c.n.bypassed.Load(),
		Passed:      c.n.passed.Load(),
		Uncacheable: c.n.uncacheable.Load(),
		Region:      c.entries.Stats(),
	}
}
