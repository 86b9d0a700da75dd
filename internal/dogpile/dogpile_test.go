package dogpile

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// store is a fake backend: entries, a distributed lock table, and counters. Time is the
// synctest bubble's.
type store struct {
	mu      sync.Mutex
	entries map[string]Entry
	locks   map[string]bool
	exp     time.Duration
	creates atomic.Int32
	unlocks atomic.Int32
	lockErr error
}

func newStore(exp time.Duration) *store {
	return &store{entries: map[string]Entry{}, locks: map[string]bool{}, exp: exp}
}

func (s *store) put(key string, v any, created time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries[key] = Entry{Value: v, Created: created.UnixNano()}
}

// op builds a call for key whose creator is create; distributed says whether the store's lock
// table acts as a distributed lock.
func (s *store) op(key string, distributed bool, create func(context.Context) (any, error)) *fakeOp {
	return &fakeOp{s: s, key: key, distributed: distributed, create: create}
}

type fakeOp struct {
	s           *store
	key         string
	kind        any
	distributed bool
	create      func(context.Context) (any, error)
	failed      chan<- error // told the errors of background regenerations, if set
}

func (o *fakeOp) Key() string { return o.key }
func (o *fakeOp) Kind() any   { return o.kind }

func (o *fakeOp) Load(context.Context) (Entry, bool, error) {
	o.s.mu.Lock()
	defer o.s.mu.Unlock()
	e, ok := o.s.entries[o.key]
	return e, ok, nil
}

func (o *fakeOp) Fresh(e Entry) bool {
	return o.s.exp == 0 || time.Now().UnixNano()-e.Created < int64(o.s.exp)
}

func (o *fakeOp) Create(ctx context.Context) (any, error) {
	o.s.creates.Add(1)
	return o.create(ctx)
}

func (o *fakeOp) Store(_ context.Context, v any) error {
	o.s.put(o.key, v, time.Now())
	return nil
}

func (o *fakeOp) Observe(Event, time.Duration) {}

func (o *fakeOp) StoreFailed(_ context.Context, err error) error { return err }

func (o *fakeOp) Failed(_ context.Context, err error) {
	if o.failed != nil {
		o.failed <- err
	}
}

func (o *fakeOp) TryLock(context.Context) (func(), bool, error) {
	if !o.distributed {
		return nil, true, nil
	}
	if o.s.lockErr != nil {
		return nil, false, o.s.lockErr
	}
	o.s.mu.Lock()
	defer o.s.mu.Unlock()
	if o.s.locks[o.key] {
		return nil, false, nil
	}
	o.s.locks[o.key] = true
	return func() {
		o.s.mu.Lock()
		delete(o.s.locks, o.key)
		o.s.mu.Unlock()
		o.s.unlocks.Add(1)
	}, true, nil
}

// get is what a region does: a fresh entry is returned directly, anything else goes to Resolve.
func get(ctx context.Context, e *Engine, o *fakeOp) (any, error) {
	cur, found, _ := o.Load(ctx)
	if found && o.Fresh(cur) {
		return cur.Value, nil
	}
	return e.Resolve(ctx, o, cur, found)
}

// gate is a creator that blocks until the test opens it.
type gate struct {
	open chan struct{}
	val  any
	err  error
}

func newGate(val any) *gate { return &gate{open: make(chan struct{}), val: val} }

func (g *gate) create(ctx context.Context) (any, error) {
	select {
	case <-g.open:
		return g.val, g.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestColdKeyCreatedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		e := New(0)
		defer e.Close()
		g := newGate("v1")
		const n = 1000
		var wg sync.WaitGroup
		results := make([]any, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				results[i], errs[i] = get(t.Context(), e, s.op("k", false, g.create))
			})
		}
		synctest.Wait() // every caller is waiting on the one creation
		if got := s.creates.Load(); got != 1 {
			t.Fatalf("creator started %d times before release, want 1", got)
		}
		close(g.open)
		wg.Wait()
		for i := range n {
			if errs[i] != nil || results[i] != "v1" {
				t.Fatalf("caller %d: got (%v, %v), want (v1, nil)", i, results[i], errs[i])
			}
		}
		if got := s.creates.Load(); got != 1 {
			t.Fatalf("creator ran %d times, want 1", got)
		}
		if n := e.InFlight(); n != 0 {
			t.Fatalf("InFlight = %d after the creation, want 0", n)
		}
	})
}

