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
//     for it, with backoff, polling for the value another process may store meanwhile, and
//     woken by a Waker when the holder announces its release), reads once more, and only then
//     creates, stores and releases.
//   - A creator's error or panic reaches the caller and every joined waiter; no path leaves a
//     lock held or a creation running. A caller whose context ends stops waiting; the creation
//     goes on for the others and is cancelled only by Close. The goroutines that run creations
//     off their callers' (workers) wait a second or two for the next one, and end then or at
//     Close.
//
// The hit path (a fresh entry) never reaches this package: regions check freshness themselves,
// so a hit takes no lock and starts no goroutine.
package dogpile

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// Entry is a cached value with its creation times.
type Entry struct {
	Value any
	// Created is when the value's creation began, in Unix nanoseconds: what invalidations and
	// writes are compared with.
	Created int64
	// Delta is how long the creation took, in nanoseconds: the value was stored at
	// Created+Delta, and its freshness counts from then.
	Delta int64
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
	// Kind tells apart calls on one key that expect values of different types: only calls of
	// the same kind join one flight. Any comparable value; regions use the value type.
	Kind() any
	// Load reads the entry: found is false for an absent or unusable entry.
	Load(ctx context.Context) (e Entry, found bool, err error)
	// Fresh reports whether e may be returned without regeneration.
	Fresh(e Entry) bool
	// Create runs the user's creator.
	Create(ctx context.Context) (any, error)
	// Store saves a created value (or decides not to, by the should-cache rules). It returns the
	// backend's error without reporting it: Store runs while the flight holds off Forget, and
	// reporting runs user code (an error handler) that may write the key.
	Store(ctx context.Context, v any) error
	// StoreFailed handles Store's error once the flight no longer holds off Forget: it reports
	// it and applies the failure policy, returning the error that ends the call or nil.
	StoreFailed(ctx context.Context, err error) error
	// Failed is told the error of a regeneration that ran in the background, which has no
	// caller to return it to. ctx keeps the caller's values but not its cancellation.
	Failed(ctx context.Context, err error)
	// TryLock tries the distributed lock once, without waiting. Without a distributed lock it
	// returns (nil, true, nil): the flight is the lock. unlock may be nil. With an Engine.Waker,
	// unlock also announces the release to the processes that said they wait for it.
	TryLock(ctx context.Context) (unlock func(), ok bool, err error)
	// Observe is told what happened to the call, for statistics: it must be cheap and must not
	// block.
	Observe(e Event, d time.Duration)
}

// CreationTimeouter is an optional interface of an Op or a Batch that bounds its own creations.
// When CreationTimeout returns ok, d replaces Engine.CreationTimeout for each creator call that
// the Op's or Batch's call leads (Op.Create, or every Batch.Create of its rounds); d zero or
// negative leaves the creation unbounded. When it returns ok false, or the Op or Batch does not
// have the method, Engine.CreationTimeout applies. Callers that join a flight another call leads
// wait under the leader's timeout. The engine asks once a creator call, just before it.
type CreationTimeouter interface {
	// CreationTimeout returns the timeout of this call's creations, or ok false to keep the
	// engine's.
	CreationTimeout() (d time.Duration, ok bool)
}

// Event is something that happened to a call, reported to Op.Observe and Batch.Observe.
type Event int

const (
	// EventStale: the call was answered with the old value while another regenerates it.
	EventStale Event = iota
	// EventWaited: the call waited d for a creation led by another caller in this process, or
	// for the distributed lock another process held.
	EventWaited
	// EventBackground: a regeneration was handed to a background worker.
	EventBackground
	// EventDropped: a background regeneration was skipped, every worker being busy.
	EventDropped
	// EventBackgroundRun: a background worker calls the creator of a regeneration handed to it
	// (EventBackground). A regeneration that finds another process regenerating the key (its
	// lock held, or a new value stored) reports none.
	EventBackgroundRun
)

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

	// idle holds the workers waiting for a task (spawn, worker).
	idle pool

	// slots bounds background refreshes: one token a running refresh. nil: no background refresh.
	slots chan struct{}

	// OnDrop, if set, is called when a background refresh could not start because every slot was
	// busy: the stale value was served and the key will be retried by a later caller.
	OnDrop func(key string)

	// CreationTimeout, if positive, bounds each call of a creator (Op.Create, Batch.Create):
	// after it the creator's context is cancelled and the creation ends with an error that
	// errors.Is ErrCreationTimeout, releasing its locks, so that the next caller may create
	// again. A creator that ignores its context goes on running, alone: what it returns is
	// dropped (and Close waits for it). An Op or Batch that implements CreationTimeouter may
	// replace it for its own creations. Set it before the first call.
	CreationTimeout time.Duration

	// PollMin and PollMax bound how often a caller polls the backend while another process
	// holds the distributed lock of the key it waits for: its waits grow from PollMin to PollMax,
	// each random up to its bound. Zero: DefaultPollMin and DefaultPollMax; a PollMax below
	// PollMin counts as PollMin. Set them before the first call.
	PollMin, PollMax time.Duration

	// Waker, if set, wakes such a caller as soon as the lock's holder announces its release.
	// Set it before the first call.
	Waker Waker
}

