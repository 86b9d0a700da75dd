// Package freshness is a simulation, after Vattani, Chierichetti and Lowenstein, "Optimal
// Probabilistic Cache Stampede Prevention" (VLDB 2015): clients read one key that expires every
// period and takes a while to create, and the simulation counts what each freshness strategy
// costs. It runs on testing/synctest's virtual clock, so a minute of simulated load takes well
// under a second and every figure is exact for its run:
//
//	go test -run TestSimulation -v ./examples/freshness            # print the table
//	go test -run TestSimulation ./examples/freshness -update       # and write it into README.md
//
// The strategies:
//
//   - plain expiry: a map with a TTL and no lock, as a hand-written cache does. A client that
//     finds the key missing creates it itself.
//   - dogpile lock: a region with an expiration. When the value expires, one client regenerates
//     it and waits; the others are served the old value.
//   - dogpile lock + XFetch: WithEarlyRefresh(1). The value is regenerated before it expires, in
//     the background, in the last fifth of its period: nobody waits and no expired value is
//     served.
//   - dogpile lock + background: WithBackgroundRefresh. Nobody waits, but old values are served
//     while the regeneration runs.
//   - dogpile lock + background + XFetch: both. Nobody waits and no expired value is served, at
//     the price of a few more regenerations: XFetch refreshes earlier the more often a key is
//     read, but never before four fifths of the period.
package freshness

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/region"
)

var update = flag.Bool("update", false, "write the table into README.md's freshness section")

// The simulated load.
const (
	clients  = 100
	period   = time.Second            // T: how long a value stays fresh
	delta    = 100 * time.Millisecond // how long a creation takes
	interval = 20 * time.Millisecond  // each client reads every interval on average
	periods  = 50
)

// result is what one strategy cost over the run.
type result struct {
	name      string
	creations int64 // creator calls
	waited    int64 // reads that waited for a creation (or made one themselves)
	stale     int64 // reads served a value past its expiry: older than period since it was stored
	reads     int64
	maxWait   time.Duration
}

// strategy answers one read: the value is its creation time.
type strategy interface {
	get(ctx context.Context) (time.Time, error)
}

// simulate runs the clients against s for the whole run, in the synctest bubble.
func simulate(t *testing.T, name string, s strategy, creations *atomic.Int64) result {
	res := result{name: name}
	var mu sync.Mutex
	ctx := t.Context()
	// Warm: the table is about expiry under load, not the cold start (see examples/stampede).
	if _, err := s.get(ctx); err != nil {
		t.Fatal(err)
	}
	creations.Store(0)
	end := time.Now().Add(periods * period)
	var wg sync.WaitGroup
	for c := range clients {
		rng := rand.New(rand.NewPCG(uint64(c), 7))
		wg.Go(func() {
			// Spread the clients' first reads over one interval.
			time.Sleep(time.Duration(rng.Int64N(int64(interval))))
			for time.Now().Before(end) {
				start := time.Now()
				created, err := s.get(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				wait := time.Since(start)
				mu.Lock()
				res.reads++
				if wait > 0 {
					res.waited++
					res.maxWait = max(res.maxWait, wait)
				}
				// created is when the creation began; the value was stored delta later, and
				// its period counts from then, as the region counts it.
				if time.Since(created) >= delta+period {
					res.stale++
				}
				mu.Unlock()
				time.Sleep(time.Duration(rng.Int64N(2 * int64(interval))))
			}
		})
	}
	wg.Wait()
	synctest.Wait()
	res.creations = creations.Load()
	return res
}

// creator is the slow function: it takes delta and returns its start time.
func creator(n *atomic.Int64) func(context.Context) (time.Time, error) {
	return func(context.Context) (time.Time, error) {
		n.Add(1)
		start := time.Now()
		time.Sleep(delta)
		return start, nil
	}
}

// plainCache is the hand-written cache: a map with a TTL, no lock around creation.
type plainCache struct {
	mu      sync.Mutex
	value   time.Time
	expires time.Time
	create  func(context.Context) (time.Time, error)
}

func (p *plainCache) get(ctx context.Context) (time.Time, error) {
	p.mu.Lock()
	if time.Now().Before(p.expires) {
		v := p.value
		p.mu.Unlock()
		return v, nil
	}
	p.mu.Unlock()
	v, err := p.create(ctx)
	if err != nil {
		return v, err
	}
	p.mu.Lock()
	p.value, p.expires = v, v.Add(period)
	p.mu.Unlock()
	return v, nil
}

type regionStrategy struct {
	view   *region.View[time.Time]
	create func(context.Context) (time.Time, error)
}

func (r *regionStrategy) get(ctx context.Context) (time.Time, error) {
	return r.view.GetOrCreate(ctx, "hot", r.create)
}

func run(t *testing.T) []result {
	var results []result
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int64
		results = append(results, simulate(t, "plain expiry (no lock)", &plainCache{create: creator(&n)}, &n))
	})
	for _, s := range []struct {
		name string
		opts []region.Option
	}{
		{"dogpile lock", nil},
		{"dogpile lock + XFetch (beta 1)", []region.Option{region.WithEarlyRefresh(1)}},
		{"dogpile lock + background refresh", []region.Option{region.WithBackgroundRefresh(1)}},
		{"dogpile lock + background + XFetch (beta 1)", []region.Option{region.WithBackgroundRefresh(1), region.WithEarlyRefresh(1)}},
	} {
		synctest.Test(t, func(t *testing.T) {
			r := region.New("sim", append([]region.Option{region.WithExpiration(period)}, s.opts...)...)
			if err := r.Configure(memory.New()); err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var n atomic.Int64
			results = append(results, simulate(t, s.name, &regionStrategy{view: region.NewView[time.Time](r), create: creator(&n)}, &n))
		})
	}
	return results
}