func TestExpiredServesStaleWithoutBlocking(t *testing.T) {
	for _, distributed := range []bool{false, true} {
		t.Run(map[bool]string{false: "in-process", true: "distributed"}[distributed], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newStore(time.Minute)
				s.put("k", "old", time.Now())
				time.Sleep(2 * time.Minute) // expired
				e := New(0)
				defer e.Close()
				g := newGate("new")

				winner := make(chan any)
				go func() {
					v, _ := get(t.Context(), e, s.op("k", distributed, g.create))
					winner <- v
				}()
				synctest.Wait() // the winner is inside the creator

				// Everyone else returns the old value while the regeneration is blocked: they
				// run to completion before the test opens the gate.
				const n = 100
				var served atomic.Int32
				var wg sync.WaitGroup
				for range n {
					wg.Go(func() {
						v, err := get(t.Context(), e, s.op("k", distributed, g.create))
						if err != nil || v != "old" {
							t.Errorf("loser got (%v, %v), want (old, nil)", v, err)
						}
						served.Add(1)
					})
				}
				wg.Wait()
				if served.Load() != n {
					t.Fatalf("served %d stale values, want %d", served.Load(), n)
				}
				close(g.open)
				if v := <-winner; v != "new" {
					t.Fatalf("winner got %v, want new", v)
				}
				if c := s.creates.Load(); c != 1 {
					t.Fatalf("creator ran %d times, want 1", c)
				}
				if v, _ := get(t.Context(), e, s.op("k", distributed, g.create)); v != "new" {
					t.Fatalf("after regeneration got %v, want new", v)
				}
			})
		})
	}
}

func TestCreatorErrorReachesEveryWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(0)
		e := New(0)
		defer e.Close()
		boom := errors.New("boom")
		g := newGate(nil)
		g.err = boom
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				if _, err := get(t.Context(), e, s.op("k", false, g.create)); !errors.Is(err, boom) {
					t.Errorf("got %v, want boom", err)
				}
			})
		}
		synctest.Wait()
		close(g.open)
		wg.Wait()
		if c := s.creates.Load(); c != 1 {
			t.Fatalf("creator ran %d times, want 1", c)
		}
		if _, ok := s.entries["k"]; ok {
			t.Fatal("an error was cached")
		}
		// The next call creates again.
		v, err := get(t.Context(), e, s.op("k", false, func(context.Context) (any, error) { return "ok", nil }))
		if err != nil || v != "ok" || s.creates.Load() != 2 {
			t.Fatalf("next call: (%v, %v) after %d creations, want (ok, nil) after 2", v, err, s.creates.Load())
		}
	})
}

func TestCreatorPanicReachesEveryWaiter(t *testing.T) {
	for _, distributed := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			s := newStore(0)
			e := New(0)
			defer e.Close()
			release := make(chan struct{})
			panicky := func(context.Context) (any, error) {
				<-release
				panic("kaboom")
			}
			var wg sync.WaitGroup
			for range 50 {
				wg.Go(func() {
					_, err := get(t.Context(), e, s.op("k", distributed, panicky))
					var pe *PanicError
					if !errors.As(err, &pe) || pe.Value != "kaboom" || len(pe.Stack) == 0 {
						t.Errorf("got %v, want a *PanicError with the value and a stack", err)
					}
				})
			}
			synctest.Wait()
			close(release)
			wg.Wait()
			if n := e.InFlight(); n != 0 {
				t.Fatalf("InFlight = %d after a panic", n)
			}
			if distributed && len(s.locks) != 0 {
				t.Fatalf("distributed lock still held after a panic: %v", s.locks)
			}
			v, err := get(t.Context(), e, s.op("k", distributed, func(context.Context) (any, error) { return "ok", nil }))
			if err != nil || v != "ok" {
				t.Fatalf("next call: (%v, %v), want (ok, nil)", v, err)
			}
		})
	}
}

func TestPanicErrorUnwrapsErrorValues(t *testing.T) {
	boom := errors.New("boom")
	if err := error(&PanicError{Value: boom}); !errors.Is(err, boom) {
		t.Fatalf("errors.Is(PanicError{boom}, boom) = false")
	}
	if err := (&PanicError{Value: "text"}); err.Unwrap() != nil {
		t.Fatalf("Unwrap of a non-error panic = %v, want nil", err.Unwrap())
	}
}

func TestCreatorGoexit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(0)
		e := New(0)
		defer e.Close()
		release := make(chan struct{})
		exiter := func(context.Context) (any, error) {
			<-release
			runtime.Goexit()
			return nil, nil
		}
		errc := make(chan error)
		for range 3 {
			go func() {
				_, err := get(t.Context(), e, s.op("k", false, exiter))
				errc <- err
			}()
		}
		synctest.Wait()
		close(release)
		for range 3 {
			if err := <-errc; !errors.Is(err, ErrGoexit) {
				t.Fatalf("got %v, want ErrGoexit", err)
			}
		}
		if n := e.InFlight(); n != 0 {
			t.Fatalf("InFlight = %d after Goexit", n)
		}
	})
}

func TestCancelledCallerDoesNotCancelCreation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(0)
		e := New(0)
		defer e.Close()
		g := newGate("v")

		// The impatient caller starts the creation, then gives up.
		ctx, cancel := context.WithCancel(t.Context())
		impatient := make(chan error)
		go func() {
			_, err := get(ctx, e, s.op("k", false, g.create))
			impatient <- err
		}()
		synctest.Wait()
		patient := make(chan any)
		go func() {
			v, err := get(t.Context(), e, s.op("k", false, g.create))
			if err != nil {
				t.Errorf("patient caller: %v", err)
			}
			patient <- v
		}()
		synctest.Wait()
		cancel()
		if err := <-impatient; !errors.Is(err, context.Canceled) {
			t.Fatalf("impatient caller got %v, want context.Canceled", err)
		}
		close(g.open)
		if v := <-patient; v != "v" {
			t.Fatalf("patient caller got %v, want v", v)
		}
		if c := s.creates.Load(); c != 1 {
			t.Fatalf("creator ran %d times, want 1", c)
		}
		if _, ok := s.entries["k"]; !ok {
			t.Fatal("the creation was abandoned with its caller: nothing stored")
		}
	})
}

