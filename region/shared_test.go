package region_test

import (
	"context"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"

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
	if _, ok, _ := v4.Get(ctx, "k", region.IgnoreExpiration()); ok {
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
		old, there, _ := v4.Get(ctx, "k", region.IgnoreExpiration())
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
