package httpcache_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/backends/wrap"
	"github.com/dogpile-go/dogpile/httpcache"
	"github.com/dogpile-go/dogpile/region"
)

// newRegion returns a region on the memory backend, closed when t ends.
func newRegion(t *testing.T, opts ...region.Option) *region.Region {
	t.Helper()
	r := region.New(t.Name(), opts...)
	if err := r.Configure(memory.New()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// serve starts a real server with next behind a new Cache on a memory region.
func serve(t *testing.T, next http.Handler, opts ...httpcache.Option) (*httptest.Server, *httpcache.Cache) {
	t.Helper()
	c := httpcache.New(newRegion(t), opts...)
	srv := httptest.NewServer(c.Handler(next))
	t.Cleanup(srv.Close)
	return srv, c
}

type result struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, url string, header ...string) result {
	t.Helper()
	return do(t, http.MethodGet, url, header...)
}

func do(t *testing.T, method, url string, header ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{resp.StatusCode, resp.Header, string(b)}
}

// counting is a handler that counts its runs and answers "run N".
type counting struct {
	runs atomic.Int64
	f    func(w http.ResponseWriter, r *http.Request, n int64)
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := c.runs.Add(1)
	if c.f != nil {
		c.f(w, r, n)
		return
	}
	fmt.Fprintf(w, "run %d", n)
}

func TestConcurrentColdRequestsRunHandlerOnce(t *testing.T) {
	release := make(chan struct{})
	h := &counting{f: func(w http.ResponseWriter, r *http.Request, n int64) {
		<-release
		fmt.Fprintf(w, "run %d", n)
	}}
	var arrived atomic.Int64
	c := httpcache.New(newRegion(t))
	cached := c.Handler(h)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		cached.ServeHTTP(w, r)
	}))
	defer srv.Close()
	const clients = 200
	var wg sync.WaitGroup
	bodies := make([]string, clients)
	for i := range clients {
		wg.Go(func() { bodies[i] = get(t, srv.URL+"/page").body })
	}
	for arrived.Load() < clients { // every request is in; all but one wait for the first run
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := h.runs.Load(); n != 1 {
		t.Fatalf("handler ran %d times; want 1", n)
	}
	for _, b := range bodies {
		if b != "run 1" {
			t.Fatalf("a client got %q; want run 1", b)
		}
	}
	if r := get(t, srv.URL+"/page"); r.header.Get("X-Cache") != "HIT" || r.body != "run 1" {
		t.Errorf("then: X-Cache %q body %q; want HIT, run 1", r.header.Get("X-Cache"), r.body)
	}
}

func TestOnlyHeuristicallyCacheableResponsesAreStored(t *testing.T) {
	for _, tc := range []struct {
		method string
		status int
		cached bool
	}{
		{"GET", 200, true}, {"GET", 203, true}, {"GET", 204, true}, {"GET", 300, true},
		{"GET", 301, true}, {"GET", 404, true}, {"GET", 405, true}, {"GET", 410, true},
		{"GET", 414, true}, {"GET", 501, false /* 5xx: never stored */}, {"HEAD", 200, true},
		{"GET", 201, false}, {"GET", 302, false}, {"GET", 400, false}, {"GET", 500, false},
		{"GET", 503, false}, {"POST", 200, false}, {"PUT", 200, false}, {"DELETE", 200, false},
	} {
		t.Run(fmt.Sprint(tc.method, tc.status), func(t *testing.T) {
			h := &counting{f: func(w http.ResponseWriter, r *http.Request, n int64) {
				w.WriteHeader(tc.status)
				fmt.Fprintf(w, "run %d", n)
			}}
			srv, _ := serve(t, h)
			do(t, tc.method, srv.URL+"/")
			do(t, tc.method, srv.URL+"/")
			want := int64(2)
			if tc.cached {
				want = 1
			}
			if n := h.runs.Load(); n != want {
				t.Errorf("handler ran %d times for two requests; want %d", n, want)
			}
		})
	}
}