func TestCreationKeepsContextValues(t *testing.T) {
	type ctxKey struct{}
	s := newStore(0)
	e := New(0)
	defer e.Close()
	ctx, cancel := context.WithCancel(context.WithValue(t.Context(), ctxKey{}, "trace-1"))
	defer cancel()
	v, err := get(ctx, e, s.op("k", false, func(ctx context.Context) (any, error) {
		return ctx.Value(ctxKey{}), nil
	}))
	if err != nil || v != "trace-1" {
		t.Fatalf("got (%v, %v), want the caller's context value", v, err)
	}
}

func TestFlightsDoNotLeak(t *testing.T) {
	s := newStore(0)
	e := New(0)
	defer e.Close()
	ok := func(context.Context) (any, error) { return 1, nil }
	fail := func(context.Context) (any, error) { return nil, errors.New("no") }
	for i := range 10_000 {
		key := string(rune('a'+i%26)) + time.Duration(i).String()
		create := ok
		if i%3 == 0 {
			create = fail
		}
		_, _ = get(context.Background(), e, s.op(key, i%2 == 0, create))
	}
	if n := e.InFlight(); n != 0 {
		t.Fatalf("InFlight = %d after 10,000 keys came and went, want 0", n)
	}
}

// TestGroupKeepsEveryKeyInFlight puts more keys in flight at once than a shard keeps outside its
// map, two kinds each, and checks that each flight is found, joined, finished and forgotten
// alone, in whatever order, wherever its shard keeps it.
func TestGroupKeepsEveryKeyInFlight(t *testing.T) {
	var g group
	g.init()
	const keys = 500 // about 16 per shard: most shards overflow into their map
	kinds := []any{"a", "b"}
	started := make(map[string]*flight)
	name := func(i int, kind any) string { return fmt.Sprintf("key%d/%v", i, kind) }
	for i := range keys {
		for _, kind := range kinds {
			f, leader := g.join(fmt.Sprint("key", i), kind, true, false, nil)
			if !leader {
				t.Fatalf("%s: joined a flight, want a new one", name(i, kind))
			}
			started[name(i, kind)] = f
		}
	}
	check := func(when string, live func(i int, kind any) bool) {
		t.Helper()
		n := 0
		for i := range keys {
			for _, kind := range kinds {
				key := fmt.Sprint("key", i)
				want := live(i, kind)
				if want {
					n++
				}
				if got := g.flying(key, kind); got != want {
					t.Fatalf("%s: flying(%s) = %v, want %v", when, name(i, kind), got, want)
				}
				f := g.find(key, kind)
				if want != (f != nil) || (f != nil && f != started[name(i, kind)]) {
					t.Fatalf("%s: find(%s) = %p, want the flight started for it: %v", when, name(i, kind), f, want)
				}
			}
		}
		if got := g.len(); got != n {
			t.Fatalf("%s: len = %d, want %d", when, got, n)
		}
	}
	check("all started", func(int, any) bool { return true })
	for i := range keys {
		f, leader := g.join(fmt.Sprint("key", i), "b", true, false, nil)
		if leader || f != started[name(i, "b")] {
			t.Fatalf("second join of %s: leader %v, flight %p, want the first's %p", name(i, "b"), leader, f, started[name(i, "b")])
		}
	}
	// Finish the first kind of even keys, both kinds of every third, in an order that takes heads
	// and links alike.
	finished := func(i int, kind any) bool { return (i%2 == 0 && kind == "a") || i%3 == 0 }
	for i := keys - 1; i >= 0; i-- {
		for _, kind := range kinds {
			if finished(i, kind) {
				g.finish(started[name(i, kind)], i, nil)
			}
		}
	}
	check("some finished", func(i int, kind any) bool { return !finished(i, kind) })
	for i := range keys {
		if i%5 == 0 {
			g.forget(fmt.Sprint("key", i))
		}
	}
	live := func(i int, kind any) bool { return !finished(i, kind) && i%5 != 0 }
	check("some forgotten", live)
	// A key whose flights are all gone starts afresh.
	for i := range keys {
		for _, kind := range kinds {
			if !live(i, kind) {
				f, leader := g.join(fmt.Sprint("key", i), kind, true, false, nil)
				if !leader {
					t.Fatalf("%s: joined a flight that was gone", name(i, kind))
				}
				started[name(i, kind)] = f
			}
		}
	}
	check("restarted", func(int, any) bool { return true })
	g.forgetAll()
	check("all forgotten", func(int, any) bool { return false })
}

