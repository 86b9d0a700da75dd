package region_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memcached"
	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/internal/counting"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/region"
	"github.com/google/go-cmp/cmp"
)

// shared is the state of a fake server: entries and a lock table that several batchBackends
// (processes) share.
type shared struct {
	mu      sync.Mutex
	entries map[string][]byte
	locks   map[string]int64 // lock owner token
	token   int64
}

func newShared() *shared {
	return &shared{entries: map[string][]byte{}, locks: map[string]int64{}}
}

// batchBackend is a byte backend with every multi-key capability and a distributed lock, which
// counts its calls: each call is one round trip of a real server.
type batchBackend struct {
	s        *shared
	maxBatch int
	maxSize  int // values longer than this are refused with ErrTooLarge; 0: no limit

	mu    sync.Mutex
	calls map[string][]int // op -> key count of every call
	down  atomic.Bool
}

func newBatchBackend(s *shared) *batchBackend {
	return &batchBackend{s: s, calls: map[string][]int{}}
}

var errDownMulti = errors.New("backend down")

func (b *batchBackend) record(op string, n int) error {
	b.mu.Lock()
	b.calls[op] = append(b.calls[op], n)
	b.mu.Unlock()
	if b.down.Load() {
		return errDownMulti
	}
	return nil
}

// take returns the calls recorded since the last take.
func (b *batchBackend) take() map[string][]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.calls
	b.calls = map[string][]int{}
	return c
}

func (b *batchBackend) Get(_ context.Context, k string) ([]byte, error) {
	if err := b.record("get", 1); err != nil {
		return nil, err
	}
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	v, ok := b.s.entries[k]
	if !ok {
		return nil, backends.ErrNotFound
	}
	return slices.Clone(v), nil
}

func (b *batchBackend) Set(_ context.Context, k string, v []byte, _ time.Duration) error {
	if err := b.record("set", 1); err != nil {
		return err
	}
	if b.maxSize > 0 && len(v) > b.maxSize {
		return fmt.Errorf("%q: %w", k, backends.ErrTooLarge)
	}
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	b.s.entries[k] = slices.Clone(v)
	return nil
}

func (b *batchBackend) Delete(_ context.Context, k string) error {
	if err := b.record("delete", 1); err != nil {
		return err
	}
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	delete(b.s.entries, k)
	return nil
}

func (b *batchBackend) GetMulti(_ context.Context, keys []string) (map[string][]byte, error) {
	if err := b.record("getmulti", len(keys)); err != nil {
		return nil, err
	}
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	m := map[string][]byte{}
	for _, k := range keys {
		if v, ok := b.s.entries[k]; ok {
			m[k] = slices.Clone(v)
		}
	}
	return m, nil
}

func (b *batchBackend) SetMulti(_ context.Context, items map[string][]byte, _ time.Duration) error {
	if err := b.record("setmulti", len(items)); err != nil {
		return err
	}
	var errs []error
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	for k, v := range items {
		if b.maxSize > 0 && len(v) > b.maxSize {
			errs = append(errs, fmt.Errorf("%q: %w", k, backends.ErrTooLarge)) // skipped
			continue
		}
		b.s.entries[k] = slices.Clone(v)
	}
	return errors.Join(errs...)
}

func (b *batchBackend) DeleteMulti(_ context.Context, keys []string) error {
	if err := b.record("deletemulti", len(keys)); err != nil {
		return err
	}
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	for _, k := range keys {
		delete(b.s.entries, k)
	}
	return nil
}

func (b *batchBackend) MaxBatch() int { return b.maxBatch }

type fakeLock struct {
	b     *batchBackend
	keys  []string
	token int64
}

func (l *fakeLock) Unlock(context.Context) error {
	if err := l.b.record("unlock", len(l.keys)); err != nil {
		return err
	}
	l.b.s.mu.Lock()
	defer l.b.s.mu.Unlock()
	for _, k := range l.keys {
		if l.b.s.locks[k] == l.token {
			delete(l.b.s.locks, k)
		}
	}
	return nil
}

