package region_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/backends/wrap"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/region"
)

// TestLocalCacheReadInFlightDuringEviction: a read that got the old value from the backend,
// while another process's write was announced and evicted the key, must not put the old value
// back into the local cache afterwards: it would be served for up to maxAge.
func TestLocalCacheReadInFlightDuringEviction(t *testing.T) {
	ctx := t.Context()
	s, h := newShared(), &hub{}
	reader := &notifying{batchBackend: newBatchBackend(s), hub: h, hold: make(chan chan struct{}, 1)}
	writer := &notifying{batchBackend: newBatchBackend(s), hub: h, hold: make(chan chan struct{})}
	l1 := memory.New()
	defer l1.Close()
	wl1 := memory.New()
	defer wl1.Close()
	rr := newRegion(t, reader, region.WithLocalCache(l1, time.Hour))
	rw := newRegion(t, writer, region.WithLocalCache(wl1, time.Hour)) // the fleet's processes share the option

	vr, vw := region.NewView[string](rr), region.NewView[string](rw)
	if err := vw.Set(ctx, "k", "old"); err != nil {
		t.Fatal(err)
	}
	wait := make(chan struct{})
	reader.hold <- wait
	done := make(chan string)
	go func() {
		got, _ := vr.GetOrCreate(ctx, "k", func(context.Context) (string, error) { return "created", nil })
		done <- got
	}()
	for len(reader.hold) != 0 { // the read has the old value in hand
		time.Sleep(time.Millisecond)
	}
	time.Sleep(time.Millisecond)
	if err := vw.Set(ctx, "k", "new"); err != nil { // another process writes, and announces
		t.Fatal(err)
	}
	close(wait)
	if got := <-done; got != "old" {
		t.Fatalf("the read in flight got %q, want the old value it read", got)
	}
	if got, _ := vr.GetOrCreate(ctx, "k", func(context.Context) (string, error) { return "created", nil }); got != "new" {
		t.Errorf("after the announcement, the reader serves %q from its local cache; want new", got)
	}
}

// A read in flight does not fill L1 once an eviction announced after it began has arrived: when
// process A reads k (old) and process B's write of k is announced before A's read fills L1, A does
// not serve the old value for the L1 max age.
func TestReadInFlightDoesNotRefillL1AfterEviction(t *testing.T) {
	ctx := t.Context()
	s, h := newShared(), newFleetHub()
	nbA, vA := fleetProcess(t, s, h, nil)
	_, vB := fleetProcess(t, s, h, nil)
	if err := vB.Set(ctx, "k", "old"); err != nil {
		t.Fatal(err)
	}
	loaded, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook := func(k string) {
		if k == "k" {
			once.Do(func() { close(loaded); <-release })
		}
	}
	nbA.afterGet.Store(&hook)
	done := make(chan string)
	go func() { done <- fleetRead(ctx, vA, "k") }()
	<-loaded                                        // A has read "old" from the backend, and not yet filled L1
	if err := vB.Set(ctx, "k", "new"); err != nil { // announced to A now
		t.Fatal(err)
	}
	close(release)
	<-done
	nbA.afterGet.Store(nil)
	if got := fleetRead(ctx, vA, "k"); got != "new" {
		t.Errorf("A serves %q after B's write of \"new\" and its eviction reached A; want \"new\"", got)
	}
}

// Within one process, without any message: a read that loaded the old value does not fill L1 after
// this process's own Set filled it with the new one.
func TestReadInFlightDoesNotRefillL1AfterOwnSet(t *testing.T) {
	ctx := t.Context()
	s, h := newShared(), newFleetHub()
	nbA, vA := fleetProcess(t, s, h, nil)
	_, vB := fleetProcess(t, s, h, nil)
	if err := vB.Set(ctx, "k", "old"); err != nil { // in the backend, not in A's L1
		t.Fatal(err)
	}
	loaded, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook := func(k string) {
		if k == "k" {
			once.Do(func() { close(loaded); <-release })
		}
	}
	nbA.afterGet.Store(&hook)
	done := make(chan string)
	go func() { done <- fleetRead(ctx, vA, "k") }()
	<-loaded
	if err := vA.Set(ctx, "k", "new"); err != nil { // A's own write: backend and L1 hold "new"
		t.Fatal(err)
	}
	close(release)
	<-done
	nbA.afterGet.Store(nil)
	if got := fleetRead(ctx, vA, "k"); got != "new" {
		t.Errorf("A serves %q after its own Set(\"new\") returned; want \"new\"", got)
	}
}

