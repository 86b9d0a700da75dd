package dogpile

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeWaker is a Waker over the fake store: release plays another process releasing a key's
// lock and announcing it.
type fakeWaker struct {
	s *store

	mu       sync.Mutex
	watching map[string][]chan<- struct{}
	said     [][]string // every Watch call's keys: what this process said it waits for
}

func newFakeWaker(s *store) *fakeWaker {
	return &fakeWaker{s: s, watching: map[string][]chan<- struct{}{}}
}

func (w *fakeWaker) Watch(_ context.Context, keys []string, ch chan<- struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.said = append(w.said, slices.Clone(keys))
	for _, k := range keys {
		w.watching[k] = append(w.watching[k], ch)
	}
}

func (w *fakeWaker) Unwatch(keys []string, ch chan<- struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range keys {
		w.watching[k] = slices.DeleteFunc(w.watching[k], func(c chan<- struct{}) bool { return c == ch })
		if len(w.watching[k]) == 0 {
			delete(w.watching, k)
		}
	}
}

// release is another process releasing key's lock, after storing v unless v is nil.
func (w *fakeWaker) release(key string, v any) {
	w.s.mu.Lock()
	if v != nil {
		w.s.entries[key] = Entry{Value: v, Created: time.Now().UnixNano()}
	}
	delete(w.s.locks, key)
	w.s.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.watching[key] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (w *fakeWaker) watchers() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.watching)
}

// waitFor calls get for key on e in a goroutine of its own; the returned channel has its value,
// or its error.
func waitFor(t *testing.T, e *Engine, s *store, key string) <-chan any {
	done := make(chan any, 1)
	go func() {
		v, err := get(t.Context(), e, s.op(key, true, func(context.Context) (any, error) { return "mine", nil }))
		if err != nil {
			v = err
		}
		done <- v
	}()
	return done
}

// A caller waiting for another process's lock is woken by the release's announcement and reads
// the value then, not at its next poll: with an hour between polls, no time passes.
func TestWaiterWokenByRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Hour)
		s.locks["k"] = true // another process is creating k
		w := newFakeWaker(s)
		e := New(0)
		defer e.Close()
		e.PollMin, e.PollMax, e.Waker = time.Hour, time.Hour, w
		start := time.Now()
		done := waitFor(t, e, s, "k")
		synctest.Wait() // waiting: it found the lock held and the value absent
		w.release("k", "theirs")
		if v := <-done; v != "theirs" {
			t.Fatalf("got %v, want the other process's value", v)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("the waiter had the value after %v, want at once", d)
		}
		if s.creates.Load() != 0 || w.watchers() != 0 {
			t.Errorf("%d creations, %d keys still watched; want 0 and 0", s.creates.Load(), w.watchers())
		}
		if !slices.EqualFunc(w.said, [][]string{{"k"}}, slices.Equal) {
			t.Errorf("said it waits for %v, want [[k]], once", w.said)
		}
	})
}

// A release announced without a value (the other process's creation failed) lets the waiter
// take the lock and create at once.
func TestWaiterWokenWithoutValueCreates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Hour)
		s.locks["k"] = true
		w := newFakeWaker(s)
		e := New(0)
		defer e.Close()
		e.PollMin, e.PollMax, e.Waker = time.Hour, time.Hour, w
		start := time.Now()
		done := waitFor(t, e, s, "k")
		synctest.Wait()
		w.release("k", nil)
		if v := <-done; v != "mine" || time.Since(start) != 0 {
			t.Fatalf("got %v after %v, want its own creation at once", v, time.Since(start))
		}
	})
}

// A release whose announcement is lost is found by polling, at most PollMax after it.
func TestWaiterPollsWhenReleaseIsLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Hour)
		s.locks["k"] = true
		e := New(0)
		defer e.Close()
		e.PollMin, e.PollMax, e.Waker = 10*time.Millisecond, time.Second, newFakeWaker(s)
		done := waitFor(t, e, s, "k")
		time.Sleep(5 * time.Second) // the waits have grown to a second
		s.put("k", "theirs", time.Now())
		s.mu.Lock()
		delete(s.locks, "k") // and no announcement
		s.mu.Unlock()
		start := time.Now()
		if v := <-done; v != "theirs" {
			t.Fatalf("got %v, want the other process's value", v)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("the waiter had the value %v after it was stored, want at most PollMax, 1s", d)
		}
	})
}

// The waits between polls are within [PollMin, PollMax]: a minute of waiting with 1s..4s costs
// between 15 and 61 reads.
func TestPollBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Hour)
		s.locks["k"] = true
		e := New(0)
		defer e.Close()
		e.PollMin, e.PollMax = time.Second, 4*time.Second
		var loads []time.Time
		o := s.op("k", true, func(context.Context) (any, error) { return "mine", nil })
		lo := &loadTimes{fakeOp: o, at: &loads}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if _, err := e.Resolve(ctx, lo, Entry{}, false); err == nil {
			t.Fatal("got a value, want the deadline")
		}
		synctest.Wait()
		for i := 1; i < len(loads); i++ {
			if d := loads[i].Sub(loads[i-1]); d < time.Second || d > 4*time.Second {
				t.Errorf("wait %d between reads: %v, want within [1s, 4s]", i, d)
			}
		}
		if n := len(loads); n < 15 || n > 61 {
			t.Errorf("%d reads in a minute, want 15 to 61", n)
		}
	})
}

// loadTimes is a fakeOp that records when it reads.
type loadTimes struct {
	*fakeOp
	at *[]time.Time
}

func (o *loadTimes) Load(ctx context.Context) (Entry, bool, error) {
	*o.at = append(*o.at, time.Now())
	return o.fakeOp.Load(ctx)
}

// A batch waiting for keys other processes hold is woken by their releases too.
func TestBatchWaiterWokenByRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newStore(time.Hour)
		s.locks["a"], s.locks["b"] = true, true
		w := newFakeWaker(s)
		e := New(0)
		defer e.Close()
		e.PollMin, e.PollMax, e.Waker = time.Hour, time.Hour, w
		b := s.batch([]string{"a", "b"}, true, func(context.Context, []string) (map[string]any, error) {
			t.Error("created keys other processes made")
			return nil, nil
		})
		start := time.Now()
		done := make(chan map[string]any, 1)
		go func() {
			m, err := getBatch(t.Context(), e, b)
			if err != nil {
				t.Error(err)
			}
			done <- m
		}()
		synctest.Wait()
		w.release("a", "theirs a")
		synctest.Wait()
		w.release("b", "theirs b")
		m := <-done
		if m["a"] != "theirs a" || m["b"] != "theirs b" || time.Since(start) != 0 {
			t.Errorf("got %v after %v, want both of the other processes' values at once", m, time.Since(start))
		}
		if w.watchers() != 0 || !slices.EqualFunc(w.said, [][]string{{"a", "b"}}, slices.Equal) {
			t.Errorf("%d keys still watched, said it waits for %v; want none, and [[a b]] once", w.watchers(), w.said)
		}
	})
}
