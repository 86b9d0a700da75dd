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
