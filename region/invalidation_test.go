package region_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/region"
)

// TestSharedInvalidationByPolling: three "processes" (regions of one name, each with its own
// backend object) on one store without a Notifier. An invalidation on one reaches the others by
// their poll, and a process configured afterwards starts with it.
func TestSharedInvalidationByPolling(t *testing.T) {
	ctx := t.Context()
	s := newShared()
	open := func() (*region.Region, *region.View[string]) {
		r := newRegion(t, newBatchBackend(s), region.WithSharedInvalidation(10*time.Millisecond))
		return r, region.NewView[string](r)
	}
	r1, v1 := open()
	_, v2 := open()
	_, v3 := open()
	if err := v1.Set(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	for _, v := range []*region.View[string]{v2, v3} {
		if _, ok, _ := v.Get(ctx, "k"); !ok {
			t.Fatal("the value is not shared")
		}
	}
	time.Sleep(time.Millisecond) // the invalidation after the write, on a clock that may tick coarsely
	if err := r1.Invalidate(ctx, region.Hard); err != nil {
		t.Fatal(err)
	}
	for i, v := range []*region.View[string]{v2, v3} {
		start := time.Now()
		for {
			if _, ok, _ := v.Get(ctx, "k"); !ok {
				t.Logf("process %d saw the hard invalidation after %v (poll every 10ms)", i+2, time.Since(start))
				break
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("process %d still serves the value 5s after a hard invalidation elsewhere", i+2)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// A process that starts now reads it at Configure.
	_, v4 := open()
	if _, ok, _ := v4.Get(ctx, "k", region.WithIgnoreExpiration()); ok {
		t.Error("a process configured after the invalidation serves the value")
	}
	// A value written after the invalidation is served everywhere.
	if err := v1.Set(ctx, "k", "new"); err != nil {
		t.Fatal(err)
	}
	if got, ok, _ := v4.Get(ctx, "k"); !ok || got != "new" {
		t.Errorf("after a new write: %q, %v", got, ok)
	}
	// Soft: expired everywhere, served old while regenerated.
	time.Sleep(time.Millisecond)
	if err := r1.Invalidate(ctx, region.Soft); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, fresh, _ := v4.Get(ctx, "k")
		old, there, _ := v4.Get(ctx, "k", region.WithIgnoreExpiration())
		if !fresh && there && old == "new" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a soft invalidation elsewhere did not expire the value here")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSharedInvalidationOption(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("WithSharedInvalidation(0) accepted")
		}
	}()
	region.New("x", region.WithSharedInvalidation(0))
}

// hub is an in-process pub/sub for the fake backends of one store.
type hub struct {
	mu   sync.Mutex
	subs map[string][]func([]byte)
}

// notifying is a batchBackend with the hub's pub/sub, and a Get that can be held after it read.
type notifying struct {
	*batchBackend
	hub  *hub
	hold chan chan struct{} // when set, Get sends a channel and waits for it to be closed
}

func (n *notifying) Get(ctx context.Context, k string) ([]byte, error) {
	v, err := n.batchBackend.Get(ctx, k)
	select {
	case wait := <-n.hold:
		<-wait // the value read, now old, comes back late
	default:
	}
	return v, err
}

func (n *notifying) Publish(_ context.Context, ch string, msg []byte) error {
	n.hub.mu.Lock()
	subs := slices.Clone(n.hub.subs[ch])
	n.hub.mu.Unlock()
	for _, f := range subs {
		f(slices.Clone(msg))
	}
	return nil
}

func (n *notifying) Subscribe(_ context.Context, ch string, deliver func([]byte), _ func()) (io.Closer, error) {
	n.hub.mu.Lock()
	defer n.hub.mu.Unlock()
	if n.hub.subs == nil {
		n.hub.subs = map[string][]func([]byte){}
	}
	n.hub.subs[ch] = append(n.hub.subs[ch], deliver)
	return io.NopCloser(nil), nil
}

// TestSharedInvalidationFromAFastClockAppliesOnce: a hard invalidation stored by a process whose
// clock runs a minute ahead takes effect once in each other process, not again at every poll
// for that minute: a key read all along is created again once.
func TestSharedInvalidationFromAFastClockAppliesOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s := newShared()
		ahead := func() time.Time { return time.Now().Add(time.Minute) }
		fast := newRegion(t, newBatchBackend(s), region.WithSharedInvalidation(10*time.Millisecond), region.WithClock(ahead))
		r := newRegion(t, newBatchBackend(s), region.WithSharedInvalidation(10*time.Millisecond), region.WithExpiration(time.Hour))
		v := region.NewView[int](r)
		var n atomic.Int32
		create := func(context.Context) (int, error) { return int(n.Add(1)), nil }
		if _, err := v.GetOrCreate(ctx, "k", create); err != nil {
			t.Fatal(err)
		}
		if err := fast.Invalidate(ctx, region.Hard); err != nil {
			t.Fatal(err)
		}
		for range 300 { // 3s of reads, 300 polls
			if _, err := v.GetOrCreate(ctx, "k", create); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got := n.Load(); got != 2 {
			t.Errorf("%d creations in 3s after one invalidation from a clock a minute ahead, want 2 (the cold one and one after it)", got)
		}
	})
}