func (b *batchBackend) lock(keys []string) ([]bool, *fakeLock) {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	b.s.token++
	l := &fakeLock{b: b, token: b.s.token}
	taken := make([]bool, len(keys))
	for i, k := range keys {
		if _, held := b.s.locks[k]; !held {
			b.s.locks[k] = l.token
			l.keys = append(l.keys, k)
			taken[i] = true
		}
	}
	return taken, l
}

func (b *batchBackend) TryLock(_ context.Context, k string, _ time.Duration) (backends.Lock, bool, error) {
	if err := b.record("trylock", 1); err != nil {
		return nil, false, err
	}
	taken, l := b.lock([]string{k})
	if !taken[0] {
		return nil, false, nil
	}
	return l, true, nil
}

func (b *batchBackend) TryLockMulti(_ context.Context, keys []string, _ time.Duration) ([]bool, backends.Lock, error) {
	if err := b.record("trylockmulti", len(keys)); err != nil {
		return nil, nil, err
	}
	taken, l := b.lock(keys)
	return taken, l, nil
}

func (s *shared) lockCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.locks)
}

// basicOnly hides every capability but Get, Set and Delete (and, with locker, TryLock).
type basicOnly struct{ backends.Backend }

type basicLocker struct {
	backends.Backend
	backends.Locker
}

func ids(from, to int) []string {
	var ks []string
	for i := from; i < to; i++ {
		ks = append(ks, "u"+strconv.Itoa(i))
	}
	return ks
}

// users is a batch creator that records what it was asked for and returns "user <key>" for each.
type users struct {
	mu    sync.Mutex
	asked [][]string
	made  map[string]int
}

func (u *users) create(_ context.Context, keys []string) (map[string]string, error) {
	u.mu.Lock()
	u.asked = append(u.asked, slices.Clone(keys))
	if u.made == nil {
		u.made = map[string]int{}
	}
	for _, k := range keys {
		u.made[k]++
	}
	u.mu.Unlock()
	runtime.Gosched()
	m := make(map[string]string, len(keys))
	for _, k := range keys {
		m[k] = "user " + k
	}
	return m, nil
}

// backendsForBatches returns the backends the batch tests run on: memory (Go values, no lock),
// the fake server with every capability, and the fake server without multi-key operations.
func backendsForBatches() map[string]func() backends.Backend {
	return map[string]func() backends.Backend{
		"memory": func() backends.Backend { return memory.New() },
		"multi":  func() backends.Backend { return newBatchBackend(newShared()) },
		"single": func() backends.Backend {
			b := newBatchBackend(newShared())
			return basicLocker{basicOnly{b}, b}
		},
	}
}

func TestGetOrCreateMultiCreatesOnlyTheMissing(t *testing.T) {
	for name, newBackend := range backendsForBatches() {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			r := newRegion(t, newBackend(), region.WithExpiration(time.Hour))
			v := region.NewView[string](r)
			all := ids(0, 200)
			cached := map[string]string{}
			var missing []string
			for i, k := range all {
				if i%10 == 3 {
					missing = append(missing, k)
				} else {
					cached[k] = "cached " + k
				}
			}
			if err := v.SetMulti(ctx, cached); err != nil {
				t.Fatal(err)
			}
			var u users
			got, err := v.GetOrCreateMulti(ctx, all, u.create)
			if err != nil {
				t.Fatal(err)
			}
			if len(u.asked) != 1 || !slices.Equal(u.asked[0], missing) {
				t.Fatalf("creator asked for %v, want once for the 20 missing keys %v", u.asked, missing)
			}
			for _, k := range all {
				want := cached[k]
				if want == "" {
					want = "user " + k
				}
				if got[k] != want {
					t.Errorf("%s = %q, want %q", k, got[k], want)
				}
			}
			// All cached now: no creator call.
			got, err = v.GetOrCreateMulti(ctx, all, u.create)
			if err != nil || len(got) != 200 || len(u.asked) != 1 {
				t.Errorf("warm batch: %d values, %v, %d creator calls; want 200, nil, still 1", len(got), err, len(u.asked))
			}
		})
	}
}

