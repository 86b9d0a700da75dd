package region_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/region"
)

// r4hub is an in-process pub/sub: what Redis pub/sub is to the processes of a fleet.
type r4hub struct {
	mu   sync.Mutex
	subs map[int]func([]byte)
	next int
}

func newR4Hub() *r4hub { return &r4hub{subs: map[int]func([]byte){}} }

// r4backend is a batchBackend that is also a Notifier (on r4hub), with hooks to order a read
// or a write against other events.
type r4backend struct {
	*batchBackend
	h *r4hub

	afterGet      atomic.Pointer[func(k string)] // called after Get read the store
	afterSet      atomic.Pointer[func(k string)] // called after Set wrote the store
	setFailsAfter atomic.Bool                    // Set writes, then reports an error (a timeout)
	subscribeErrs atomic.Int32                   // Subscribe fails this many more times
}

func (b *r4backend) Get(ctx context.Context, k string) ([]byte, error) {
	v, err := b.batchBackend.Get(ctx, k)
	if f := b.afterGet.Load(); f != nil {
		(*f)(k)
	}
	return v, err
}

func (b *r4backend) Set(ctx context.Context, k string, v []byte, ttl time.Duration) error {
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

func (b *r4backend) Publish(_ context.Context, _ string, msg []byte) error {
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	for _, d := range b.h.subs {
		d(msg)
	}
	return nil
}

type r4closer func() error

func (f r4closer) Close() error { return f() }

func (b *r4backend) Subscribe(_ context.Context, _ string, deliver func([]byte), _ func()) (io.Closer, error) {
	if b.subscribeErrs.Add(-1) >= 0 {
		return nil, errors.New("connection refused")
	}
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	id := b.h.next
	b.h.next++
	b.h.subs[id] = deliver
	return r4closer(func() error {
		b.h.mu.Lock()
		defer b.h.mu.Unlock()
		delete(b.h.subs, id)
		return nil
	}), nil
}

var _ backends.Notifier = (*r4backend)(nil)

// r4process is one process of a fleet: a region with a local cache, on the shared store s.
func r4process(t *testing.T, s *shared, h *r4hub, setup func(*r4backend), opts ...region.Option) (*r4backend, *region.View[string]) {
	t.Helper()
	nb := &r4backend{batchBackend: newBatchBackend(s), h: h}
	if setup != nil {
		setup(nb)
	}
	l1 := memory.New()
	t.Cleanup(func() { l1.Close() })
	r := newRegion(t, nb, append([]region.Option{region.WithLocalCache(l1, time.Minute)}, opts...)...)
	return nb, region.NewView[string](r)
}

func r4read(ctx context.Context, v *region.View[string], k string) string {
	s, _ := v.GetOrCreate(ctx, k, func(context.Context) (string, error) { return "created", nil })
	return s
}

// TestReview4ReadInFlightRefillsL1AfterEviction: process A reads k from the backend (old);
// before its read fills L1, process B writes k and its eviction reaches A (nothing to drop yet);
// then A's read fills L1 with the old value, which A serves for the L1 max age (a minute)
// although the write's announcement arrived after A's read began.
func TestReview4ReadInFlightRefillsL1AfterEviction(t *testing.T) {
	ctx := t.Context()
	s, h := newShared(), newR4Hub()
	nbA, vA := r4process(t, s, h, nil)
	_, vB := r4process(t, s, h, nil)
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
	go func() { done <- r4read(ctx, vA, "k") }()
	<-loaded                                        // A has read "old" from the backend, and not yet filled L1
	if err := vB.Set(ctx, "k", "new"); err != nil { // announced to A now
		t.Fatal(err)
	}
	close(release)
	<-done
	nbA.afterGet.Store(nil)
	if got := r4read(ctx, vA, "k"); got != "new" {
		t.Errorf("A serves %q after B's write of \"new\" and its eviction reached A; want \"new\"", got)
	}
}

// TestReview4ReadInFlightOverOwnSet: the same within one process, without any message: a read
// that loaded the old value fills L1 after this process's own Set filled it with the new one.
func TestReview4ReadInFlightOverOwnSet(t *testing.T) {
	ctx := t.Context()
	s, h := newShared(), newR4Hub()
	nbA, vA := r4process(t, s, h, nil)
	_, vB := r4process(t, s, h, nil)
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
	go func() { done <- r4read(ctx, vA, "k") }()
	<-loaded
	if err := vA.Set(ctx, "k", "new"); err != nil { // A's own write: backend and L1 hold "new"
		t.Fatal(err)
	}
	close(release)
	<-done
	nbA.afterGet.Store(nil)
	if got := r4read(ctx, vA, "k"); got != "new" {
		t.Errorf("A serves %q after its own Set(\"new\") returned; want \"new\"", got)
	}
}

// TestReview4BinaryKeyAnnouncement: keys go out as JSON strings, which replace bytes that are not
// UTF-8 with U+FFFD: the other processes drop another key, and keep serving the old value.
func TestReview4BinaryKeyAnnouncement(t *testing.T) {
	ctx := t.Context()
	s, h := newShared(), newR4Hub()
	_, vA := r4process(t, s, h, nil)
	_, vB := r4process(t, s, h, nil)
	const k = "user:\xff\xfe" // e.g. a raw hash in a mangled key, or a memo argument's bytes
	if err := vB.Set(ctx, k, "old"); err != nil {
		t.Fatal(err)
	}
	if got := r4read(ctx, vA, k); got != "old" { // in A's L1 now
		t.Fatalf("first read %q", got)
	}
	if err := vB.Set(ctx, k, "new"); err != nil {
		t.Fatal(err)
	}
	if got := r4read(ctx, vA, k); got != "new" {
		t.Errorf("A serves %q for a binary key after B's Set(\"new\") was announced; want \"new\"", got)
	}
}

// TestReview4FailedSetKeepsStaleL1: a Set whose backend write reports an error after it was
// applied (a timeout) leaves the old value in L1, and announces nothing: this process serves
// the old value for the L1 max age although the backend holds the new one. (storeMulti drops
// L1 in that case; store does not.)
func TestReview4FailedSetKeepsStaleL1(t *testing.T) {
	ctx := t.Context()
	s, h := newShared(), newR4Hub()
	nbA, vA := r4process(t, s, h, nil)
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
	if got := r4read(ctx, vA, "k"); got != "new" {
		t.Errorf("A serves %q from L1 while the backend holds \"new\"", got)
	}
}

// TestReview4SubscribeFailureIsNeverRetried: a process whose Subscribe failed at Configure (Redis
// restarting) never subscribes: it misses every eviction for its whole life, and no gap clears
// its L1.
func TestReview4SubscribeFailureIsNeverRetried(t *testing.T) {
	ctx := t.Context()
	s, h := newShared(), newR4Hub()
	_, vA := r4process(t, s, h, func(nb *r4backend) { nb.subscribeErrs.Store(1) })
	_, vB := r4process(t, s, h, nil)
	if err := vB.Set(ctx, "k", "old"); err != nil {
		t.Fatal(err)
	}
	if got := r4read(ctx, vA, "k"); got != "old" {
		t.Fatalf("first read %q", got)
	}
	time.Sleep(2 * time.Second) // the notifier works again: a retry would have subscribed by now
	if err := vB.Set(ctx, "k", "new"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if got := r4read(ctx, vA, "k"); got != "new" {
		t.Errorf("A serves %q 2s after its failed Subscribe, B's Set(\"new\") announced; want \"new\"", got)
	}
}

// TestReview4SkewedClockDisablesExpiration: one process whose clock is an hour ahead invalidates
// (soft). Every other process applies its time, and apply moves its stamps past it: from then
// on every value they write is created an hour in the future, so it stays fresh for an hour
// plus its expiration. (The doc says a skew of d moves the invalidation by d; it also lengthens
// every expiration in the fleet by d, persistently: the time is stored in the backend.)
func TestReview4SkewedClockDisablesExpiration(t *testing.T) {
	ctx := t.Context()
	s, h := newShared(), newR4Hub()
	base := time.Now()
	var offset atomic.Int64
	clockA := func() time.Time { return base.Add(time.Duration(offset.Load())) }
	clockB := func() time.Time { return time.Now().Add(time.Hour) }
	rB := newRegion(t, &r4backend{batchBackend: newBatchBackend(s), h: h},
		region.WithSharedInvalidation(time.Hour), region.WithClock(clockB))
	if err := rB.Invalidate(ctx, region.Soft); err != nil {
		t.Fatal(err)
	}
	rA := newRegion(t, &r4backend{batchBackend: newBatchBackend(s), h: h},
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

// TestReview4SetFillsL1AfterNewerWrite: process A's Set writes the backend, and before it puts
// its value in its L1, process B writes a newer value, announced to A (nothing to drop yet).
// A's L1 write is unconditional (l1Guard.write takes no epoch from before the backend write), so
// A keeps its older value in L1, and serves it for the L1 max age while the backend holds B's.
func TestReview4SetFillsL1AfterNewerWrite(t *testing.T) {
	ctx := t.Context()
	s, h := newShared(), newR4Hub()
	nbA, vA := r4process(t, s, h, nil)
	_, vB := r4process(t, s, h, nil)
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
	if got := r4read(ctx, vA, "k"); got != "B" {
		t.Errorf("A serves %q from L1 while the backend holds B's later write", got)
	}
}

// TestReview4ConcurrentOwnSets: the same within one process: two Sets of one key, whose backend
// writes and L1 writes land in opposite orders, leave L1 and the backend disagreeing.
func TestReview4ConcurrentOwnSets(t *testing.T) {
	ctx := t.Context()
	s, h := newShared(), newR4Hub()
	nbA, vA := r4process(t, s, h, nil)
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
	if got := r4read(ctx, vA, "k"); got != "second" {
		t.Errorf("A serves %q from L1 while the backend holds \"second\"", got)
	}
}
