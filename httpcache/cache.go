package httpcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dogpile-go/dogpile/region"
)

// ViewName is the name of the middleware's view of its region (region.WithName): its reads,
// hits, misses, stale answers and creations are region.Region.ViewStats()[ViewName].
const ViewName = "httpcache"

// Cache caches the responses of the handlers it wraps in one region. Make one per region with
// New, wrap handlers with Handler (each route may add options of its own), and purge through it.
// A Cache is safe for concurrent use.
type Cache struct {
	region  *region.Region
	entries *region.View[*entry]
	tags    *region.View[uint64]
	cfg     config
	n       counters
}

// counters are the middleware's own counts, atomics owned by the Cache.
type counters struct {
	hits, stale, misses, notModified, bypassed, passed, uncacheable atomic.Uint64
}

// New returns a Cache that stores responses in r, with opts (see Option). It panics if r is nil
// or an option is invalid.
//
// Give the middleware a region of its own: PurgeAll invalidates the whole region. Entries are
// one value each (status, headers, body, in a compact binary form): with region.Gob the body is
// stored as it is, with region.JSON (the default codec) as base64, a third larger. On the memory
// backend nothing is encoded and a hit copies nothing but header slices.
func New(r *region.Region, opts ...Option) *Cache {
	if r == nil {
		panic("httpcache: New(nil region)")
	}
	return &Cache{
		region: r,
		entries: region.NewView[*entry](r, region.WithName(ViewName),
			region.WithExpirationFor(func(e *entry, _ error) time.Duration { return e.ttl }),
			region.WithShouldCache(func(e *entry) bool { return !e.noStore })),
		tags: region.NewView[uint64](r, region.WithName(ViewName+".tags"), region.WithExpiration(0)),
		cfg:  defaultConfig().apply(opts),
	}
}

// Handler wraps next in a new Cache on r with opts: New(r, opts...).Handler(next).
func Handler(r *region.Region, next http.Handler, opts ...Option) http.Handler {
	return New(r, opts...).Handler(next)
}

// Handler returns next behind the cache: a GET or HEAD request is answered from the cache when
// it can be, and otherwise by next, once for all the concurrent requests of its key (in every
// process that shares the region's backend, where it has a distributed lock). opts apply to this
// handler only, over the Cache's: use it per route. It panics if an option is invalid.
//
// What is cached and how:
//
//   - Requests: GET and HEAD without a Range header; with an Authorization or Cookie header only
//     under WithCredentialedKey. Everything else goes to next untouched (Stats.Bypassed).
//   - Responses: the statuses of WithStatuses, unless Cache-Control says no-store, private or
//     no-cache, or the response sets a cookie, declares trailers, says "Vary: *", or its body
//     outgrows WithMaxBodySize. Such a response is streamed to its client as next writes it, and
//     the URL then goes straight to next for WithPassTTL (Stats.Passed). The requests that were
//     waiting for that response run next themselves, each: correct, but not coalesced.
//   - Lifetime: s-maxage, else max-age, else Expires minus Date, else WithDefaultMaxAge. An
//     expired response is served (STALE) to every request but one while that one regenerates it,
//     in the background under region.WithBackgroundRefresh.
//   - Failures: a 5xx response is given to the requests that waited for it but never stored;
//     under region.WithStaleIfError the expired response is served instead. A panic in next
//     reaches the request that ran it (the server aborts its connection, as without the cache);
//     the requests that waited for it get 500 Internal Server Error. A creation that outlasts the
//     region's creation timeout (region.WithCreationTimeout) answers its request and those that
//     waited for it 504 Gateway Timeout, stores nothing, and frees the URL for the next request.
//     On a backend without a distributed lock (memory) a region has no creation timeout unless
//     it sets one: without it a handler that never returns holds its URL, and every request for
//     it waits until its own context ends.
//     Under region.FailClosed a request whose cache read fails is answered by next, uncached
//     (PASS, counted in Stats.Region.Errors); under FailOpen, the default, it is a miss (MISS).
//   - Variants: a response's Vary header names request headers whose values select the
//     variant: each variant is an entry of its own, found in two reads (the URL's list of Vary
//     names, then the variant).
//   - Conditional requests: If-None-Match and If-Modified-Since are answered with 304 from the
//     cache; responses get a strong ETag (a hash of the body) when next sets none. Conditional
//     and Range headers are not passed to next when it runs to fill the cache.
//   - Headers: Age, Date, and the cache header (WithCacheHeader); hop-by-hop fields are dropped.
//
// A hit costs one region read (two for a URL with variants or tags, plus one a tag), the key's
// construction and the copy of the header map's slices into the response.
func (c *Cache) Handler(next http.Handler, opts ...Option) http.Handler {
	cfg := c.cfg
	if len(opts) > 0 {
		cfg = c.cfg.apply(opts)
	}
	h := &handler{c: c, cfg: &cfg, next: next}
	if cfg.cacheHeader != "" {
		for i, v := range []string{"HIT", "STALE", "MISS", "PASS"} {
			h.xcache[i] = []string{v}
		}
	}
	return h
}

