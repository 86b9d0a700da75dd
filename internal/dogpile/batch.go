package dogpile

import (
	"context"
	"errors"
	"slices"
	"time"
)

// ErrNoValue is the result of a key that a batch creator was asked for and returned no value
// for. Callers of the batch see the key absent from their result; a single-key caller that
// joined the key's flight gets this error.
var ErrNoValue = errors.New("dogpile: the batch creator returned no value for the key")

// Batch is one get-or-create of many keys as the engine sees it. The region numbers the batch's
// distinct keys 0..n-1 and the engine refers to them by number; the methods that take a list
// of numbers do one backend round trip for all of them where the backend can.
//
// As for Op, methods that touch the backend apply the region's failure policy themselves.
type Batch interface {
	// Key returns the backend key (mangled) of item i.
	Key(i int) string
	// Kind is as for Op: only calls of one kind share a flight.
	Kind() any
	// Load reads the entries of items idx: found[j] reports whether entries[j], the entry of
	// idx[j], exists and is usable.
	Load(ctx context.Context, idx []int) (entries []Entry, found []bool, err error)
	// Fresh reports whether e may be returned without regeneration.
	Fresh(e Entry) bool
	// Create runs the user's creator once for items idx.
	Create(ctx context.Context, idx []int) (Made, error)
	// Store saves created values (or decides not to, by the should-cache rules); vals[j] is the
	// value of idx[j], made by the Create call that returned made (its Created and Delta). As
	// Op.Store, it returns errors without reporting them. It must not change made's slices,
	// which the engine reads again once it returns.
	Store(ctx context.Context, idx []int, vals []any, made Made) error
	// StoreFailed is Op.StoreFailed.
	StoreFailed(ctx context.Context, err error) error
	// Failed is Op.Failed, for a background regeneration of some of the batch's keys.
	Failed(ctx context.Context, err error)
	// Observe is Op.Observe, for n keys of the batch.
	Observe(e Event, n int, d time.Duration)
	// TryLock tries the distributed lock of each of items idx once, without waiting. taken[j]
	// reports whether the lock of idx[j] is now held; unlock (never nil) releases every lock
	// taken, and announces the releases as Op.TryLock's unlock does. Without a distributed lock
	// every lock is taken: the flights are the locks.
	TryLock(ctx context.Context, idx []int) (taken []bool, unlock func(), err error)
}

// Made is what one call of a batch creator made.
type Made struct {
	// Vals[j] is the value made for the j-th item asked for; OK[j] is false when the creator
	// returned none.
	Vals []any
	OK   []bool
	// Created and Delta are the creation time the values are stored with and how long the
	// creation took, for the Batch's own use: a batch may create in several rounds, and in the
	// background at the same time, so the engine hands each Store the Made of its Create.
	Created int64
	Delta   int64
}

// Want is one key of a batch that was not fresh when read.
type Want struct {
	// Index is the key's number in the Batch.
	Index int
	// Cur is the entry read, valid when Have is true (then expired, or due for an early refresh).
	Cur  Entry
	Have bool
	// Early says that Cur is still fresh but due for an early refresh: it is served now, and
	// regenerated in the background, as Engine.Early does for one key.
	Early bool
}

// Result is what a batch call gets for one Want.
type Result struct {
	Value any
	// OK is false when the key has no value: its creator did not return one.
	OK bool
}

