package dogpile

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// How a creation runs, for the single-key and the batch path alike: on which goroutine (spawn),
// under which context and guarded against what (lead, guard), for how long (bounded), and whether
// another process made the value meanwhile (madeSince). How it waits for another process's lock
// is in wait.go.

// task is work that spawn runs: a creation led by a call of Resolve or ResolveBatch, or a
// creator run under a timeout.
type task interface{ run() }

// spawnMode says where spawn runs its task.
type spawnMode int

const (
	// inline runs the task on the calling goroutine.
	inline spawnMode = iota
	// detached runs the task on a goroutine of its own.
	detached
	// refresh runs the task on a goroutine of its own that holds one of the engine's background
	// slots while it runs; spawn refuses it with errBusy when every slot is taken.
	refresh
	// nested runs the task on a goroutine of its own started by a task that is counted itself:
	// spawn starts it even after Close, which is still waiting for its starter.
	nested
)

// errBusy is spawn's refusal of a refresh when every background slot is taken.
var errBusy = errors.New("dogpile: every background worker is busy")

// forCaller is the mode of a creation a caller waits for. A caller whose context cannot end
// cannot leave anyone waiting for a creation it abandoned, so the creation runs on its goroutine,
// which saves one; any other runs on its own, so that its caller may leave.
func forCaller(ctx context.Context) spawnMode {
	if ctx.Done() == nil {
		return inline
	}
	return detached
}

// spawn runs t as how says, counted in e.wg so that Close waits for it. After Close it runs
// nothing and returns ErrClosed (except for nested); a refresh with no free slot returns
// errBusy. The task comes by value rather than as a closure, so that running it inline
// allocates nothing. A task that needs a goroutine goes to an idle worker if there is one (see
// worker), and starts one otherwise.
func spawn[T task](e *Engine, how spawnMode, t T) error {
	if err := e.enter(how); err != nil {
		return err
	}
	if how == inline {
		// Deferred: a task whose creator calls runtime.Goexit ends this goroutine too, and Close
		// must not wait for it forever.
		defer e.wg.Done()
		t.run()
		return nil
	}
	j := job{t: t, how: how}
	if w := e.idle.pop(); w != nil {
		w.jobs <- j // buffered, and empty while the worker is idle: never blocks
		return nil
	}
	e.wg.Add(1) // the worker's own count; the task's keeps it above zero meanwhile
	go e.worker(j)
	return nil
}

// job is a task handed to a worker, with the mode spawn was asked for. The zero job tells an idle
// worker to end.
type job struct {
	t   task
	how spawnMode
}

// workerIdle is how long a worker waits for another task before it ends: between one and two
// of these after its last task.
const workerIdle = time.Second

// worker runs j, then the tasks spawn hands it while it is idle, and ends when it has had none
// for workerIdle, or at Close. A worker that runs one creation after another keeps its stack,
// grown to what a creation needs, where a goroutine started for each one pays for its start
// and for growing its stack every time. While idle it waits on a channel of its own, which the
// pool alone sends to: a receive from one channel is the cheapest way for a goroutine to wait
// and be woken (no select, no timer of its own). A task that calls runtime.Goexit ends its
// worker, its counts released by their defers.
func (e *Engine) worker(j job) {
	defer e.wg.Done()
	w := &idler{jobs: make(chan job, 1)}
	for {
		e.runJob(j)
		if !e.idle.push(w) {
			return
		}
		if j = <-w.jobs; j.t == nil {
			return
		}
	}
}

// idler is an idle worker in a pool.
type idler struct {
	jobs chan job // the worker's next task; capacity 1
	// round is the pool's round when the worker last became idle: guarded by the pool's mu.
	round uint64
}

// pool is a stack of idle workers: the last to become idle is the first to run a task, so that
// the workers at the bottom are the ones idle longest, and a timer (reap) ends those that have
// been idle for a whole round of workerIdle. The timer runs only while some worker is idle.
type pool struct {
	mu      sync.Mutex
	idle    []*idler // guarded by mu
	round   uint64   // guarded by mu: the number of reaps
	reaping bool     // guarded by mu: reap is due
	closed  bool     // guarded by mu
}

// pop takes the idle worker that became idle last, or returns nil if none is.
func (p *pool) pop() *idler {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	w := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	return w
}

// push makes w idle, and reports false if the pool is closed: the worker then ends.
func (p *pool) push(w *idler) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	w.round = p.round
	p.idle = append(p.idle, w)
	if !p.reaping {
		p.reaping = true
		time.AfterFunc(workerIdle, p.reap)
	}
	return true
}

// reap ends the workers that were idle already when it last ran, and runs again in workerIdle
// while some worker is idle.
func (p *pool) reap() {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for n < len(p.idle) && p.idle[n].round < p.round {
		p.idle[n].jobs <- job{}
		p.idle[n] = nil
		n++
	}
	p.idle = append(p.idle[:0], p.idle[n:]...)
	clear(p.idle[len(p.idle):cap(p.idle)])
	p.round++
	if p.reaping = len(p.idle) > 0 && !p.closed; p.reaping {
		time.AfterFunc(workerIdle, p.reap)
	}
}

// close ends every idle worker, and the others as they become idle.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for i, w := range p.idle {
		w.jobs <- job{}
		p.idle[i] = nil
	}
	p.idle = p.idle[:0]
}

// runJob runs j and releases what spawn took for it.
func (e *Engine) runJob(j job) {
	defer e.wg.Done() // last: Close returns only once the slot is free too
	if j.how == refresh {
		defer func() { <-e.slots }()
	}
	j.t.run()
}