func TestStatuses501IsStoredWhenListed(t *testing.T) {
	// 501 is in the heuristic set, but 5xx responses are what stale-if-error replaces: only 2xx
	// to 4xx can be listed.
	defer func() {
		if recover() == nil {
			t.Error("WithStatuses(501) did not panic")
		}
	}()
	httpcache.New(newRegion(t), httpcache.WithStatuses(501))
}

func TestHandlerCacheControlDecidesStorage(t *testing.T) {
	for _, tc := range []struct {
		header string
		value  string
		cached bool
	}{
		{"Cache-Control", "no-store", false},
		{"Cache-Control", "private", false},
		{"Cache-Control", "private, max-age=60", false},
		{"Cache-Control", "no-cache", false},
		{"Cache-Control", "max-age=0", false},
		{"Cache-Control", "max-age=60", true},
		{"Cache-Control", "s-maxage=60, max-age=0", true},
		{"Cache-Control", "public, S-MAXAGE=0, max-age=60", false},
		{"Expires", "Thu, 01 Jan 1970 00:00:00 GMT", false},
		{"Expires", "not a date", false},
		{"Expires", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), true},
		{"Set-Cookie", "session=1", false},
		{"Vary", "*", false},
	} {
		t.Run(tc.header+": "+tc.value, func(t *testing.T) {
			h := &counting{f: func(w http.ResponseWriter, r *http.Request, n int64) {
				w.Header().Set(tc.header, tc.value)
				fmt.Fprintf(w, "run %d", n)
			}}
			srv, _ := serve(t, h)
			get(t, srv.URL+"/")
			r := get(t, srv.URL+"/")
			if got := h.runs.Load() == 1; got != tc.cached {
				t.Errorf("stored = %v (runs %d, X-Cache %q); want %v", got, h.runs.Load(), r.header.Get("X-Cache"), tc.cached)
			}
		})
	}
}

func TestMaxAgeSetsLifetime(t *testing.T) {
	h := &counting{f: func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=1")
		fmt.Fprintf(w, "run %d", n)
	}}
	srv, _ := serve(t, h, httpcache.WithDefaultMaxAge(time.Hour))
	get(t, srv.URL+"/")
	if r := get(t, srv.URL+"/"); r.header.Get("X-Cache") != "HIT" {
		t.Fatalf("X-Cache %q; want HIT", r.header.Get("X-Cache"))
	}
	time.Sleep(1100 * time.Millisecond)
	r := get(t, srv.URL+"/")
	if r.header.Get("X-Cache") != "MISS" || r.body != "run 2" {
		t.Errorf("after max-age: X-Cache %q body %q; want MISS run 2 (one request regenerates)", r.header.Get("X-Cache"), r.body)
	}
}

func TestVaryKeepsVariantsApart(t *testing.T) {
	h := &counting{f: func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Vary", "Accept-Encoding")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			fmt.Fprintf(w, "gzip %d", n)
			return
		}
		fmt.Fprintf(w, "identity %d", n)
	}}
	srv, _ := serve(t, h)
	// Concurrent cold requests of both encodings: each gets its own.
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			enc := "identity"
			if i%2 == 0 {
				enc = "gzip"
			}
			req, _ := http.NewRequest("GET", srv.URL+"/v", nil)
			req.Header.Set("Accept-Encoding", enc) // set by hand: the transport leaves the body as sent
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.HasPrefix(string(b), enc+" ") {
				t.Errorf("Accept-Encoding %s got %q", enc, b)
			}
		})
	}
	wg.Wait()
	if n := h.runs.Load(); n != 2 {
		t.Errorf("handler ran %d times for two variants; want 2", n)
	}
	if r := get(t, srv.URL+"/v", "Accept-Encoding", "gzip"); r.header.Get("X-Cache") != "HIT" || !strings.HasPrefix(r.body, "gzip") {
		t.Errorf("gzip again: X-Cache %q body %q", r.header.Get("X-Cache"), r.body)
	}
}