type handler struct {
	c      *Cache
	cfg    *config
	next   http.Handler
	xcache [4][]string // HIT, STALE, MISS, PASS: shared value slices of the cache header
}

const (
	xHit = iota
	xStale
	xMiss
	xPass
)

var bypassCall = []region.Option{region.WithBypass()}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || r.Header.Get("Range") != "" {
		h.bypass(w, r)
		return
	}
	key, ok := h.cfg.key(r)
	if !ok {
		h.bypass(w, r)
		return
	}
	var opts []region.Option
	if h.cfg.clientBypass && requestNoCache(r.Header) {
		h.c.n.bypassed.Add(1)
		opts = bypassCall
	}
	start := time.Now()
	ctx := r.Context()
	e, cl, err := h.get(ctx, w, r, key, key, nil, opts)
	if err == nil && e.kind == kindMeta {
		_, _ = cl.detach() // that creation returned the list and wrote nothing
		var gens []uint64
		if gens, err = h.tagGens(ctx, e.tags); err == nil {
			e, cl, err = h.get(ctx, w, r, key, variantKey(key, e, r, gens), e, opts)
		}
	}
	h.respond(w, r, start, e, cl, err)
}

// bypass sends a request that the cache does not handle to next.
func (h *handler) bypass(w http.ResponseWriter, r *http.Request) {
	h.c.n.bypassed.Add(1)
	h.passThrough(w, r)
}

func (h *handler) passThrough(w http.ResponseWriter, r *http.Request) {
	if h.cfg.cacheHeader != "" {
		w.Header()[h.cfg.cacheHeader] = h.xcache[xPass]
	}
	h.next.ServeHTTP(w, r)
}

// call is one get-or-create of one request: what its creation needs, and, once it has run,
// its recorder.
type call struct {
	h       *handler
	w       http.ResponseWriter
	r       *http.Request
	primary string // the URL's key
	key     string // the key read: primary, or a variant's
	meta    *entry // the URL's variants, when key is a variant's

	mu       sync.Mutex // guards rec and detached: the creation may run on another goroutine
	rec      *recorder
	detached bool
}

func (h *handler) get(ctx context.Context, w http.ResponseWriter, r *http.Request, primary, key string, meta *entry, opts []region.Option) (*entry, *call, error) {
	cl := &call{h: h, w: w, r: r, primary: primary, key: key, meta: meta}
	e, err := region.GetOrCreateWith(ctx, h.c.entries, key, create, cl, opts...)
	return e, cl, err
}

// recorder returns the call's recorder, made on the creation's first use: one that writes to the
// leader's client unless the leader has stopped waiting.
func (cl *call) recorder() *recorder {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	w := cl.w
	if cl.detached {
		w = nil
	}
	cl.rec = newRecorder(cl.h.cfg, w)
	return cl.rec
}

// detach stops the creation, if it still runs, from writing to the client, and says whether this
// request led a creation and whether it wrote to the client.
func (cl *call) detach() (led, wrote bool) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.detached = true
	if cl.rec == nil {
		return false, false
	}
	return cl.rec.led(), cl.rec.detach()
}

// serverError is the error of a creation whose handler answered 5xx: its response (nil when it
// was too large and streamed to the leader) goes to the requests that waited, and nothing is
// stored.
type serverError struct{ resp *entry }

func (e *serverError) Error() string { return "httpcache: the handler failed" }

// create runs the handler for the call's request and makes the entry to store.
func create(ctx context.Context, cl *call) (*entry, error) {
	h := cl.h
	rec := cl.recorder()
	now := time.Now()
	rec.start(now)
	req := cl.r.Clone(ctx)
	for _, f := range []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range"} {
		req.Header.Del(f)
	}
	h.next.ServeHTTP(rec, req)
	status, ttl, why, body := rec.finish()
	now = time.Now() // stored now: freshness and Age count from the end of the response
	if status >= 500 {
		h.c.n.uncacheable.Add(1)
		if why == reasonTooLarge {
			return nil, &serverError{}
		}
		return nil, &serverError{resp: h.response(cl.r.Method, status, rec.header, body, now, 0)}
	}
	if why != "" {
		h.c.n.uncacheable.Add(1)
		return &entry{kind: kindPass, stored: now, ttl: h.cfg.passTTL}, nil
	}
	resp := h.response(cl.r.Method, status, rec.header, body, now, ttl)
	vary, tags := varyNames(rec.header), h.cfg.tagList(rec.header)
	if cl.meta == nil && len(vary) == 0 && len(tags) == 0 {
		return resp, nil
	}
	if cl.meta != nil && slicesEqual(vary, cl.meta.vary) && slicesEqual(tags, cl.meta.tags) {
		return resp, nil
	}
	// The URL's responses vary (or are tagged), or no longer as its list says: a new list,
	// with a new id, so that every variant under the old one is cold.
	meta := &entry{kind: kindMeta, stored: now, id: rand.Uint64(), vary: vary, tags: tags}
	gens, err := h.tagGens(ctx, tags)
	if err == nil {
		_ = h.c.entries.Set(ctx, variantKey(cl.primary, meta, cl.r, gens), resp) // reported by the region
	}
	if cl.meta == nil {
		return meta, nil
	}
	_ = h.c.entries.Set(ctx, cl.primary, meta)
	resp.noStore = true // stored under its own variant key above
	return resp, nil
}

