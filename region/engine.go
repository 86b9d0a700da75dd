package region

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/internal/dogpile"
)

// newEngine returns the lock engine for a region with the given background workers, wired to
// the region's reports.
func (r *Region) newEngine(background int) *dogpile.Engine {
	e := dogpile.New(background)
	e.OnDrop = func(key string) {
		r.cfg.logger.Debug("dogpile: background refresh skipped: every worker busy",
			slog.String("region", r.name), slog.String("key", key))
	}
	return e
}

// resolve hands a call that was not a hit to the lock engine. A value still fresh, due for an
// early refresh (WithEarlyRefresh), is served at once and regenerated in the background.
func (v *View[V]) resolve(ctx context.Context, l *lookup[V], create func(context.Context) (V, error)) (V, error) {
	o := &op[V]{create: create}
	return v.resolveOp(ctx, l, o)
}

// resolveOp is resolve with the op made by the caller, who set its creator; o gets the rest from l.
func (v *View[V]) resolveOp(ctx context.Context, l *lookup[V], o *op[V]) (V, error) {
	o.v, o.b, o.key, o.user, o.p = v, l.b, l.key, l.user, l.p
	if l.found && v.dueEarly(l) {
		v.r.engine.Early(ctx, o, dogpile.Entry{Value: l.val, Created: l.created, Delta: l.delta})
		return l.val, nil
	}
	res, err := v.r.engine.Resolve(ctx, o, dogpile.Entry{Value: l.val, Created: l.created, Delta: l.delta}, l.found)
	if err != nil && l.found && ctx.Err() == nil && !isReported(err) && !errors.Is(err, dogpile.ErrClosed) {
		if val, ok := v.instead(ctx, l, err); ok {
			return val, nil
		}
	}
	return v.result(ctx, l.user, res, err)
}

// served reports whether a call that found l, a value expired or due for an early refresh, is
// answered with it at once because its key is being regenerated (or created) in this process
// already: what the engine would answer, without the op, the closure and the flight lookup under
// a lock of a call that goes to it. The herd on a key that expired takes this path, all but the
// caller that leads the regeneration. key is l's mangled key, which lookup may not have copied
// into l yet.
func (v *View[V]) served(l *lookup[V], key string) bool {
	if !l.found || !v.r.engine.Flying(key, v.typ) {
		return false
	}
	if !v.dueEarly(l) {
		v.c.observe(dogpile.EventStale, 1, 0)
	}
	return true
}

// dueEarly reports whether l, found and not a hit, is a value still fresh that lookup found due
// for an early refresh, rather than an expired one. It checks the expiration again, on this path
// only, and only where early refresh is on.
func (v *View[V]) dueEarly(l *lookup[V]) bool {
	return v.r.beta(l.p) > 0 && !l.neg && v.r.fresh(l.created, l.delta, expiration(v.r, l.p, l.val))
}

// result is what the caller of key gets from the engine's answer: the value, or the error (a
// cached "not found" is its error).
func (v *View[V]) result(ctx context.Context, key string, res any, err error) (V, error) {
	var zero V
	if err != nil {
		return zero, v.r.outcome(ctx, OpGetOrCreate, key, err)
	}
	if n, ok := res.(negative); ok {
		return zero, v.r.fail(OpGetOrCreate, KindCreator, key, n.err)
	}
	val, _ := res.(V) // nil only for a nil interface V
	return val, nil
}

// instead returns the value to serve in place of a failed regeneration of l, if any: the value
// read now (what a Delete, Set or invalidation made meanwhile counts, in this process or
// another), when it is fresh (an early refresh failed, or another caller stored a new value),
// or when it is still the one l found and stale-if-error allows it. The creator's error goes to
// the error handler. It costs one more read, on the error path only.
func (v *View[V]) instead(ctx context.Context, l *lookup[V], err error) (V, bool) {
	var zero V
	now, rerr := v.loadNow(ctx, l.b, l.key, &scope{OpGetOrCreate, l.user})
	if rerr != nil || !now.found || now.neg {
		return zero, false
	}
	exp := expiration(v.r, l.p, now.val)
	switch {
	case v.r.fresh(now.created, now.delta, exp):
		v.report(ctx, v.r.fail(OpGetOrCreate, KindCreator, l.user, served("early refresh failed, served the fresh value", err)))
		return now.val, true
	case now.created == l.created && v.r.staleUsable(now.created, now.delta, exp, l.p):
		v.c.staleOnError.Add(1)
		v.report(ctx, v.r.fail(OpGetOrCreate, KindCreator, l.user, served("regeneration failed, served the stale value", err)))
		return now.val, true
	}
	return zero, false
}