func TestSetCookieResponseNeverServedToAnotherClient(t *testing.T) {
	h := &counting{f: func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Set-Cookie", fmt.Sprintf("session=%d", n))
		fmt.Fprintf(w, "for %d", n)
	}}
	srv, _ := serve(t, h)
	seen := map[string]bool{}
	for range 5 {
		r := get(t, srv.URL+"/login")
		if c := r.header.Get("Set-Cookie"); seen[c] {
			t.Fatalf("cookie %q served twice", c)
		} else {
			seen[c] = true
		}
	}
}

func TestCredentialedRequestsNotCachedWithoutKey(t *testing.T) {
	h := &counting{}
	srv, c := serve(t, h)
	get(t, srv.URL+"/me", "Authorization", "Bearer a")
	get(t, srv.URL+"/me", "Authorization", "Bearer a")
	get(t, srv.URL+"/me", "Cookie", "s=1")
	if n := h.runs.Load(); n != 3 {
		t.Errorf("handler ran %d times; want 3", n)
	}
	if s := c.Stats(); s.Bypassed != 3 {
		t.Errorf("Bypassed = %d; want 3", s.Bypassed)
	}
}

func TestCredentialedKeySeparatesUsers(t *testing.T) {
	h := &counting{f: func(w http.ResponseWriter, r *http.Request, n int64) {
		fmt.Fprint(w, r.Header.Get("Authorization"))
	}}
	srv, _ := serve(t, h, httpcache.WithCredentialedKey(func(r *http.Request) (string, bool) {
		return r.Header.Get("Authorization"), true
	}))
	for range 2 {
		for _, u := range []string{"ann", "bob"} {
			if r := get(t, srv.URL+"/me", "Authorization", u); r.body != u {
				t.Fatalf("%s got %q", u, r.body)
			}
		}
	}
	if n := h.runs.Load(); n != 2 {
		t.Errorf("handler ran %d times; want 2 (once a user)", n)
	}
}

func TestClientNoCacheDoesNotReachHandlerWithoutBypass(t *testing.T) {
	h := &counting{}
	srv, _ := serve(t, h)
	get(t, srv.URL+"/")
	get(t, srv.URL+"/", "Cache-Control", "no-cache")
	get(t, srv.URL+"/", "Pragma", "no-cache")
	if n := h.runs.Load(); n != 1 {
		t.Errorf("handler ran %d times; want 1", n)
	}
}

func TestClientNoCacheRefreshesWithBypass(t *testing.T) {
	h := &counting{}
	srv, _ := serve(t, h, httpcache.WithClientBypass())
	get(t, srv.URL+"/")
	if r := get(t, srv.URL+"/", "Cache-Control", "no-cache"); r.body != "run 2" {
		t.Fatalf("no-cache got %q; want run 2", r.body)
	}
	if r := get(t, srv.URL+"/"); r.body != "run 2" || r.header.Get("X-Cache") != "HIT" {
		t.Errorf("then %q %q; want the refreshed run 2, HIT", r.body, r.header.Get("X-Cache"))
	}
}

func TestConditionalRequestsAnsweredFromCache(t *testing.T) {
	lm := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	h := &counting{f: func(w http.ResponseWriter, r *http.Request, n int64) {
		if r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "" {
			t.Error("a conditional header reached the handler")
		}
		w.Header().Set("Last-Modified", lm.Format(http.TimeFormat))
		fmt.Fprint(w, "body")
	}}
	srv, c := serve(t, h)
	first := get(t, srv.URL+"/", "If-None-Match", `"nope"`)
	etag := first.header.Get("Etag")
	if first.status != 200 || !strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, "W/") {
		t.Fatalf("first: status %d, ETag %q; want 200 and a strong ETag", first.status, etag)
	}
	for _, hdr := range [][]string{
		{"If-None-Match", etag},
		{"If-None-Match", `"other", W/` + etag},
		{"If-None-Match", "*"},
		{"If-Modified-Since", lm.Format(http.TimeFormat)},
		{"If-Modified-Since", lm.Add(time.Hour).Format(http.TimeFormat)},
	} {
		if r := get(t, srv.URL+"/", hdr...); r.status != 304 || r.body != "" || r.header.Get("Etag") != etag {
			t.Errorf("%v: status %d body %q ETag %q; want 304, no body, the ETag", hdr, r.status, r.body, r.header.Get("Etag"))
		}
	}
	if r := get(t, srv.URL+"/", "If-Modified-Since", lm.Add(-time.Hour).Format(http.TimeFormat)); r.status != 200 {
		t.Errorf("modified since: %d; want 200", r.status)
	}
	if n, s := h.runs.Load(), c.Stats(); n != 1 || s.NotModified != 5 {
		t.Errorf("runs %d, NotModified %d; want 1, 5", n, s.NotModified)
	}
}

