package dogpile

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// fakeBatch is a batch over the fake store: keys by number, a creator of many keys, and counts
// of what the creator was asked for.
type fakeBatch struct {
	s           *store
	keys        []string
	kind        any
	distributed bool
	create      func(ctx context.Context, keys []string) (map[string]any, error)

	mu    sync.Mutex
	asked [][]string // every Create call's keys
	loads int
}

func (s *store) batch(keys []string, distributed bool, create func(context.Context, []string) (map[string]any, error)) *fakeBatch {
	return &fakeBatch{s: s, keys: keys, distributed: distributed, create: create}
}

func (b *fakeBatch) Key(i int) string { return b.keys[i] }
func (b *fakeBatch) Kind() any        { return b.kind }

func (b *fakeBatch) Load(_ context.Context, idx []int) ([]Entry, []bool, error) {
	b.mu.Lock()
	b.loads++
	b.mu.Unlock()
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	es, found := make([]Entry, len(idx)), make([]bool, len(idx))
	for j, i := range idx {
		es[j], found[j] = b.s.entries[b.keys[i]]
	}
	return es, found, nil
}

func (b *fakeBatch) Fresh(e Entry) bool {
	return b.s.exp == 0 || time.Now().UnixNano()-e.Created < int64(b.s.exp)
}

func (b *fakeBatch) Create(ctx context.Context, idx []int) (Made, error) {
	ks := make([]string, len(idx))
	for j, i := range idx {
		ks[j] = b.keys[i]
	}
	b.mu.Lock()
	b.asked = append(b.asked, ks)
	b.mu.Unlock()
	b.s.creates.Add(int32(len(ks)))
	created := time.Now()
	m, err := b.create(ctx, ks)
	if err != nil {
		return Made{}, err
	}
	made := Made{Vals: make([]any, len(idx)), OK: make([]bool, len(idx)), Created: created.UnixNano()}
	for j, k := range ks {
		made.Vals[j], made.OK[j] = m[k]
	}
	return made, nil
}

func (b *fakeBatch) Store(_ context.Context, idx []int, vals []any, made Made) error {
	for j, i := range idx {
		b.s.put(b.keys[i], vals[j], time.Unix(0, made.Created))
	}
	return nil
}

func (b *fakeBatch) Observe(Event, int, time.Duration) {}

func (b *fakeBatch) StoreFailed(_ context.Context, err error) error { return err }

func (b *fakeBatch) Failed(context.Context, error) {}

func (b *fakeBatch) TryLock(_ context.Context, idx []int) ([]bool, func(), error) {
	taken := make([]bool, len(idx))
	if !b.distributed {
		for j := range taken {
			taken[j] = true
		}
		return taken, func() {}, nil
	}
	if b.s.lockErr != nil {
		return nil, nil, b.s.lockErr
	}
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	var held []string
	for j, i := range idx {
		k := b.keys[i]
		if !b.s.locks[k] {
			b.s.locks[k] = true
			taken[j] = true
			held = append(held, k)
		}
	}
	return taken, func() {
		b.s.mu.Lock()
		for _, k := range held {
			delete(b.s.locks, k)
		}
		b.s.mu.Unlock()
		b.s.unlocks.Add(int32(len(held)))
	}, nil
}

// getBatch is what a region does: fresh entries are answered directly, the rest go to
// ResolveBatch. It returns the values by key; keys without a value are absent.
func getBatch(ctx context.Context, e *Engine, b *fakeBatch) (map[string]any, error) {
	idx := make([]int, len(b.keys))
	for i := range idx {
		idx[i] = i
	}
	es, found, _ := b.Load(ctx, idx)
	out := map[string]any{}
	var wants []Want
	for i := range idx {
		if found[i] && b.Fresh(es[i]) {
			out[b.keys[i]] = es[i].Value
			continue
		}
		wants = append(wants, Want{Index: i, Cur: es[i], Have: found[i]})
	}
	if len(wants) == 0 {
		return out, nil
	}
	res, err := e.ResolveBatch(ctx, b, wants)
	if err != nil {
		return nil, err
	}
	for j, w := range wants {
		if res[j].OK {
			out[b.keys[w.Index]] = res[j].Value
		}
	}
	return out, nil
}