// negative is a cached or created "not found" on its way through the engine: the error its
// callers get.
type negative struct{ err error }

// entry is what the engine sees of a loaded entry: a negative one carries its error, and counts
// as absent when the policy has no negative caching.
func (v *View[V]) entry(e loaded[V], p *policy) (dogpile.Entry, bool, error) {
	if !e.found {
		return dogpile.Entry{}, false, nil
	}
	if e.neg {
		if v.r.negTarget(p) == nil {
			return dogpile.Entry{}, false, nil
		}
		return dogpile.Entry{Value: negative{v.r.notFound(p)}, Created: e.created, Delta: e.delta}, true, nil
	}
	return dogpile.Entry{Value: e.val, Created: e.created, Delta: e.delta}, true, nil
}

// freshEntry is fresh for an entry the engine holds, which may be a cached "not found".
func (v *View[V]) freshEntry(e dogpile.Entry, p *policy) bool {
	if _, neg := e.Value.(negative); neg {
		return v.r.negFresh(e.Created, e.Delta, negTTL[V](v.r, p), p)
	}
	val, _ := e.Value.(V)
	return v.r.fresh(e.Created, e.Delta, expiration(v.r, p, val))
}

// op is one slow-path call, the engine's view of it.
type op[V any] struct {
	v       *View[V]
	b       *bound
	key     string
	user    string // key as the caller gave it, for errors
	p       *policy
	create  func(context.Context) (V, error)
	with    boundCreator[V] // in place of create when set: a creator bound to its argument
	started int64           // when Create began: the created-at of what it makes
	delta   int64           // how long Create took
	// room holds the flight the op leads, if it leads one: a miss allocates the op and its
	// flight at once.
	room dogpile.Room
}

// Room is where the engine puts the flight the op leads.
func (o *op[V]) Room() *dogpile.Room { return &o.room }

// boundCreator is a creator bound to its argument (GetOrCreateWith) without a closure.
type boundCreator[V any] interface {
	call(ctx context.Context) (V, error)
}

// opWith is the op of a GetOrCreateWith call, with its creator and argument: one allocation
// for both, where an op and a closure binding the argument were two.
type opWith[V, A any] struct {
	op[V]
	fn  func(context.Context, A) (V, error)
	arg A
}

func (o *opWith[V, A]) call(ctx context.Context) (V, error) { return o.fn(ctx, o.arg) }

// CreationTimeout is the creation timeout the view or the call sets (WithCreationTimeout), which
// replaces the region's for the creations this call leads.
func (o *op[V]) CreationTimeout() (time.Duration, bool) { return o.p.creation, o.p.creationSet }

func (o *op[V]) Key() string { return o.key }
func (o *op[V]) Kind() any   { return o.v.typ }

func (o *op[V]) Load(ctx context.Context) (dogpile.Entry, bool, error) {
	s := o.scope()
	e, err := o.v.loadNow(ctx, o.b, o.key, &s)
	if err != nil {
		return dogpile.Entry{}, false, err
	}
	return o.v.entry(e, o.p)
}

func (o *op[V]) Fresh(e dogpile.Entry) bool { return o.v.freshEntry(e, o.p) }

func (o *op[V]) Create(ctx context.Context) (any, error) {
	// A value counts as created when its creation began: an invalidation during the creation
	// applies to it, since it may have read data from before.
	// Its duration, for the statistics, is read from the same clock: two reads a creation.
	var start int64
	o.started, start = o.v.r.stampRead()
	returned := false
	defer func() {
		if !returned { // a panic or runtime.Goexit, passing through to the engine
			o.v.createdSince(start, errPanicked)
		}
	}()
	var v V
	var err error
	if o.with != nil {
		v, err = o.with.call(ctx)
	} else {
		v, err = o.create(ctx)
	}
	returned = true
	o.delta = o.v.createdSince(start, err) - o.started
	if err != nil && o.v.r.negMatch(err, o.p) {
		return negative{err}, nil
	}
	return v, err
}

