package dogpile

import (
	"context"
	"math/rand/v2"
	"time"
)

// How a creation waits for a key whose distributed lock another process holds: it polls the
// backend (backoff), and a Waker, where the region has one, wakes it when the lock is released.

// Waker wakes a caller that waits for another process's creation as soon as that process
// releases the key's distributed lock, instead of at its next poll: a region whose backend can
// broadcast (backends.Notifier) gives its engine one (Engine.Waker), and announces the releases
// of its own locks (Op.TryLock's unlock) to the processes that said they wait for them. It is an
// optimisation, never relied on: a waiting caller polls all the same, so without a Waker, or when
// a message is lost, it finds the value at its next poll, at most Engine.PollMax later.
type Waker interface {
	// Watch tells the processes that hold the locks of keys that this one waits for their
	// release (one round trip; it reports its own errors), and makes every release of them that
	// it hears of send on ch without blocking, until Unwatch (ch is buffered: a send that finds
	// it full is dropped, one is enough).
	Watch(ctx context.Context, keys []string, ch chan<- struct{})
	// Unwatch ends a Watch of keys with ch.
	Unwatch(keys []string, ch chan<- struct{})
}

// Defaults of Engine.PollMin and Engine.PollMax.
const (
	DefaultPollMin = time.Millisecond
	DefaultPollMax = 100 * time.Millisecond
)

// backoff paces a caller that waits for the value of a key whose distributed lock another
// process holds. It polls: each wait is random in [min, limit] (full jitter, which keeps
// processes that wait on one lock from polling in step), the limit doubling from min to max, so
// that short creations are seen soon and long ones cost few reads. With a Waker, a release
// announced by the lock's holder ends a wait at once, and max bounds how late a lost message
// makes the caller. It also times the whole wait, for EventWaited. Engine.backoff makes one.
type backoff struct {
	min, max time.Duration
	limit    time.Duration
	began    time.Time // when the lock was first found held; zero until then

	waker   Waker
	watched []string      // the keys watched since begin
	wake    chan struct{} // what waker sends on, for watched; nil without a waker
}

// backoff returns the pace of a caller about to wait for another process's creation.
func (e *Engine) backoff() backoff {
	b := backoff{min: e.PollMin, max: e.PollMax, waker: e.Waker}
	if b.min <= 0 {
		b.min = DefaultPollMin
	}
	if b.max <= 0 {
		b.max = DefaultPollMax
	}
	b.max = max(b.max, b.min)
	return b
}

// begin marks the start of the wait the first time it is called, when the locks of keys are
// found held, and watches their releases; it reports whether it did.
func (b *backoff) begin(ctx context.Context, keys ...string) bool {
	if !b.began.IsZero() {
		return false
	}
	b.began = time.Now()
	if b.waker != nil {
		b.wake = make(chan struct{}, 1)
		b.watched = keys
		b.waker.Watch(ctx, keys, b.wake)
	}
	return true
}

// end stops watching, and returns how long the wait lasted since begin, false if it never began.
func (b *backoff) end() (time.Duration, bool) {
	if b.began.IsZero() {
		return 0, false
	}
	if b.wake != nil {
		b.waker.Unwatch(b.watched, b.wake)
	}
	return time.Since(b.began), true
}

// wait sleeps for the next interval, or until a watched lock is released (woken true), and
// returns ctx.Err() if ctx ends first.
func (b *backoff) wait(ctx context.Context) (woken bool, err error) {
	if b.limit == 0 {
		b.limit = b.min
	}
	t := time.NewTimer(b.min + time.Duration(rand.Int64N(int64(b.limit-b.min)+1)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-b.wake: // nil without a waker: never ready
		return true, nil
	case <-t.C:
	}
	b.limit = min(b.limit*2, b.max)
	return false, nil
}