// fleetHub is an in-process pub/sub: what Redis pub/sub is to the processes of a fleet.
type fleetHub struct {
	mu   sync.Mutex
	subs map[int]func([]byte)
	next int
}

func newFleetHub() *fleetHub { return &fleetHub{subs: map[int]func([]byte){}} }

// fleetBackend is a batchBackend that is also a Notifier (on fleetHub), with hooks to order a read
// or a write against other events.
type fleetBackend struct {
	*batchBackend
	h *fleetHub

	afterGet      atomic.Pointer[func(k string)] // called after Get read the store
	afterSet      atomic.Pointer[func(k string)] // called after Set wrote the store
	setFailsAfter atomic.Bool                    // Set writes, then reports an error (a timeout)
	subscribeErrs atomic.Int32                   // Subscribe fails this many more times
}

func (b *fleetBackend) Get(ctx context.Context, k string) ([]byte, error) {
	v, err := b.batchBackend.Get(ctx, k)
	if f := b.afterGet.Load(); f != nil {
		(*f)(k)
	}
	return v, err
}

func (b *fleetBackend) Set(ctx context.Context, k string, v []byte, ttl time.Duration) error {
	if err := b.batchBackend.Set(ctx, k, v, ttl); err != nil {
		return err
	}
	if f := b.afterSet.Load(); f != nil {
		(*f)(k)
	}
	if b.setFailsAfter.Load() {
		return errors.New("i/o timeout (the write was applied)")
	}
	return nil
}

func (b *fleetBackend) Publish(_ context.Context, _ string, msg []byte) error {
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	for _, d := range b.h.subs {
		d(msg)
	}
	return nil
}

type fleetCloser func() error

func (f fleetCloser) Close() error { return f() }

func (b *fleetBackend) Subscribe(_ context.Context, _ string, deliver func([]byte), _ func()) (io.Closer, error) {
	if b.subscribeErrs.Add(-1) >= 0 {
		return nil, errors.New("connection refused")
	}
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	id := b.h.next
	b.h.next++
	b.h.subs[id] = deliver
	return fleetCloser(func() error {
		b.h.mu.Lock()
		defer b.h.mu.Unlock()
		delete(b.h.subs, id)
		return nil
	}), nil
}

var _ backends.Notifier = (*fleetBackend)(nil)

// fleetProcess is one process of a fleet: a region with a local cache, on the shared store s.
func fleetProcess(t *testing.T, s *shared, h *fleetHub, setup func(*fleetBackend), opts ...region.Option) (*fleetBackend, *region.View[string]) {
	t.Helper()
	nb := &fleetBackend{batchBackend: newBatchBackend(s), h: h}
	if setup != nil {
		setup(nb)
	}
	l1 := memory.New()
	t.Cleanup(func() { l1.Close() })
	r := newRegion(t, nb, append([]region.Option{region.WithLocalCache(l1, time.Minute)}, opts...)...)
	return nb, region.NewView[string](r)
}

func fleetRead(ctx context.Context, v *region.View[string], k string) string {
	s, _ := v.GetOrCreate(ctx, k, func(context.Context) (string, error) { return "created", nil })
	return s
}