// An eviction announces a key that is not UTF-8 byte for byte, so the other processes drop that key
// and not another.
func TestEvictionOfBinaryKey(t *testing.T) {
	ctx := t.Context()
	s, h := newShared(), newFleetHub()
	_, vA := fleetProcess(t, s, h, nil)
	_, vB := fleetProcess(t, s, h, nil)
	const k = "user:\xff\xfe" // e.g. a raw hash in a mangled key, or a memo argument's bytes
	if err := vB.Set(ctx, k, "old"); err != nil {
		t.Fatal(err)
	}
	if got := fleetRead(ctx, vA, k); got != "old" { // in A's L1 now
		t.Fatalf("first read %q", got)
	}
	if err := vB.Set(ctx, k, "new"); err != nil {
		t.Fatal(err)
	}
	if got := fleetRead(ctx, vA, k); got != "new" {
		t.Errorf("A serves %q for a binary key after B's Set(\"new\") was announced; want \"new\"", got)
	}
}

// A Set whose backend write reports an error after it may have been applied (a timeout) drops the
// key from L1, as SetMulti does, so this process does not serve the old value for the L1 max age.
func TestFailedSetDropsL1(t *testing.T) {
	ctx := t.Context()
	s, h := newShared(), newFleetHub()
	nbA, vA := fleetProcess(t, s, h, nil)
	if err := vA.Set(ctx, "k", "old"); err != nil {
		t.Fatal(err)
	}
	nbA.setFailsAfter.Store(true)
	if err := vA.Set(ctx, "k", "new"); err == nil {
		t.Fatal("the Set did not fail")
	}
	nbA.setFailsAfter.Store(false)
	if _, ok, _ := vA.Get(ctx, "k"); !ok {
		t.Fatal("nothing in the backend")
	}
	if got := fleetRead(ctx, vA, "k"); got != "new" {
		t.Errorf("A serves %q from L1 while the backend holds \"new\"", got)
	}
}