// response makes a response entry: the stored headers, a Date, a strong ETag when a 200 has
// none, Content-Length, and Content-Type sniffed as net/http does when next set none.
func (h *handler) response(method string, status int, hdr http.Header, body []byte, now time.Time, ttl time.Duration) *entry {
	sh := h.cfg.storedHeader(hdr)
	if _, ok := hdr["Content-Type"]; !ok && len(body) > 0 {
		sh["Content-Type"] = []string{http.DetectContentType(body)}
	}
	if len(sh["Date"]) == 0 {
		sh["Date"] = []string{now.UTC().Format(http.TimeFormat)}
	}
	if status == http.StatusOK && len(sh["Etag"]) == 0 && method == http.MethodGet {
		sum := sha256.Sum256(body)
		sh["Etag"] = []string{`"` + hex.EncodeToString(sum[:16]) + `"`}
	}
	if status != http.StatusNoContent && status != http.StatusNotModified {
		n := strconv.Itoa(len(body))
		if method == http.MethodHead {
			n = hdr.Get("Content-Length") // next's own, if it said; HEAD bodies are not stored
			body = nil
		}
		if n != "" {
			sh["Content-Length"] = []string{n}
		}
	}
	return &entry{kind: kindResponse, status: status, stored: now, ttl: ttl, header: sh,
		body: append([]byte(nil), body...)}
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// tagGens returns the current generation of each tag, making one for a tag that has none.
func (h *handler) tagGens(ctx context.Context, tags []string) ([]uint64, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	gens := make([]uint64, len(tags))
	for i, t := range tags {
		g, err := h.c.tags.GetOrCreate(ctx, tagKey(t), newGeneration)
		if err != nil {
			return nil, err
		}
		gens[i] = g
	}
	return gens, nil
}

func newGeneration(context.Context) (uint64, error) { return rand.Uint64(), nil }

// respond answers the request with what its get-or-create returned.
func (h *handler) respond(w http.ResponseWriter, r *http.Request, start time.Time, e *entry, cl *call, err error) {
	led, wrote := false, false
	if cl != nil {
		led, wrote = cl.detach()
	}
	var se *serverError
	var pe *region.PanicError
	switch {
	case err == nil && e.kind == kindResponse:
		x := xHit
		switch now := time.Now(); {
		case !e.stored.Before(start):
			x = xMiss
		case e.ttl > 0 && now.Sub(e.stored) > e.ttl:
			x = xStale
		}
		if wrote { // the leader's own creation streamed part of a response and then panicked,
			panic(http.ErrAbortHandler) // and stale-if-error answered: too late to send it
		}
		h.write(w, r, e, x)
	case err == nil: // a URL whose response cannot be stored
		h.c.n.passed.Add(1)
		if !led || !wrote {
			h.passThrough(w, r)
		}
	case errors.As(err, &se):
		h.c.n.misses.Add(1)
		if se.resp != nil && !wrote {
			h.write(w, r, se.resp, xMiss)
		} else if !wrote {
			h.passThrough(w, r)
		}
	case errors.As(err, &pe):
		if led {
			panic(pe.Value)
		}
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
	case r.Context().Err() != nil: // the client is gone
	case wrote:
	case errors.Is(err, region.ErrCreationTimeout):
		http.Error(w, http.StatusText(http.StatusGatewayTimeout), http.StatusGatewayTimeout)
	default: // the cache failed (a region under FailClosed): answer without it
		h.passThrough(w, r)
	}
}

// write sends a response entry, or 304 Not Modified when r's conditions allow.
func (h *handler) write(w http.ResponseWriter, r *http.Request, e *entry, x int) {
	switch x {
	case xHit:
		h.c.n.hits.Add(1)
	case xStale:
		h.c.n.stale.Add(1)
	case xMiss:
		h.c.n.misses.Add(1)
	}
	hdr := w.Header()
	for k, vs := range e.header {
		hdr[k] = vs
	}
	age := max(time.Since(e.stored), 0) / time.Second
	hdr["Age"] = []string{strconv.FormatInt(int64(age), 10)}
	if h.cfg.cacheHeader != "" {
		hdr[h.cfg.cacheHeader] = h.xcache[x]
	}
	if e.status == http.StatusOK && notModified(r, e) {
		h.c.n.notModified.Add(1)
		for _, f := range []string{"Content-Length", "Content-Type", "Content-Encoding"} {
			delete(hdr, f)
		}
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(e.status)
	if r.Method != http.MethodHead && len(e.body) > 0 {
		_, _ = w.Write(e.body)
	}
}