// ResolveBatch is Resolve for many keys at once; it returns one Result per Want, in order.
//
// Each key keeps the dogpile rules: an expired key whose flight another caller leads is served
// its old value now; an absent one is waited for. The keys this call leads are created together,
// in rounds, one creator call a round and usually one round: every round tries the distributed locks of the keys
// still pending, without waiting, creates the ones it took (after reading them once more, under
// the lock) and releases them, and only then waits for the others, polling for the values their
// holders store. A round never waits for a lock while it holds one, so no two batches, whatever
// their keys' order, can deadlock each other; and a call never waits for a flight it follows
// before its own are done, so flights led by different batches cannot wait on each other either.
//
// With background refresh on, the expired keys this call leads are regenerated in the
// background and served old now, as Resolve does for one key, unless the call also creates absent
// keys: it waits for that creation anyway, so its expired keys are created in the same call and
// it gets their new values. Keys due for an early refresh (Want.Early) are treated so with or
// without background workers: without them, their regeneration runs on a goroutine of its own.
//
// An error of any key ends the call with that error.
func (e *Engine) ResolveBatch(ctx context.Context, b Batch, wants []Want) ([]Result, error) {
	res := make([]Result, len(wants))
	fs := make([]*flight, len(wants))
	var fore, back []led
	var backAt []int // the position in wants of each of back
	followed := 0    // absent keys another caller creates
	kind := b.Kind()
	for j, w := range wants {
		f, leader := e.flights.join(b.Key(w.Index), kind, !w.Have, true, nil)
		switch {
		case leader && w.Have && (e.slots != nil || w.Early):
			// Regenerated in the background (or not at all, with every worker busy); the old
			// value now, either way.
			back = append(back, led{f: f, Want: w})
			backAt = append(backAt, j)
			res[j] = Result{Value: w.Cur.Value, OK: true}
			continue
		case leader:
			fore = append(fore, led{f: f, Want: w})
		case w.Have:
			// Someone in this process is regenerating it: the old value, now.
			res[j] = Result{Value: w.Cur.Value, OK: true}
			if !w.Early {
				b.Observe(EventStale, 1, 0)
			}
			continue
		default:
			followed++ // absent, and another caller creates it: waited for below
		}
		fs[j] = f
	}
	if len(back) > 0 && len(fore) > 0 {
		// The caller waits for a creation anyway: its expired keys go into the same creator call,
		// and it gets their new values. The creator is never called twice at once for one call.
		for i, l := range back {
			fore = append(fore, l)
			fs[backAt[i]], res[backAt[i]] = l.f, Result{}
		}
		back = nil
	}
	if len(back) > 0 {
		if n := len(back) - countEarly(back); n > 0 {
			b.Observe(EventStale, n, 0)
		}
		e.background(ctx, b, back)
	}
	if len(fore) > 0 {
		if err := spawn(e, forCaller(ctx), batchCreation{e: e, ctx: ctx, b: b, ls: fore}); err != nil {
			for _, l := range fore {
				e.flights.finish(l.f, nil, err)
			}
			return nil, err
		}
	}
	// Every flight, led or followed, ends without waiting for this call, so the order of these
	// waits does not matter.
	start := time.Now()
	for j, f := range fs {
		if f == nil {
			continue
		}
		v, err := f.wait(ctx)
		switch {
		case errors.Is(err, ErrNoValue):
			// Absent: res[j] stays zero.
		case err != nil:
			return nil, err
		default:
			res[j] = Result{Value: v, OK: true}
		}
	}
	if followed > 0 {
		b.Observe(EventWaited, followed, time.Since(start))
	}
	return res, nil
}

// led is a key whose flight a batch call leads.
type led struct {
	f *flight
	Want
	done bool
}

// countEarly is how many of ls are due for an early refresh.
func countEarly(ls []led) int {
	n := 0
	for _, l := range ls {
		if l.Early {
			n++
		}
	}
	return n
}

// background hands the expired keys a batch leads to a background worker (or, for keys due for
// an early refresh on an engine without workers, to a goroutine of its own), or, with every worker
// busy (or after Close), ends their flights with the old values.
func (e *Engine) background(ctx context.Context, b Batch, back []led) {
	how := refresh
	if e.slots == nil {
		how = detached
	}
	if spawn(e, how, batchCreation{e: e, ctx: ctx, b: b, ls: back, background: true}) == nil {
		b.Observe(EventBackground, len(back), 0)
		return
	}
	b.Observe(EventDropped, len(back), 0)
	for _, l := range back {
		e.flights.finish(l.f, l.Cur.Value, nil)
		if e.OnDrop != nil {
			e.OnDrop(b.Key(l.Index))
		}
	}
}

