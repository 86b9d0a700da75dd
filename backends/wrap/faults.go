package wrap

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// ErrInjected is the error of a call failed by Faults when its Fault sets no Err of its own.
// Every injected error, whatever its Fault.Err, is also errors.Is ErrInjected.
var ErrInjected = errors.New("wrap: injected fault")

// Fault is what Faults does to the calls of one operation. The zero Fault does nothing.
type Fault struct {
	// FailNext makes the next FailNext calls fail; it counts down as they do, and Rate applies
	// once it reaches zero.
	FailNext int
	// Rate is the probability, from 0 to 1, that a call fails.
	Rate float64
	// Err is the error failing calls return, wrapped (so errors.Is finds both it and
	// ErrInjected); nil means ErrInjected alone.
	Err error
	// Latency is how long every call waits before it proceeds or fails.
	Latency time.Duration
	// Jitter adds a random wait, uniform in [0, Jitter), to Latency.
	Jitter time.Duration
}

func (f Fault) validate() error {
	switch {
	case f.FailNext < 0:
		return fmt.Errorf("fault.FailNext %d is negative", f.FailNext)
	case math.IsNaN(f.Rate) || f.Rate < 0 || f.Rate > 1:
		return fmt.Errorf("fault.Rate %v is not between 0 and 1", f.Rate)
	case f.Latency < 0:
		return fmt.Errorf("fault.Latency %v is negative", f.Latency)
	case f.Jitter < 0:
		return fmt.Errorf("fault.Jitter %v is negative", f.Jitter)
	}
	return nil
}

// Faults injects errors and latency into backend calls, for tests of what a region does when its
// cache fails or is slow. Its Hook method is the Hook to give New:
//
//	faults := wrap.NewFaults(1)
//	b := wrap.New(memory.New(), faults.Hook)
//	_ = faults.Set(wrap.Fault{Rate: 1}, wrap.OpGet, wrap.OpGetValue) // every read fails
//
// Faults are set per operation and may be changed while calls run. Random choices (Rate,
// Jitter) come from one generator seeded by NewFaults's seed, drawn only when a fault needs
// them: the same sequence of calls gets the same faults on every run. Calls made concurrently
// draw in the order they arrive, which only their caller can fix.
//
// A failed call does not reach the wrapped backend. Latency is waited for before the call, and
// a call whose context ends while it waits returns ctx.Err() without reaching the backend. A
// fault on OpUnlock leaves the lock held until its timeout, as a lost unlock would.
//
// A Faults is safe for concurrent use; one mutex guards its state, held only while deciding, not
// while waiting or calling the backend.
type Faults struct {
	mu       sync.Mutex // guards the fields below
	rng      *rand.Rand
	faults   [numOps]Fault
	injected [numOps]int
}

// NewFaults returns a Faults that injects nothing until Set, with its random choices seeded by
// seed.
func NewFaults(seed uint64) *Faults {
	return &Faults{rng: rand.New(rand.NewPCG(seed, 0xfa017))}
}

// Set gives every operation in ops (every operation if ops is empty) its own copy of fault,
// replacing what it had (with its FailNext count). It returns an error, and changes nothing, if
// fault is invalid (FailNext, Latency or Jitter negative, Rate outside [0, 1]) or an op is unknown.
func (f *Faults) Set(fault Fault, ops ...Op) error {
	if err := fault.validate(); err != nil {
		return fmt.Errorf("wrap: Faults.Set: %w", err)
	}
	for _, op := range ops {
		if op == 0 || int(op) >= numOps {
			return fmt.Errorf("wrap: Faults.Set: unknown %v", op)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(ops) == 0 {
		for op := range f.faults {
			f.faults[op] = fault
		}
		return nil
	}
	for _, op := range ops {
		f.faults[op] = fault
	}
	return nil
}

// Clear removes the faults of ops, or of every operation if ops is empty.
func (f *Faults) Clear(ops ...Op) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(ops) == 0 {
		f.faults = [numOps]Fault{}
		return
	}
	for _, op := range ops {
		if op != 0 && int(op) < numOps {
			f.faults[op] = Fault{}
		}
	}
}

// Injected returns how many calls of op have failed by injection so far, or of every operation
// if op is 0. Calls that only waited are not counted.
func (f *Faults) Injected(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if op == 0 {
		n := 0
		for _, c := range f.injected {
			n += c
		}
		return n
	}
	if int(op) >= numOps {
		return 0
	}
	return f.injected[op]
}

// wait draws how long a call of op waits before its outcome is decided.
func (f *Faults) wait(op Op) time.Duration {
	if op == 0 || int(op) >= numOps {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ft := &f.faults[op]
	wait := ft.Latency
	if ft.Jitter > 0 {
		wait += time.Duration(f.rng.Int64N(int64(ft.Jitter)))
	}
	return wait
}

// decide draws the outcome of one call of op, after its wait: a call that ended on its context
// while waiting neither uses up a FailNext nor counts as injected.
func (f *Faults) decide(op Op) error {
	if op == 0 || int(op) >= numOps {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ft := &f.faults[op]
	fail := false
	switch {
	case ft.FailNext > 0:
		ft.FailNext--
		fail = true
	case ft.Rate >= 1:
		fail = true
	case ft.Rate > 0:
		fail = f.rng.Float64() < ft.Rate
	}
	if !fail {
		return nil
	}
	f.injected[op]++
	if ft.Err == nil {
		return fmt.Errorf("%w into %s", ErrInjected, op)
	}
	return &injectedError{op: op, err: ft.Err}
}

// Hook is the Hook that injects the faults: give it (the method value f.Hook) to New.
func (f *Faults) Hook(ctx context.Context, c *Call, next func(context.Context) error) error {
	if wait := f.wait(c.Op); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	if err := f.decide(c.Op); err != nil {
		return err
	}
	return next(ctx)
}

// injectedError is a Fault's own Err, injected: it is errors.Is both Err and ErrInjected.
type injectedError struct {
	op  Op
	err error
}

func (e *injectedError) Error() string {
	return fmt.Sprintf("wrap: injected into %s: %v", e.op, e.err)
}

func (e *injectedError) Unwrap() []error { return []error{e.err, ErrInjected} }
