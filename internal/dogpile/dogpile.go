// Package dogpile is the lock engine under every region: given an entry that is expired or
// absent, it decides who regenerates it and what everyone else gets meanwhile.
//
// The rules, from ../../DESIGN.md ("The path of one call"), steps 4 to 7:
//
//   - Present but expired: the first caller in this process takes the key's flight without
//     waiting; if the region's backend has a distributed lock, it then tries that lock without
//     waiting too. The winner regenerates (synchronously, or handed to the background pool);
//     every loser returns the old value at once. Nobody waits while a value exists.
//   - Absent: a caller joins the creation in flight for the key in this process, if there is one,
//     and gets its result. Otherwise it starts one, which takes the distributed lock (waiting
//     for it, with backoff, polling for the value another process may store meanwhile), reads
//     once more, and only then creates, stores and releases.
//   - A creator's error or panic reaches the caller and every joined waiter; no path leaves a
//     lock held or a goroutine running. A caller whose context ends stops waiting; the creation
//     goes on for the others and is cancelled only by Close.
//
// The hit path (a fresh entry) never reaches this package: regions check freshness themselves,
// so a hit takes no lock and starts no goroutine.
package dogpile

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"
)

// Entry is a cached value with its creation time.
type Entry struct {
	Value   any
	Created int64 // Unix nanoseconds
}

// Op is one get-or-create call as the engine sees it. The region implements it for every call
// that missed or found an expired entry; the hit path builds none.
//
// Methods that read or write the backend apply the region's failure policy themselves: under a
// fail-open policy they report backend errors and return no error (a failed read is a miss, a
// failed store is forgotten), so an error reaching the engine always ends the call.
type Op interface {
	// Key is the backend key (mangled) whose flight and lock this call uses.
	Key() string
	// Load reads the entry: found is false for an absent or unusable entry.
	Load(ctx context.Context) (e Entry, found bool, err error)
	// Fresh reports whether e may be returned without regeneration.
	Fresh(e Entry) bool
	// Create runs the user's creator.
	Create(ctx context.Context) (any, error)
	// Store saves a created value (or decides not to, by the should-cache rules).
	Store(ctx context.Context, v any) error
	// TryLock tries the distributed lock once, without waiting. Without a distributed lock it
	// returns (nil, true, nil): the flight is the lock. unlock may be nil.
	TryLock(ctx context.Context) (unlock func(), ok bool, err error)
}

// ErrClosed is returned for calls that need a creation after Close.
var ErrClosed = errors.New("dogpile: closed")

// ErrGoexit is the error joined waiters get when a creator called runtime.Goexit (t.FailNow in a
// test, for instance) instead of returning.
var ErrGoexit = errors.New("dogpile: creator called runtime.Goexit")

// PanicError is the error every caller of a flight gets when its creator panicked. The panic does
// not propagate: the process goes on, every lock is released, and the next call creates again.
type PanicError struct {
	// Value is what the creator passed to panic.
	Value any
	// Stack is the creator goroutine's stack at the panic.
	Stack []byte
}

// Error returns the panic value and the creator's stack.
func (p *PanicError) Error() string {
	return fmt.Sprintf("dogpile: creator panicked: %v\n\n%s", p.Value, p.Stack)
}

// Unwrap returns the panic value when it is an error, so that errors.Is and errors.As see it.
func (p *PanicError) Unwrap() error {
	err, _ := p.Value.(error)
	return err
}

// Engine coordinates creations for one region. Its zero value is not usable; use New.
type Engine struct {
	flights group

	// closing is cancelled by Close; every creation's context derives from it.
	closing context.Context
	stop    context.CancelFunc

	// mu guards closed and the Add half of wg, so that Close's Wait never races an Add.
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup

	// slots bounds background refreshes: one token a running refresh. nil: no background refresh.
	slots chan struct{}

	// OnDrop, if set, is called when a background refresh could not start because every slot was
	// busy: the stale value was served and the key will be retried by a later caller.
	OnDrop func(key string)
}

// New returns an Engine. backgroundWorkers > 0 turns on background refresh with at most that
// many refreshes running at once; 0 regenerates expired entries on the winner's call.
func New(backgroundWorkers int) *Engine {
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{closing: ctx, stop: cancel}
	e.flights.init()
	if backgroundWorkers > 0 {
		e.slots = make(chan struct{}, backgroundWorkers)
	}
	return e
}

// Background reports whether expired entries are regenerated in the background.
func (e *Engine) Background() bool { return e.slots != nil }

// InFlight returns the number of keys with a creation or regeneration in progress. Flights are
// removed when they end, so this is also the memory the engine holds for keys.
func (e *Engine) InFlight() int { return e.flights.len() }

// Close cancels the context of every creation in progress, waits for them to end, and makes
// later creations fail with ErrClosed. It is safe to call more than once.
func (e *Engine) Close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.stop()
	e.wg.Wait()
}

// enter counts a creation about to start; false after Close.
func (e *Engine) enter() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.wg.Add(1)
	return true
}