// TestRoomHoldsOneFlight checks that an Op's Room holds the first flight the Op leads, and that a
// second one is allocated apart, leaving the first, which its joiners may still read, as it was.
func TestRoomHoldsOneFlight(t *testing.T) {
	var g group
	g.init()
	var room Room
	f1, leader := g.join("k", "a", true, true, &room)
	if !leader || f1 != &room.f {
		t.Fatalf("first flight: leader %v, in the room %v; want a new flight in the room", leader, f1 == &room.f)
	}
	if j, leader := g.join("k", "a", true, false, nil); leader || j != f1 {
		t.Fatal("a second caller did not join the flight in the room")
	}
	g.finish(f1, 1, nil)
	f2, leader := g.join("k", "a", true, true, &room)
	if !leader || f2 == f1 {
		t.Fatalf("second flight: leader %v, the room's again %v; want a new flight apart", leader, f2 == f1)
	}
	g.finish(f2, 2, nil)
	if v, err := f1.wait(context.Background()); v != 1 || err != nil {
		t.Fatalf("the first flight's result became (%v, %v), want (1, nil)", v, err)
	}
	if v, _ := f2.wait(context.Background()); v != 2 {
		t.Fatalf("the second flight's result is %v, want 2", v)
	}
}

func TestDistributedWaitPicksUpOtherProcessValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		s.locks["k"] = true // another process is creating k
		e := New(0)
		defer e.Close()
		done := make(chan any)
		go func() {
			v, err := get(t.Context(), e, s.op("k", true, func(context.Context) (any, error) { return "mine", nil }))
			if err != nil {
				t.Errorf("get: %v", err)
			}
			done <- v
		}()
		time.Sleep(time.Second) // a second of polling with backoff, in bubble time
		synctest.Wait()
		select {
		case v := <-done:
			t.Fatalf("returned %v while the other process held the lock", v)
		default:
		}
		// The other process stores its value and releases its lock.
		s.put("k", "theirs", time.Now())
		s.mu.Lock()
		delete(s.locks, "k")
		s.mu.Unlock()
		if v := <-done; v != "theirs" {
			t.Fatalf("got %v, want the other process's value", v)
		}
		if c := s.creates.Load(); c != 0 {
			t.Fatalf("created %d times although another process did, want 0", c)
		}
	})
}

func TestDistributedLockFreedWithoutValueThenCreate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		s.locks["k"] = true // held by a process that will die without storing
		e := New(0)
		defer e.Close()
		done := make(chan any)
		go func() {
			v, _ := get(t.Context(), e, s.op("k", true, func(context.Context) (any, error) { return "mine", nil }))
			done <- v
		}()
		time.Sleep(5 * time.Second)
		s.mu.Lock()
		delete(s.locks, "k") // its lock timed out
		s.mu.Unlock()
		if v := <-done; v != "mine" {
			t.Fatalf("got %v, want a fresh creation", v)
		}
		if s.unlocks.Load() != 1 || len(s.locks) != 0 {
			t.Fatalf("lock not released after creation: unlocks=%d locks=%v", s.unlocks.Load(), s.locks)
		}
	})
}

func TestDistributedExpiredLockHeldElsewhereServesStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		s.put("k", "old", time.Now())
		time.Sleep(2 * time.Minute)
		s.locks["k"] = true
		e := New(0)
		defer e.Close()
		v, err := get(t.Context(), e, s.op("k", true, func(context.Context) (any, error) { return "new", nil }))
		if err != nil || v != "old" || s.creates.Load() != 0 {
			t.Fatalf("got (%v, %v) with %d creations, want (old, nil) with none", v, err, s.creates.Load())
		}
	})
}

func TestLockErrorEndsCall(t *testing.T) {
	s := newStore(0)
	s.lockErr = errors.New("backend down")
	e := New(0)
	defer e.Close()
	_, err := get(context.Background(), e, s.op("k", true, func(context.Context) (any, error) { return 1, nil }))
	if !errors.Is(err, s.lockErr) {
		t.Fatalf("got %v, want the lock error", err)
	}
}

func TestBackgroundRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		s.put("k", "old", time.Now())
		time.Sleep(2 * time.Minute)
		e := New(1)
		defer e.Close()
		g := newGate("new")
		// The winner is not kept waiting: it gets the old value at once.
		if v, err := get(t.Context(), e, s.op("k", false, g.create)); err != nil || v != "old" {
			t.Fatalf("winner got (%v, %v), want (old, nil)", v, err)
		}
		synctest.Wait()
		if c := s.creates.Load(); c != 1 {
			t.Fatalf("background creator started %d times, want 1", c)
		}
		// A second expired key finds the single worker busy: stale, no refresh, retried later.
		s.put("k2", "old2", time.Now().Add(-2*time.Minute))
		if v, _ := get(t.Context(), e, s.op("k2", false, g.create)); v != "old2" {
			t.Fatalf("got %v, want old2", v)
		}
		if e.InFlight() != 1 {
			t.Fatalf("InFlight = %d, want 1 (k2's refresh dropped, not queued)", e.InFlight())
		}
		close(g.open)
		synctest.Wait()
		if v, _ := get(t.Context(), e, s.op("k", false, g.create)); v != "new" {
			t.Fatalf("after the background refresh got %v, want new", v)
		}
	})
}