func TestGetOrCreateMultiRoundTrips(t *testing.T) {
	ctx := t.Context()
	b := newBatchBackend(newShared())
	r := newRegion(t, b, region.WithExpiration(time.Hour))
	v := region.NewView[string](r)
	all := ids(0, 200)
	cached := map[string]string{}
	for i, k := range all {
		if i%10 != 3 {
			cached[k] = "cached " + k
		}
	}
	if err := v.SetMulti(ctx, cached); err != nil {
		t.Fatal(err)
	}
	if c := b.take(); !cmp.Equal(c, map[string][]int{"setmulti": {180}}) {
		t.Errorf("SetMulti of 180 keys made calls %v, want one setmulti", c)
	}
	var u users
	if _, err := v.GetOrCreateMulti(ctx, all, u.create); err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{
		"getmulti":     {200, 20}, // all keys; the missing ones again, under their locks
		"trylockmulti": {20},
		"setmulti":     {20},
		"unlock":       {20},
	}
	if c := b.take(); !cmp.Equal(c, want) {
		t.Errorf("a batch of 200 keys, 20 missing, made calls %v; want %v", c, want)
	}
}

func TestGetOrCreateMultiSplitsLargeBatches(t *testing.T) {
	ctx := t.Context()
	b := newBatchBackend(newShared())
	b.maxBatch = 7
	r := newRegion(t, b)
	v := region.NewView[string](r)
	all := ids(0, 50)
	var u users
	got, err := v.GetOrCreateMulti(ctx, all, u.create)
	if err != nil || len(got) != 50 {
		t.Fatalf("got %d values, %v; want 50", len(got), err)
	}
	if len(u.asked) != 1 || len(u.asked[0]) != 50 {
		t.Errorf("creator calls %v, want one of 50 keys: the split is the backend's business", u.asked)
	}
	sevens := []int{7, 7, 7, 7, 7, 7, 7, 1}
	want := map[string][]int{
		"getmulti":     slices.Concat(sevens, sevens),
		"trylockmulti": sevens,
		"setmulti":     sevens,
		"unlock":       sevens,
	}
	if c := b.take(); !cmp.Equal(c, want) {
		t.Errorf("calls %v, want %v", c, want)
	}
	if err := v.DeleteMulti(ctx, all); err != nil {
		t.Fatal(err)
	}
	if c := b.take(); !cmp.Equal(c, map[string][]int{"deletemulti": sevens}) {
		t.Errorf("DeleteMulti calls %v", c)
	}
}

func TestGetOrCreateMultiEdgeCases(t *testing.T) {
	ctx := t.Context()
	b := newBatchBackend(newShared())
	r := newRegion(t, b)
	v := region.NewView[string](r)
	var u users

	// No keys: an empty map, no I/O, no creator.
	for _, keys := range [][]string{nil, {}} {
		got, err := v.GetOrCreateMulti(ctx, keys, u.create)
		if err != nil || got == nil || len(got) != 0 {
			t.Errorf("GetOrCreateMulti(%#v) = %v, %v; want an empty map", keys, got, err)
		}
	}
	if c := b.take(); len(c) != 0 || len(u.asked) != 0 {
		t.Errorf("no keys made calls %v and asked the creator %v", c, u.asked)
	}

	// Duplicates count once.
	got, err := v.GetOrCreateMulti(ctx, []string{"a", "b", "a", "a", "c", "b"}, u.create)
	if err != nil {
		t.Fatal(err)
	}
	if len(u.asked) != 1 || !slices.Equal(u.asked[0], []string{"a", "b", "c"}) {
		t.Errorf("creator asked for %v, want [[a b c]]", u.asked)
	}
	if !cmp.Equal(got, map[string]string{"a": "user a", "b": "user b", "c": "user c"}) {
		t.Errorf("got %v", got)
	}

	// An empty key: an error, and nothing done.
	b.take()
	if _, err := v.GetOrCreateMulti(ctx, []string{"x", ""}, u.create); !errors.Is(err, region.ErrInvalidKey) {
		t.Errorf("empty key: %v, want ErrInvalidKey", err)
	}
	if err := v.SetMulti(ctx, map[string]string{"": "v", "y": "w"}); !errors.Is(err, region.ErrInvalidKey) {
		t.Errorf("SetMulti with an empty key: %v, want ErrInvalidKey", err)
	}
	if c := b.take(); len(c) != 0 {
		t.Errorf("an invalid batch made calls %v", c)
	}

	// A nil creator.
	if _, err := v.GetOrCreateMulti(ctx, []string{"a"}, nil); err == nil {
		t.Error("nil creator: no error")
	}
}

