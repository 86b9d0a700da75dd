package httpcache_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/httpcache"
	"github.com/dogpile-go/dogpile/region"
)

func Example() {
	cache := region.New("pages")
	if err := cache.Configure(memory.New()); err != nil {
		panic(err)
	}
	defer cache.Close()

	runs := 0
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs++
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintln(w, "hello")
	})
	srv := httptest.NewServer(httpcache.Handler(cache, page))
	defer srv.Close()

	for range 3 {
		resp, err := http.Get(srv.URL + "/hello")
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s %s", resp.Header.Get("X-Cache"), body)
	}
	fmt.Println("handler runs:", runs)
	// Output:
	// MISS hello
	// HIT hello
	// HIT hello
	// handler runs: 1
}

func ExampleCache_PurgeTag() {
	cache := region.New("pages")
	if err := cache.Configure(memory.New()); err != nil {
		panic(err)
	}
	defer cache.Close()

	pages := httpcache.New(cache, httpcache.WithDefaultMaxAge(time.Hour))
	article := pages.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Cache-Tags", "articles") // stored with the entry, never sent
		fmt.Fprintln(w, "an article")
	}))
	srv := httptest.NewServer(article)
	defer srv.Close()

	xcache := func() string {
		resp, err := http.Get(srv.URL + "/articles/1")
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		return resp.Header.Get("X-Cache")
	}
	fmt.Println(xcache(), xcache())
	if err := pages.PurgeTag(context.Background(), "articles"); err != nil {
		panic(err)
	}
	fmt.Println(xcache(), xcache())
	s := pages.Stats()
	fmt.Println("hits:", s.Hits, "misses:", s.Misses)
	// Output:
	// MISS HIT
	// MISS HIT
	// hits: 2 misses: 2
}
