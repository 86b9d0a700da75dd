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
	gjhttpcache "github.com/gregjones/httpcache"
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

// httpContenders are the handlers of the HTTP scenarios: the bare handler, the same handler
// behind httpcache on the memory backend, and behind github.com/gregjones/httpcache, warmed.
//
// The most used net/http server-side cache middleware, github.com/victorspringer/http-cache (and
// go-chi/stampede after it), is not served by this machine's module proxy. gregjones/httpcache,
// the most used HTTP cache on the registry, is a client-side http.RoundTripper (an RFC 7234
// private cache); it stands in front of the handler here through a transport that calls the
// handler in process, and a middleware that copies its response out: the same work a server-side
// cache does on a hit (look up, rebuild the stored response, write it).
func httpContenders(b *testing.B) map[string]http.Handler {
	cache := region.New("bench-http")
	if err := cache.Configure(memory.New()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cache.Close() })
	return map[string]http.Handler{
		"bare":      http.HandlerFunc(barePage),
		"httpcache": httpcache.Handler(cache, http.HandlerFunc(barePage)),
		"gregjones": transportCache(http.HandlerFunc(barePage)),
	}
}

// handlerTransport is an http.RoundTripper that answers with a handler, in process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// transportCache puts gregjones/httpcache, on its in-memory cache, in front of next.
func transportCache(next http.Handler) http.Handler {
	client := &http.Client{Transport: &gjhttpcache.Transport{Transport: handlerTransport{next}, Cache: gjhttpcache.NewMemoryCache()}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		out.Header = r.Header.Clone()
		resp, err := client.Do(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
}

// BenchmarkHTTPHitServeHTTP serves a cached page in process, to a fresh ResponseRecorder per
// request: what the middleware adds to a handler, without the network.
func BenchmarkHTTPHitServeHTTP(b *testing.B) {
	hs := httpContenders(b)
	for _, name := range []string{"bare", "httpcache", "gregjones"} {
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
	for _, name := range []string{"bare", "httpcache", "gregjones"} {
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