func (o *op[V]) Store(ctx context.Context, v any) error {
	if _, ok := v.(negative); ok {
		return o.v.storeNegatives(ctx, o.b, []string{o.key}, o.started, o.delta, o.p, batchScope{OpGetOrCreate, []string{o.user}})
	}
	val, _ := v.(V)
	if !o.v.r.shouldCache(val, o.p) {
		return nil
	}
	return o.v.store(ctx, o.b, o.key, val, o.started, o.delta, true, o.scope())
}

func (o *op[V]) StoreFailed(ctx context.Context, err error) error {
	return o.v.failed(ctx, o.v.r.errorOf(OpGetOrCreate, KindWrite, o.user, err))
}

func (o *op[V]) Observe(e dogpile.Event, d time.Duration) { o.v.c.observe(e, 1, d) }

// createdSince counts a creator call that began at start (the reading of Region.stampRead) and
// ended now with err, and returns now: the one clock read a creation makes at its end.
func (v *View[V]) createdSince(start int64, err error) (now int64) {
	now = v.r.now()
	v.c.created(time.Duration(max(now-start, 0)), err)
	return now
}

func (o *op[V]) TryLock(ctx context.Context) (func(), bool, error) {
	if o.b.locker == nil {
		return nil, true, nil
	}
	r := o.v.r
	var l backends.Lock
	ok, err := false, errSkipped
	o.b.waker.hold(o.key)
	if t := r.allow(); t != skip {
		l, ok, err = o.b.locker.TryLock(ctx, o.key, r.cfg.lockTimeout)
		r.settle(ctx, t, err)
	}
	if !ok {
		o.b.waker.release(ctx, false, o.key)
	}
	if err != nil {
		if err := o.v.failed(ctx, r.backendFailed(o.scope(), KindLock, err)); err != nil {
			return nil, false, err
		}
		// Without the lock, creating anyway is the fail-open choice: the caller gets a value and
		// this process still creates once.
		return nil, true, nil
	}
	if !ok {
		return nil, false, nil
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.lockTimeout)
		defer cancel()
		if err := l.Unlock(uctx); err != nil {
			o.v.report(ctx, r.backendFailed(o.scope(), KindLock, err))
		}
		// Released, or expired: processes that wait for it may take it or read the value.
		o.b.waker.release(uctx, true, o.key)
	}, true, nil
}

// scope is the call of o, for its errors.
func (o *op[V]) scope() scope { return scope{OpGetOrCreate, o.user} }

// Failed reports the error of a background refresh of o's key, unless it was reported where it
// happened (a backend error under FailClosed) or Close cancelled the refresh.
func (o *op[V]) Failed(ctx context.Context, err error) {
	if isReported(err) || errors.Is(err, dogpile.ErrClosed) {
		return
	}
	o.v.report(ctx, o.v.r.fail(OpGetOrCreate, KindCreator, o.user, served("background refresh", err)))
}

// batchOp is one GetOrCreateMulti as the engine sees it.
type batchOp[V any] struct {
	v      *View[V]
	b      *bound
	p      *policy
	bk     batchKeys
	create func(context.Context, []string) (map[string]V, error)
}

// CreationTimeout is op's CreationTimeout for a batch.
func (o *batchOp[V]) CreationTimeout() (time.Duration, bool) { return o.p.creation, o.p.creationSet }

func (o *batchOp[V]) Key(i int) string { return o.bk.keys[i] }
func (o *batchOp[V]) Kind() any        { return o.v.typ }

