package dogpile

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// TestReviewBatchGoexitInlineLeavesCloseHanging: a caller whose context cannot end
// (context.Background) runs its batch's creation inline, and ResolveBatch marks it done with a
// plain e.wg.Done() after runBatch returns. A creator that calls runtime.Goexit (t.FailNow in a
// test) unwinds through runBatch, whose defers finish the flights, but ResolveBatch's
// e.wg.Done() never runs: the WaitGroup keeps the count and Close blocks forever. (Resolve's
// inline path, dogpile.go:206-207, has the same shape.)
func TestReviewBatchGoexitInlineLeavesCloseHanging(t *testing.T) {
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

// TestReviewSingleGoexitInlineLeavesCloseHanging: the same through Resolve.
func TestReviewSingleGoexitInlineLeavesCloseHanging(t *testing.T) {
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