// valuesOf is a batch creator that returns "v:"+key for every key.
func valuesOf(_ context.Context, keys []string) (map[string]any, error) {
	m := make(map[string]any, len(keys))
	for _, k := range keys {
		m[k] = "v:" + k
	}
	return m, nil
}

func keyRange(from, to int) []string {
	var ks []string
	for i := from; i < to; i++ {
		ks = append(ks, fmt.Sprintf("k%03d", i))
	}
	return ks
}

func TestBatchCreatesOnlyMissingKeysInOneCall(t *testing.T) {
	s := newStore(time.Minute)
	e := New(0)
	defer e.Close()
	ks := keyRange(0, 200)
	for i, k := range ks {
		if i%10 != 0 { // 180 cached, every tenth missing
			s.put(k, "cached:"+k, time.Now())
		}
	}
	b := s.batch(ks, true, valuesOf)
	got, err := getBatch(t.Context(), e, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.asked) != 1 || len(b.asked[0]) != 20 {
		t.Fatalf("creator calls %v, want one call of 20 keys", b.asked)
	}
	for i, k := range ks {
		want := "cached:" + k
		if i%10 == 0 {
			want = "v:" + k
			if !slices.Contains(b.asked[0], k) {
				t.Errorf("creator was not asked for %s", k)
			}
		}
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if n := s.unlocks.Load(); n != 20 {
		t.Errorf("%d locks released, want 20", n)
	}
	if n := e.InFlight(); n != 0 {
		t.Errorf("%d flights left", n)
	}
}

func TestBatchOverlappingColdBatchesCreateEachKeyOnce(t *testing.T) {
	for _, distributed := range []bool{false, true} {
		t.Run(fmt.Sprintf("distributed=%v", distributed), func(t *testing.T) {
			s := newStore(time.Minute)
			e := New(0)
			defer e.Close()
			var mu sync.Mutex
			made := map[string]int{}
			create := func(ctx context.Context, ks []string) (map[string]any, error) {
				mu.Lock()
				for _, k := range ks {
					made[k]++
				}
				mu.Unlock()
				runtime.Gosched()
				return valuesOf(ctx, ks)
			}
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					b := s.batch(keyRange(g*10, g*10+40), distributed, create)
					got, err := getBatch(t.Context(), e, b)
					if err != nil {
						t.Error(err)
						return
					}
					for _, k := range b.keys {
						if got[k] != "v:"+k {
							t.Errorf("%s = %v", k, got[k])
						}
					}
				})
			}
			wg.Wait()
			for k, n := range made {
				if n != 1 {
					t.Errorf("%s created %d times", k, n)
				}
			}
			if len(made) != 110 {
				t.Errorf("%d keys created, want 110", len(made))
			}
		})
	}
}

func TestBatchAndSingleCallShareOneCreation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		e := New(0)
		defer e.Close()
		g := newGate("single")
		// The single call leads "k001"; the batch, arriving later, waits for it and creates only
		// the others.
		var single any
		singleDone := make(chan struct{})
		go func() {
			defer close(singleDone)
			single, _ = get(t.Context(), e, s.op("k001", true, g.create))
		}()
		synctest.Wait()
		b := s.batch(keyRange(0, 3), true, valuesOf)
		var got map[string]any
		done := make(chan struct{})
		go func() {
			defer close(done)
			var err error
			if got, err = getBatch(t.Context(), e, b); err != nil {
				t.Error(err)
			}
		}()
		synctest.Wait()
		close(g.open)
		<-done
		<-singleDone
		if got["k001"] != "single" || single != "single" {
			t.Errorf("k001: batch got %v, single got %v; want the single call's value for both", got["k001"], single)
		}
		if len(b.asked) != 1 || !slices.Equal(b.asked[0], []string{"k000", "k002"}) {
			t.Errorf("batch creator asked for %v, want [[k000 k002]]", b.asked)
		}
		// And the other way round: a single call arriving during a batch's creation joins it.
		g2 := newGate(nil)
		b2 := s.batch([]string{"x", "y"}, true, func(ctx context.Context, ks []string) (map[string]any, error) {
			if _, err := g2.create(ctx); err != nil {
				return nil, err
			}
			return map[string]any{"x": "vx"}, nil // "y" left out
		})
		go func() { _, _ = getBatch(t.Context(), e, b2) }()
		synctest.Wait()
		var vx, vy any
		var errX, errY error
		sop := func(k string) *fakeOp {
			return s.op(k, true, func(context.Context) (any, error) { t.Error("single creator ran"); return nil, nil })
		}
		wg := sync.WaitGroup{}
		wg.Go(func() { vx, errX = get(t.Context(), e, sop("x")) })
		wg.Go(func() { vy, errY = get(t.Context(), e, sop("y")) })
		synctest.Wait()
		close(g2.open)
		wg.Wait()
		if vx != "vx" || errX != nil {
			t.Errorf("single x = %v, %v; want vx", vx, errX)
		}
		if !errors.Is(errY, ErrNoValue) || vy != nil {
			t.Errorf("single y = %v, %v; want ErrNoValue", vy, errY)
		}
	})
}

