package region_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/region"
)

// lockTable is a lock service of its own (a Redlock over several servers, etcd, ...) that a
// wrapper puts in front of a backend's locks.
type lockTable struct {
	mu   sync.Mutex
	held map[string]bool
}

type tableLock struct {
	t   *lockTable
	key string
}

func (l tableLock) Unlock(context.Context) error {
	l.t.mu.Lock()
	delete(l.t.held, l.key)
	l.t.mu.Unlock()
	return nil
}

// ownLocker is a decorator that implements backends.Locker itself (as backends.As's godoc tells
// a wrapper that must see every lock call to do) and unwraps to the backend it decorates. It was
// written against the Locker interface; it knows nothing of MultiLocker.
type ownLocker struct {
	backends.Backend
	t *lockTable
}

func (o *ownLocker) Unwrap() backends.Backend { return o.Backend }

func (o *ownLocker) TryLock(_ context.Context, key string, _ time.Duration) (backends.Lock, bool, error) {
	o.t.mu.Lock()
	defer o.t.mu.Unlock()
	if o.t.held[key] {
		return nil, false, nil
	}
	o.t.held[key] = true
	return tableLock{o.t, key}, true, nil
}

// TestReviewBatchLocksBypassTheRegionsLocker: Configure takes the Locker from the first link of
// the chain that has one (the wrapper) but the MultiLocker from wherever As finds one (the
// backend under the wrapper). Single-key calls then lock through the wrapper and batches through
// the inner backend: two different locks for one key, so a GetOrCreate in one process and a
// GetOrCreateMulti in another both create the key.
func TestReviewBatchLocksBypassTheRegionsLocker(t *testing.T) {
	ctx := t.Context()
	store, locks := newShared(), &lockTable{held: map[string]bool{}}
	// Two processes: two regions on one store and one lock service.
	p := newRegion(t, &ownLocker{Backend: newBatchBackend(store), t: locks})
	q := newRegion(t, &ownLocker{Backend: newBatchBackend(store), t: locks})

	var creations atomic.Int32
	release, started := make(chan struct{}), make(chan struct{})
	single := make(chan error, 1)
	go func() {
		_, err := region.NewView[string](p).GetOrCreate(ctx, "k", func(context.Context) (string, error) {
			creations.Add(1)
			close(started)
			<-release
			return "from p", nil
		})
		single <- err
	}()
	<-started // p holds the lock of k and is creating it

	batch := make(chan error, 1)
	batchCreated := make(chan struct{}, 1)
	go func() {
		_, err := region.NewView[string](q).GetOrCreateMulti(ctx, []string{"k"}, func(_ context.Context, ks []string) (map[string]string, error) {
			creations.Add(1)
			batchCreated <- struct{}{}
			return map[string]string{"k": "from q"}, nil
		})
		batch <- err
	}()
	select {
	case <-batchCreated:
		t.Errorf("q's batch created k while p held k's lock (through the region's Locker): %d creations of one key", creations.Load())
	case <-time.After(300 * time.Millisecond):
		// q waits for p's lock, as it should.
	}
	close(release)
	if err := <-single; err != nil {
		t.Fatal(err)
	}
	if err := <-batch; err != nil {
		t.Fatal(err)
	}
	if n := creations.Load(); n != 1 {
		t.Errorf("%d creations of k, want 1", n)
	}
}