func TestHeadersAgeAndHopByHop(t *testing.T) {
	h := &counting{f: func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Cache-Tags", "a b")
		w.Header().Set("X-Kept", "yes")
		fmt.Fprint(w, "x")
	}}
	srv, _ := serve(t, h)
	if r := get(t, srv.URL+"/"); r.header.Get("X-Cache") != "MISS" {
		t.Errorf("first X-Cache %q; want MISS", r.header.Get("X-Cache"))
	}
	time.Sleep(1100 * time.Millisecond)
	r := get(t, srv.URL+"/")
	if r.header.Get("X-Cache") != "HIT" || r.header.Get("Age") != "1" || r.header.Get("X-Kept") != "yes" {
		t.Errorf("X-Cache %q Age %q X-Kept %q; want HIT, 1, yes", r.header.Get("X-Cache"), r.header.Get("Age"), r.header.Get("X-Kept"))
	}
	for _, f := range []string{"X-Hop", "Keep-Alive", "X-Cache-Tags"} {
		if r.header.Get(f) != "" {
			t.Errorf("%s replayed", f)
		}
	}
}

func TestCacheHeaderNameAndOff(t *testing.T) {
	srv, _ := serve(t, &counting{}, httpcache.WithCacheHeader("Cache-Status"))
	get(t, srv.URL+"/")
	if r := get(t, srv.URL+"/"); r.header.Get("Cache-Status") != "HIT" || r.header.Get("X-Cache") != "" {
		t.Errorf("Cache-Status %q X-Cache %q", r.header.Get("Cache-Status"), r.header.Get("X-Cache"))
	}
	srv, _ = serve(t, &counting{}, httpcache.WithCacheHeader(""))
	if r := get(t, srv.URL+"/"); r.header.Get("X-Cache") != "" {
		t.Errorf("X-Cache %q with the header off", r.header.Get("X-Cache"))
	}
}

func TestKeySortsQueryAndIgnoresParameters(t *testing.T) {
	h := &counting{}
	srv, _ := serve(t, h, httpcache.WithIgnoreQuery("utm_source"))
	get(t, srv.URL+"/s?a=1&b=2")
	get(t, srv.URL+"/s?b=2&a=1")
	get(t, srv.URL+"/s?a=1&utm_source=x&b=2")
	if n := h.runs.Load(); n != 1 {
		t.Errorf("handler ran %d times; want 1", n)
	}
	get(t, srv.URL+"/s?a=2&b=2")
	if n := h.runs.Load(); n != 2 {
		t.Errorf("another query: runs %d; want 2", n)
	}
}

func TestKeyFuncRefusalPassesThrough(t *testing.T) {
	h := &counting{}
	srv, _ := serve(t, h, httpcache.WithKeyFunc(func(r *http.Request) (string, bool) {
		return r.URL.Path, r.URL.Path != "/live"
	}))
	get(t, srv.URL+"/live")
	get(t, srv.URL+"/live")
	get(t, srv.URL+"/page?x=1")
	get(t, srv.URL+"/page?x=2") // the key ignores the query
	if n := h.runs.Load(); n != 3 {
		t.Errorf("handler ran %d times; want 3", n)
	}
}

func TestServerErrorNotCached(t *testing.T) {
	h := &counting{f: func(w http.ResponseWriter, r *http.Request, n int64) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}}
	srv, _ := serve(t, h)
	for range 2 {
		if r := get(t, srv.URL+"/"); r.status != 503 {
			t.Fatalf("status %d; want 503", r.status)
		}
	}
	if n := h.runs.Load(); n != 2 {
		t.Errorf("handler ran %d times; want 2", n)
	}
}