// ErrCreationTimeout is the error of a creation that ran longer than its creation timeout:
// Engine.CreationTimeout, or the one its Op or Batch gave (CreationTimeouter). The error that
// wraps it states the timeout.
var ErrCreationTimeout = errors.New("dogpile: creation timed out")

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

// Close cancels the context of every creation in progress, waits for them and for the idle
// workers to end, and makes later creations fail with ErrClosed. Callers waiting for a cancelled creation get ErrClosed. A
// creator that ignores its context delays Close until it returns. Close is safe to call more than
// once.
func (e *Engine) Close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.stop()
	e.idle.close()
	e.wg.Wait()
}

// Forget detaches the flights in progress for key from the key: callers that come later start a
// new flight instead of joining them, and they store nothing (they still answer the callers that
// joined them). Regions call it when the key is written or deleted, so that a value computed from
// data older than the write never lands over it.
func (e *Engine) Forget(key string) { e.flights.forget(key) }

// ForgetAll is Forget for every key, for a hard invalidation of the whole region.
func (e *Engine) ForgetAll() { e.flights.forgetAll() }

// Flying reports whether a creation or regeneration of key (for callers of kind) is in flight in
// this process. A caller that holds an expired entry of key may then serve it at once, as Resolve
// would answer it, without building an Op: the cheap way for the herd on a key being regenerated.
// It costs a lookup under a shard's read lock.
func (e *Engine) Flying(key string, kind any) bool { return e.flights.flying(key, kind) }

// Join waits for the creation of key (for callers of kind) in flight in this process, if there is
// one that creates an absent key, and returns its result with ok true: callers of a cold key that
// arrive while it is being created need not read the backend first, since they would find it
// absent (or find what the creation stores, which they get from it anyway). ok is false when no
// such creation is in flight: the caller reads and resolves as usual. It costs a lookup under a
// sharded mutex.
func (e *Engine) Join(ctx context.Context, key string, kind any) (v any, err error, ok bool) {
	f := e.flights.find(key, kind)
	if f == nil {
		return nil, nil, false
	}
	v, err = f.wait(ctx)
	return v, err, true
}

// Room is space for the flight an Op leads, in the Op's own allocation: an Op that has one
// (Roomy) spares a miss the allocation of its flight. Its zero value is ready for one flight;
// an Op leads at most one, and the engine allocates any other.
type Room struct{ f flight }

// Roomy is implemented by an Op that carries a Room for the flight it may lead.
type Roomy interface{ Room() *Room }

// roomOf returns op's Room, or nil if it has none.
func roomOf(op Op) *Room {
	if r, ok := op.(Roomy); ok {
		return r.Room()
	}
	return nil
}

// Resolve answers a call whose entry was not fresh: cur is the entry read (valid when have is
// true, expired by op.Fresh). It returns the value to give the caller.
func (e *Engine) Resolve(ctx context.Context, op Op, cur Entry, have bool) (any, error) {
	background := have && e.slots != nil
	how := forCaller(ctx)
	f, leader := e.flights.join(op.Key(), op.Kind(), !have, !background && how != inline, roomOf(op))
	if !leader {
		if have {
			// Someone in this process is regenerating: the old value, now.
			op.Observe(EventStale, 0)
			return cur.Value, nil
		}
		start := time.Now()
		v, err := f.wait(ctx)
		op.Observe(EventWaited, time.Since(start))
		return v, err
	}
	c := creation{e: e, ctx: ctx, op: op, f: f, cur: cur, have: have}
	if background {
		c.background = true // its caller is counted as served old below, once
		switch err := spawn(e, refresh, c); err {
		case nil:
			op.Observe(EventBackground, 0)
		case errBusy:
			e.dropped(f, op, cur)
		default:
			e.flights.finish(f, nil, err)
			return nil, err
		}
		op.Observe(EventStale, 0)
		return cur.Value, nil
	}
	if err := spawn(e, how, c); err != nil {
		e.flights.finish(f, nil, err)
		return nil, err
	}
	if how == inline {
		return f.val, f.err // finished by this goroutine
	}
	return f.wait(ctx)
}