// enter counts a task about to start and, for a refresh, takes its slot.
func (e *Engine) enter(how spawnMode) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed && how != nested {
		return ErrClosed
	}
	if how == refresh {
		select {
		case e.slots <- struct{}{}:
		default:
			return errBusy
		}
	}
	e.wg.Add(1)
	return nil
}

// lead runs work, the creation of the flights a caller leads, and hands its outcome to finish
// as guard does. work runs under a creationContext: the caller's values, but not its
// cancellation, so that one impatient caller does not cancel a creation others wait for; Close
// cancels it, and an error this cancellation causes reaches finish as ErrClosed, or callers whose
// own context is live would take it for theirs.
//
// ctx, if not nil, is where the creationContext goes (a field of the flight, which saves an
// allocation); nil, lead allocates one.
func lead(e *Engine, callerCtx context.Context, ctx *creationContext, work func(context.Context) (any, error), finish func(any, error)) {
	if ctx == nil {
		ctx = new(creationContext)
	}
	*ctx = creationContext{e: e, values: callerCtx}
	guard(func() (any, error) { return work(ctx) }, func(v any, err error) {
		if err != nil && e.closing.Err() != nil && errors.Is(err, context.Canceled) {
			err = ErrClosed
		}
		finish(v, err)
	})
}

// guard calls work and then finish with work's results, whatever work does. If work panics,
// finish gets a *PanicError and the panic stops here; if it calls runtime.Goexit, finish gets
// ErrGoexit and the goroutine then ends, as Goexit asks. finish is deferred so that it runs in
// that case too.
func guard[T any](work func() (T, error), finish func(T, error)) {
	var v T
	err := ErrGoexit // kept if work calls runtime.Goexit
	defer func() { finish(v, err) }()
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	v, err = work()
}

// creationTimeout is the timeout of the creations that x, an Op or a Batch, leads: its own if it
// has one (CreationTimeouter), the engine's otherwise.
func (e *Engine) creationTimeout(x any) time.Duration {
	if t, ok := x.(CreationTimeouter); ok {
		if d, ok := t.CreationTimeout(); ok {
			return d
		}
	}
	return e.CreationTimeout
}

// creator is one creator call that bounded makes: Op's Create, or a Batch's for some items.
type creator[T any] interface {
	Create(ctx context.Context) (T, error)
}

// bounded runs c.Create under the creation timeout of x, the Op or Batch whose creator it is.
// Without one it is a plain call on the caller's goroutine, under a context that ends with it
// (callContext).
// With one, it runs on a worker (counted in e.wg, so that Close waits for it) under a context
// that ends at the timeout (callContext); bounded returns its result, or ErrCreationTimeout once
// the timeout passes, abandoning it. A panic or runtime.Goexit in it comes back as a *PanicError
// or ErrGoexit.
//
// The caller waits on one channel, which the first of the creator's return and the timeout
// closes: no select, and the timeout is a function the runtime calls, not a channel to watch.
//
// call, if not nil, is where the callContext of an unbounded call goes (a field of the flight,
// which saves an allocation); nil, bounded allocates one.
func bounded[T any](e *Engine, ctx context.Context, x any, c creator[T], call *callContext) (T, error) {
	d := e.creationTimeout(x)
	if d <= 0 {
		if call == nil {
			call = new(callContext)
		}
		call.parent = ctx
		defer call.end()
		return c.Create(call)
	}
	var zero T
	t := &timed[T]{c: c, done: make(chan struct{})}
	t.ctx.init(ctx, d, &t.bound, t)
	// Nested: the creation running bounded is counted, so Close, once called, is still waiting
	// and waits for the creator too; spawn never refuses it.
	_ = spawn(e, nested, t)
	<-t.done
	switch {
	case t.state.Load() == timedOut:
		return zero, fmt.Errorf("%w after %v", ErrCreationTimeout, d)
	case !t.late:
		return t.v, t.err
	case t.err != nil && errors.Is(t.err, context.DeadlineExceeded):
		return zero, fmt.Errorf("%w after %v: %w", ErrCreationTimeout, d, t.err)
	}
	// Returned after its deadline, before the timeout closed done: late, whatever it returned.
	return zero, fmt.Errorf("%w after %v", ErrCreationTimeout, d)
}

// The states of a timed call: the first of its return and its timeout moves it out of running,
// and closes done.
const (
	running uint32 = iota
	returned
	timedOut
)

// timed is the task of bounded: one call of a creator, guarded, its result set in v and err
// before done is closed, unless the timeout closed it first: then the abandoned creator sets
// them for nobody.
type timed[T any] struct {
	ctx   callContext
	bound callBound // ctx's
	c     creator[T]
	done  chan struct{}
	state atomic.Uint32
	v     T
	err   error
	// late is set with v and err: the call returned after its deadline. Read when it returns,
	// not when its caller wakes, which may be later.
	late bool
}

func (t *timed[T]) run() {
	defer t.ctx.end()
	guard(func() (T, error) { return t.c.Create(&t.ctx) }, func(v T, err error) {
		t.v, t.err, t.late = v, err, t.ctx.expired()
		if t.state.CompareAndSwap(running, returned) {
			close(t.done)
		}
	})
}

// expire ends the wait for a call that has not returned by its deadline.
func (t *timed[T]) expire() {
	if t.state.CompareAndSwap(running, timedOut) {
		close(t.done)
	}
}

// fresher is what Op and Batch share for madeSince.
type fresher interface {
	Fresh(e Entry) bool
}

// madeSince reports whether a read that found got (when found) spares a caller its creation:
// got is fresh and, for a caller that had an entry (have, seen), it is not that entry. An entry
// due for an early refresh is still fresh, and must not stop its own regeneration.
func madeSince(x fresher, got Entry, found bool, seen Entry, have bool) bool {
	return found && x.Fresh(got) && (!have || got.Created != seen.Created)
}