func TestGetOrCreateMultiCreatorResults(t *testing.T) {
	ctx := t.Context()
	t.Run("subset", func(t *testing.T) {
		b := newBatchBackend(newShared())
		r := newRegion(t, b)
		v := region.NewView[string](r)
		got, err := v.GetOrCreateMulti(ctx, []string{"a", "b", "c"}, func(context.Context, []string) (map[string]string, error) {
			return map[string]string{"a": "A", "c": "", "stranger": "S"}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !cmp.Equal(got, map[string]string{"a": "A", "c": ""}) {
			t.Errorf("got %v, want a and c (empty) only", got)
		}
		cached, err := v.GetMulti(ctx, []string{"a", "b", "c", "stranger"})
		if err != nil || !cmp.Equal(cached, map[string]string{"a": "A", "c": ""}) {
			t.Errorf("cached afterwards: %v, %v; want a and c only", cached, err)
		}
		if n := b.s.lockCount(); n != 0 {
			t.Errorf("%d locks left held", n)
		}
	})
	t.Run("error", func(t *testing.T) {
		b := newBatchBackend(newShared())
		r := newRegion(t, b)
		v := region.NewView[string](r)
		boom := errors.New("database down")
		got, err := v.GetOrCreateMulti(ctx, []string{"a", "b"}, func(context.Context, []string) (map[string]string, error) {
			return map[string]string{"a": "A"}, boom
		})
		if !errors.Is(err, boom) || got != nil {
			t.Fatalf("got %v, %v; want nil and the creator's error", got, err)
		}
		if cached, _ := v.GetMulti(ctx, []string{"a", "b"}); len(cached) != 0 {
			t.Errorf("a failed creation cached %v", cached)
		}
		if n := b.s.lockCount(); n != 0 {
			t.Errorf("%d locks left held", n)
		}
	})
	t.Run("panic", func(t *testing.T) {
		b := newBatchBackend(newShared())
		r := newRegion(t, b)
		v := region.NewView[string](r)
		_, err := v.GetOrCreateMulti(ctx, []string{"a", "b"}, func(context.Context, []string) (map[string]string, error) {
			panic("kaboom")
		})
		var pe *region.PanicError
		if !errors.As(err, &pe) || pe.Value != "kaboom" {
			t.Fatalf("err = %v, want a PanicError", err)
		}
		if n := b.s.lockCount(); n != 0 {
			t.Errorf("%d locks left held", n)
		}
		// The next call creates again.
		var u users
		if got, err := v.GetOrCreateMulti(ctx, []string{"a", "b"}, u.create); err != nil || len(got) != 2 {
			t.Errorf("after a panic: %v, %v", got, err)
		}
	})
}

func TestGetOrCreateMultiOverlappingColdBatches(t *testing.T) {
	for name, newBackend := range backendsForBatches() {
		t.Run(name, func(t *testing.T) {
			r := newRegion(t, newBackend())
			v := region.NewView[string](r)
			var u users
			var wg sync.WaitGroup
			for g := range 10 {
				wg.Go(func() {
					keys := ids(g*15, g*15+60)
					if g%2 == 1 {
						slices.Reverse(keys)
					}
					got, err := v.GetOrCreateMulti(t.Context(), keys, u.create)
					if err != nil {
						t.Error(err)
						return
					}
					for _, k := range keys {
						if got[k] != "user "+k {
							t.Errorf("%s = %q", k, got[k])
						}
					}
				})
			}
			wg.Wait()
			if len(u.made) != 195 {
				t.Errorf("%d keys created, want 195", len(u.made))
			}
			for k, n := range u.made {
				if n != 1 {
					t.Errorf("%s created %d times", k, n)
				}
			}
		})
	}
}

func TestGetOrCreateMultiRacesSingleCalls(t *testing.T) {
	for name, newBackend := range backendsForBatches() {
		t.Run(name, func(t *testing.T) {
			for round := range 50 {
				r := newRegion(t, newBackend())
				v := region.NewView[string](r)
				var made atomic.Int32
				single := func(context.Context) (string, error) {
					made.Add(1)
					runtime.Gosched()
					return "user k", nil
				}
				batch := func(_ context.Context, keys []string) (map[string]string, error) {
					made.Add(int32(len(keys)))
					runtime.Gosched()
					return map[string]string{"k": "user k"}, nil
				}
				var wg sync.WaitGroup
				for i := range 4 {
					wg.Go(func() {
						var got string
						var err error
						if i%2 == 0 {
							got, err = v.GetOrCreate(t.Context(), "k", single)
						} else {
							var m map[string]string
							m, err = v.GetOrCreateMulti(t.Context(), []string{"k"}, batch)
							got = m["k"]
						}
						if err != nil || got != "user k" {
							t.Errorf("round %d: %q, %v", round, got, err)
						}
					})
				}
				wg.Wait()
				if n := made.Load(); n != 1 {
					t.Fatalf("round %d: the key was created %d times", round, n)
				}
			}
		})
	}
}

// TestGetOrCreateMultiTwoProcessesOppositeOrders has two regions (two processes) on one fake
// server with a distributed lock, each sending batches in opposite key orders; the creator yields
// while holding the locks. Repeated: no deadlock, every key created once.
func TestGetOrCreateMultiTwoProcessesOppositeOrders(t *testing.T) {
	keys := ids(0, 8)
	rev := slices.Clone(keys)
	slices.Reverse(rev)
	for round := range 1000 {
		s := newShared()
		r1 := region.New("p1")
		r2 := region.New("p2")
		if err := r1.Configure(newBatchBackend(s)); err != nil {
			t.Fatal(err)
		}
		if err := r2.Configure(newBatchBackend(s)); err != nil {
			t.Fatal(err)
		}
		var u users
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		var wg sync.WaitGroup
		for i, c := range []struct {
			r  *region.Region
			ks []string
		}{{r1, keys}, {r2, rev}, {r1, rev[2:]}, {r2, keys[3:]}} {
			wg.Go(func() {
				got, err := region.NewView[string](c.r).GetOrCreateMulti(ctx, c.ks, u.create)
				if err != nil || len(got) != len(c.ks) {
					t.Errorf("round %d, batch %d: %d values, %v", round, i, len(got), err)
				}
			})
		}
		wg.Wait()
		cancel()
		_ = r1.Close()
		_ = r2.Close()
		for k, n := range u.made {
			if n != 1 {
				t.Fatalf("round %d: %s created %d times", round, k, n)
			}
		}
		if n := s.lockCount(); n != 0 {
			t.Fatalf("round %d: %d locks left held", round, n)
		}
		if t.Failed() {
			return
		}
	}
}

func TestSingleCallOnKeyBatchLeftOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegion(t, memory.New())
		v := region.NewView[string](r)
		release := make(chan struct{})
		go func() {
			_, _ = v.GetOrCreateMulti(t.Context(), []string{"gone"}, func(context.Context, []string) (map[string]string, error) {
				<-release
				return nil, nil // no such record
			})
		}()
		synctest.Wait()
		errc := make(chan error, 1)
		go func() {
			_, err := v.GetOrCreate(t.Context(), "gone", func(context.Context) (string, error) {
				return "", errors.New("the single creator ran: it should have joined the batch")
			})
			errc <- err
		}()
		synctest.Wait() // the single call waits for the batch's flight
		close(release)
		if err := <-errc; !errors.Is(err, region.ErrNoValue) {
			t.Errorf("single call on a key the batch left out: %v, want ErrNoValue", err)
		}
	})
}