func TestStaleIfErrorServesLastGoodResponse(t *testing.T) {
	var fail atomic.Bool
	h := &counting{f: func(w http.ResponseWriter, r *http.Request, n int64) {
		if fail.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Cache-Control", "max-age=1")
		fmt.Fprint(w, "good")
	}}
	c := httpcache.New(newRegion(t, region.WithStaleIfError(time.Hour)))
	srv := httptest.NewServer(c.Handler(h))
	defer srv.Close()
	get(t, srv.URL+"/")
	fail.Store(true)
	time.Sleep(1100 * time.Millisecond)
	if r := get(t, srv.URL+"/"); r.status != 200 || r.body != "good" || r.header.Get("X-Cache") != "STALE" {
		t.Errorf("status %d body %q X-Cache %q; want 200 good STALE", r.status, r.body, r.header.Get("X-Cache"))
	}
}

func TestPanicNotCachedAndReachesItsRequest(t *testing.T) {
	var panicking atomic.Bool
	panicking.Store(true)
	h := &counting{f: func(w http.ResponseWriter, r *http.Request, n int64) {
		if panicking.Load() {
			panic(http.ErrAbortHandler)
		}
		fmt.Fprint(w, "ok")
	}}
	srv, _ := serve(t, h)
	if _, err := http.Get(srv.URL + "/"); err == nil {
		t.Error("the panic did not abort the connection")
	}
	panicking.Store(false)
	if r := get(t, srv.URL+"/"); r.body != "ok" {
		t.Errorf("after the panic: %q; want ok (nothing cached)", r.body)
	}
}

func TestLargeResponseStreamsUncached(t *testing.T) {
	const size = 10 << 20
	chunk := make([]byte, 32<<10)
	h := &counting{f: func(w http.ResponseWriter, r *http.Request, n int64) {
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}}
	srv, c := serve(t, h, httpcache.WithMaxBodySize(256<<10))
	for i := range 2 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		resp, err := http.Get(srv.URL + "/big")
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != size {
			t.Fatalf("read %d bytes, %v; want %d", n, err, size)
		}
		runtime.ReadMemStats(&after)
		// Client and server together, in this process: the bound's buffer, the handler's chunk,
		// the connections' buffers. Buffering the response whole would be 10 MiB and more.
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("request %d: %d MiB through, %d KiB allocated in all", i+1, n>>20, alloc>>10)
		if alloc > 2<<20 {
			t.Errorf("request %d allocated %d KiB for a 10 MiB response; want under 2 MiB", i+1, alloc>>10)
		}
	}
	if runs := h.runs.Load(); runs != 2 {
		t.Errorf("handler ran %d times; want 2 (never stored)", runs)
	}
	if s := c.Stats(); s.Uncacheable != 1 || s.Passed != 2 {
		t.Errorf("Uncacheable %d, Passed %d; want 1 (then hit-for-pass), 2", s.Uncacheable, s.Passed)
	}
}

