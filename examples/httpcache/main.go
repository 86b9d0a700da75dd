// Command httpcache shows the dogpile lock in front of an HTTP handler: it starts a server whose
// handler takes a while, behind httpcache on the memory backend, fires concurrent clients at one
// URL, first cold, then once the response has expired, and prints how many times the handler ran
// and the clients' latency percentiles.
//
//	go run ./examples/httpcache
//	go run ./examples/httpcache -clients 2000 -slow 500ms -background
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/httpcache"
	"github.com/dogpile-go/dogpile/region"
)

func main() {
	var cfg config
	flag.IntVar(&cfg.clients, "clients", 500, "concurrent requests in each wave")
	flag.DurationVar(&cfg.slow, "slow", 200*time.Millisecond, "how long the handler takes")
	flag.DurationVar(&cfg.maxAge, "max-age", time.Second, "the response's max-age")
	flag.BoolVar(&cfg.background, "background", false, "regenerate expired responses in the background")
	flag.Parse()
	if _, err := run(os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "httpcache:", err)
		os.Exit(2)
	}
}

type config struct {
	clients    int
	slow       time.Duration
	maxAge     time.Duration
	background bool
}

// outcome is what run measured, for its test.
type outcome struct {
	coldRuns, expiredRuns int64
	xcache                [2]map[string]int
}

func run(w io.Writer, cfg config) (outcome, error) {
	var out outcome
	if cfg.clients < 1 || cfg.slow <= 0 || cfg.maxAge < time.Second {
		return out, errors.New("-clients and -slow must be positive, -max-age at least 1s")
	}
	// A bound on each run of the handler: on memory there is none by default, and a handler that
	// hung would hold its URL.
	opts := []region.Option{region.WithCreationTimeout(30 * time.Second)}
	if cfg.background {
		opts = append(opts, region.WithBackgroundRefresh(4))
	}
	cache := region.New("pages", opts...)
	if err := cache.Configure(memory.New()); err != nil {
		return out, err
	}
	defer cache.Close()

	var runs atomic.Int64
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		time.Sleep(cfg.slow) // a slow query, a template, a call to another service
		w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", int(cfg.maxAge/time.Second)))
		fmt.Fprintln(w, "the page, made at", time.Now().Format(time.RFC3339Nano))
	})
	srv := httptest.NewServer(httpcache.Handler(cache, page))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.clients}}
	defer client.CloseIdleConnections()

	fmt.Fprintf(w, "%d concurrent clients, a handler of %v, max-age %v, background refresh %v\n\n",
		cfg.clients, cfg.slow, cfg.maxAge, cfg.background)
	for i, wave := range []string{"cold", "expired"} {
		if i == 1 {
			time.Sleep(cfg.maxAge + 100*time.Millisecond)
		}
		before := runs.Load()
		lat, xcache, err := fire(client, srv.URL+"/page", cfg.clients)
		if err != nil {
			return out, err
		}
		n := runs.Load() - before
		if i == 0 {
			out.coldRuns = n
		} else {
			out.expiredRuns = n
		}
		out.xcache[i] = xcache
		fmt.Fprintf(w, "%-8s handler runs: %d   X-Cache: %v\n", wave, n, xcache)
		fmt.Fprintf(w, "         latency p50 %v  p90 %v  p99 %v  max %v\n\n",
			pct(lat, 50), pct(lat, 90), pct(lat, 99), lat[len(lat)-1])
	}
	s := cache.ViewStats()[httpcache.ViewName]
	fmt.Fprintf(w, "region view %q: %d reads, %d hits, %d stale, %d creations, %d waits\n",
		httpcache.ViewName, s.Reads(), s.Hits, s.Stale, s.Creations, s.Waits)
	return out, nil
}

// fire sends n concurrent GETs to url and returns their latencies, sorted, and their X-Cache
// values counted.
func fire(client *http.Client, url string, n int) ([]time.Duration, map[string]int, error) {
	lat := make([]time.Duration, n)
	xc := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			resp, err := client.Get(url)
			if err != nil {
				errs[i] = err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat[i], xc[i] = time.Since(t0), resp.Header.Get("X-Cache")
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	slices.Sort(lat)
	counts := map[string]int{}
	for _, x := range xc {
		counts[x]++
	}
	return lat, counts, nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[(len(sorted)-1)*p/100].Round(100 * time.Microsecond)
}