func TestGetSetDeleteMulti(t *testing.T) {
	for name, newBackend := range backendsForBatches() {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			clk := newClock()
			r := newRegion(t, newBackend(), region.WithExpiration(time.Minute), clk.option())
			v := region.NewView[int](r)
			if err := v.SetMulti(ctx, map[string]int{"a": 1, "b": 2, "c": 3}); err != nil {
				t.Fatal(err)
			}
			got, err := v.GetMulti(ctx, []string{"a", "b", "c", "d", "a"})
			if err != nil || !cmp.Equal(got, map[string]int{"a": 1, "b": 2, "c": 3}) {
				t.Errorf("GetMulti = %v, %v", got, err)
			}
			clk.advance(2 * time.Minute)
			if got, _ := v.GetMulti(ctx, []string{"a", "b"}); len(got) != 0 {
				t.Errorf("expired values returned: %v", got)
			}
			if got, _ := v.GetMulti(ctx, []string{"a", "b"}, region.WithIgnoreExpiration()); len(got) != 2 {
				t.Errorf("IgnoreExpiration: %v, want both", got)
			}
			if err := v.DeleteMulti(ctx, []string{"a", "c", "zzz"}); err != nil {
				t.Fatal(err)
			}
			if got, _ := v.GetMulti(ctx, []string{"a", "b", "c"}, region.WithIgnoreExpiration()); !cmp.Equal(got, map[string]int{"b": 2}) {
				t.Errorf("after DeleteMulti: %v, want b only", got)
			}
			if err := r.Invalidate(ctx, region.Hard); err != nil {
				t.Fatal(err)
			}
			if got, _ := v.GetMulti(ctx, []string{"b"}, region.WithIgnoreExpiration()); len(got) != 0 {
				t.Errorf("after a hard invalidation: %v", got)
			}
			// RefreshMulti stores what the creator returns, whatever is cached.
			if err := v.SetMulti(ctx, map[string]int{"a": 1}); err != nil {
				t.Fatal(err)
			}
			got, err = v.RefreshMulti(ctx, []string{"a", "b", "x"}, func(_ context.Context, keys []string) (map[string]int, error) {
				if !slices.Equal(keys, []string{"a", "b", "x"}) {
					t.Errorf("RefreshMulti asked for %v", keys)
				}
				return map[string]int{"a": 10, "b": 20}, nil
			})
			if err != nil || !cmp.Equal(got, map[string]int{"a": 10, "b": 20}) {
				t.Errorf("RefreshMulti = %v, %v", got, err)
			}
			if got, _ := v.GetMulti(ctx, []string{"a", "b", "x"}); !cmp.Equal(got, map[string]int{"a": 10, "b": 20}) {
				t.Errorf("after RefreshMulti: %v", got)
			}
		})
	}
}

