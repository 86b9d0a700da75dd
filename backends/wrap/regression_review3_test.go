package wrap_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/wrap"
)

// A per-call timeout hook runs next in a goroutine and returns its own error when the backend is
// slow. The wrapper promises that "if the hook returns an error after next took locks, the
// wrapper releases them"; here next takes the lock after the hook returned, and nobody ever
// releases it: the key stays locked for the whole lock timeout (a minute) although TryLock
// reported failure. The wrapper should refuse or undo a next that completes after the hook
// returned (a mutex-guarded "done" flag in call: a late TryLock releases what it took).
func TestReview3LateNextLeaksLock(t *testing.T) {
	fb := newFile(t)
	errSlow := errors.New("backend too slow")
	gate := make(chan struct{})
	done := make(chan error, 1)
	hook := func(ctx context.Context, c *wrap.Call, next func(context.Context) error) error {
		if c.Op != wrap.OpTryLock {
			return next(ctx)
		}
		go func() { <-gate; done <- next(context.WithoutCancel(ctx)) }()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Millisecond): // the hook's own deadline
			return errSlow
		}
	}
	w, ok := backends.As[backends.Locker](wrap.New(fb, hook))
	if !ok {
		t.Fatal("the wrapper of a file backend has no Locker")
	}
	ctx := t.Context()
	l, ok, err := w.TryLock(ctx, "k", time.Minute)
	if !errors.Is(err, errSlow) || ok || l != nil {
		t.Fatalf("TryLock through the timeout hook = %v, %v, %v; want errSlow", l, ok, err)
	}
	close(gate)
	// The fix: a next that starts after the hook returned is refused and reaches no backend.
	if err := <-done; err == nil {
		t.Fatalf("the late next succeeded; want it refused, the call being over")
	}
	l2, ok, err := fb.TryLock(ctx, "k", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Errorf("TryLock failed with errSlow, yet its key stays locked: the lock the late next took is held by nobody until its timeout")
	} else {
		_ = l2.Unlock(ctx)
	}
}

// decide consumes a FailNext count (and counts an injection) before the latency wait; a call
// whose context ends during the wait returns ctx.Err(), yet Injected counts it as an injected
// failure and the FailNext it used is gone: the next call, which the test meant to fail, succeeds.
func TestReview3CancelledWaitEatsFailNext(t *testing.T) {
	f := wrap.NewFaults(1)
	b := wrap.New(newFile(t), f.Hook)
	if err := f.Set(wrap.Fault{FailNext: 1, Latency: 200 * time.Millisecond}, wrap.OpSet); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	err := b.Set(ctx, "k", []byte("v"), time.Minute)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Set with a short deadline = %v", err)
	}
	n := f.Injected(wrap.OpSet)
	err = b.Set(t.Context(), "k", []byte("v"), time.Minute)
	if n != 0 || !errors.Is(err, wrap.ErrInjected) {
		t.Errorf("a call that ended on its context counted as %d injected failure(s); the next call, the one FailNext: 1 should fail, got %v", n, err)
	}
}