// batchCreation is the work of the flights that a call of ResolveBatch leads: what spawn runs.
type batchCreation struct {
	e   *Engine
	ctx context.Context // the leading caller's
	b   Batch
	ls  []led
	// background is set for a regeneration run by a background worker: its caller was counted
	// as served old, and its error has no caller to return to.
	background bool
}

// run produces the result of every flight in c.ls and finishes each exactly once, whatever the
// creator does (lead). A background regeneration then reports its error to Batch.Failed.
func (c batchCreation) run() {
	var failed error
	lead(c.e, c.ctx, nil, func(ctx context.Context) (any, error) {
		return nil, c.rounds(ctx)
	}, func(_ any, err error) {
		failed = err
		var open []*flight
		for i := range c.ls {
			if !c.ls[i].done {
				open = append(open, c.ls[i].f)
			}
		}
		c.e.flights.finishAll(open, nil, err)
	})
	if c.background && failed != nil {
		c.b.Failed(context.WithoutCancel(c.ctx), failed)
	}
}

// rounds runs the rounds of the creation: lock what it can, create that, then wait for the rest.
func (c batchCreation) rounds(ctx context.Context) error {
	b, ls := c.b, c.ls
	// Sorted by key: locks are tried in one order by every process. Not needed for deadlock
	// freedom (no round waits while holding), but it makes overlapping batches meet on their
	// first common key rather than race for all of them.
	slices.SortFunc(ls, func(x, y led) int {
		kx, ky := b.Key(x.Index), b.Key(y.Index)
		switch {
		case kx < ky:
			return -1
		case kx > ky:
			return 1
		}
		return 0
	})
	pending := make([]*led, len(ls))
	for i := range ls {
		pending[i] = &ls[i]
	}
	pace := c.e.backoff()
	var waited int // keys found locked by others in the first round that found any
	defer func() {
		if d, ok := pace.end(); ok {
			b.Observe(EventWaited, waited, d)
		}
	}()
	for {
		next, err := c.round(ctx, pending)
		if err != nil {
			return err
		}
		if len(next) == 0 {
			return nil
		}
		// Other processes hold the locks of next and are creating them: their values may be
		// there already.
		if pace.begin(ctx, keys(b, next)...) {
			waited = len(next)
		}
		if pending, err = c.made(ctx, next); err != nil || len(pending) == 0 {
			return err
		}
		woken, err := pace.wait(ctx)
		if err != nil {
			return err
		}
		if woken {
			// A holder released a lock: its value is stored, or its creation failed and the
			// lock is free; the next round takes the locks still pending that are free.
			if pending, err = c.made(ctx, pending); err != nil || len(pending) == 0 {
				return err
			}
		}
	}
}

// made reads the entries of pending, finishes the flights of those that spare their creation
// (madeSince) with their values, and returns the others.
func (c batchCreation) made(ctx context.Context, pending []*led) ([]*led, error) {
	entries, found, err := c.b.Load(ctx, indexes(pending))
	if err != nil {
		return nil, err
	}
	rest := pending[:0]
	for j, l := range pending {
		if madeSince(c.b, entries[j], found[j], l.Cur, l.Have) {
			c.e.finishLed(l, entries[j].Value, nil)
		} else {
			rest = append(rest, l)
		}
	}
	return rest, nil
}