func TestMultiStaleServedAndRegenerated(t *testing.T) {
	for _, background := range []int{0, 2} {
		t.Run(fmt.Sprintf("background=%d", background), func(t *testing.T) {
			ctx := t.Context()
			clk := newClock()
			b := newBatchBackend(newShared())
			var bg region.Option
			if background > 0 {
				bg = region.WithBackgroundRefresh(background)
			}
			r := newRegion(t, b, region.WithExpiration(time.Minute), clk.option(), bg)
			v := region.NewView[string](r)
			if err := v.SetMulti(ctx, map[string]string{"a": "old a", "b": "old b"}); err != nil {
				t.Fatal(err)
			}
			clk.advance(2 * time.Minute)
			var u users
			got, err := v.GetOrCreateMulti(ctx, []string{"a", "b", "c"}, u.create)
			if err != nil {
				t.Fatal(err)
			}
			// With an absent key the call waits for a creation anyway: its expired keys are
			// created in the same call, background refresh or not.
			want := map[string]string{"a": "user a", "b": "user b", "c": "user c"}
			if !cmp.Equal(got, want) || len(u.asked) != 1 {
				t.Errorf("got %v after creator calls %v, want %v from one call", got, u.asked, want)
			}
			// Only expired keys: with background refresh, served old now.
			clk.advance(2 * time.Minute)
			if err := v.SetMulti(ctx, map[string]string{"a": "old a", "b": "old b"}); err != nil {
				t.Fatal(err)
			}
			clk.advance(2 * time.Minute)
			got, err = v.GetOrCreateMulti(ctx, []string{"a", "b"}, u.create)
			if err != nil {
				t.Fatal(err)
			}
			want = map[string]string{"a": "user a", "b": "user b"}
			if background > 0 {
				want = map[string]string{"a": "old a", "b": "old b"}
			}
			if !cmp.Equal(got, want) {
				t.Errorf("only expired keys: got %v, want %v", got, want)
			}
			// Either way, the expired keys are regenerated: now, or soon in the background.
			deadline := time.Now().Add(10 * time.Second)
			for {
				got, _ := v.GetMulti(ctx, []string{"a", "b"})
				if cmp.Equal(got, map[string]string{"a": "user a", "b": "user b"}) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("expired keys not regenerated: %v", got)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}

func TestMultiFailurePolicy(t *testing.T) {
	ctx := t.Context()
	t.Run("open", func(t *testing.T) {
		b := newBatchBackend(newShared())
		var reported atomic.Int32
		r := newRegion(t, b, region.WithErrorHandler(func(context.Context, error) { reported.Add(1) }))
		v := region.NewView[string](r)
		b.down.Store(true)
		var u users
		got, err := v.GetOrCreateMulti(ctx, []string{"a", "b"}, u.create)
		if err != nil || !cmp.Equal(got, map[string]string{"a": "user a", "b": "user b"}) {
			t.Errorf("backend down, fail open: %v, %v; want the created values", got, err)
		}
		if reported.Load() == 0 {
			t.Error("the backend's failures were not reported")
		}
		if _, err := v.GetMulti(ctx, []string{"a"}); err != nil {
			t.Errorf("GetMulti, backend down, fail open: %v", err)
		}
		if err := v.SetMulti(ctx, map[string]string{"a": "x"}); !errors.Is(err, errDownMulti) {
			t.Errorf("SetMulti, backend down: %v; want the backend's error (the caller asked for the write)", err)
		}
		if err := v.DeleteMulti(ctx, []string{"a"}); !errors.Is(err, errDownMulti) {
			t.Errorf("DeleteMulti, backend down: %v; want the backend's error", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		b := newBatchBackend(newShared())
		r := newRegion(t, b, region.WithFailurePolicy(region.FailClosed))
		v := region.NewView[string](r)
		b.down.Store(true)
		var u users
		if _, err := v.GetOrCreateMulti(ctx, []string{"a", "b"}, u.create); !errors.Is(err, errDownMulti) {
			t.Errorf("backend down, fail closed: %v; want the backend's error", err)
		}
		if len(u.asked) != 0 {
			t.Errorf("fail closed with the backend down still created %v", u.asked)
		}
	})
}

func TestSetMultiTooLargeStoresTheRest(t *testing.T) {
	ctx := t.Context()
	b := newBatchBackend(newShared())
	b.maxSize = 100
	var reported []error
	var mu sync.Mutex
	r := newRegion(t, b, region.WithErrorHandler(func(_ context.Context, err error) {
		mu.Lock()
		reported = append(reported, err)
		mu.Unlock()
	}))
	v := region.NewView[string](r)
	big := string(make([]byte, 200))
	err := v.SetMulti(ctx, map[string]string{"a": "small", "big": big, "c": "small too"})
	if !errors.Is(err, backends.ErrTooLarge) {
		t.Errorf("SetMulti with a value too large: %v; want ErrTooLarge", err)
	}
	got, _ := v.GetMulti(ctx, []string{"a", "big", "c"})
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !slices.Equal(keys, []string{"a", "c"}) {
		t.Errorf("stored %v, want a and c: one value too large must not lose the others", keys)
	}
	// In a batch creation: the created values are returned, the large one is not cached.
	got, err = v.GetOrCreateMulti(ctx, []string{"x", "y"}, func(context.Context, []string) (map[string]string, error) {
		return map[string]string{"x": big, "y": "fine"}, nil
	})
	if err != nil || got["x"] != big || got["y"] != "fine" {
		t.Errorf("batch with a value too large: %v", err)
	}
	if cached, _ := v.GetMulti(ctx, []string{"x", "y"}); len(cached) != 1 || cached["y"] != "fine" {
		t.Errorf("cached %v, want y only", cached)
	}
}

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

// Batches lock through the same Locker as single-key calls: Configure takes the MultiLocker from
// the same link of the backend chain as the Locker, so a wrapper with a lock service of its own is
// not bypassed by a GetOrCreateMulti, and a GetOrCreate in one process and a GetOrCreateMulti in
// another never both create the key.
func TestBatchLocksThroughTheRegionsLocker(t *testing.T) {
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

// GetOrCreateMulti calls create once, given exactly the absent or expired keys, even under
// WithBackgroundRefresh with an expired key and an absent one in one batch: a creator that keeps
// unsynchronized state for the call does not race.
func TestBatchCreatorIsNeverCalledConcurrently(t *testing.T) {
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

// An error handler that reacts to a failed batch write by deleting the key (so that no older value
// is served) does not deadlock the batch: Batch.Store reports failures without holding the mutexes
// of the flights it stores.
func TestErrorHandlerMayDeleteDuringBatchStore(t *testing.T) {
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
		_ = r.Close() // nothing is stuck: Close ends the region's workers
	case <-time.After(2 * time.Second):
		t.Fatal("GetOrCreateMulti has not returned after 2s: the error handler's DeleteMulti waits for the flight mutex its own goroutine holds")
	}
}

var errBatchNoSuchUser = errors.New("no such user")

// With negative caching on, a batch stores its values in one write and the "not found" entries for
// the keys the creator left out, which have a TTL of their own, in one more, whatever the number of
// unknown keys.
func TestBatchNegativeCachingWritesOnce(t *testing.T) {
	ctx := t.Context()
	b := newBatchBackend(newShared())
	r := newRegion(t, b, region.WithNegativeCaching(errBatchNoSuchUser, time.Minute))
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

// TestOppositeBatchesOfTwoProcessesCreateEachKeyOnceOnRedis has two regions (two processes, as
// far as Redis can tell) send overlapping batches of cold keys in opposite orders through one
// Redis: every key is created once, and no lock is left behind.
func TestOppositeBatchesOfTwoProcessesCreateEachKeyOnceOnRedis(t *testing.T) {
	client := newRedisClient(t, testserver.StartRedis(t).Addr)
	made := make(chan string, 1000)
	create := func(_ context.Context, keys []string) (map[string]string, error) {
		time.Sleep(20 * time.Millisecond) // long enough for the other process to meet the locks
		m := make(map[string]string, len(keys))
		for _, k := range keys {
			made <- k
			m[k] = "v" + k
		}
		return m, nil
	}
	keys := make([]string, 40)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	rev := make([]string, len(keys))
	for i, k := range keys {
		rev[len(keys)-1-i] = k
	}
	for round := range 5 {
		rp := fmt.Sprintf("round%d:", round)
		errs := make(chan error, 2)
		for _, ks := range [][]string{keys, rev} {
			r := region.New("p")
			if err := r.Configure(redis.New(client, redis.WithPrefix(rp))); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close() })
			go func() {
				got, err := region.NewView[string](r).GetOrCreateMulti(t.Context(), ks, create)
				if err == nil && len(got) != len(ks) {
					err = fmt.Errorf("%d values for %d keys", len(got), len(ks))
				}
				errs <- err
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		seen := map[string]bool{}
		for len(made) > 0 {
			k := <-made
			if seen[k] {
				t.Errorf("round %d: %s created twice", round, k)
			}
			seen[k] = true
		}
		if len(seen) != len(keys) {
			t.Errorf("round %d: %d keys created, want %d", round, len(seen), len(keys))
		}
		if n, err := client.Keys(t.Context(), rp+"\x00lock\x00*").Result(); err != nil || len(n) != 0 {
			t.Errorf("round %d: locks left: %v, %v", round, n, err)
		}
	}
}

// TestSetMultiTooLargeWritesEachItemOnceOnMemcached: a SetMulti with one item too large writes
// every item that fits once: the items memcached stored are not sent again with Set, one round
// trip each, and the one too large is not tried twice.
func TestSetMultiTooLargeWritesEachItemOnceOnMemcached(t *testing.T) {
	ctx := t.Context()
	client, rec := counting.MemcachedClient(t, testserver.StartMemcached(t).Addr)
	r := region.New("big", region.WithCodec(region.Raw), region.WithLogger(slog.New(slog.DiscardHandler)))
	if err := r.Configure(memcached.New(client)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	v := region.NewView[[]byte](r)
	items := map[string][]byte{"big": make([]byte, 3<<20)}
	for i := range 10 {
		items["small"+strconv.Itoa(i)] = []byte("s")
	}
	rec.Take()
	_ = v.SetMulti(ctx, items)
	if sets := counting.Count(rec.Take(), "set"); sets != 10 {
		t.Errorf("SetMulti of 10 small values and one too large sent %d sets to memcached, want 10", sets)
	}
}
