package dogpile

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// The contexts creators run under: the creation's (creationContext), which keeps the leading
// caller's values but not its cancellation, and one for each creator call (callContext), which
// ends with the call and, under a creation timeout, at the timeout.

// creationContext is the context of a creation: the values of the caller that leads it, and the
// engine's cancellation (Close), which is the Context it embeds. It registers nothing with the
// engine's context: the contexts derived from it for each creator call (bounded) do, when asked
// for Done, and they end with the call.
type creationContext struct {
	context.Context                 // the engine's closing: Done, Err, Deadline
	values          context.Context // the leading caller's
}

// Value looks key up in the engine's context first: it holds no values of its own, and answers
// the context package's lookup of the innermost cancellation (context.Cause, and the contexts
// derived from this one), which must not find the caller's.
func (c *creationContext) Value(key any) any {
	if v := c.Context.Value(key); v != nil {
		return v
	}
	return c.values.Value(key)
}

// callContext is the context of one creator call: a child of the creation's context that ends
// when the call returns (end) and, under a creation timeout, at deadline, with ErrCreationTimeout
// as its cause. It is what context.WithTimeoutCause (or, without a deadline, context.WithCancel)
// would return, made lazily: the context package's one (real) is made only when the creator asks
// for Done or for a value, which are the ways to wait for it or to derive from it, so that a
// creator that does neither costs no registration with the engine's context (whose lock every
// creation would otherwise take, in every goroutine). Until then its own timer answers Err: as
// in the context package, the deadline has passed once the timer has fired, so that no answer
// reads the clock.
type callContext struct {
	parent   context.Context
	deadline time.Time   // zero: none
	timer    *time.Timer // fires at deadline; nil without one
	onExpire expirer     // told when the timer fires; may be nil
	// past is set when the timer fires, before onExpire is told.
	past atomic.Bool

	mu     sync.Mutex
	real   context.Context    // guarded by mu; nil until made
	cancel context.CancelFunc // guarded by mu; real's
	ended  bool               // guarded by mu: the call returned
	// endErr and endCause are what Err and Cause answer once the call returned before real was
	// made, fixed at that moment (end): guarded by mu.
	endErr, endCause error
}

// expirer is told that a call's deadline passed before the call returned.
type expirer interface{ expire() }

// init readies c for a call under parent that ends after d (never if d <= 0); at that moment,
// unless the call returned first, its timer tells onExpire (if not nil), on a goroutine of its
// own.
func (c *callContext) init(parent context.Context, d time.Duration, onExpire expirer) {
	c.parent = parent
	if d <= 0 {
		return
	}
	c.deadline = time.Now().Add(d)
	c.onExpire = onExpire
	c.timer = time.AfterFunc(d, c.fire)
}

// fire is the timer's function.
func (c *callContext) fire() {
	c.past.Store(true)
	if c.onExpire != nil {
		c.onExpire.expire()
	}
}

// made returns real, making it first if it is not made yet. Made after the call returned, it is
// done at once, with the error and cause the call ended with (end), not those of the moment it
// is made: a deadline that passed since does not turn Canceled into DeadlineExceeded.
func (c *callContext) made() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.real != nil:
	case c.ended:
		// Detached from the parent, whose later cancellation must not change the answer; it
		// keeps the parent's values.
		base := context.WithoutCancel(c.parent)
		if c.endErr == context.DeadlineExceeded {
			// A deadline in the past (the call's, or the zero time for a parent's): done at once.
			c.real, c.cancel = context.WithDeadlineCause(base, c.deadline, c.endCause)
		} else {
			real, cancel := context.WithCancelCause(base)
			cancel(c.endCause)
			c.real, c.cancel = real, func() {}
		}
	case c.deadline.IsZero():
		c.real, c.cancel = context.WithCancel(c.parent)
	default:
		c.real, c.cancel = context.WithDeadlineCause(c.parent, c.deadline, ErrCreationTimeout)
	}
	return c.real
}

// end ends the context once the call returned, as the cancel function of
// context.WithTimeoutCause would: a creator that kept it sees it done. Not made yet, it fixes
// what Err and Cause will answer: the parent's error if the parent ended, DeadlineExceeded if
// the deadline passed, Canceled otherwise.
func (c *callContext) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return
	}
	c.ended = true
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.cancel != nil {
		c.cancel()
		return
	}
	switch {
	case c.parent.Err() != nil:
		c.endErr, c.endCause = c.parent.Err(), context.Cause(c.parent)
	case c.past.Load(): // real is not made: only the timer can have fired
		c.endErr, c.endCause = context.DeadlineExceeded, ErrCreationTimeout
	default:
		c.endErr, c.endCause = context.Canceled, context.Canceled
	}
}

// expired reports whether the deadline, if there is one, has passed: whether its timer, or the
// real context's (which may fire first), has fired.
func (c *callContext) expired() bool {
	if c.past.Load() {
		return true
	}
	c.mu.Lock()
	real := c.real
	c.mu.Unlock()
	return real != nil && c.timer != nil && context.Cause(real) == ErrCreationTimeout
}

// Deadline is the call's deadline if it has one, and otherwise its parent's.
func (c *callContext) Deadline() (time.Time, bool) {
	if c.deadline.IsZero() {
		return c.parent.Deadline()
	}
	return c.deadline, true
}

func (c *callContext) Done() <-chan struct{} { return c.made().Done() }

func (c *callContext) Value(key any) any { return c.made().Value(key) }

func (c *callContext) Err() error {
	c.mu.Lock()
	real, ended, endErr := c.real, c.ended, c.endErr
	c.mu.Unlock()
	switch {
	case real != nil:
		return real.Err()
	case ended:
		return endErr
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if c.expired() {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *callContext) String() string { return "dogpile.callContext" }