func TestPurgeURLTagAndAll(t *testing.T) {
	h := &counting{f: func(w http.ResponseWriter, r *http.Request, n int64) {
		if strings.HasPrefix(r.URL.Path, "/news/") {
			w.Header().Set("X-Cache-Tags", "news")
		}
		fmt.Fprintf(w, "run %d", n)
	}}
	srv, c := serve(t, h)
	ctx := context.Background()
	warm := func() {
		for _, p := range []string{"/a", "/b", "/news/1", "/news/2"} {
			get(t, srv.URL+p)
		}
	}
	warm()
	warm()
	if n := h.runs.Load(); n != 4 {
		t.Fatalf("warm: %d runs; want 4", n)
	}
	if err := c.Purge(ctx, srv.URL+"/a"); err != nil {
		t.Fatal(err)
	}
	warm()
	if n := h.runs.Load(); n != 5 {
		t.Fatalf("after Purge(/a): %d runs; want 5", n)
	}
	if err := c.PurgeTag(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	warm()
	if n := h.runs.Load(); n != 7 {
		t.Fatalf("after PurgeTag(news): %d runs; want 7", n)
	}
	if err := c.PurgeAll(ctx); err != nil {
		t.Fatal(err)
	}
	warm()
	if n := h.runs.Load(); n != 11 {
		t.Fatalf("after PurgeAll: %d runs; want 11", n)
	}
}

func TestStatsCountRequests(t *testing.T) {
	h := &counting{f: func(w http.ResponseWriter, r *http.Request, n int64) {
		if r.URL.Path == "/nostore" {
			w.Header().Set("Cache-Control", "no-store")
		}
		fmt.Fprint(w, "x")
	}}
	srv, c := serve(t, h)
	get(t, srv.URL+"/")        // miss
	get(t, srv.URL+"/")        // hit
	get(t, srv.URL+"/nostore") // uncacheable, passed
	get(t, srv.URL+"/nostore") // passed (hit-for-pass)
	do(t, "POST", srv.URL+"/") // bypassed
	s := c.Stats()
	if s.Misses != 1 || s.Hits != 1 || s.Uncacheable != 1 || s.Passed != 2 || s.Bypassed != 1 {
		t.Errorf("Stats = %+v", s)
	}
	if s.Region.Hits != 2 || s.Region.Creations != 2 {
		t.Errorf("Region stats: hits %d creations %d; want 2 (the page, the pass marker), 2", s.Region.Hits, s.Region.Creations)
	}
}

func TestExpiredServedStaleWhileOneRegenerates(t *testing.T) {
	var slow atomic.Bool
	release := make(chan struct{})
	h := &counting{f: func(w http.ResponseWriter, r *http.Request, n int64) {
		if slow.Load() {
			<-release
		}
		w.Header().Set("Cache-Control", "max-age=1")
		fmt.Fprintf(w, "run %d", n)
	}}
	srv, c := serve(t, h)
	get(t, srv.URL+"/")
	time.Sleep(1100 * time.Millisecond)
	slow.Store(true)
	regenerated := make(chan result)
	go func() { regenerated <- get(t, srv.URL+"/") }() // leads the regeneration, held by release
	for h.runs.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	for range 20 {
		if r := get(t, srv.URL+"/"); r.body != "run 1" || r.header.Get("X-Cache") != "STALE" {
			t.Fatalf("during regeneration: %q %q; want run 1, STALE", r.body, r.header.Get("X-Cache"))
		}
	}
	close(release)
	if r := <-regenerated; r.body != "run 2" || r.header.Get("X-Cache") != "MISS" {
		t.Errorf("the regenerating request got %q %q; want run 2, MISS", r.body, r.header.Get("X-Cache"))
	}
	if r := get(t, srv.URL+"/"); r.body != "run 2" || r.header.Get("X-Cache") != "HIT" {
		t.Errorf("then %q %q; want run 2, HIT", r.body, r.header.Get("X-Cache"))
	}
	if s := c.Stats(); s.Stale != 20 || s.Region.Stale != 20 || h.runs.Load() != 2 {
		t.Errorf("Stale %d, region's Stale %d, runs %d; want 20, 20, 2", s.Stale, s.Region.Stale, h.runs.Load())
	}
}

func TestEntriesSurviveEveryCodec(t *testing.T) {
	for _, codec := range []region.Codec{region.JSON, region.Gob} {
		t.Run(fmt.Sprintf("%T", codec), func(t *testing.T) {
			r := region.New(t.Name(), region.WithCodec(codec))
			if err := r.Configure(memory.New(memory.WithCopy())); err != nil { // through the codec
				t.Fatal(err)
			}
			defer r.Close()
			h := &counting{f: func(w http.ResponseWriter, req *http.Request, n int64) {
				w.Header().Set("Vary", "Accept-Language")
				w.Header().Set("X-Cache-Tags", "t")
				w.Header().Add("X-Multi", "a")
				w.Header().Add("X-Multi", "b")
				w.WriteHeader(http.StatusNotFound)
				fmt.Fprintf(w, "run %d \x00\xff", n)
			}}
			srv := httptest.NewServer(httpcache.Handler(r, h))
			defer srv.Close()
			first := get(t, srv.URL+"/", "Accept-Language", "fr")
			again := get(t, srv.URL+"/", "Accept-Language", "fr")
			if again.status != 404 || again.body != first.body || h.runs.Load() != 1 ||
				strings.Join(again.header.Values("X-Multi"), ",") != "a,b" || again.header.Get("X-Cache") != "HIT" {
				t.Errorf("again: %d %q %v, runs %d; want what the first got, a hit", again.status, again.body, again.header, h.runs.Load())
			}
		})
	}
}

func TestExpiredServedStaleToEveryRequestUnderBackgroundRefresh(t *testing.T) {
	var slow atomic.Bool
	started, release, returned := make(chan struct{}), make(chan struct{}), make(chan struct{})
	h := &counting{f: func(w http.ResponseWriter, r *http.Request, n int64) {
		if slow.Load() {
			close(started)
			<-release
			defer close(returned)
		}
		w.Header().Set("Cache-Control", "max-age=1")
		fmt.Fprintf(w, "run %d", n)
	}}
	c := httpcache.New(newRegion(t, region.WithBackgroundRefresh(1)))
	srv := httptest.NewServer(c.Handler(h))
	defer srv.Close()
	get(t, srv.URL+"/")
	time.Sleep(1100 * time.Millisecond)
	slow.Store(true)
	// The request that finds the entry expired starts the regeneration and is answered at once:
	// the handler is still held by release when its response arrives.
	if r := get(t, srv.URL+"/"); r.body != "run 1" || r.header.Get("X-Cache") != "STALE" {
		t.Fatalf("the request that triggered the regeneration got %q %q; want run 1, STALE", r.body, r.header.Get("X-Cache"))
	}
	<-started
	for range 20 {
		if r := get(t, srv.URL+"/"); r.body != "run 1" || r.header.Get("X-Cache") != "STALE" {
			t.Fatalf("during regeneration: %q %q; want run 1, STALE", r.body, r.header.Get("X-Cache"))
		}
	}
	slow.Store(false)
	close(release)
	<-returned
	// The store follows the handler's return on the background goroutine: until it lands, the
	// old response is still the one served.
	deadline := time.Now().Add(5 * time.Second)
	var r result
	for r = get(t, srv.URL+"/"); r.body == "run 1" && time.Now().Before(deadline); r = get(t, srv.URL+"/") {
		if r.header.Get("X-Cache") != "STALE" {
			t.Fatalf("before the store: X-Cache %q; want STALE", r.header.Get("X-Cache"))
		}
		time.Sleep(time.Millisecond)
	}
	if r.body != "run 2" || r.header.Get("X-Cache") != "HIT" {
		t.Errorf("after the regeneration: %q %q; want run 2, HIT", r.body, r.header.Get("X-Cache"))
	}
	if n := h.runs.Load(); n != 2 {
		t.Errorf("handler ran %d times; want 2 (once cold, once in the background)", n)
	}
	if s := c.Stats(); s.Misses != 1 || s.Stale < 21 {
		t.Errorf("Misses %d, Stale %d; want 1 (the cold request alone), at least 21", s.Misses, s.Stale)
	}
}

func TestFlushStreamsUncacheableResponseAsWritten(t *testing.T) {
	const bound = 1 << 10
	first := strings.Repeat("a", 2*bound) // past the bound: streamed, and within net/http's buffer
	got := make(chan struct{})
	h := &counting{f: func(w http.ResponseWriter, r *http.Request, n int64) {
		fmt.Fprint(w, first)
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Error("the client did not get the first chunk while the handler ran")
		}
		fmt.Fprint(w, "rest")
	}}
	srv, c := serve(t, h, httpcache.WithMaxBodySize(bound))
	resp, err := http.Get(srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, len(first))
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != first {
		t.Fatalf("first chunk: %v", err)
	}
	close(got)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "rest" || resp.Header.Get("X-Cache") != "PASS" {
		t.Errorf("then %q, %v, X-Cache %q; want rest, PASS", rest, err, resp.Header.Get("X-Cache"))
	}
	if s := c.Stats(); s.Uncacheable != 1 {
		t.Errorf("Uncacheable %d; want 1", s.Uncacheable)
	}
}