func TestCloseCancelsCreationsAndRefusesNew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		s.put("k", "old", time.Now().Add(-2*time.Minute))
		e := New(2)
		g := newGate("never")
		_, _ = get(t.Context(), e, s.op("k", false, g.create)) // background refresh blocks
		errc := make(chan error)
		go func() {
			_, err := get(t.Context(), e, s.op("cold", false, g.create))
			errc <- err
		}()
		synctest.Wait()
		e.Close() // cancels both creations and waits for them
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("waiting caller got %v, want ErrClosed: its own context is live", err)
		}
		if _, err := get(t.Context(), e, s.op("other", false, g.create)); !errors.Is(err, ErrClosed) {
			t.Fatalf("after Close got %v, want ErrClosed", err)
		}
		e.Close() // idempotent
	})
}

func TestKindsDoNotShareFlights(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(0)
		e := New(0)
		defer e.Close()
		g := newGate("text")
		strOp := s.op("k", false, g.create)
		strOp.kind = "string"
		intOp := s.op("k", false, func(context.Context) (any, error) { return 7, nil })
		intOp.kind = "int"
		done := make(chan any)
		go func() {
			v, _ := e.Resolve(t.Context(), strOp, Entry{}, false)
			done <- v
		}()
		synctest.Wait()
		// A caller expecting another type must not get the string creation's result.
		if v, err := e.Resolve(t.Context(), intOp, Entry{}, false); err != nil || v != 7 {
			t.Fatalf("caller of another kind got (%v, %v), want its own creation (7, nil)", v, err)
		}
		close(g.open)
		if v := <-done; v != "text" {
			t.Fatalf("first caller got %v", v)
		}
	})
}

func TestForgetStopsStoreAndJoins(t *testing.T) {
	for _, all := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			s := newStore(0)
			e := New(0)
			defer e.Close()
			g := newGate("computed-before-the-write")
			first := make(chan any)
			go func() {
				v, _ := get(t.Context(), e, s.op("k", false, g.create))
				first <- v
			}()
			synctest.Wait()
			// The key is written (or deleted) while the creation runs.
			if all {
				e.ForgetAll()
			} else {
				e.Forget("k")
			}
			if n := e.InFlight(); n != 0 {
				t.Fatalf("InFlight = %d after Forget, want 0", n)
			}
			// A later caller starts its own creation rather than joining the forgotten one.
			if v, _ := get(t.Context(), e, s.op("k", false, func(context.Context) (any, error) { return "after", nil })); v != "after" {
				t.Fatalf("caller after Forget got %v, want its own creation", v)
			}
			close(g.open)
			if v := <-first; v != "computed-before-the-write" {
				t.Fatalf("the forgotten flight's own caller got %v", v)
			}
			if got := s.entries["k"].Value; got != "after" {
				t.Fatalf("stored %v: the forgotten flight stored over the newer value", got)
			}
		})
	}
}

func TestBackgroundErrorsAreReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		s.put("k", "old", time.Now().Add(-2*time.Minute))
		e := New(1)
		defer e.Close()
		reported := make(chan error, 2)
		op := func(create func(context.Context) (any, error)) *fakeOp {
			o := s.op("k", false, create)
			o.failed = reported
			return o
		}
		boom := errors.New("boom")
		if v, _ := get(t.Context(), e, op(func(context.Context) (any, error) { return nil, boom })); v != "old" {
			t.Fatalf("got %v, want old", v)
		}
		synctest.Wait()
		if err := <-reported; !errors.Is(err, boom) {
			t.Fatalf("reported %v, want boom", err)
		}
		_, _ = get(t.Context(), e, op(func(context.Context) (any, error) { panic("bad") }))
		synctest.Wait()
		var pe *PanicError
		if err := <-reported; !errors.As(err, &pe) {
			t.Fatalf("reported %v, want a PanicError", err)
		}
	})
}

func TestBackgroundSlotsAreReleased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		e := New(1)
		defer e.Close()
		for i := range 5 { // more refreshes than slots, one after another
			s.put("k", i, time.Now().Add(-2*time.Minute))
			_, _ = get(t.Context(), e, s.op("k", false, func(context.Context) (any, error) { return "new", nil }))
			synctest.Wait()
			if v := s.entries["k"].Value; v != "new" {
				t.Fatalf("refresh %d did not run: the single slot was not released", i)
			}
		}
	})
}

func TestRegenerationReleasesDistributedLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		s.put("k", "old", time.Now().Add(-2*time.Minute))
		e := New(0)
		defer e.Close()
		if v, _ := get(t.Context(), e, s.op("k", true, func(context.Context) (any, error) { return "new", nil })); v != "new" {
			t.Fatalf("got %v", v)
		}
		if s.unlocks.Load() != 1 || len(s.locks) != 0 {
			t.Fatalf("after regenerating: %d unlocks, locks held %v", s.unlocks.Load(), s.locks)
		}
	})
}

func TestFlightsDoNotLeakWithCancelableContexts(t *testing.T) {
	s := newStore(0)
	e := New(0)
	defer e.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range 2000 {
		create := func(context.Context) (any, error) { return i, nil }
		if i%4 == 0 {
			create = func(context.Context) (any, error) { panic("x") }
		}
		_, _ = get(ctx, e, s.op(time.Duration(i).String(), i%2 == 0, create))
	}
	if n := e.InFlight(); n != 0 {
		t.Fatalf("InFlight = %d, want 0", n)
	}
}