// Resolve answers a call whose entry was not fresh: cur is the entry read (valid when have is
// true, expired by op.Fresh). It returns the value to give the caller.
func (e *Engine) Resolve(ctx context.Context, op Op, cur Entry, have bool) (any, error) {
	f, leader := e.flights.join(op.Key())
	if !leader {
		if have {
			// Someone in this process is regenerating: the old value, now.
			return cur.Value, nil
		}
		return f.wait(ctx)
	}
	if !e.enter() {
		e.flights.finish(op.Key(), f, nil, ErrClosed)
		return nil, ErrClosed
	}
	if have && e.slots != nil {
		select {
		case e.slots <- struct{}{}:
			go func() {
				defer func() { <-e.slots }()
				e.run(ctx, op, f, cur, have)
			}()
		default:
			e.flights.finish(op.Key(), f, cur.Value, nil)
			e.wg.Done()
			if e.OnDrop != nil {
				e.OnDrop(op.Key())
			}
		}
		return cur.Value, nil
	}
	if ctx.Done() == nil {
		// The caller cannot give up, so nobody can be left waiting for a creation it abandoned:
		// run it here and save a goroutine.
		e.run(ctx, op, f, cur, have)
	} else {
		go e.run(ctx, op, f, cur, have)
	}
	return f.wait(ctx)
}

// run produces the flight's result and finishes it, whatever the creator does: return, panic,
// or runtime.Goexit. It runs on its own goroutine (or inline for callers that cannot cancel)
// with a context that keeps the caller's values but not its cancellation; Close cancels it.
func (e *Engine) run(callerCtx context.Context, op Op, f *flight, cur Entry, have bool) {
	defer e.wg.Done()
	ctx, cancel := context.WithCancel(context.WithoutCancel(callerCtx))
	stop := context.AfterFunc(e.closing, cancel)
	defer func() {
		stop()
		cancel()
	}()

	var (
		val      any
		err      error
		returned bool
	)
	defer func() {
		if !returned && err == nil {
			err = ErrGoexit
		}
		e.flights.finish(op.Key(), f, val, err)
	}()
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = &PanicError{Value: r, Stack: debug.Stack()}
			}
		}()
		if have {
			val, err = e.regenerate(ctx, op, cur)
		} else {
			val, err = e.create(ctx, op)
		}
		returned = true
	}()
}

// regenerate handles an expired entry: try the distributed lock without waiting; lost, the old
// value stands; won, read again (another process may have just regenerated) and create.
func (e *Engine) regenerate(ctx context.Context, op Op, cur Entry) (any, error) {
	unlock, ok, err := op.TryLock(ctx)
	if err != nil {
		return nil, err
	}
	if !ok {
		return cur.Value, nil
	}
	if unlock != nil {
		defer unlock()
	}
	return e.createLocked(ctx, op)
}

// create handles an absent entry: wait for the distributed lock, polling for the value that its
// holder may store meanwhile, then read again and create.
func (e *Engine) create(ctx context.Context, op Op) (any, error) {
	backoff := time.Millisecond
	for {
		unlock, ok, err := op.TryLock(ctx)
		if err != nil {
			return nil, err
		}
		if ok {
			if unlock != nil {
				defer unlock()
			}
			return e.createLocked(ctx, op)
		}
		// Another process holds the lock and is creating: its value may be there already.
		if cur, found, err := op.Load(ctx); err != nil {
			return nil, err
		} else if found && op.Fresh(cur) {
			return cur.Value, nil
		}
		// Full jitter keeps processes that wait on one lock from polling in step.
		d := time.Duration(rand.Int64N(int64(backoff))) + time.Millisecond
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		backoff = min(backoff*2, 100*time.Millisecond)
	}
}

// createLocked runs under the key's lock: read once more, and create only if still needed.
func (e *Engine) createLocked(ctx context.Context, op Op) (any, error) {
	cur, found, err := op.Load(ctx)
	if err != nil {
		return nil, err
	}
	if found && op.Fresh(cur) {
		return cur.Value, nil
	}
	v, err := op.Create(ctx)
	if err != nil {
		return nil, err
	}
	if err := op.Store(ctx, v); err != nil {
		return nil, err
	}
	return v, nil
}

// flight is one creation or regeneration in progress for a key.
type flight struct {
	done chan struct{} // closed when val and err are set
	val  any
	err  error
}

// wait returns the flight's result, or ctx.Err() if ctx ends first.
func (f *flight) wait(ctx context.Context) (any, error) {
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// group is the set of flights in progress, sharded by key hash so that misses on different keys
// rarely meet on one mutex. A flight is in the map exactly while it runs.
type group struct {
	seed   maphash.Seed
	shards [32]shard
}

type shard struct {
	mu sync.Mutex
	m  map[string]*flight // guarded by mu
	_  [40]byte           // keeps neighbouring shards' mutexes off one cache line
}

func (g *group) init() {
	g.seed = maphash.MakeSeed()
	for i := range g.shards {
		g.shards[i].m = make(map[string]*flight)
	}
}

func (g *group) shard(key string) *shard {
	return &g.shards[maphash.String(g.seed, key)%uint64(len(g.shards))]
}

// join returns the flight for key, starting one (leader true) if there is none.
func (g *group) join(key string) (f *flight, leader bool) {
	s := g.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.m[key]; ok {
		return f, false
	}
	f = &flight{done: make(chan struct{})}
	s.m[key] = f
	return f, true
}

// finish publishes the result and removes the flight, so the next call for key starts afresh.
func (g *group) finish(key string, f *flight, val any, err error) {
	s := g.shard(key)
	s.mu.Lock()
	if s.m[key] == f {
		delete(s.m, key)
	}
	s.mu.Unlock()
	f.val, f.err = val, err
	close(f.done)
}

func (g *group) len() int {
	n := 0
	for i := range g.shards {
		s := &g.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