// A Set does not put its value in L1 when a newer write by another process was announced between
// its backend write and its L1 write: L1 never keeps an older value than the backend for the L1 max
// age.
func TestSetDoesNotFillL1OverNewerWrite(t *testing.T) {
	ctx := t.Context()
	s, h := newShared(), newFleetHub()
	nbA, vA := fleetProcess(t, s, h, nil)
	_, vB := fleetProcess(t, s, h, nil)
	written, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook := func(k string) {
		if k == "k" {
			once.Do(func() { close(written); <-release })
		}
	}
	nbA.afterSet.Store(&hook)
	done := make(chan error)
	go func() { done <- vA.Set(ctx, "k", "A") }()
	<-written                                     // A's value is in the backend, not yet in A's L1
	if err := vB.Set(ctx, "k", "B"); err != nil { // newer; announced to A
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	nbA.afterSet.Store(nil)
	if got, _, _ := vA.Get(ctx, "k"); got != "B" {
		t.Fatalf("the backend holds %q, want B", got)
	}
	if got := fleetRead(ctx, vA, "k"); got != "B" {
		t.Errorf("A serves %q from L1 while the backend holds B's later write", got)
	}
}

// Two Sets of one key in one process, whose backend writes and L1 writes land in opposite orders,
// leave L1 and the backend agreeing.
func TestConcurrentSetsKeepL1AndBackendAgreeing(t *testing.T) {
	ctx := t.Context()
	s, h := newShared(), newFleetHub()
	nbA, vA := fleetProcess(t, s, h, nil)
	written, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	hook := func(k string) {
		if k == "k" && first.CompareAndSwap(false, true) { // not sync.Once: the second Set must not wait
			close(written)
			<-release
		}
	}
	nbA.afterSet.Store(&hook)
	done := make(chan error)
	go func() { done <- vA.Set(ctx, "k", "first") }()
	<-written
	if err := vA.Set(ctx, "k", "second"); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	nbA.afterSet.Store(nil)
	if got, _, _ := vA.Get(ctx, "k"); got != "second" {
		t.Fatalf("the backend holds %q, want second", got)
	}
	if got := fleetRead(ctx, vA, "k"); got != "second" {
		t.Errorf("A serves %q from L1 while the backend holds \"second\"", got)
	}
}

// TestLocalCacheSeesWritesOfOtherProcessesOnRedis: three processes' regions (each with its own
// client and its own memory L1 that keeps entries a minute) on one Redis. A Set or a Delete on one
// reaches the others' L1 through pub/sub; one whose subscription was killed clears its L1 when it
// is back, and does not serve the value it held after that.
func TestLocalCacheSeesWritesOfOtherProcessesOnRedis(t *testing.T) {
	ctx := t.Context()
	srv := testserver.StartRedis(t)
	open := func() (*region.Region, *region.View[string], *countingStore) {
		l1 := memory.New()
		r := region.New("l1", region.WithLocalCache(l1, time.Minute), region.WithLogger(slog.New(slog.DiscardHandler)))
		cs := &countingStore{Backend: redis.New(newRedisClient(t, srv.Addr))}
		if err := r.Configure(cs); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close(); l1.Close() })
		return r, region.NewView[string](r), cs
	}
	_, v1, _ := open()
	_, v2, c2 := open()
	_, v3, _ := open()
	get := func(v *region.View[string]) (string, bool) {
		s, ok, _ := v.Get(ctx, "k")
		return s, ok
	}
	// GetOrCreate reads through L1; Get peeks at the backend.
	read := func(v *region.View[string]) string {
		s, _ := v.GetOrCreate(ctx, "k", func(context.Context) (string, error) { return "created", nil })
		return s
	}
	if err := v1.Set(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	for _, v := range []*region.View[string]{v2, v3} {
		if got := read(v); got != "v1" {
			t.Fatalf("first read %q", got)
		}
	}
	// From L1 soon: a read whose fill the announcement of v1's own Set refused (it may arrive
	// after the read began) reads the backend once more; then the reads stop reaching it.
	fromL1 := false
	for range 5 {
		before := c2.gets.Load()
		if got := read(v2); got != "v1" {
			t.Fatalf("read %q, want v1", got)
		}
		if c2.gets.Load() == before {
			fromL1 = true
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !fromL1 {
		t.Fatal("5 reads of a key nobody writes all reached the backend: the local cache never answered")
	}
	seen := func(what, want string) {
		t.Helper()
		for i, v := range []*region.View[string]{v2, v3} {
			start := time.Now()
			for read(v) != want {
				if time.Since(start) > 5*time.Second {
					t.Fatalf("%s: process %d still reads %q after 5s", what, i+2, read(v))
				}
				time.Sleep(100 * time.Microsecond)
			}
			t.Logf("%s: seen by process %d %v after the write returned", what, i+2, time.Since(start))
		}
	}
	if err := v1.Set(ctx, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	seen("Set", "v2")
	if err := v1.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	seen("Delete (then created again)", "created")

	// Subscriptions killed while a write happens: its announcement may be lost; the gap clears L1.
	if err := newRedisClient(t, srv.Addr).ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	if err := v1.Set(ctx, "k", "v3"); err != nil {
		t.Fatal(err)
	}
	seen("Set with the subscriptions killed", "v3")
	_, _ = get(v1)
}

// countingStore is a Redis backend that counts the reads a region makes of it.
type countingStore struct {
	*redis.Backend
	gets atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, k string) ([]byte, error) {
	c.gets.Add(1)
	return c.Backend.Get(ctx, k)
}

// TestLocalCacheKeepsTheFleetLockOnRedis: regions with local caches still create a cold key once
// for the fleet: a miss in L1 goes through the engine and Redis's lock as without one.
func TestLocalCacheKeepsTheFleetLockOnRedis(t *testing.T) {
	srv := testserver.StartRedis(t)
	var made atomic.Int32
	var views []*region.View[string]
	for range 3 {
		l1 := memory.New()
		r := region.New("l1lock", region.WithLocalCache(l1, time.Minute), region.WithLogger(slog.New(slog.DiscardHandler)))
		if err := r.Configure(redis.New(newRedisClient(t, srv.Addr))); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close(); l1.Close() })
		views = append(views, region.NewView[string](r))
	}
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			got, err := views[i%3].GetOrCreate(t.Context(), "cold", func(context.Context) (string, error) {
				made.Add(1)
				time.Sleep(50 * time.Millisecond)
				return "v", nil
			})
			if err != nil || got != "v" {
				t.Errorf("got %q, %v", got, err)
			}
		})
	}
	wg.Wait()
	if n := made.Load(); n != 1 {
		t.Errorf("a cold key was created %d times by 3 regions with local caches, want 1", n)
	}
}