// TestCreationTimeoutReleasesTheKey: a creator stuck forever (it ignores its context) does not
// hold its key: at the timeout its callers get ErrCreationTimeout, the distributed lock is
// released, and the next caller creates again. What the stuck creator returns later is dropped.
func TestCreationTimeoutReleasesTheKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		e := New(0)
		e.CreationTimeout = time.Second
		defer e.Close()
		stuck := make(chan struct{})
		hung := func(context.Context) (any, error) { <-stuck; return "late", nil }

		start := time.Now()
		errs := make(chan error, 2)
		for range 2 {
			go func() {
				_, err := get(context.Background(), e, s.op("k", true, hung))
				errs <- err
			}()
		}
		for range 2 {
			if err := <-errs; !errors.Is(err, ErrCreationTimeout) {
				t.Fatalf("caller of a stuck creation: %v, want ErrCreationTimeout", err)
			}
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("callers returned after %v, want the timeout, 1s", d)
		}
		if got := s.unlocks.Load(); got != 1 {
			t.Fatalf("distributed lock released %d times, want 1", got)
		}
		v, err := get(context.Background(), e, s.op("k", true, func(context.Context) (any, error) { return "next", nil }))
		if err != nil || v != "next" {
			t.Fatalf("the next caller after the timeout: (%v, %v), want (next, nil)", v, err)
		}
		close(stuck)
		synctest.Wait()
		if cur, _, _ := s.op("k", true, nil).Load(context.Background()); cur.Value != "next" {
			t.Errorf("the stuck creator's late value was stored: %v", cur.Value)
		}
	})
}

// TestCreationTimeoutCancelsTheCreator: a creator that honours its context sees it cancelled at
// the timeout, with ErrCreationTimeout as the cause.
func TestCreationTimeoutCancelsTheCreator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		e := New(0)
		e.CreationTimeout = 50 * time.Millisecond
		defer e.Close()
		causes := make(chan error, 1)
		_, err := get(t.Context(), e, s.op("k", false, func(ctx context.Context) (any, error) {
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return nil, ctx.Err()
		}))
		if !errors.Is(err, ErrCreationTimeout) {
			t.Fatalf("got %v, want ErrCreationTimeout", err)
		}
		if cause := <-causes; cause != ErrCreationTimeout {
			t.Errorf("the creator's context cause: %v, want ErrCreationTimeout", cause)
		}
	})
}

// TestCreationTimeoutKeepsPanicsAndGoexit: under a creation timeout the creator runs on a
// goroutine of its own; its panic and runtime.Goexit still reach the callers as errors.
func TestCreationTimeoutKeepsPanicsAndGoexit(t *testing.T) {
	s := newStore(time.Minute)
	e := New(0)
	e.CreationTimeout = time.Minute
	defer e.Close()
	_, err := get(t.Context(), e, s.op("p", false, func(context.Context) (any, error) { panic("boom") }))
	var pe *PanicError
	if !errors.As(err, &pe) || pe.Value != "boom" {
		t.Errorf("panicking creator: %v, want a *PanicError of boom", err)
	}
	_, err = get(t.Context(), e, s.op("g", false, func(context.Context) (any, error) { runtime.Goexit(); return nil, nil }))
	if !errors.Is(err, ErrGoexit) {
		t.Errorf("creator calling Goexit: %v, want ErrGoexit", err)
	}
}

// ownTimeout is an Op with a creation timeout of its own (CreationTimeouter).
type ownTimeout struct {
	*fakeOp
	d  time.Duration
	ok bool
}

func (o ownTimeout) CreationTimeout() (time.Duration, bool) { return o.d, o.ok }

// ownTimeoutCases are the creation timeouts of an engine and of an Op or Batch that may replace
// it, with when a creation that would run for ownTimeoutWork ends under them.
var ownTimeoutCases = []struct {
	name   string
	engine time.Duration
	own    time.Duration
	ok     bool
	want   time.Duration // the timeout that ends the creation; 0: none does
}{
	{"shorter than the engine's", time.Minute, 2 * time.Second, true, 2 * time.Second},
	{"longer than the engine's", time.Second, 3 * time.Second, true, 3 * time.Second},
	{"zero: unbounded", time.Second, 0, true, 0},
	{"none given", time.Second, time.Hour, false, time.Second},
}

// ownTimeoutWork is how long the creators of the ownTimeoutCases run, ignoring their context:
// longer than any timeout there.
const ownTimeoutWork = 10 * time.Second

// checkOwnTimeout checks the outcome of a creation of ownTimeoutWork under timeout want (0:
// none): the timeout error, stating want, once want has passed, or the value when it ends.
func checkOwnTimeout(t *testing.T, want time.Duration, took time.Duration, made bool, err error) {
	t.Helper()
	if want == 0 {
		if err != nil || !made || took != ownTimeoutWork {
			t.Errorf("unbounded creation: made %v, err %v after %v; want its value after %v", made, err, took, ownTimeoutWork)
		}
		return
	}
	if !errors.Is(err, ErrCreationTimeout) || took != want {
		t.Fatalf("got %v after %v, want ErrCreationTimeout after %v", err, took, want)
	}
	if msg := err.Error(); !strings.Contains(msg, "after "+want.String()) {
		t.Errorf("error %q does not state the timeout used, %v", msg, want)
	}
}

