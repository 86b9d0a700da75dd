package httpcache

import (
	"fmt"
	"net/http"
	"time"
)

// Defaults of the options.
const (
	DefaultMaxBodySize = 1 << 20          // WithMaxBodySize
	DefaultMaxAge      = time.Minute      // WithDefaultMaxAge
	DefaultPassTTL     = 30 * time.Second // WithPassTTL
	DefaultCacheHeader = "X-Cache"        // WithCacheHeader
	DefaultTagHeader   = "X-Cache-Tags"   // WithTagHeader
)

// Option is one setting of a Cache, given to New, Handler or Cache.Handler. An option with a bad
// value makes them panic with a message naming it: options are fixed in code, so that is a
// programmer error, caught as the program starts (as region.New does).
type Option func(*config) error

type config struct {
	maxBody      int64
	statuses     map[int]bool
	clientBypass bool
	ignoreQuery  map[string]bool
	keyFunc      func(*http.Request) (string, bool)
	credKey      func(*http.Request) (string, bool)
	cacheHeader  string
	tagHeader    string
	defaultTTL   time.Duration
	passTTL      time.Duration
}

func defaultConfig() config {
	c := config{maxBody: DefaultMaxBodySize, statuses: map[int]bool{}, cacheHeader: DefaultCacheHeader,
		tagHeader: DefaultTagHeader, defaultTTL: DefaultMaxAge, passTTL: DefaultPassTTL}
	for _, s := range defaultStatuses {
		c.statuses[s] = true
	}
	return c
}

// apply returns c with opts applied over it, or panics with the first option's error.
func (c config) apply(opts []Option) config {
	c.statuses = cloneMap(c.statuses)
	c.ignoreQuery = cloneMap(c.ignoreQuery)
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			panic("httpcache: " + err.Error())
		}
	}
	return c
}

func cloneMap[K comparable](m map[K]bool) map[K]bool {
	out := make(map[K]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// WithMaxBodySize bounds the body of a stored response (DefaultMaxBodySize, 1 MiB, by default).
// A response whose body grows past n, or whose Content-Length says it will, is streamed to its
// client as the handler writes it and not stored: the middleware buffers at most n bytes of it.
// n must be positive.
func WithMaxBodySize(n int64) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("WithMaxBodySize(%d): must be positive", n)
		}
		c.maxBody = n
		return nil
	}
}

// WithStatuses replaces the status codes whose responses may be stored (by default the
// heuristically cacheable ones: 200, 203, 204, 300, 301, 404, 405, 410, 414 and 501). Codes of
// 500 and above are never stored: they are what stale-if-error replaces.
func WithStatuses(codes ...int) Option {
	return func(c *config) error {
		c.statuses = map[int]bool{}
		for _, s := range codes {
			if s < 200 || s >= 500 {
				return fmt.Errorf("WithStatuses(%d): only 2xx to 4xx can be stored", s)
			}
			c.statuses[s] = true
		}
		return nil
	}
}

// WithClientBypass lets a request's "Cache-Control: no-cache" (or max-age=0, or "Pragma:
// no-cache") run the handler and store what it returns, without the dogpile lock
// (region.WithBypass). Off by default: without it any public client could stampede the origin,
// and such requests are answered from the cache like the others.
func WithClientBypass() Option {
	return func(c *config) error { c.clientBypass = true; return nil }
}

// WithIgnoreQuery leaves the named query parameters (tracking ones: utm_source, fbclid...) out of
// the default key, so that URLs that differ only in them share an entry. The handler still sees
// them; the response it makes for the first such URL is served for all. It has no effect with
// WithKeyFunc.
func WithIgnoreQuery(names ...string) Option {
	return func(c *config) error {
		for _, n := range names {
			c.ignoreQuery[n] = true
		}
		return nil
	}
}

// WithKeyFunc replaces the default key (method, scheme, host, path and sorted query) with f's:
// f returns the key of a request and true, or false for a request that must not be cached (it
// then goes to the handler untouched, counted in Stats.Bypassed). Keys of different responses
// must differ; the Vary headers of a response are still added to it. f is also how Cache.Purge
// finds a URL's key, from a GET request for it.
func WithKeyFunc(f func(*http.Request) (key string, ok bool)) Option {
	return func(c *config) error {
		if f == nil {
			return fmt.Errorf("WithKeyFunc(nil): need a function")
		}
		c.keyFunc = f
		return nil
	}
}

// WithCredentialedKey caches responses to requests that carry credentials (an Authorization or
// Cookie header), which are otherwise never served from the cache nor stored: f returns what
// identifies whose response it is (a user or tenant id, a role) and true, and that is added to
// the key, so that a response is served only to requests f maps to the same string; false sends
// the request to the handler untouched. Responses that set cookies are never stored, whatever f
// says.
func WithCredentialedKey(f func(*http.Request) (string, bool)) Option {
	return func(c *config) error {
		if f == nil {
			return fmt.Errorf("WithCredentialedKey(nil): need a function")
		}
		c.credKey = f
		return nil
	}
}

// WithCacheHeader names the response header that says how the cache answered: HIT (fresh from
// the cache), STALE (expired, served while one request regenerates it, or because regenerating
// failed), MISS (made by the handler for this request or one it waited for) or PASS (not from the
// cache). DefaultCacheHeader, X-Cache, by default; "" turns it off.
func WithCacheHeader(name string) Option {
	return func(c *config) error { c.cacheHeader = http.CanonicalHeaderKey(name); return nil }
}

// WithTagHeader names the response header in which a handler tags its response for PurgeTag
// (comma- or space-separated tags): DefaultTagHeader, X-Cache-Tags, by default; "" turns tags
// off. The header is stored with the entry but never sent to clients.
func WithTagHeader(name string) Option {
	return func(c *config) error { c.tagHeader = http.CanonicalHeaderKey(name); return nil }
}

// WithDefaultMaxAge sets how long a response that states no lifetime (no s-maxage, max-age or
// Expires) stays fresh: DefaultMaxAge, one minute, by default. Expired entries are still served
// while one request regenerates them, for as long as the region's backend keeps them
// (region.WithStorageTTL). d must be positive.
func WithDefaultMaxAge(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("WithDefaultMaxAge(%v): must be positive", d)
		}
		c.defaultTTL = d
		return nil
	}
}

// WithPassTTL sets how long a URL whose response could not be stored (too large, no-store,
// Set-Cookie, a status not stored...) goes straight to the handler, without the dogpile lock
// ("hit-for-pass"): DefaultPassTTL, 30s, by default. Without it, concurrent requests for such a
// URL would queue behind one another, each waiting for the previous response to turn out
// uncacheable. d must be positive.
func WithPassTTL(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("WithPassTTL(%v): must be positive", d)
		}
		c.passTTL = d
		return nil
	}
}
