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
// engine's cancellation (Close), whose context (closing) answers Done, Err and Deadline. It
// registers nothing with the engine's context: the contexts derived from it for each creator
// call (bounded) do, when asked for Done, and they end with the call. It reaches the engine's
// context through the engine, one word where the context would take two, which keeps the
// flight that holds it in a smaller size class.
type creationContext struct {
	e      *Engine
	values context.Context // the leading caller's
}

func (c *creationContext) Deadline() (time.Time, bool) { return c.e.closing.Deadline() }
func (c *creationContext) Done() <-chan struct{}       { return c.e.closing.Done() }
func (c *creationContext) Err() error                  { return c.e.closing.Err() }

// Value looks key up in the engine's context first: it holds no values of its own, and answers
// the context package's lookup of the innermost cancellation (context.Cause, and the contexts
// derived from this one), which must not find the caller's.
func (c *creationContext) Value(key any) any {
	if v := c.e.closing.Value(key); v != nil {
		return v
	}
	return c.values.Value(key)
}

func (c *creationContext) String() string { return "dogpile.creationContext" }

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
	parent context.Context
	// bound is the deadline of a call under a creation timeout, set by init before the call and
	// not changed after it; nil: the call has none.
	bound *callBound
	// past is set when the timer fires, before onExpire is told: to deadlineFirst if the parent
	// had not ended then, so that the deadline is what ended the context, as in the context
	// package, where the first cancellation sticks; to deadlineAfter otherwise.
	past atomic.Uint32

	mu    sync.Mutex
	ended bool // guarded by mu: the call returned
	// made is the real context once made, or what Err and Cause answer once the call returned
	// before it was made, if that is not Canceled: guarded by mu, and nil until either is
	// needed, which keeps the common call, whose creator asks for neither, small.
	made *callMade
}

// callBound is the deadline of a call under a creation timeout.
type callBound struct {
	deadline time.Time
	timer    *time.Timer // fires at deadline
	onExpire expirer     // told when the timer fires; may be nil
}

// callMade is what a call's context holds once the context package's is made, or once the call
// returned (end) before it was.
type callMade struct {
	real   context.Context    // nil until made
	cancel context.CancelFunc // real's
	// endErr and endCause are what Err and Cause answer once the call returned before real was
	// made, fixed at that moment (end).
	endErr, endCause error
}

// The values of callContext.past once the timer fired.
const (
	deadlineFirst uint32 = 1 + iota
	deadlineAfter
)

// expirer is told that a call's deadline passed before the call returned.
type expirer interface{ expire() }

// init readies c for a call under parent that ends after d (never if d <= 0); at that moment,
// unless the call returned first, its timer tells onExpire (if not nil), on a goroutine of its
// own. b, if not nil, is where the deadline goes (a field of the task, which saves an
// allocation); nil, init allocates one when there is a deadline.
func (c *callContext) init(parent context.Context, d time.Duration, b *callBound, onExpire expirer) {
	c.parent = parent
	if d <= 0 {
		return
	}
	if b == nil {
		b = new(callBound)
	}
	b.deadline = time.Now().Add(d)
	b.onExpire = onExpire
	c.bound = b
	b.timer = time.AfterFunc(d, c.fire)
}

// fire is the timer's function.
func (c *callContext) fire() {
	if c.parent.Err() == nil {
		c.past.Store(deadlineFirst)
	} else {
		c.past.Store(deadlineAfter)
	}
	if c.bound.onExpire != nil {
		c.bound.onExpire.expire()
	}
}

// real returns the context package's context, making it first if it is not made yet. Made
// after the call returned, it is done at once, with the error and cause the call ended with
// (end), not those of the moment it is made: a deadline that passed since does not turn
// Canceled into DeadlineExceeded.
func (c *callContext) real() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.made
	if m == nil {
		m = new(callMade)
		c.made = m
	}
	switch {
	case m.real != nil:
	case c.ended:
		endErr, endCause := m.endErr, m.endCause
		if endErr == nil {
			endErr, endCause = context.Canceled, context.Canceled
		}
		// Detached from the parent, whose later cancellation must not change the answer; it
		// keeps the parent's values.
		base := context.WithoutCancel(c.parent)
		if endErr == context.DeadlineExceeded {
			// A deadline in the past (the call's passed, or a parent's earlier one did; the zero
			// time stands for both): done at once.
			m.real, m.cancel = context.WithDeadlineCause(base, time.Time{}, endCause)
		} else {
			real, cancel := context.WithCancelCause(base)
			cancel(endCause)
			m.real, m.cancel = real, func() {}
		}
	case c.bound == nil:
		m.real, m.cancel = context.WithCancel(c.parent)
	default:
		m.real, m.cancel = context.WithDeadlineCause(c.parent, c.bound.deadline, ErrCreationTimeout)
	}
	return m.real
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
	if c.bound != nil {
		c.bound.timer.Stop()
	}
	if c.made != nil {
		// Made is only ever set with real, before the call returned.
		c.made.cancel()
		return
	}
	if err, cause := c.endedBy(); err != nil {
		c.made = &callMade{endErr: err, endCause: cause}
	}
	// Otherwise Canceled, what an ended call with nothing made answers.
}

// endedBy returns the error and cause the context has ended with before the call returned, while
// real is not made, or nil: its deadline's if the timer fired while the parent was live, the
// parent's if the parent ended first.
func (c *callContext) endedBy() (err, cause error) {
	if c.past.Load() == deadlineFirst {
		return context.DeadlineExceeded, ErrCreationTimeout
	}
	if err := c.parent.Err(); err != nil {
		return err, context.Cause(c.parent)
	}
	return nil, nil
}

// expired reports whether the deadline, if there is one, has passed: whether its timer, or the
// real context's (which may fire first), has fired.
func (c *callContext) expired() bool {
	if c.past.Load() != 0 {
		return true
	}
	if c.bound == nil {
		return false
	}
	c.mu.Lock()
	var real context.Context
	if c.made != nil {
		real = c.made.real
	}
	c.mu.Unlock()
	return real != nil && context.Cause(real) == ErrCreationTimeout
}

// Deadline is the call's deadline if it has one, and otherwise its parent's.
func (c *callContext) Deadline() (time.Time, bool) {
	if c.bound == nil {
		return c.parent.Deadline()
	}
	return c.bound.deadline, true
}

func (c *callContext) Done() <-chan struct{} { return c.real().Done() }

func (c *callContext) Value(key any) any { return c.real().Value(key) }

func (c *callContext) Err() error {
	c.mu.Lock()
	ended := c.ended
	var real context.Context
	var endErr error
	if c.made != nil {
		real, endErr = c.made.real, c.made.endErr
	}
	c.mu.Unlock()
	switch {
	case real != nil:
		return real.Err()
	case ended && endErr != nil:
		return endErr
	case ended:
		return context.Canceled
	}
	err, _ := c.endedBy()
	return err
}

func (c *callContext) String() string { return "dogpile.callContext" }