func TestCreationTimeoutAnswersGatewayTimeout(t *testing.T) {
	const clients = 5
	var slow atomic.Bool
	slow.Store(true)
	var arrived atomic.Int64
	h := &counting{f: func(w http.ResponseWriter, r *http.Request, n int64) {
		if slow.Load() {
			<-r.Context().Done() // the creation's context, cancelled at the timeout
			// Every request of the burst had arrived by then (a later one, sent once the burst
			// got its 504s, may have too: the callers' timer and the context's fire apart).
			if a := arrived.Load(); a < clients {
				t.Errorf("%d of %d requests had arrived at the timeout: the test needs a longer one", a, clients)
			}
			fmt.Fprint(w, "too late")
			return
		}
		fmt.Fprintf(w, "run %d", n)
	}}
	c := httpcache.New(newRegion(t, region.WithCreationTimeout(time.Second)))
	cached := c.Handler(h)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		cached.ServeHTTP(w, r)
	}))
	defer srv.Close()
	results := make([]result, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() { results[i] = get(t, srv.URL+"/slow") })
	}
	wg.Wait()
	for i, r := range results {
		if r.status != http.StatusGatewayTimeout {
			t.Errorf("request %d: %d %q; want 504, the leader and its waiters alike", i, r.status, r.body)
		}
	}
	if n := h.runs.Load(); n != 1 {
		t.Errorf("handler ran %d times for %d concurrent requests; want 1", n, clients)
	}
	slow.Store(false)
	if r := get(t, srv.URL+"/slow"); r.status != 200 || r.body != "run 2" || r.header.Get("X-Cache") != "MISS" {
		t.Errorf("after the timeout: %d %q %q; want 200, run 2, MISS (nothing stored, the key free)", r.status, r.body, r.header.Get("X-Cache"))
	}
}