// TestOpCreationTimeoutReplacesTheEngines: an Op that gives a creation timeout of its own
// (CreationTimeouter, ok) has its creation bounded by it instead of the engine's, zero leaving it
// unbounded; one that gives none keeps the engine's. The error states the timeout used.
func TestOpCreationTimeoutReplacesTheEngines(t *testing.T) {
	for _, tc := range ownTimeoutCases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newStore(time.Minute)
				e := New(0)
				e.CreationTimeout = tc.engine
				defer e.Close()
				op := ownTimeout{s.op("k", true, func(context.Context) (any, error) {
					time.Sleep(ownTimeoutWork)
					return "made", nil
				}), tc.own, tc.ok}
				start := time.Now()
				v, err := e.Resolve(t.Context(), op, Entry{}, false)
				checkOwnTimeout(t, tc.want, time.Since(start), v == "made", err)
			})
		})
	}
}

// A creation that Resolve runs inline (the caller's context cannot end) whose creator calls
// runtime.Goexit (t.FailNow in a test) still marks its work done: Close does not block forever.
func TestSingleGoexitInlineReleasesClose(t *testing.T) {
	s := newStore(time.Minute)
	e := New(0)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		_, _ = get(context.Background(), e, s.op("k", false, func(context.Context) (any, error) {
			runtime.Goexit()
			return nil, nil
		}))
	}()
	<-exited
	closed := make(chan struct{})
	go func() { e.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("Close has not returned after 2s: the inline creation's wg count was never released")
	}
}

// TestIdleWorkersEndWithoutClose: the goroutines that run creations wait a while for the next
// one and then end by themselves, so that an engine nobody closes leaves none behind. The
// bubble fails the test if one is still blocked when it ends.
func TestIdleWorkersEndWithoutClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		e := New(0)
		e.CreationTimeout = time.Minute // the creator runs on a worker
		for i := range 3 {
			// A cancelable context: the creation runs on a worker too.
			v, err := get(t.Context(), e, s.op("k"+strconv.Itoa(i), false, func(context.Context) (any, error) { return i, nil }))
			if err != nil || v != i {
				t.Fatalf("creation %d: (%v, %v)", i, v, err)
			}
		}
		time.Sleep(3 * workerIdle)
		synctest.Wait()
	})
}

// TestCloseEndsIdleWorkers: Close waits for the idle workers to end, as for the creations.
func TestCloseEndsIdleWorkers(t *testing.T) {
	s := newStore(time.Minute)
	e := New(0)
	e.CreationTimeout = time.Minute
	if _, err := get(t.Context(), e, s.op("k", false, func(context.Context) (any, error) { return "v", nil })); err != nil {
		t.Fatal(err)
	}
	e.Close()
	if err := goleak.Find(); err != nil {
		t.Errorf("after Close: %v", err)
	}
}

// TestCreatorContextUnderATimeout: the context of a creator call under a creation timeout has
// the caller's values and the timeout's deadline, is done at the timeout with ErrCreationTimeout
// as its cause whether or not the creator asked for Done before, and is done once the call
// returned, for a creator that kept it.
func TestCreatorContextUnderATimeout(t *testing.T) {
	type ctxKey struct{}
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Minute)
		e := New(0)
		e.CreationTimeout = time.Second
		defer e.Close()
		ctx := context.WithValue(context.Background(), ctxKey{}, "trace-1")
		start := time.Now()
		kept := make(chan context.Context, 2)
		for _, early := range []bool{false, true} {
			_, err := get(ctx, e, s.op("k"+strconv.FormatBool(early), false, func(ctx context.Context) (any, error) {
				if got := ctx.Value(ctxKey{}); got != "trace-1" {
					t.Errorf("the creator's context value: %v, want trace-1", got)
				}
				if d, ok := ctx.Deadline(); !ok || d != start.Add(time.Second) {
					t.Errorf("the creator's deadline: %v %v, want %v", d, ok, start.Add(time.Second))
				}
				if early {
					<-ctx.Done()
				} else {
					time.Sleep(2 * time.Second)
				}
				if err := ctx.Err(); err != context.DeadlineExceeded {
					t.Errorf("asked Done first %v: Err after the timeout %v, want DeadlineExceeded", early, err)
				}
				if cause := context.Cause(ctx); cause != ErrCreationTimeout {
					t.Errorf("asked Done first %v: cause %v, want ErrCreationTimeout", early, cause)
				}
				return "late", nil
			}))
			if !errors.Is(err, ErrCreationTimeout) {
				t.Fatalf("got %v, want ErrCreationTimeout", err)
			}
			synctest.Wait()
			start = time.Now()
		}
		for _, asked := range []bool{false, true} {
			_, err := get(ctx, e, s.op("kept"+strconv.FormatBool(asked), false, func(ctx context.Context) (any, error) {
				if asked {
					_ = ctx.Done()
				}
				kept <- ctx
				return "v", nil
			}))
			if err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			c := <-kept
			if err := c.Err(); err != context.Canceled {
				t.Errorf("asked Done before %v: Err once the call returned %v, want Canceled", asked, err)
			}
			select {
			case <-c.Done():
			default:
				t.Errorf("asked Done before %v: not done once the call returned", asked)
			}
		}
	})
}

