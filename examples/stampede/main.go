// Command stampede shows the dogpile lock at work on the memory backend: it fires concurrent
// calls at a slow function through memo, first on a cold key, then on a key that has just expired,
// and prints how many times the function ran and how long callers waited.
//
//	go run ./examples/stampede
//	go run ./examples/stampede -callers 5000 -slow 500ms -background
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
)

func main() {
	var cfg config
	flag.IntVar(&cfg.callers, "callers", 1000, "concurrent calls in each wave")
	flag.DurationVar(&cfg.slow, "slow", 200*time.Millisecond, "how long the function takes")
	flag.DurationVar(&cfg.expiry, "expiry", time.Second, "the region's expiration")
	flag.BoolVar(&cfg.background, "background", false, "regenerate expired values in the background")
	flag.Parse()
	if _, err := run(os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "stampede:", err)
		os.Exit(2)
	}
}

type config struct {
	callers    int
	slow       time.Duration
	expiry     time.Duration
	background bool
}

// outcome is what run measured, for its test.
type outcome struct {
	coldRuns, expiredRuns int32
	waited, servedOld     int
}

func run(w io.Writer, cfg config) (outcome, error) {
	var out outcome
	if cfg.callers < 1 || cfg.slow <= 0 || cfg.expiry <= 0 {
		return out, errors.New("-callers, -slow and -expiry must be positive")
	}
	opts := []region.Option{region.WithExpiration(cfg.expiry)}
	if cfg.background {
		opts = append(opts, region.WithBackgroundRefresh(4))
	}
	cache := region.New("stampede", opts...)
	if err := cache.Configure(memory.New()); err != nil {
		return out, err
	}
	defer cache.Close()

	var runs atomic.Int32
	report := memo.Func(cache, func(ctx context.Context, id int64) (string, error) {
		n := runs.Add(1)
		time.Sleep(cfg.slow) // the expensive query
		return fmt.Sprintf("report %d, version %d", id, n), nil
	})

	ctx := context.Background()
	fmt.Fprintf(w, "%d concurrent calls on a cold key, function takes %v:\n", cfg.callers, cfg.slow)
	cold, err := wave(ctx, report, cfg.callers)
	if err != nil {
		return out, err
	}
	out.coldRuns = runs.Load()
	fmt.Fprintf(w, "  the function ran %d time(s); every caller waited for that one run (median wait %v)\n\n",
		out.coldRuns, cold.median().Round(time.Millisecond))

	time.Sleep(cfg.expiry + 50*time.Millisecond)
	fmt.Fprintf(w, "the value has expired; %d concurrent calls again:\n", cfg.callers)
	hot, err := wave(ctx, report, cfg.callers)
	if err != nil {
		return out, err
	}
	if cfg.background {
		// Every caller was served at once; the regeneration may still be starting.
		for end := time.Now().Add(cfg.slow + time.Second); runs.Load() == out.coldRuns && time.Now().Before(end); {
			time.Sleep(time.Millisecond)
		}
	}
	out.expiredRuns = runs.Load() - out.coldRuns
	out.waited = hot.slowerThan(cfg.slow / 2)
	out.servedOld = hot.results["report 1, version 1"]
	fmt.Fprintf(w, "  the function ran %d more time(s)\n", out.expiredRuns)
	fmt.Fprintf(w, "  %d caller(s) waited for the regeneration, %d were served the old value at once (median wait %v)\n",
		out.waited, out.servedOld, hot.median().Round(time.Microsecond))
	return out, nil
}

type waveResult struct {
	latencies []time.Duration
	results   map[string]int
}

// wave releases n goroutines at once on the same key and records what each got and how long it took.
func wave(ctx context.Context, h *memo.Handle[int64, string], n int) (waveResult, error) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	res := waveResult{results: map[string]int{}}
	for range n {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			v, err := h.Call(ctx, 1)
			d := time.Since(t0)
			mu.Lock()
			if err != nil {
				firstErr = cmp.Or(firstErr, err)
			}
			res.latencies = append(res.latencies, d)
			res.results[v]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	slices.Sort(res.latencies)
	return res, firstErr
}

func (w waveResult) median() time.Duration { return w.latencies[len(w.latencies)/2] }

func (w waveResult) slowerThan(d time.Duration) int {
	n := 0
	for _, l := range w.latencies {
		if l >= d {
			n++
		}
	}
	return n
}