// Early answers a call whose entry cur is still fresh but due for an early refresh: it returns
// cur.Value at once, and regenerates the entry in the background unless the key's flight is
// already under way. Nobody waits for an early refresh: its caller, and every caller that comes
// while it runs, are served the current value. The regeneration follows the rules of an expired
// entry's (the distributed lock tried without waiting, the entry read again under it) and runs
// on a background worker when the engine has them, skipped when every one is busy; without
// them, on a goroutine of its own, one at a time per key (the key's flight), which Close cancels
// and waits for. Its error goes to Op.Failed.
func (e *Engine) Early(ctx context.Context, op Op, cur Entry) any {
	f, leader := e.flights.join(op.Key(), op.Kind(), false, false, roomOf(op))
	if !leader {
		return cur.Value // regenerated already, early or expired, by another caller
	}
	how := refresh
	if e.slots == nil {
		how = detached
	}
	switch err := spawn(e, how, creation{e: e, ctx: ctx, op: op, f: f, cur: cur, have: true, background: true}); err {
	case nil:
		op.Observe(EventBackground, 0)
	case errBusy:
		e.dropped(f, op, cur)
	default: // closed: the value is fresh all the same
		e.flights.finish(f, cur.Value, nil)
	}
	return cur.Value
}

// dropped ends f, a background regeneration of cur that no worker was free to run, with cur's
// value for whoever joined it, and reports the drop (EventDropped, OnDrop).
func (e *Engine) dropped(f *flight, op Op, cur Entry) {
	e.flights.finish(f, cur.Value, nil)
	op.Observe(EventDropped, 0)
	if e.OnDrop != nil {
		e.OnDrop(op.Key())
	}
}

// creation is the work of a flight that a call of Resolve leads: what spawn runs.
type creation struct {
	e   *Engine
	ctx context.Context // the leading caller's
	op  Op
	f   *flight
	// cur is the entry the caller read, when have.
	cur  Entry
	have bool
	// background is set for a regeneration run by a background worker: its caller was counted
	// as served old, and its error has no caller to return to.
	background bool
}

// run produces the flight's result and finishes it, whatever the creator does (lead). A
// background regeneration then reports its error to Op.Failed.
func (c creation) run() {
	lead(c.e, c.ctx, &c.f.ctx, func(ctx context.Context) (any, error) {
		if c.have {
			return c.regenerate(ctx)
		}
		return c.create(ctx)
	}, func(v any, err error) { c.e.flights.finish(c.f, v, err) })
	if c.background && c.f.err != nil {
		c.op.Failed(context.WithoutCancel(c.ctx), c.f.err)
	}
}

// regenerate handles an expired entry: try the distributed lock without waiting; lost, the old
// value stands; won, read again (another process may have just regenerated) and create.
func (c *creation) regenerate(ctx context.Context) (any, error) {
	unlock, ok, err := c.op.TryLock(ctx)
	if err != nil {
		return nil, err
	}
	if !ok {
		if !c.background {
			c.op.Observe(EventStale, 0) // another process regenerates it
		}
		return c.cur.Value, nil
	}
	if unlock != nil {
		defer unlock()
	}
	return c.createLocked(ctx)
}

// create handles an absent entry: wait for the distributed lock, polling for the value that its
// holder may store meanwhile (and reading it at once when the holder announces the lock's
// release), then read again and create.
func (c *creation) create(ctx context.Context) (any, error) {
	pace := c.e.backoff()
	defer func() {
		if d, ok := pace.end(); ok {
			c.op.Observe(EventWaited, d)
		}
	}()
	key := c.op.Key()
	for {
		unlock, ok, err := c.op.TryLock(ctx)
		if err != nil {
			return nil, err
		}
		if ok {
			return c.createHolding(ctx, unlock)
		}
		// Another process holds the lock and is creating: its value may be there already.
		pace.begin(ctx, key)
		if v, ok, err := c.made(ctx); ok || err != nil {
			return v, err
		}
		woken, err := pace.wait(ctx)
		if err != nil {
			return nil, err
		}
		if woken {
			// The holder released the lock: its value is stored, or, if it is not there, its
			// creation failed and the lock is free to take, at once.
			if v, ok, err := c.made(ctx); ok || err != nil {
				return v, err
			}
		}
	}
}

// made reads the entry and returns its value with ok true if it spares the caller its creation
// (madeSince).
func (c *creation) made(ctx context.Context) (v any, ok bool, err error) {
	got, found, err := c.op.Load(ctx)
	if err != nil {
		return nil, false, err
	}
	if madeSince(c.op, got, found, c.cur, c.have) {
		return got.Value, true, nil
	}
	return nil, false, nil
}