// lateCheckCreator returns 5 ms before its deadline, after it leaves behind a goroutine watching
// its context that will spin when the call ends: on one P, that goroutine runs before the
// caller, which wakes after the deadline (a goroutine runs 10 ms before it is preempted).
type lateCheckCreator struct{ returned, deadline *time.Time }

func (c lateCheckCreator) Create(ctx context.Context) (any, error) {
	*c.deadline, _ = ctx.Deadline()
	context.AfterFunc(ctx, func() {
		for start := time.Now(); time.Since(start) < 30*time.Millisecond; {
		}
	})
	time.Sleep(time.Until(*c.deadline) - 5*time.Millisecond)
	*c.returned = time.Now()
	return "v", nil
}

// TestCreatorReturningBeforeItsDeadlineIsNotLate: whether a creator under a timeout was late is
// decided when it returns, not when its caller wakes, which may be after the deadline.
func TestCreatorReturningBeforeItsDeadlineIsNotLate(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	e := New(0)
	defer e.Close()
	e.CreationTimeout = 50 * time.Millisecond
	for range 5 {
		var returned, deadline time.Time
		v, err := bounded[any](e, context.Background(), struct{}{}, lateCheckCreator{&returned, &deadline}, nil)
		if returned.Before(deadline) && (err != nil || v != "v") {
			t.Fatalf("returned %v before its deadline, its caller woke %v after it: (%v, %v), want (v, nil)",
				deadline.Sub(returned), time.Since(deadline), v, err)
		}
	}
}

// TestCallContextAnswersAsTheContextPackageWould runs a creator call's context (callContext) and
// the context package's equivalent (context.WithDeadlineCause, or WithCancel without a deadline)
// through the same timeline: the call returns before or after its deadline, or after its parent
// was cancelled with a cause (before or after the deadline passed) or reached a deadline of its
// own; a kept context is first asked for Done only later, after the deadline and after the
// parent's cancellation. Err and Cause must agree at every step.
func TestCallContextAnswersAsTheContextPackageWould(t *testing.T) {
	errParent := errors.New("parent cancelled")
	for _, tc := range []struct {
		name          string
		deadline      bool
		runFor        time.Duration // before the call returns; the deadline is at 1s
		cancelParent  bool          // with errParent, before the call returns
		askDoneDuring bool          // make the real context during the call
		parentIn      time.Duration // if positive, the parent's own deadline, from the start
		askDoneAtEnd  bool          // make the real context as soon as the call returned
	}{
		{name: "returned in time", deadline: true, runFor: 0},
		{name: "returned late", deadline: true, runFor: 2 * time.Second},
		{name: "returned in time, Done asked during the call", deadline: true, askDoneDuring: true},
		{name: "no deadline", runFor: 2 * time.Second},
		{name: "parent cancelled", deadline: true, cancelParent: true},
		{name: "parent cancelled, no deadline", cancelParent: true},
		{name: "parent cancelled after the deadline passed", deadline: true, runFor: 2 * time.Second, cancelParent: true},
		{name: "parent's deadline before the call's", deadline: true, runFor: time.Second * 3 / 4, parentIn: time.Second / 2, askDoneAtEnd: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				base := context.Background()
				if tc.parentIn > 0 {
					var cancel context.CancelFunc
					base, cancel = context.WithTimeout(base, tc.parentIn)
					defer cancel()
				}
				parent, cancelParent := context.WithCancelCause(base)
				defer cancelParent(nil)
				var d time.Duration
				var ref context.Context
				var endRef context.CancelFunc
				if tc.deadline {
					d = time.Second
					ref, endRef = context.WithDeadlineCause(parent, time.Now().Add(d), ErrCreationTimeout)
				} else {
					ref, endRef = context.WithCancel(parent)
				}
				c := &callContext{}
				c.init(parent, d, nil, nil)
				if tc.askDoneDuring {
					_ = c.Done()
				}
				time.Sleep(tc.runFor)
				if tc.cancelParent {
					cancelParent(errParent)
				}
				check := func(when string) {
					t.Helper()
					if got, want := c.Err(), ref.Err(); got != want {
						t.Errorf("%s: Err %v, want %v", when, got, want)
					}
				}
				check("during the call")
				c.end()
				endRef()
				check("once the call returned")
				if tc.askDoneAtEnd {
					select {
					case <-c.Done():
					default:
						t.Error("not done once the call returned")
					}
					check("asked for Done once the call returned")
				}
				time.Sleep(3 * time.Second) // past the deadline
				cancelParent(errors.New("cancelled after the call"))
				check("after the deadline and the parent's cancellation")
				select {
				case <-c.Done():
				default:
					t.Error("not done once the call returned")
				}
				check("once asked for Done")
				if got, want := context.Cause(c), context.Cause(ref); got != want {
					t.Errorf("Cause %v, want %v", got, want)
				}
			})
		})
	}
}