// TestReviewBatchCreatorCalledTwiceAtOnce: GetOrCreateMulti's godoc promises "one call of
// create" given exactly the absent or expired keys (memo.Multi's Call: "calling fn once"). Under
// WithBackgroundRefresh a batch with an expired key and an absent one calls create twice, on two
// goroutines at the same time: the expired key in the background, the absent one for the caller.
// A creator that keeps state for the call unsynchronized, as TestBatchRoundTrips's does
// (asked = append(asked, ids)), races.
func TestReviewBatchCreatorCalledTwiceAtOnce(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	r := newRegion(t, nil, region.WithExpiration(time.Minute), region.WithBackgroundRefresh(1), clk.option())
	v := region.NewView[string](r)
	if err := v.Set(ctx, "old", "v0"); err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Minute) // "old" is expired; "new" is absent

	var calls, inside, most atomic.Int32
	both := make(chan struct{})
	var once sync.Once
	create := func(_ context.Context, ks []string) (map[string]string, error) {
		calls.Add(1)
		n := inside.Add(1)
		defer inside.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		if n == 2 {
			once.Do(func() { close(both) })
		}
		select { // give a second call the time to come in
		case <-both:
		case <-time.After(300 * time.Millisecond):
		}
		out := map[string]string{}
		for _, k := range ks {
			out[k] = "v1"
		}
		return out, nil
	}
	if _, err := v.GetOrCreateMulti(ctx, []string{"old", "new"}, create); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for inside.Load() != 0 || calls.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if calls.Load() != 1 || most.Load() != 1 {
		t.Errorf("one GetOrCreateMulti called create %d times, %d of them at once; the godoc says one call", calls.Load(), most.Load())
	}
}

// setFails is a batch backend whose writes fail.
type setFails struct{ *batchBackend }

func (s setFails) SetMulti(context.Context, map[string][]byte, time.Duration) error {
	return errDownMulti
}

// TestReviewErrorHandlerDeleteDuringBatchStoreDeadlocks: storeBatch holds the mutex of every
// flight it stores and calls Batch.Store under them; Store reports a failed write through the
// region's error handler on the same goroutine. A handler that reacts by deleting the key (so
// that no older value is served) calls Forget, which takes the same flight mutex: the batch
// deadlocks, and every later caller of those keys waits for it.
func TestReviewErrorHandlerDeleteDuringBatchStoreDeadlocks(t *testing.T) {
	var r *region.Region
	handled := make(chan struct{}, 10)
	// Not newRegion: its Cleanup's Close would wait for the deadlocked creation forever.
	r = region.New("deadlock", region.WithLogger(slog.New(slog.DiscardHandler)), region.WithErrorHandler(func(ctx context.Context, err error) {
		_ = r.DeleteMulti(ctx, []string{"a", "b"})
		handled <- struct{}{}
	}))
	if err := r.Configure(setFails{newBatchBackend(newShared())}); err != nil {
		t.Fatal(err)
	}
	v := region.NewView[string](r)
	done := make(chan error, 1)
	go func() {
		_, err := v.GetOrCreateMulti(context.Background(), []string{"a", "b"}, func(_ context.Context, ks []string) (map[string]string, error) {
			return map[string]string{"a": "1", "b": "2"}, nil
		})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("GetOrCreateMulti has not returned after 2s: the error handler's DeleteMulti waits for the flight mutex its own goroutine holds")
	}
}

var errReviewNoSuchUser = errors.New("no such user")

// TestReviewBatchNegativeCachingOneWriteRoundTrip: with negative caching on, batchOp.Store wrote
// each key the creator left out with its own Set, one after another (and under every flight's
// mutex): a 200-id page with 20 unknown ids cost 20 write round trips. Now the values take one
// write and the "not found" entries, which have a TTL of their own, one more.
func TestReviewBatchNegativeCachingOneWriteRoundTrip(t *testing.T) {
	ctx := t.Context()
	b := newBatchBackend(newShared())
	r := newRegion(t, b, region.WithNegativeCaching(errReviewNoSuchUser, time.Minute))
	v := region.NewView[string](r)
	keys := ids(0, 20)
	b.take()
	got, err := v.GetOrCreateMulti(ctx, keys, func(_ context.Context, ks []string) (map[string]string, error) {
		m := map[string]string{}
		for _, k := range ks[:10] { // the other 10 do not exist
			m[k] = "user " + k
		}
		return m, nil
	})
	if err != nil || len(got) != 10 {
		t.Fatalf("got %d values, %v", len(got), err)
	}
	calls := b.take()
	writes := len(calls["set"]) + len(calls["setmulti"])
	if writes != 2 || len(calls["set"]) != 0 {
		t.Errorf("one batch creation wrote with %d round trips (set %v, setmulti %v); want two SetMulti: the values, the not-found entries", writes, calls["set"], calls["setmulti"])
	}
}