func TestFailClosedCacheFailureAnsweredByHandler(t *testing.T) {
	faults := wrap.NewFaults(1)
	r := region.New(t.Name(), region.WithFailurePolicy(region.FailClosed),
		region.WithLogger(slog.New(slog.DiscardHandler))) // every request's failure is reported
	if err := r.Configure(wrap.New(memory.New(), faults.Hook)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	h := &counting{}
	c := httpcache.New(r)
	srv := httptest.NewServer(c.Handler(h))
	defer srv.Close()
	get(t, srv.URL+"/")
	if err := faults.Set(wrap.Fault{Rate: 1}, wrap.OpGet, wrap.OpSet, wrap.OpDelete, wrap.OpGetMulti,
		wrap.OpSetMulti, wrap.OpDeleteMulti, wrap.OpTryLock, wrap.OpTryLockMulti, wrap.OpUnlock,
		wrap.OpGetValue, wrap.OpSetValue, wrap.OpSetIfNotNewer, wrap.OpSetMultiIfNotNewer); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if r := get(t, srv.URL+"/"); r.status != 200 || r.body != fmt.Sprintf("run %d", i+2) || r.header.Get("X-Cache") != "PASS" {
			t.Errorf("cache failing, request %d: %d %q %q; want 200, run %d from the handler, PASS", i+1, r.status, r.body, r.header.Get("X-Cache"), i+2)
		}
	}
	if s := c.Stats(); s.Region.Errors.Read != 3 || s.Hits+s.Stale+s.Misses != 1 {
		t.Errorf("failed reads %d, answers from the cache %d; want 3, 1 (the first request)", s.Region.Errors.Read, s.Hits+s.Stale+s.Misses)
	}
	faults.Clear()
	get(t, srv.URL+"/")
	if r := get(t, srv.URL+"/"); r.header.Get("X-Cache") != "HIT" {
		t.Errorf("cache back: X-Cache %q; want HIT", r.header.Get("X-Cache"))
	}
}
