// Package failover measures, for tests, what a server killed under load costs the regions on a
// backend: a test starts a replicated or partitioned setup (internal/testserver), builds a
// backend on it, and gives Run the backend and the kill.
package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/region"
)

// Outage is what Run measured.
type Outage struct {
	recovered     time.Duration // from the kill to the last failure seen (call or report)
	failedCalls   int           // FailClosed calls that returned an error in that time
	creations     int           // creator calls (both regions) in that time
	reported      int           // backend errors the FailOpen region reported in that time
	deadlineCalls int           // calls ended by their context's deadline in that time
	calls         int           // calls during the whole load
	slowest       time.Duration // the slowest call
	callsDeadline time.Duration // every call's context deadline
}

// String tells the figures in a sentence, for a test's log.
func (o Outage) String() string {
	return fmt.Sprintf("recovered %v after the kill; during it %d creator calls, %d failed FailClosed calls (%d more ended by their deadline), %d errors reported by the FailOpen region; %d calls in all, slowest %v (deadline %v)",
		o.recovered.Round(time.Millisecond), o.creations, o.failedCalls, o.deadlineCalls, o.reported, o.calls, o.slowest.Round(time.Millisecond), o.callsDeadline)
}

// Run puts load on b through two regions, one FailOpen (the default: a failed read is a
// miss, the creator runs, the error is reported) and one FailClosed (the caller gets the error),
// 4 goroutines each, cycling over 40 keys cached beforehand, with a 1s deadline per call. It
// calls kill under that load and keeps the load on until nothing has failed for 2s (at most
// 30s), then checks that no call outlived its deadline and that every key is read from the
// cache again, and returns the figures.
func Run(t *testing.T, b backends.Backend, kill func() error) Outage {
	t.Helper()
	const (
		goroutines = 4
		deadline   = time.Second
		quiet      = 2 * time.Second
	)
	var (
		mu          sync.Mutex
		lastFailure time.Time   // guarded by mu
		lastErr     error       // guarded by mu
		creations   []time.Time // guarded by mu
		reported    []time.Time // guarded by mu
		failedCalls []time.Time // guarded by mu
		expired     []time.Time // guarded by mu: calls ended by their deadline
	)
	failed := func(list *[]time.Time, err error) {
		mu.Lock()
		defer mu.Unlock()
		lastErr = err
		now := time.Now()
		*list = append(*list, now)
		lastFailure = now
	}
	newView := func(name string, policy region.FailurePolicy) *region.View[string] {
		r := region.New(name, region.WithExpiration(time.Hour), region.WithLockTimeout(2*time.Second),
			region.WithFailurePolicy(policy), region.WithLogger(slog.New(slog.DiscardHandler)),
			region.WithErrorHandler(func(_ context.Context, err error) {
				if policy == region.FailOpen {
					failed(&reported, err)
				}
			}))
		if err := r.Configure(b); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return region.NewView[string](r)
	}
	open, closed := newView("open", region.FailOpen), newView("closed", region.FailClosed)
	keys := make([]string, 40) // the two regions share them: their entries are of one format
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	create := func(k string) func(context.Context) (string, error) {
		return func(context.Context) (string, error) {
			mu.Lock()
			creations = append(creations, time.Now())
			mu.Unlock()
			return "v:" + k, nil
		}
	}
	ctx := t.Context()
	for _, v := range []*region.View[string]{open, closed} {
		for _, k := range keys {
			if _, err := v.GetOrCreate(ctx, k, create(k)); err != nil {
				t.Fatalf("warming %s: %v", k, err)
			}
		}
	}
	warmed := len(creations)

	stop := make(chan struct{})
	var calls atomic.Int64
	var slowest atomic.Int64
	var wg sync.WaitGroup
	for g := range 2 * goroutines {
		v := open
		if g%2 == 1 {
			v = closed
		}
		wg.Go(func() {
			for i := g; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := keys[i%len(keys)]
				cctx, cancel := context.WithTimeout(ctx, deadline)
				t0 := time.Now()
				got, err := v.GetOrCreate(cctx, k, create(k))
				d := time.Since(t0)
				cancel()
				calls.Add(1)
				for {
					s := slowest.Load()
					if int64(d) <= s || slowest.CompareAndSwap(s, int64(d)) {
						break
					}
				}
				switch {
				case errors.Is(err, context.DeadlineExceeded):
					// The backend was slow to fail (go-redis retries with backoff): the call
					// ends at its deadline, as it must.
					failed(&expired, err)
				case err != nil && v == open:
					t.Errorf("a FailOpen call failed: %v", err)
				case err != nil:
					failed(&failedCalls, err)
				case got != "v:"+k:
					t.Errorf("%s = %q", k, got)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	killed := time.Now()
	if err := kill(); err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	for {
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		last := lastFailure
		mu.Unlock()
		if last.After(killed) && time.Since(last) > quiet {
			break
		}
		if time.Since(killed) > 30*time.Second {
			close(stop)
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("still failing 30s after the kill (last failure %v after it: %v)", last.Sub(killed), lastErr)
		}
	}
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	o := Outage{recovered: lastFailure.Sub(killed), calls: int(calls.Load()), slowest: time.Duration(slowest.Load()), callsDeadline: deadline}
	in := func(ts []time.Time) int {
		n := 0
		for _, at := range ts {
			if !at.Before(killed) && !at.After(lastFailure) {
				n++
			}
		}
		return n
	}
	o.creations, o.failedCalls, o.reported = in(creations[warmed:]), in(failedCalls), in(reported)
	o.deadlineCalls = in(expired)
	// A call may end a little after its deadline: the deadline is checked between round trips,
	// and a machine of 2 shared cores running the race detector is slow.
	if slack := 500 * time.Millisecond; o.slowest > deadline+slack {
		t.Errorf("a call took %v, past its deadline of %v", o.slowest, deadline)
	}
	// Every key is cached again, wherever its slot went: no creator call now.
	before := len(creations)
	for _, v := range []*region.View[string]{open, closed} {
		for _, k := range keys {
			mu.Unlock()
			got, err := v.GetOrCreate(ctx, k, create(k))
			mu.Lock()
			if err != nil || got != "v:"+k {
				t.Fatalf("after the failover, %s = %q, %v", k, got, err)
			}
		}
	}
	if n := len(creations) - before; n > 0 {
		t.Errorf("after the failover, %d of %d keys were created again rather than read", n, 2*len(keys))
	}
	return o
}