// A process whose Subscribe failed at Configure (Redis restarting) subscribes again later, so it
// does not miss every eviction for its whole life.
func TestFailedSubscribeIsRetried(t *testing.T) {
	ctx := t.Context()
	s, h := newShared(), newFleetHub()
	_, vA := fleetProcess(t, s, h, func(nb *fleetBackend) { nb.subscribeErrs.Store(1) })
	_, vB := fleetProcess(t, s, h, nil)
	if err := vB.Set(ctx, "k", "old"); err != nil {
		t.Fatal(err)
	}
	if got := fleetRead(ctx, vA, "k"); got != "old" {
		t.Fatalf("first read %q", got)
	}
	time.Sleep(2 * time.Second) // the notifier works again: a retry would have subscribed by now
	if err := vB.Set(ctx, "k", "new"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if got := fleetRead(ctx, vA, "k"); got != "new" {
		t.Errorf("A serves %q 2s after its failed Subscribe, B's Set(\"new\") announced; want \"new\"", got)
	}
}

// A soft invalidation from a process whose clock is an hour ahead moves the invalidation by the
// skew but does not move the other processes' stamps past it: the values they write afterwards
// expire after their own expiration, not an hour later.
func TestSkewedClockDoesNotLengthenExpiration(t *testing.T) {
	ctx := t.Context()
	s, h := newShared(), newFleetHub()
	base := time.Now()
	var offset atomic.Int64
	clockA := func() time.Time { return base.Add(time.Duration(offset.Load())) }
	clockB := func() time.Time { return time.Now().Add(time.Hour) }
	rB := newRegion(t, &fleetBackend{batchBackend: newBatchBackend(s), h: h},
		region.WithSharedInvalidation(time.Hour), region.WithClock(clockB))
	if err := rB.Invalidate(ctx, region.Soft); err != nil {
		t.Fatal(err)
	}
	rA := newRegion(t, &fleetBackend{batchBackend: newBatchBackend(s), h: h},
		region.WithSharedInvalidation(time.Hour), region.WithClock(clockA), region.WithExpiration(time.Minute))
	vA := region.NewView[string](rA)
	if err := vA.Set(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(2 * time.Minute)) // twice the expiration later
	if _, ok, _ := vA.Get(ctx, "k"); ok {
		t.Errorf("a value written 2 minutes ago with a 1-minute expiration is fresh: a peer's clock an hour ahead pushed this process's created-at an hour into the future")
	}
}

// TestSharedInvalidationReachesOtherProcessesOnRedis: three processes' regions (each with its own
// client) on one Redis, polling only once a minute: an invalidation on one reaches the others
// through pub/sub, and one whose subscription was killed meanwhile learns it from its gap, when it
// is back.
func TestSharedInvalidationReachesOtherProcessesOnRedis(t *testing.T) {
	ctx := t.Context()
	srv := testserver.StartRedis(t)
	open := func() (*region.Region, *region.View[string]) {
		r := region.New("shared", region.WithSharedInvalidation(time.Minute), region.WithLogger(slog.New(slog.DiscardHandler)))
		if err := r.Configure(redis.New(newRedisClient(t, srv.Addr))); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return r, region.NewView[string](r)
	}
	r1, v1 := open()
	_, v2 := open()
	_, v3 := open()
	seen := func(what string, gone func(*region.View[string]) bool) {
		t.Helper()
		for i, v := range []*region.View[string]{v2, v3} {
			start := time.Now()
			for !gone(v) {
				if time.Since(start) > 5*time.Second {
					t.Fatalf("%s: process %d did not see it within 5s", what, i+2)
				}
				time.Sleep(100 * time.Microsecond)
			}
			t.Logf("%s: seen by process %d %v after Invalidate returned", what, i+2, time.Since(start))
		}
	}
	absent := func(v *region.View[string]) bool {
		_, ok, _ := v.Get(ctx, "k", region.WithIgnoreExpiration())
		return !ok
	}
	expired := func(v *region.View[string]) bool {
		_, fresh, _ := v.Get(ctx, "k")
		_, there, _ := v.Get(ctx, "k", region.WithIgnoreExpiration())
		return !fresh && there
	}
	write := func() {
		t.Helper()
		time.Sleep(time.Millisecond)
		if err := v1.Set(ctx, "k", "v"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}

	write()
	if err := r1.Invalidate(ctx, region.Hard); err != nil {
		t.Fatal(err)
	}
	seen("hard invalidation", absent)

	write()
	if err := r1.Invalidate(ctx, region.Soft); err != nil {
		t.Fatal(err)
	}
	seen("soft invalidation", expired)

	// Every subscription's connection killed: the announcement below may be published before
	// they are back, and lost; their gaps make them read the stored time.
	write()
	if err := newRedisClient(t, srv.Addr).ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	if err := r1.Invalidate(ctx, region.Hard); err != nil {
		t.Fatal(err)
	}
	seen("hard invalidation with the subscriptions killed", absent)
}

// TestSharedInvalidationFromAFastClockAppliesOnceOnRedis: two processes' regions on one Redis, one
// whose clock runs a minute ahead. Its hard invalidation (stored, and announced over pub/sub)
// takes effect once in the other, which keeps reading a key and polling every 10ms for a second:
// the key is created again once, not at every poll.
func TestSharedInvalidationFromAFastClockAppliesOnceOnRedis(t *testing.T) {
	ctx := t.Context()
	srv := testserver.StartRedis(t)
	open := func(opts ...region.Option) *region.Region {
		r := region.New("skew", append([]region.Option{region.WithSharedInvalidation(10 * time.Millisecond),
			region.WithExpiration(time.Hour), region.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
		if err := r.Configure(redis.New(newRedisClient(t, srv.Addr))); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return r
	}
	fast := open(region.WithClock(func() time.Time { return time.Now().Add(time.Minute) }))
	v := region.NewView[int](open())
	var n atomic.Int32
	create := func(context.Context) (int, error) { return int(n.Add(1)), nil }
	if _, err := v.GetOrCreate(ctx, "k", create); err != nil {
		t.Fatal(err)
	}
	if err := fast.Invalidate(ctx, region.Hard); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if _, err := v.GetOrCreate(ctx, "k", create); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.Load(); got != 2 {
		t.Errorf("%d creations in 1s after one invalidation from a clock a minute ahead, want 2", got)
	}
}