// TestBatchOppositeOrdersNeverDeadlock runs two "processes" (engines sharing one store and lock
// table) whose batches overlap in opposite orders, with the creator yielding while it holds the
// locks, many times over.
func TestBatchOppositeOrdersNeverDeadlock(t *testing.T) {
	for round := range 1000 {
		s := newStore(time.Minute)
		e1, e2 := New(0), New(0)
		ks := keyRange(0, 6)
		rev := slices.Clone(ks)
		slices.Reverse(rev)
		var made atomic.Int32
		create := func(ctx context.Context, ks []string) (map[string]any, error) {
			made.Add(int32(len(ks)))
			runtime.Gosched()
			return valuesOf(ctx, ks)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		var wg sync.WaitGroup
		for _, c := range []struct {
			e  *Engine
			ks []string
		}{{e1, ks}, {e2, rev}, {e1, rev[1:]}, {e2, ks[2:]}} {
			wg.Go(func() {
				got, err := getBatch(ctx, c.e, s.batch(c.ks, true, create))
				if err != nil {
					t.Errorf("round %d: %v", round, err)
					return
				}
				if len(got) != len(c.ks) {
					t.Errorf("round %d: %d values, want %d", round, len(got), len(c.ks))
				}
			})
		}
		wg.Wait()
		cancel()
		e1.Close()
		e2.Close()
		if n := made.Load(); n != 6 {
			t.Fatalf("round %d: %d creations for 6 keys", round, n)
		}
		if t.Failed() {
			return
		}
	}
}

func TestBatchCreatorSubsetErrorPanic(t *testing.T) {
	t.Run("subset", func(t *testing.T) {
		s := newStore(time.Minute)
		e := New(0)
		defer e.Close()
		b := s.batch([]string{"a", "b", "c"}, true, func(context.Context, []string) (map[string]any, error) {
			return map[string]any{"a": 1, "c": nil, "zzz": "not asked"}, nil
		})
		got, err := getBatch(t.Context(), e, b)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got["b"]; ok || got["a"] != 1 || len(got) != 2 {
			t.Errorf("got %v, want a and c (nil) only", got)
		}
		if _, ok := s.entries["b"]; ok {
			t.Error("an absent key was stored")
		}
		if _, ok := s.entries["zzz"]; ok {
			t.Error("a key nobody asked for was stored")
		}
		if e.InFlight() != 0 || len(s.locks) != 0 {
			t.Errorf("left behind: %d flights, %d locks", e.InFlight(), len(s.locks))
		}
	})
	t.Run("error", func(t *testing.T) {
		s := newStore(time.Minute)
		e := New(0)
		defer e.Close()
		boom := errors.New("boom")
		b := s.batch([]string{"a", "b"}, true, func(context.Context, []string) (map[string]any, error) {
			return nil, boom
		})
		if _, err := getBatch(t.Context(), e, b); !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		if len(s.entries) != 0 || e.InFlight() != 0 || len(s.locks) != 0 {
			t.Errorf("left behind: %d entries, %d flights, %d locks", len(s.entries), e.InFlight(), len(s.locks))
		}
	})
	t.Run("panic", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newStore(time.Minute)
			e := New(0)
			defer e.Close()
			g := newGate(nil)
			b := s.batch([]string{"a", "b"}, true, func(ctx context.Context, _ []string) (map[string]any, error) {
				_, _ = g.create(ctx)
				panic("kaboom")
			})
			var errBatch, errSingle error
			var wg sync.WaitGroup
			wg.Go(func() { _, errBatch = getBatch(t.Context(), e, b) })
			synctest.Wait()
			wg.Go(func() { _, errSingle = get(t.Context(), e, s.op("b", true, nil)) })
			synctest.Wait()
			close(g.open)
			wg.Wait()
			for _, err := range []error{errBatch, errSingle} {
				var pe *PanicError
				if !errors.As(err, &pe) || pe.Value != "kaboom" {
					t.Errorf("err = %v, want a PanicError of kaboom", err)
				}
			}
			if e.InFlight() != 0 || len(s.locks) != 0 {
				t.Errorf("left behind: %d flights, %d locks", e.InFlight(), len(s.locks))
			}
		})
	})
	t.Run("goexit", func(t *testing.T) {
		s := newStore(time.Minute)
		e := New(0)
		defer e.Close()
		b := s.batch([]string{"a"}, true, func(context.Context, []string) (map[string]any, error) {
			runtime.Goexit()
			return nil, nil
		})
		if _, err := getBatch(t.Context(), e, b); !errors.Is(err, ErrGoexit) {
			t.Fatalf("err = %v, want ErrGoexit", err)
		}
		if e.InFlight() != 0 || len(s.locks) != 0 {
			t.Errorf("left behind: %d flights, %d locks", e.InFlight(), len(s.locks))
		}
	})
}