// createHolding runs createLocked and then releases the key's lock with unlock, if not nil. Its
// own function, so that the deferred release is not in create's loop, where every defer would
// cost an allocation and the runtime's slow path.
func (c *creation) createHolding(ctx context.Context, unlock func()) (any, error) {
	if unlock != nil {
		defer unlock()
	}
	return c.createLocked(ctx)
}

// createLocked runs under the key's lock: read once more, and create only if no other process
// made the entry since (madeSince).
func (c *creation) createLocked(ctx context.Context) (any, error) {
	if v, ok, err := c.made(ctx); ok || err != nil {
		return v, err
	}
	if c.background {
		c.op.Observe(EventBackgroundRun, 0)
	}
	v, err := bounded[any](c.e, ctx, c.op, c.op, &c.f.call)
	if err != nil {
		return nil, err
	}
	if err := c.f.store(ctx, c.op, v); err != nil {
		if err := c.op.StoreFailed(ctx, err); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// flight is one creation or regeneration in progress for a key.
type flight struct {
	key  string
	kind any
	next *flight // the flight of the same key for another kind; guarded by the shard's mu
	// shard is the group's shard that holds the flight while it is in progress, which saves
	// hashing its key again to finish it.
	shard *shard

	// done is closed when val and err are set. It is made when the flight starts for a leader
	// that waits on it, and otherwise by the first caller that joins it (under the shard's mu):
	// a creation that runs on its caller's goroutine, and that nobody joins, needs none.
	done chan struct{}
	val  any
	err  error

	// absent is set at its start for the creation of a key that held no usable entry: its
	// callers wait for it, and Join lets later callers wait for it without reading first.
	absent bool

	// mu orders store against forget: a flight forgotten before it stores does not store, and
	// one that stores first is stored before Forget's caller goes on to write or delete the key.
	mu        sync.Mutex
	forgotten bool // guarded by mu

	// ctx and call are the contexts of the flight's creation and of its one creator call, made
	// with it, which saves allocating them. Only its leader uses them.
	ctx  creationContext
	call callContext
}

// store saves v unless the flight was forgotten.
func (f *flight) store(ctx context.Context, op Op, v any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.forgotten {
		return nil
	}
	return op.Store(ctx, v)
}

func (f *flight) forget() {
	f.mu.Lock()
	f.forgotten = true
	f.mu.Unlock()
}

// wait returns the flight's result, or ctx.Err() if ctx ends first. f.done must be made: by
// join for the leader that asked for it, or for the caller that joined f.
func (f *flight) wait(ctx context.Context) (any, error) {
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// flying reports whether a flight for key and kind is in progress.
func (g *group) flying(key string, kind any) bool {
	s := g.shard(key)
	s.mu.RLock()
	defer s.mu.RUnlock()
	head, _ := s.head(key)
	for f := head; f != nil; f = f.next {
		if f.kind == kind {
			return true
		}
	}
	return false
}

// joined makes f.done for a caller that joins f, if it is not made yet; the shard's mu is held.
func (f *flight) joined() *flight {
	if f.done == nil {
		f.done = make(chan struct{})
	}
	return f
}

// find returns the flight of an absent key's creation for key and kind, or nil; the caller
// waits for it.
func (g *group) find(key string, kind any) *flight {
	s := g.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	head, _ := s.head(key)
	for f := head; f != nil; f = f.next {
		if f.kind == kind && f.absent {
			return f.joined()
		}
	}
	return nil
}

// group is the set of flights in progress, sharded by key hash so that misses on different keys
// rarely meet on one mutex. A flight is in its shard from its start until it finishes or is
// forgotten.
type group struct {
	seed   maphash.Seed
	shards [32]shard
}

// shard holds the flights of its keys, one per kind, linked by next (almost always one): the
// first flight of each key is its head, kept in few or, once few is full, in m. A shard rarely
// has more than a few keys in flight at once, and a map's insert and delete cost a miss more
// than the rest of its flight's bookkeeping; few costs a scan of four words.
type shard struct {
	// mu is read-locked by flying, which the herd on a key being regenerated calls at once.
	mu  sync.RWMutex
	few [4]*flight         // guarded by mu; nil slots are free
	m   map[string]*flight // guarded by mu; nil until few overflows
	// 64 bytes in all: neighbouring shards' mutexes mostly sit on lines of their own.
}

// slotInMap is the slot head returns for a head kept in the shard's map.
const slotInMap = -1

func (g *group) init() { g.seed = maphash.MakeSeed() }

// head returns the first flight of key and its slot in few (slotInMap for m), or nil if key
// has none in flight; s.mu is held.
func (s *shard) head(key string) (*flight, int) {
	for i, f := range s.few {
		if f != nil && f.key == key {
			return f, i
		}
	}
	if len(s.m) > 0 {
		if f := s.m[key]; f != nil {
			return f, slotInMap
		}
	}
	return nil, slotInMap
}

// add makes f the head of its key, which has none; s.mu is held.
func (s *shard) add(f *flight) {
	for i, g := range s.few {
		if g == nil {
			s.few[i] = f
			return
		}
	}
	if s.m == nil {
		s.m = make(map[string]*flight)
	}
	s.m[f.key] = f
}

// replace makes f (nil: none) the head of key, whose head was at slot; s.mu is held.
func (s *shard) replace(key string, slot int, f *flight) {
	switch {
	case slot != slotInMap:
		s.few[slot] = f
	case f == nil:
		delete(s.m, key)
	default:
		s.m[key] = f
	}
}

func (g *group) shard(key string) *shard {
	return &g.shards[maphash.String(g.seed, key)%uint64(len(g.shards))]
}

// join returns the flight for key and kind, starting one (leader true) if there is none; absent
// says what a started one is for, and wait whether its leader will wait for it (f.wait). A caller
// that joins a flight may wait for it.
func (g *group) join(key string, kind any, absent, wait bool, room *Room) (f *flight, leader bool) {
	s := g.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	head, slot := s.head(key)
	for f := head; f != nil; f = f.next {
		if f.kind == kind {
			return f.joined(), false
		}
	}
	if room != nil && room.f.shard == nil {
		f = &room.f
	} else {
		f = new(flight)
	}
	f.key, f.kind, f.next, f.shard, f.absent = key, kind, head, s, absent
	if wait {
		f.done = make(chan struct{})
	}
	if head == nil {
		s.add(f)
	} else {
		s.replace(key, slot, f)
	}
	return f, true
}

// finishAll is finish for several flights with one result, the creation of a batch that failed:
// every one is out of the map before any of their callers wakes, so that a caller who got the
// error of one and calls again starts afresh for all, rather than join one not finished yet.
func (g *group) finishAll(fs []*flight, val any, err error) {
	var dones []chan struct{}
	for _, f := range fs {
		s := f.shard
		s.mu.Lock()
		s.remove(f)
		f.val, f.err = val, err
		if f.done != nil {
			dones = append(dones, f.done)
		}
		s.mu.Unlock()
	}
	for _, done := range dones {
		close(done)
	}
}

// finish publishes the result and removes the flight, so the next call for key starts afresh.
func (g *group) finish(f *flight, val any, err error) {
	s := f.shard
	s.mu.Lock()
	s.remove(f)
	f.val, f.err = val, err
	// Out of the map, f can be joined no more: done, if nobody made it, stays nil.
	done := f.done
	s.mu.Unlock()
	if done != nil {
		close(done)
	}
}

// remove takes f out of the shard if it is still there; s.mu is held.
func (s *shard) remove(f *flight) {
	head, slot := s.head(f.key)
	if head == f {
		s.replace(f.key, slot, f.next)
		return
	}
	for p := head; p != nil; p = p.next {
		if p.next == f {
			p.next = f.next
			return
		}
	}
}

// forget detaches the flights of key. Out of the map, their next links are written no more, so
// they are walked after the lock is released.
func (g *group) forget(key string) {
	s := g.shard(key)
	s.mu.Lock()
	fs, slot := s.head(key)
	if fs != nil {
		s.replace(key, slot, nil)
	}
	s.mu.Unlock()
	for f := fs; f != nil; f = f.next {
		f.forget()
	}
}

func (g *group) forgetAll() {
	for i := range g.shards {
		s := &g.shards[i]
		s.mu.Lock()
		few, m := s.few, s.m
		s.few, s.m = [len(s.few)]*flight{}, nil
		s.mu.Unlock()
		for _, fs := range few {
			for f := fs; f != nil; f = f.next {
				f.forget()
			}
		}
		for _, fs := range m {
			for f := fs; f != nil; f = f.next {
				f.forget()
			}
		}
	}
}

func (g *group) len() int {
	n := 0
	for i := range g.shards {
		s := &g.shards[i]
		s.mu.Lock()
		for _, fs := range s.few {
			for f := fs; f != nil; f = f.next {
				n++
			}
		}
		for _, fs := range s.m {
			for f := fs; f != nil; f = f.next {
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}