func (o *batchOp[V]) Load(ctx context.Context, idx []int) ([]dogpile.Entry, []bool, error) {
	ks := pick(o.bk.keys, idx)
	ls, err := o.v.loadMulti(ctx, o.b, ks, false, o.scope().pick(idx))
	if err != nil {
		return nil, nil, err
	}
	es, found := make([]dogpile.Entry, len(idx)), make([]bool, len(idx))
	for j, l := range ls {
		es[j], found[j], _ = o.v.entry(l, o.p)
	}
	return es, found, nil
}

func (o *batchOp[V]) Fresh(e dogpile.Entry) bool { return o.v.freshEntry(e, o.p) }

func (o *batchOp[V]) Create(ctx context.Context, idx []int) (dogpile.Made, error) {
	missing := pick(o.bk.users, idx)
	// As for one key: values count as created when their creation began.
	started, start := o.v.r.stampRead()
	returned := false
	defer func() {
		if !returned { // a panic or runtime.Goexit, passing through to the engine
			o.v.createdSince(start, errPanicked)
		}
	}()
	m, err := o.create(ctx, missing)
	returned = true
	end := o.v.createdSince(start, err)
	if err != nil {
		return dogpile.Made{}, err
	}
	made := dogpile.Made{Vals: make([]any, len(idx)), OK: make([]bool, len(idx)), Created: started, Delta: end - started}
	neg := o.v.r.negTarget(o.p) != nil
	for j, u := range missing {
		if val, ok := m[u]; ok {
			made.Vals[j], made.OK[j] = val, true
		} else if neg {
			// Left out, with negative caching on: cached as "not found".
			made.Vals[j], made.OK[j] = negative{o.v.r.notFound(o.p)}, true
		}
	}
	return made, nil
}

func (o *batchOp[V]) Store(ctx context.Context, idx []int, vals []any, made dogpile.Made) error {
	ks, vs := make([]string, 0, len(idx)), make([]V, 0, len(idx))
	var negs []string
	var us, negUsers []string // the callers' forms of ks and negs, for errors
	for j, i := range idx {
		if _, neg := vals[j].(negative); neg {
			negs, negUsers = append(negs, o.bk.keys[i]), append(negUsers, o.bk.users[i])
			continue
		}
		val, _ := vals[j].(V)
		if o.v.r.shouldCache(val, o.p) {
			ks, vs, us = append(ks, o.bk.keys[i]), append(vs, val), append(us, o.bk.users[i])
		}
	}
	err := o.v.storeMulti(ctx, o.b, ks, vs, made.Created, made.Delta, true, batchScope{OpGetOrCreateMulti, us})
	if len(negs) > 0 {
		// One more write for all of them: they have a TTL of their own.
		err = o.v.r.batchError(scope{op: OpGetOrCreateMulti}, err,
			o.v.storeNegatives(ctx, o.b, negs, made.Created, made.Delta, o.p, batchScope{OpGetOrCreateMulti, negUsers}))
	}
	return err
}

func (o *batchOp[V]) StoreFailed(ctx context.Context, err error) error {
	return o.v.failed(ctx, o.v.r.errorOf(OpGetOrCreateMulti, KindWrite, "", err))
}

func (o *batchOp[V]) Observe(e dogpile.Event, n int, d time.Duration) { o.v.c.observe(e, n, d) }

func (o *batchOp[V]) TryLock(ctx context.Context, idx []int) ([]bool, func(), error) {
	return o.v.tryLockMulti(ctx, o.b, pick(o.bk.keys, idx), o.scope().pick(idx))
}

// scope is the call of o, for its errors: of o.bk's keys.
func (o *batchOp[V]) scope() batchScope { return batchScope{OpGetOrCreateMulti, o.bk.users} }

// Failed is op.Failed for a batch: the error concerns the batch's expired keys together.
func (o *batchOp[V]) Failed(ctx context.Context, err error) {
	if isReported(err) || errors.Is(err, dogpile.ErrClosed) {
		return
	}
	o.v.report(ctx, o.v.r.fail(OpGetOrCreateMulti, KindCreator, "", served("background refresh", err)))
}