// ownTimeoutBatch is a Batch with a creation timeout of its own (CreationTimeouter).
type ownTimeoutBatch struct {
	*fakeBatch
	d  time.Duration
	ok bool
}

func (b ownTimeoutBatch) CreationTimeout() (time.Duration, bool) { return b.d, b.ok }

// TestBatchCreationTimeoutReplacesTheEngines is TestOpCreationTimeoutReplacesTheEngines for a
// Batch: its own creation timeout bounds its creator's call instead of the engine's.
func TestBatchCreationTimeoutReplacesTheEngines(t *testing.T) {
	for _, tc := range ownTimeoutCases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newStore(time.Minute)
				e := New(0)
				e.CreationTimeout = tc.engine
				defer e.Close()
				b := ownTimeoutBatch{s.batch([]string{"a", "b"}, true, func(ctx context.Context, keys []string) (map[string]any, error) {
					time.Sleep(ownTimeoutWork)
					return valuesOf(ctx, keys)
				}), tc.own, tc.ok}
				start := time.Now()
				res, err := e.ResolveBatch(t.Context(), b, []Want{{Index: 0}, {Index: 1}})
				made := err == nil && res[0].Value == "v:a" && res[1].Value == "v:b"
				checkOwnTimeout(t, tc.want, time.Since(start), made, err)
			})
		})
	}
}

func TestBatchExpiredKeysServedStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		e := New(0)
		defer e.Close()
		for _, k := range []string{"a", "b", "c"} {
			s.put(k, "old:"+k, time.Now())
		}
		time.Sleep(2 * time.Minute) // all expired
		// "a" is being regenerated by a single call in this process; "b"'s lock is held by
		// another process. Only "c" is this batch's to regenerate.
		g := newGate("new:a")
		go func() { _, _ = get(t.Context(), e, s.op("a", true, g.create)) }()
		synctest.Wait()
		s.mu.Lock()
		s.locks["b"] = true
		s.mu.Unlock()
		b := s.batch([]string{"a", "b", "c"}, true, valuesOf)
		got, err := getBatch(t.Context(), e, b)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"a": "old:a", "b": "old:b", "c": "v:c"}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %v, want %v", k, got[k], v)
			}
		}
		if len(b.asked) != 1 || !slices.Equal(b.asked[0], []string{"c"}) {
			t.Errorf("creator asked for %v, want [[c]]", b.asked)
		}
		close(g.open)
		synctest.Wait()
	})
}

func TestBatchBackgroundRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		e := New(1)
		defer e.Close()
		s.put("a", "old:a", time.Now())
		s.put("c", "old:c", time.Now())
		time.Sleep(2 * time.Minute)
		g := newGate(nil)
		b := s.batch([]string{"a", "c"}, true, func(ctx context.Context, ks []string) (map[string]any, error) {
			_, _ = g.create(ctx) // the background regeneration waits for the test
			return valuesOf(ctx, ks)
		})
		got, err := getBatch(t.Context(), e, b)
		if err != nil {
			t.Fatal(err)
		}
		// Only expired keys: served old at once, though their regeneration is stuck.
		if got["a"] != "old:a" || got["c"] != "old:c" {
			t.Fatalf("got %v", got)
		}
		close(g.open)
		synctest.Wait()
		if v := s.entries["a"].Value; v != "v:a" {
			t.Errorf("after the background refresh a = %v, want v:a", v)
		}
		// Expired and absent keys together: the call waits for the absent one anyway, so both
		// are created in that one creator call and the caller gets both new values.
		time.Sleep(2 * time.Minute)
		mixed := s.batch([]string{"a", "b"}, true, valuesOf)
		got, err = getBatch(t.Context(), e, mixed)
		if err != nil || got["a"] != "v:a" || got["b"] != "v:b" {
			t.Errorf("mixed batch: %v, %v", got, err)
		}
		if len(mixed.asked) != 1 || len(mixed.asked[0]) != 2 {
			t.Errorf("mixed batch asked the creator %v, want once for both", mixed.asked)
		}
		// Every worker busy: the old value, no regeneration.
		s.put("a", "old:a", time.Now().Add(-2*time.Minute))
		e.slots <- struct{}{}
		var dropped []string
		e.OnDrop = func(k string) { dropped = append(dropped, k) }
		got, err = getBatch(t.Context(), e, s.batch([]string{"a"}, true, valuesOf))
		if err != nil || got["a"] != "old:a" || !slices.Equal(dropped, []string{"a"}) {
			t.Errorf("busy: got %v, %v, dropped %v", got, err, dropped)
		}
		<-e.slots
	})
}

func TestBatchWaitsForOtherProcessThenCreatesWhatItLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		e := New(0)
		defer e.Close()
		// Another process holds the locks of "a" and "b": it will store "a" and die without
		// storing "b" (its lock freed later).
		s.mu.Lock()
		s.locks["a"], s.locks["b"] = true, true
		s.mu.Unlock()
		go func() {
			time.Sleep(50 * time.Millisecond)
			s.put("a", "other:a", time.Now())
			s.mu.Lock()
			delete(s.locks, "a")
			s.mu.Unlock()
			time.Sleep(time.Second)
			s.mu.Lock()
			delete(s.locks, "b")
			s.mu.Unlock()
		}()
		b := s.batch([]string{"a", "b", "c"}, true, valuesOf)
		start := time.Now()
		got, err := getBatch(t.Context(), e, b)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"a": "other:a", "b": "v:b", "c": "v:c"}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %v, want %v", k, got[k], v)
			}
		}
		// "c" first, without waiting for the others; then "b" once its lock is free.
		if len(b.asked) != 2 || !slices.Equal(b.asked[0], []string{"c"}) || !slices.Equal(b.asked[1], []string{"b"}) {
			t.Errorf("creator asked for %v, want [[c] [b]]", b.asked)
		}
		if d := time.Since(start); d < time.Second || d > 2*time.Second {
			t.Errorf("took %v, want a little over the 1s the lock of b was held", d)
		}
	})
}

func TestBatchCancelledCallerDoesNotCancelCreation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		e := New(0)
		defer e.Close()
		g := newGate(nil)
		b := s.batch([]string{"a"}, true, func(ctx context.Context, ks []string) (map[string]any, error) {
			if _, err := g.create(ctx); err != nil {
				return nil, err
			}
			return valuesOf(ctx, ks)
		})
		ctx, cancel := context.WithCancel(t.Context())
		var err error
		done := make(chan struct{})
		go func() { defer close(done); _, err = getBatch(ctx, e, b) }()
		synctest.Wait()
		cancel()
		<-done
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		close(g.open)
		synctest.Wait()
		if s.entries["a"].Value != "v:a" {
			t.Errorf("the creation was abandoned: a = %v", s.entries["a"].Value)
		}
	})
}

func TestBatchClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		e := New(0)
		b := s.batch([]string{"a", "b"}, false, func(ctx context.Context, _ []string) (map[string]any, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		})
		var err error
		done := make(chan struct{})
		go func() { defer close(done); _, err = getBatch(t.Context(), e, b) }()
		synctest.Wait()
		e.Close()
		<-done
		if !errors.Is(err, ErrClosed) {
			t.Errorf("in progress: err = %v, want ErrClosed", err)
		}
		if _, err := getBatch(t.Context(), e, b); !errors.Is(err, ErrClosed) {
			t.Errorf("after Close: err = %v, want ErrClosed", err)
		}
		if e.InFlight() != 0 {
			t.Errorf("%d flights left", e.InFlight())
		}
	})
}

func TestBatchForgetStopsStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		e := New(0)
		defer e.Close()
		g := newGate(nil)
		b := s.batch([]string{"a", "b"}, false, func(ctx context.Context, ks []string) (map[string]any, error) {
			_, _ = g.create(ctx)
			return valuesOf(ctx, ks)
		})
		go func() { _, _ = getBatch(t.Context(), e, b) }()
		synctest.Wait()
		e.Forget("a") // "a" was written meanwhile
		close(g.open)
		synctest.Wait()
		if _, ok := s.entries["a"]; ok {
			t.Error("a forgotten key was stored")
		}
		if s.entries["b"].Value != "v:b" {
			t.Errorf("b = %v, want v:b", s.entries["b"].Value)
		}
	})
}

func TestBatchLockError(t *testing.T) {
	s := newStore(time.Minute)
	s.lockErr = errors.New("lock server down")
	e := New(0)
	defer e.Close()
	if _, err := getBatch(t.Context(), e, s.batch([]string{"a"}, true, valuesOf)); !errors.Is(err, s.lockErr) {
		t.Fatalf("err = %v, want the lock error", err)
	}
	if e.InFlight() != 0 {
		t.Errorf("%d flights left", e.InFlight())
	}
}

// TestBatchRandomStress mixes single calls and batches of random keys, in random orders, on two
// engines sharing one store, with expiry: every call gets a value for every key, nothing is left
// behind, and -race watches.
func TestBatchRandomStress(t *testing.T) {
	s := newStore(5 * time.Millisecond)
	e1, e2 := New(0), New(2)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			e := e1
			if g%2 == 1 {
				e = e2
			}
			for range 200 {
				ks := keyRange(0, 30)
				rand.Shuffle(len(ks), func(i, j int) { ks[i], ks[j] = ks[j], ks[i] })
				ks = ks[:1+rand.IntN(12)]
				if len(ks) == 1 && g%3 == 0 {
					v, err := get(t.Context(), e, s.op(ks[0], true, func(context.Context) (any, error) { return "v:" + ks[0], nil }))
					if err != nil || v != "v:"+ks[0] {
						t.Errorf("single %s = %v, %v", ks[0], v, err)
					}
					continue
				}
				got, err := getBatch(t.Context(), e, s.batch(ks, true, valuesOf))
				if err != nil {
					t.Error(err)
					return
				}
				for _, k := range ks {
					if got[k] != "v:"+k {
						t.Errorf("%s = %v", k, got[k])
					}
				}
			}
		})
	}
	wg.Wait()
	e1.Close()
	e2.Close()
	if e1.InFlight()+e2.InFlight() != 0 || len(s.locks) != 0 {
		t.Errorf("left behind: %d flights, %d locks", e1.InFlight()+e2.InFlight(), len(s.locks))
	}
}

// A batch creation run inline (the caller's context cannot end) whose creator calls runtime.Goexit
// (t.FailNow in a test) still marks its work done: Close does not block forever on it.
func TestBatchGoexitInlineReleasesClose(t *testing.T) {
	s := newStore(time.Minute)
	e := New(0)
	b := s.batch([]string{"a", "b"}, false, func(context.Context, []string) (map[string]any, error) {
		runtime.Goexit()
		return nil, nil
	})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		_, _ = getBatch(context.Background(), e, b)
	}()
	<-exited
	if n := e.InFlight(); n != 0 {
		t.Fatalf("InFlight = %d after Goexit", n)
	}
	closed := make(chan struct{})
	go func() { e.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("Close has not returned after 2s: the inline batch's wg count was never released")
	}
}