// round tries the locks of pending, creates the keys it locked, and returns the absent keys whose
// locks others hold. Expired keys whose locks others hold keep their old values.
func (c batchCreation) round(ctx context.Context, pending []*led) ([]*led, error) {
	e, b := c.e, c.b
	taken, unlock, err := b.TryLock(ctx, indexes(pending))
	if err != nil {
		return nil, err
	}
	// Results are published after the locks are released, as Resolve does for one key: a caller
	// that has its value finds the keys unlocked.
	var results []settled
	settle := func(l *led, v any, err error) { results = append(results, settled{l, v, err}) }
	defer func() {
		unlock()
		for _, s := range results {
			e.finishLed(s.l, s.v, s.err)
		}
	}()
	var locked, waiting []*led
	for j, l := range pending {
		switch {
		case taken[j]:
			locked = append(locked, l)
		case l.Have:
			settle(l, l.Cur.Value, nil) // another process regenerates it
			if !c.background {
				b.Observe(EventStale, 1, 0)
			}
		default:
			waiting = append(waiting, l)
		}
	}
	if len(locked) == 0 {
		return waiting, nil
	}
	// Under the locks: another process may have created some keys since they were read.
	entries, found, err := b.Load(ctx, indexes(locked))
	if err != nil {
		return nil, err
	}
	create := locked[:0]
	for j, l := range locked {
		if madeSince(b, entries[j], found[j], l.Cur, l.Have) {
			settle(l, entries[j].Value, nil)
		} else {
			create = append(create, l)
		}
	}
	if len(create) == 0 {
		return waiting, nil
	}
	// The creator sees its keys in the caller's order, not in lock order.
	slices.SortFunc(create, func(x, y *led) int { return x.Index - y.Index })
	idx := indexes(create)
	if c.background {
		b.Observe(EventBackgroundRun, len(create), 0)
	}
	made, err := bounded[Made](e, ctx, b, batchCreator{b, idx}, nil)
	if err != nil {
		return nil, err
	}
	if err := e.storeBatch(ctx, b, create, made); err != nil {
		if err := b.StoreFailed(ctx, err); err != nil {
			return nil, err
		}
	}
	for j, l := range create {
		if made.OK[j] {
			settle(l, made.Vals[j], nil)
		} else {
			settle(l, nil, ErrNoValue)
		}
	}
	return waiting, nil
}

// storeBatch stores the values the creator returned, except for flights forgotten meanwhile. It
// holds every flight's mutex while it stores, as flight.store does for one: a Forget that comes
// first stops the store, one that comes later waits for it. Forget takes one mutex at a time and
// no other call holds these flights', so holding them all cannot deadlock.
func (e *Engine) storeBatch(ctx context.Context, b Batch, ls []*led, made Made) error {
	var idx []int
	var keep []any
	// One deferred release for all: a defer in the loop would be allocated for each flight.
	locked := 0
	defer func() {
		for j, l := range ls {
			if locked == 0 {
				return
			}
			if made.OK[j] {
				l.f.mu.Unlock()
				locked--
			}
		}
	}()
	for j, l := range ls {
		if !made.OK[j] {
			continue
		}
		l.f.mu.Lock()
		locked++
		if !l.f.forgotten {
			idx = append(idx, l.Index)
			keep = append(keep, made.Vals[j])
		}
	}
	if len(idx) == 0 {
		return nil
	}
	return b.Store(ctx, idx, keep, made)
}

type settled struct {
	l   *led
	v   any
	err error
}

func (e *Engine) finishLed(l *led, v any, err error) {
	l.done = true
	e.flights.finish(l.f, v, err)
}

// keys returns the backend keys of ls.
func keys(b Batch, ls []*led) []string {
	ks := make([]string, len(ls))
	for j, l := range ls {
		ks[j] = b.Key(l.Index)
	}
	return ks
}

func indexes(ls []*led) []int {
	idx := make([]int, len(ls))
	for j, l := range ls {
		idx[j] = l.Index
	}
	return idx
}

// batchCreator is the creator call of a Batch for items idx.
type batchCreator struct {
	b   Batch
	idx []int
}

func (c batchCreator) Create(ctx context.Context) (Made, error) { return c.b.Create(ctx, c.idx) }