// insteadMulti is instead for a batch: the values of wants read now, if every one of them may be
// served in place of the failed creation (fresh, or the one found and allowed by stale-if-error).
func (v *View[V]) insteadMulti(ctx context.Context, b *bound, bk batchKeys, wants []dogpile.Want, p *policy, err error) ([]V, bool) {
	keys := pick(bk.keys, wantIndexes(wants))
	users := pick(bk.users, wantIndexes(wants))
	es, rerr := v.loadMulti(ctx, b, keys, false, batchScope{OpGetOrCreateMulti, users})
	if rerr != nil {
		return nil, false
	}
	vals, stale := make([]V, len(wants)), 0
	for j, w := range wants {
		e := es[j]
		switch {
		case !e.found || e.neg:
			return nil, false
		case v.r.fresh(e.created, e.delta, expiration(v.r, p, e.val)):
		case w.Have && e.created == w.Cur.Created && v.r.staleUsable(e.created, e.delta, expiration(v.r, p, e.val), p):
			stale++
		default:
			return nil, false
		}
		vals[j] = e.val
	}
	what := "early refresh failed, served the fresh values"
	if stale > 0 {
		what = "regeneration failed, served the stale values"
		v.c.staleOnError.Add(uint64(stale))
	}
	v.report(ctx, v.r.fail(OpGetOrCreateMulti, KindCreator, "", served(what, err)))
	return vals, true
}

func wantIndexes(wants []dogpile.Want) []int {
	idx := make([]int, len(wants))
	for j, w := range wants {
		idx[j] = w.Index
	}
	return idx
}

// tryLockMulti tries the distributed locks of keys without waiting: one round trip per chunk on
// a MultiLocker, one TryLock per key otherwise. Without a distributed lock every key is taken.
// Under FailOpen a failed attempt counts as taken, as for one key: the caller gets a value and
// this process still creates the key once. s names the keys in errors.
func (v *View[V]) tryLockMulti(ctx context.Context, b *bound, keys []string, s batchScope) ([]bool, func(), error) {
	taken := make([]bool, len(keys))
	if b.locker == nil {
		for i := range taken {
			taken[i] = true
		}
		return taken, func() {}, nil
	}
	var held []backends.Lock
	b.waker.hold(keys...)
	unlock := func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.r.cfg.lockTimeout)
		defer cancel()
		for _, l := range held {
			if err := l.Unlock(uctx); err != nil {
				v.report(ctx, v.r.backendFailed(s.all(), KindLock, err))
			}
		}
		if b.waker != nil { // released, or expired, as for one key
			b.waker.release(uctx, true, pickTaken(keys, taken, true)...)
		}
	}
	err := chunks(len(keys), b.maxBatch, func(lo, hi int) error {
		if b.multiLock != nil {
			var t []bool
			var release backends.Lock
			err := errSkipped
			if tk := v.r.allow(); tk != skip {
				t, release, err = b.multiLock.TryLockMulti(ctx, keys[lo:hi], v.r.cfg.lockTimeout)
				v.r.settle(ctx, tk, err)
			}
			if err != nil {
				if err := v.failed(ctx, v.r.backendFailed(s.span(lo, hi), KindLock, err)); err != nil {
					return err
				}
				for i := lo; i < hi; i++ {
					taken[i] = true
				}
				return nil
			}
			copy(taken[lo:hi], t)
			held = append(held, release)
			return nil
		}
		for i := lo; i < hi; i++ {
			var l backends.Lock
			ok, err := false, errSkipped
			if t := v.r.allow(); t != skip {
				l, ok, err = b.locker.TryLock(ctx, keys[i], v.r.cfg.lockTimeout)
				v.r.settle(ctx, t, err)
			}
			if err != nil {
				if err := v.failed(ctx, v.r.backendFailed(s.at(i), KindLock, err)); err != nil {
					return err
				}
				ok = true
			}
			taken[i] = ok
			if l != nil {
				held = append(held, l)
			}
		}
		return nil
	})
	if b.waker != nil {
		b.waker.release(ctx, false, pickTaken(keys, taken, false)...)
	}
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return taken, unlock, nil
}

// pickTaken returns the keys whose taken is want.
func pickTaken(keys []string, taken []bool, want bool) []string {
	var out []string
	for i, k := range keys {
		if taken[i] == want {
			out = append(out, k)
		}
	}
	return out
}