// TestLocalCacheServesWhileTheBackendIsDown: under FailOpen, while the backend cannot be reached
// (every call refused, read by read or skipped by the circuit breaker), the creator is not called
// while the local tier holds a fresh value within its max age, and is called once it no longer
// does; the value it makes is kept in the local tier, which answers the next calls again.
func TestLocalCacheServesWhileTheBackendIsDown(t *testing.T) {
	const maxAge = 10 * time.Second
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		name string
		opts []region.Option
		life time.Duration // how long a value is served in the outage: the expiration or maxAge
	}{
		{"breaker skips reads", nil, maxAge},
		{"every read fails", []region.Option{region.WithCircuitBreaker(0, 0)}, maxAge},
		{"expiration shorter than max age", []region.Option{region.WithExpiration(4 * time.Second)}, 4 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				faults := wrap.NewFaults(1)
				l1 := memory.New()
				r := newRegion(t, wrap.New(newBatchBackend(newShared()), faults.Hook),
					append([]region.Option{region.WithLocalCache(l1, maxAge), region.WithExpiration(time.Hour)}, tc.opts...)...)
				v := region.NewView[string](r)
				var c counter
				if got, err := v.GetOrCreate(ctx, "k", c.create); got != "v1" || err != nil {
					t.Fatalf("before the outage: %q, %v", got, err)
				}
				if err := faults.Set(wrap.Fault{Rate: 1, Err: refused}); err != nil {
					t.Fatal(err)
				}
				// Call every 100ms for three lives of a value; note when the creator runs.
				made := []time.Time{time.Now()}
				for end := time.Now().Add(3*tc.life + time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
					n := c.n.Load()
					got, err := v.GetOrCreate(ctx, "k", c.create)
					if err != nil {
						t.Fatal(err)
					}
					if c.n.Load() > n+1 {
						t.Fatalf("%d creations in one call", c.n.Load()-n)
					}
					if c.n.Load() == n+1 {
						made = append(made, time.Now())
					}
					if want := fmt.Sprintf("v%d", c.n.Load()); got != want {
						t.Fatalf("served %q; want the last value made, %s", got, want)
					}
				}
				if len(made) < 4 {
					t.Fatalf("the creator ran %d times in %v of outage; want once every %v", len(made)-1, 3*tc.life, tc.life)
				}
				// The local tier's max age is timed by the memory backend's coarse clock: a
				// value goes within a few of its 100ms steps after it.
				for i := 1; i < len(made); i++ {
					if gap := made[i].Sub(made[i-1]); gap < tc.life || gap > tc.life+500*time.Millisecond {
						t.Errorf("creation %d came %v after the value before it; want %v (the value's life in the outage)", i+1, gap, tc.life)
					}
				}
				if faults.Injected(0) == 0 {
					t.Error("no backend call failed")
				}
			})
		})
	}
}

// TestExpiredLocalValueIsTheOldValueWhileTheBackendIsDown: when the backend read fails, an
// expired value in the local tier is the old value of the regeneration, as one read from the
// backend would be: with background refresh the caller gets it at once, and what the refresh
// makes is kept in the local tier.
func TestExpiredLocalValueIsTheOldValueWhileTheBackendIsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		faults := wrap.NewFaults(1)
		r := newRegion(t, wrap.New(newBatchBackend(newShared()), faults.Hook), region.WithLocalCache(memory.New(), time.Minute),
			region.WithExpiration(time.Second), region.WithBackgroundRefresh(1))
		v := region.NewView[string](r)
		if err := v.Set(ctx, "k", "old"); err != nil {
			t.Fatal(err)
		}
		if err := faults.Set(wrap.Fault{Rate: 1, Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // expired, still in the local tier
		release, calls := make(chan struct{}), 0
		create := func(context.Context) (string, error) { calls++; <-release; return "new", nil }
		got := make(chan string, 1)
		go func() { s, _ := v.GetOrCreate(ctx, "k", create); got <- s }()
		synctest.Wait() // the call returned, or waits for the creator
		close(release)
		select {
		case s := <-got:
			if s != "old" {
				t.Fatalf("%q; want the expired value at once while the refresh runs", s)
			}
		default:
			t.Fatalf("the call waited for the creator; want the expired value at once (got %q after)", <-got)
		}
		synctest.Wait()
		if got, err := v.GetOrCreate(ctx, "k", create); got != "new" || err != nil || calls != 1 {
			t.Fatalf("after the refresh: %q, %v, %d creations; want its value from the local tier", got, err, calls)
		}
	})
}
