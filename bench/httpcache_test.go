package bench

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/httpcache"
	"github.com/dogpile-go/dogpile/region"
)

// pageBody is the response of the HTTP scenarios: a 4 KiB HTML page.
var pageBody = []byte("<!doctype html><title>page</title>" + strings.Repeat("<p>cached words</p>", 210))

// barePage is the floor: a handler that serves a precomputed body, with the headers a cached
// response carries.
func barePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "max-age=600")
	_, _ = w.Write(pageBody)
}

// httpContenders are the handlers of the HTTP scenarios: the bare handler and the same handler
// behind httpcache on the memory backend, warmed. The most used net/http cache middleware,
// github.com/victorspringer/http-cache (and go-chi/stampede after it), is not served by this
// machine's module proxy, so it has no row here.
func httpContenders(b *testing.B) map[string]http.Handler {
	cache := region.New("bench-http")
	if err := cache.Configure(memory.New()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cache.Close() })
	return map[string]http.Handler{
		"bare":      http.HandlerFunc(barePage),
		"httpcache": httpcache.Handler(cache, http.HandlerFunc(barePage)),
	}
}

// BenchmarkHTTPHitServeHTTP serves a cached page in process, to a fresh ResponseRecorder per
// request: what the middleware adds to a handler, without the network.
func BenchmarkHTTPHitServeHTTP(b *testing.B) {
	hs := httpContenders(b)
	for _, name := range []string{"bare", "httpcache"} {
		h := hs[name]
		req := httptest.NewRequest("GET", "http://example.com/page?b=2&a=1", nil)
		h.ServeHTTP(httptest.NewRecorder(), req) // warm
		b.Run("impl="+name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					h.ServeHTTP(httptest.NewRecorder(), req)
				}
			})
		})
	}
}

// BenchmarkHTTPHitLoopback serves a cached page through a real server on loopback to an
// http.Client with keep-alive, from GOMAXPROCS goroutines: what a client of the service sees.
func BenchmarkHTTPHitLoopback(b *testing.B) {
	hs := httpContenders(b)
	for _, name := range []string{"bare", "httpcache"} {
		srv := httptest.NewServer(hs[name])
		url := srv.URL + "/page?b=2&a=1"
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		get := func() {
			resp, err := client.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		get() // warm
		b.Run("impl="+name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					get()
				}
			})
		})
		client.CloseIdleConnections()
		srv.Close()
	}
}