func table(results []result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d clients each reading one key every %v on average for %d periods of %v (after a first, cold read); a creation takes %v.\n\n",
		clients, interval, periods, period, delta)
	b.WriteString("| strategy | creations | reads that waited | longest wait | expired values served |\n")
	b.WriteString("|---|---:|---:|---:|---:|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %d | %d of %d | %v | %d |\n", r.name, r.creations, r.waited, r.reads, r.maxWait, r.stale)
	}
	return b.String()
}

func TestSimulation(t *testing.T) {
	results := run(t)
	tab := table(results)
	t.Log("\n" + tab)

	// What the table must show, whatever the exact counts.
	plain, lock, syncX, bg, xfetch := results[0], results[1], results[2], results[3], results[4]
	if syncX.stale != 0 || syncX.waited > syncX.creations {
		t.Errorf("XFetch without background: %d expired served, %d waits for %d creations; want none, and one wait a creation", syncX.stale, syncX.waited, syncX.creations)
	}
	if plain.creations < 10*periods {
		t.Errorf("plain expiry: %d creations; a stampede makes many per period", plain.creations)
	}
	if lock.creations > periods+1 || bg.creations > periods+1 {
		t.Errorf("dogpile lock: %d and %d creations; want at most one per period", lock.creations, bg.creations)
	}
	if lock.waited > periods+1 {
		t.Errorf("dogpile lock: %d reads waited; want one per period (the regenerating one)", lock.waited)
	}
	if bg.waited != 0 || xfetch.waited != 0 {
		t.Errorf("background refresh: %d and %d reads waited; want none", bg.waited, xfetch.waited)
	}
	if xfetch.stale != 0 {
		t.Errorf("XFetch: %d expired values served; want none", xfetch.stale)
	}
	if bg.stale == 0 {
		t.Errorf("background refresh without XFetch served no expired value: the simulation is not measuring")
	}

	if *update {
		const begin, end = "<!-- freshness table: go test -run TestSimulation ./examples/freshness -update -->\n", "<!-- end freshness table -->\n"
		readme, err := os.ReadFile("../../README.md")
		if err != nil {
			t.Fatal(err)
		}
		i, j := bytes.Index(readme, []byte(begin)), bytes.Index(readme, []byte(end))
		if i < 0 || j < i {
			t.Fatalf("README.md has no freshness table markers")
		}
		out := append(append(append([]byte{}, readme[:i+len(begin)]...), "\n"+tab+"\n"...), readme[j:]...)
		if err := os.WriteFile("../../README.md", out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
