package region

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/internal/dogpile"
)

// View is a typed window on a region for values of type V: get, set and get-or-create without
// type assertions at the call site. Views are cheap (a pointer and a policy); make one per value
// type, or per function with its own policy, and keep it. A View is safe for concurrent use.
//
// On a backend that keeps Go values (the memory backend) a hit returns the stored V itself, not
// a copy: treat it as read-only, or configure the backend to copy (memory.WithCopy). On a byte
// backend, callers of one key that share one backend read (concurrent callers of this process)
// share the value decoded from it too: treat it as read-only there as well.
type View[V any] struct {
	r     *Region
	pol   policy
	typ   reflect.Type // V: calls for one key with different value types never share a creation
	iface bool         // V is an interface type: a stored negative mark would assert to it
	c     *counters    // this view's statistics, added up in the region's
}

// NewView returns a View of r for values of type V. opts set the view's own policy
// (WithExpiration, WithShouldCache...: see Option), which overrides the region's and is
// overridden by a call's. It panics if r is nil, and with the option's error if an option is
// invalid or not a setting of views: programmer errors, caught where the view is made.
func NewView[V any](r *Region, opts ...Option) *View[V] {
	if r == nil {
		panic("region.NewView: nil region")
	}
	v := &View[V]{r: r, typ: reflect.TypeFor[V](), c: new(counters)}
	v.iface = v.typ.Kind() == reflect.Interface
	track(r, v)
	p, err := v.pol.with(opts, atView)
	if err == nil {
		err = p.accepts(v.typ)
	}
	if err != nil {
		panic(err)
	}
	v.pol = *p
	return v
}

// Region returns the region the view reads.
func (v *View[V]) Region() *Region { return v.r }

// Get returns the fresh value under key: (v, true, nil) on a hit, (zero, false, nil) when the key
// is absent or expired. With WithIgnoreExpiration it returns expired values too. It never creates.
// A value of another type stored under key is a miss, reported, on backends that keep Go values;
// on byte backends the codec decides whether the stored payload decodes into a V.
func (v *View[V]) Get(ctx context.Context, key string, opts ...Option) (V, bool, error) {
	var zero V
	p, err := v.policy(opts)
	if err != nil {
		return zero, false, v.r.misuse(OpGet, key, err)
	}
	b, err := v.r.use(key)
	if err != nil {
		return zero, false, v.r.misuse(OpGet, key, err)
	}
	e, err := v.load(ctx, b, v.r.mangle(key), &scope{OpGet, key})
	if err != nil || !e.found || e.neg {
		return zero, false, err
	}
	if !p.ignoreExp && !v.r.fresh(e.created, e.delta, expiration(v.r, p, e.val)) {
		return zero, false, nil
	}
	return e.val, true, nil
}

// Set stores val under key as created now, whatever the should-cache predicates say. A creation of
// the key in progress will not store over it. It costs one backend write (and an encoding on byte
// backends).
func (v *View[V]) Set(ctx context.Context, key string, val V) error {
	b, err := v.r.use(key)
	if err != nil {
		return v.r.misuse(OpSet, key, err)
	}
	k := v.r.mangle(key)
	v.r.engine.Forget(k)
	if err := v.store(ctx, b, k, val, v.r.stamp(), 0, false, scope{OpSet, key}); err != nil {
		v.report(ctx, err)
		return err
	}
	return nil
}

// Delete removes key; see Region.Delete.
func (v *View[V]) Delete(ctx context.Context, key string) error { return v.r.Delete(ctx, key) }

// GetOrCreate returns the value under key, creating it with create when it is absent, under the
// dogpile lock: on a cold key create runs once however many callers ask (once in the whole fleet
// where the backend has a distributed lock), and on an expired key one caller regenerates while
// every other is served the old value at once.
//
// A hit costs one backend read and no lock; on the memory backend it allocates nothing. A
// closure that captures variables is allocated by its caller on every call, hit or not:
// GetOrCreateWith avoids that on hot paths.
//
// create's error is returned to the caller and to every caller waiting on the same creation, and
// nothing is cached. If create panics, they all get a *PanicError. If ctx ends while the caller
// waits, it returns ctx.Err(); the creation goes on for the others, with a context that keeps
// ctx's values but not its cancellation (Close cancels it).
//
// opts apply to this call (see Option); WithBypass makes it a Refresh.
func (v *View[V]) GetOrCreate(ctx context.Context, key string, create func(context.Context) (V, error), opts ...Option) (V, error) {
	l, err := v.lookup(ctx, key, create == nil, opts)
	if err != nil || l.hit {
		return l.val, cmpErr(err, l.err)
	}
	if l.p.bypass {
		return v.refresh(ctx, l.b, l.key, l.p, create, scope{OpGetOrCreate, key})
	}
	return v.resolve(ctx, &l, create)
}

// GetOrCreateWith is GetOrCreate for a creator that takes one argument, passed separately, so
// that the caller need not allocate a closure to bind it: memo handles call it with the wrapped
// function and its arguments. The closure is made here, on the slow path only.
func GetOrCreateWith[V, A any](ctx context.Context, v *View[V], key string, create func(context.Context, A) (V, error), arg A, opts ...Option) (V, error) {
	l, err := v.lookup(ctx, key, create == nil, opts)
	if err != nil || l.hit {
		return l.val, cmpErr(err, l.err)
	}
	if l.p.bypass {
		return v.refresh(ctx, l.b, l.key, l.p, func(ctx context.Context) (V, error) { return create(ctx, arg) }, scope{OpGetOrCreate, key})
	}
	return resolveWith(ctx, v, &l, create, arg)
}

// lookup is the first half of every get-or-create: the read and the freshness check. What it
// read goes to the slow path when it is not a hit.
type lookup[V any] struct {
	hit bool
	err error // with hit: a cached "not found" (negative caching)
	loaded[V]
	b   *bound
	key string // mangled
	p   *policy

	user string // key as the caller gave it, for errors
}

// nilCreator is the error of a call of op on key given a nil creator.
func (v *View[V]) nilCreator(op Op, key string) error {
	return v.r.fail(op, KindUsage, key, errNilCreator)
}

func (v *View[V]) lookup(ctx context.Context, key string, nilCreate bool, opts []Option) (lookup[V], error) {
	var l lookup[V]
	if nilCreate {
		return l, v.nilCreator(OpGetOrCreate, key)
	}
	p, err := v.policy(opts)
	if err != nil {
		return l, v.r.misuse(OpGetOrCreate, key, err)
	}
	b, err := v.r.use(key)
	if err != nil {
		return l, v.r.misuse(OpGetOrCreate, key, err)
	}
	l.b, l.p, l.key = b, p, v.r.mangle(key)
	l.user = key
	if p.bypass {
		v.c.misses.Add(1)
		return l, nil
	}
	if it, found, err := b.local.get(ctx, l.key); found || err != nil {
		if v.lookupLocal(ctx, &l, it, err) {
			return l, nil
		}
	}
	// Before the backend read: an eviction after it refuses the fill. (One before it is for a
	// write the read will see.)
	since := b.local.epoch(l.key)
	if b.values == nil {
		// A cold key being created here: wait for that creation rather than read the backend,
		// which would find it absent. The herd on a cold key costs no read per caller.
		start := time.Now()
		if res, err, ok := v.r.engine.Join(ctx, l.key, v.typ); ok {
			v.c.misses.Add(1)
			v.c.observe(dogpile.EventWaited, 1, time.Since(start))
			l.hit = true
			l.val, l.err = v.result(ctx, key, res, err)
			return l, nil
		}
	}
	l.loaded, err = v.load(ctx, b, l.key, &scope{OpGetOrCreate, key})
	if err == nil && l.found {
		b.local.fill(ctx, l.key, since, l.loaded.localItem)
	}
	switch {
	case err != nil:
		v.c.misses.Add(1)
		return l, err
	case !l.found:
		v.c.misses.Add(1)
		return l, nil
	case l.neg:
		if v.r.negFresh(l.created, l.delta, negTTL[V](v.r, l.p), l.p) {
			v.c.negHits.Add(1)
			l.hit, l.err = true, v.r.fail(OpGetOrCreate, KindCreator, key, v.r.notFound(l.p))
			return l, nil
		}
		v.c.misses.Add(1)
		l.loaded = loaded[V]{} // an expired "not found": absent
		return l, nil
	}
	exp := expiration(v.r, l.p, l.val)
	if !v.r.fresh(l.created, l.delta, exp) {
		v.c.expired.Add(1)
		return l, nil
	}
	if v.r.early(l.created, l.delta, exp, l.p) {
		v.c.expired.Add(1)
		v.c.early.Add(1)
		return l, nil
	}
	l.hit = true
	v.c.hits.add()
	return l, nil
}

// report is the region's, counting the error in the view's statistics.
func (v *View[V]) report(ctx context.Context, err error) { v.r.reportTo(ctx, v.c, err) }

// failed reports a backend error and applies the failure policy: under FailClosed it returns
// err, marked as reported, to end the call; under FailOpen nil, and the call goes on.
func (v *View[V]) failed(ctx context.Context, err *Error) error {
	if v.r.cfg.failClosed {
		err.reported = true
	}
	v.report(ctx, err)
	if v.r.cfg.failClosed {
		return err
	}
	return nil
}

// resolveWith binds arg to create; apart from GetOrCreateWith so that only the slow path
// allocates the closure.
func resolveWith[V, A any](ctx context.Context, v *View[V], l *lookup[V], create func(context.Context, A) (V, error), arg A) (V, error) {
	return v.resolve(ctx, l, func(ctx context.Context) (V, error) { return create(ctx, arg) })
}

// resolve hands a call that was not a hit to the lock engine.
func (v *View[V]) resolve(ctx context.Context, l *lookup[V], create func(context.Context) (V, error)) (V, error) {
	o := &op[V]{v: v, b: l.b, key: l.key, user: l.user, p: l.p, create: create}
	res, err := v.r.engine.Resolve(ctx, o, dogpile.Entry{Value: l.val, Created: l.created, Delta: l.delta}, l.found)
	if err != nil && l.found && ctx.Err() == nil && !isReported(err) && !errors.Is(err, dogpile.ErrClosed) {
		if val, ok := v.instead(ctx, l, err); ok {
			return val, nil
		}
	}
	return v.result(ctx, l.user, res, err)
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

// cmpErr returns the first non-nil error.
func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// Refresh runs create and stores its value under key (subject to the should-cache predicates)
// whether or not a fresh value is there, and returns it. It does not take the dogpile lock:
// use it when the caller knows the cached value is out of date. A creation of the key that was
// already in progress will not store over it.
func (v *View[V]) Refresh(ctx context.Context, key string, create func(context.Context) (V, error), opts ...Option) (V, error) {
	var zero V
	if create == nil {
		return zero, v.nilCreator(OpRefresh, key)
	}
	p, err := v.policy(opts)
	if err != nil {
		return zero, v.r.misuse(OpRefresh, key, err)
	}
	b, err := v.r.use(key)
	if err != nil {
		return zero, v.r.misuse(OpRefresh, key, err)
	}
	return v.refresh(ctx, b, v.r.mangle(key), p, create, scope{OpRefresh, key})
}

// refresh is Refresh once the call is checked: k is the mangled key; s names the call in errors.
func (v *View[V]) refresh(ctx context.Context, b *bound, k string, p *policy, create func(context.Context) (V, error), s scope) (V, error) {
	var zero V
	v.r.engine.Forget(k)
	start := v.r.stamp()
	val, err := create(ctx)
	if err != nil {
		return zero, v.r.fail(s.op, KindCreator, s.key, err)
	}
	if !v.r.shouldCache(val, p) {
		return val, nil
	}
	if err := v.store(ctx, b, k, val, start, v.r.now()-start, false, s); err != nil {
		v.report(ctx, err)
		if v.r.cfg.failClosed {
			return zero, err
		}
	}
	return val, nil
}

// policy is the view's policy with a call's opts applied, or the error of an option that is
// invalid or not a setting of calls.
func (v *View[V]) policy(opts []Option) (*policy, error) {
	if len(opts) == 0 {
		return &v.pol, nil
	}
	p, err := v.pol.with(opts, atCall)
	if err == nil {
		err = p.accepts(v.typ)
	}
	return p, err
}

// loaded is what a read found under a key.
type loaded[V any] struct {
	val     V
	created int64
	delta   int64 // how long the value's creation took; 0: unknown
	found   bool  // a usable entry: a value, or (neg) a cached "not found"
	neg     bool
}

// load reads k: found is false for a miss, a hard-invalidated entry, a malformed entry or one of
// another type (the last two reported). A backend error is a miss under FailOpen.
//
// On a byte backend the read is shared with the other callers of this process that read k at the
// same time (see reads): the herd on a hot key costs one round trip per read in flight. s is the
// call its errors name.
func (v *View[V]) load(ctx context.Context, b *bound, k string, s *scope) (loaded[V], error) {
	if b.values != nil {
		it, err := b.values.GetValue(ctx, k)
		return v.loadItem(ctx, it, err, s)
	}
	var rd *read
	err := errSkipped
	if t := v.r.allow(); t != skip {
		if rd, err = v.r.reads.read(ctx, b, k); rd != nil {
			err = rd.err
		}
		v.r.settle(ctx, t, err)
	}
	if err != nil {
		return loaded[V]{}, v.readFailed(ctx, s, err)
	}
	if rd.shared == 0 { // read for this caller alone
		return v.decodeEntry(ctx, k, rd.raw, s), nil
	}
	// Decoded once for every caller of this type that shared the read: they share the value.
	return rd.decodedAs(v.typ, func() any { return v.decodeEntry(ctx, k, rd.raw, s) }).(loaded[V]), nil
}

// loadNow is load with a read of its own, started now: for the reads that must see every write
// completed before them anywhere (the read under the distributed lock, before creating), which a
// shared read started earlier might not.
func (v *View[V]) loadNow(ctx context.Context, b *bound, k string, s *scope) (loaded[V], error) {
	if b.values != nil {
		it, err := b.values.GetValue(ctx, k)
		return v.loadItem(ctx, it, err, s)
	}
	var raw []byte
	err := errSkipped
	if t := v.r.allow(); t != skip {
		raw, err = b.backend.Get(ctx, k)
		v.r.settle(ctx, t, err)
	}
	if err != nil {
		return loaded[V]{}, v.readFailed(ctx, s, err)
	}
	return v.decodeEntry(ctx, k, raw, s), nil
}

// loadItem is load from a store that keeps Go values (the backend, or the local tier): it and
// err are what its read returned.
func (v *View[V]) loadItem(ctx context.Context, it backends.Item, err error, s *scope) (loaded[V], error) {
	if err != nil {
		return loaded[V]{}, v.readFailed(ctx, s, err)
	}
	if !v.r.usable(it.Created) {
		return loaded[V]{}, nil
	}
	tv, ok := it.Value.(V)
	if !ok || v.iface {
		if _, neg := it.Value.(negativeMark); neg {
			return loaded[V]{created: it.Created, delta: it.Delta, found: true, neg: true}, nil
		}
	}
	if !ok && it.Value == nil && v.iface {
		ok = true // a nil stored by a View of this interface type
	}
	if !ok {
		v.report(ctx, v.r.failAt(*s, KindMalformed, fmt.Errorf("%w: stored value is a %T, not a %v", backends.ErrMalformed, it.Value, v.typ)))
		return loaded[V]{}, nil
	}
	return loaded[V]{val: tv, created: it.Created, delta: it.Delta, found: true}, nil
}

// decodeEntry decodes the stored bytes raw of k: found is false for a hard-invalidated entry and
// for a malformed one or one whose payload does not decode into a V (both reported).
func (v *View[V]) decodeEntry(ctx context.Context, k string, raw []byte, s *scope) loaded[V] {
	e, err := v.r.open(k, raw)
	if err != nil {
		v.report(ctx, v.r.failAt(*s, KindMalformed, err))
		return loaded[V]{}
	}
	if !v.r.usable(e.Created) {
		return loaded[V]{}
	}
	if raw[2] >= 2 { // version 1 defined no flags
		if e.Flags&backends.FlagDeleted != 0 {
			return loaded[V]{} // a tombstone: deleted
		}
		if e.Flags&backends.FlagNegative != 0 {
			return loaded[V]{created: e.Created, delta: e.Delta, found: true, neg: true}
		}
	}
	val, err := v.decode(e.Payload)
	if err != nil {
		v.report(ctx, v.r.failAt(*s, KindMalformed, err))
		return loaded[V]{}
	}
	return loaded[V]{val: val, created: e.Created, delta: e.Delta, found: true}
}

// decode is apart from load so that the pointer handed to the codec moves only this function's
// value to the heap, not load's on the memory backend's hit path. A codec that panics on the
// bytes (they may be anyone's) fails the decode as malformed input does.
func (v *View[V]) decode(payload []byte) (_ V, err error) {
	var val V
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: decode %T: codec panicked: %v", backends.ErrMalformed, val, p)
		}
	}()
	if err := v.r.cfg.codec.Unmarshal(payload, &val); err != nil {
		var zero V
		return zero, fmt.Errorf("%w: decode %T: %w", backends.ErrMalformed, val, err)
	}
	return val, nil
}

func (v *View[V]) readFailed(ctx context.Context, s *scope, err error) error {
	if errors.Is(err, backends.ErrNotFound) {
		return nil
	}
	return v.failed(ctx, v.r.backendFailed(*s, KindRead, err))
}

// store writes val under k as created at created, in delta nanoseconds. Errors are returned as
// Errors of the call s, not reported. cond stores conditionally (a creation's value): where the
// backend can, an entry newer than created that the key holds is left as it is.
func (v *View[V]) store(ctx context.Context, b *bound, k string, val V, created, delta int64, cond bool, s scope) error {
	ttl := v.r.storageTTL()
	if b.values != nil {
		if err := b.values.SetValue(ctx, k, backends.Item{Value: val, Created: created, Delta: delta}, ttl); err != nil {
			return v.r.backendFailed(s, KindWrite, err)
		}
		return nil
	}
	payload, err := v.r.cfg.codec.Marshal(val)
	if err != nil {
		return v.r.failAt(s, KindEncode, fmt.Errorf("%T: %w", val, err))
	}
	raw := v.r.seal(k, backends.Entry{Created: created, Delta: delta, Payload: payload})
	since := b.local.epoch(k) // before the write: a write landing after ours is seen
	stored, err := v.r.write(ctx, b, k, raw, ttl, cond)
	if err != nil {
		if err != errSkipped { // it may have been applied (a timeout): drop the old value everywhere
			b.local.evict(ctx, v.r, b, s, k)
		}
		return v.r.backendFailed(s, KindWrite, err)
	}
	if !stored { // a newer write holds the key: this process must not serve the older value
		b.local.drop(ctx, k)
		return nil
	}
	b.local.write(ctx, k, since, func() backends.Item {
		e := loaded[V]{val: val, created: created, delta: delta, found: true}
		return e.localItem()
	})
	b.local.announce(ctx, v.r, b, s, k)
	return nil
}

// storeNegatives writes a cached "not found" under each of keys, kept by the backend for the
// negative TTL: one write for all of them where the backend can.
//
// They come from creations, so they are stored conditionally (see store). s names the keys in
// errors.
func (v *View[V]) storeNegatives(ctx context.Context, b *bound, keys []string, created, delta int64, p *policy, s batchScope) error {
	ttl := v.r.stretched(negTTL[V](v.r, p))
	if b.values != nil {
		var errs []error
		for i, k := range keys {
			if err := b.values.SetValue(ctx, k, backends.Item{Value: negativeMark{}, Created: created, Delta: delta}, ttl); err != nil {
				errs = append(errs, v.r.backendFailed(s.at(i), KindWrite, err))
			}
		}
		return v.r.batchError(s.all(), errs...)
	}
	encoded := make([][]byte, len(keys))
	for i, k := range keys {
		encoded[i] = v.r.seal(k, backends.Entry{Created: created, Delta: delta, Flags: backends.FlagNegative})
	}
	since := b.local.epochs(keys)
	refused, err := v.r.writeMulti(ctx, b, keys, encoded, ttl, true, s)
	b.local.writeEach(ctx, keys, since, func(i int) (backends.Item, bool) {
		if err != nil || refused != nil && refused[i] {
			return backends.Item{}, false
		}
		e := loaded[V]{created: created, delta: delta, found: true, neg: true}
		return e.localItem(), true
	})
	b.local.announce(ctx, v.r, b, s.all(), keys...)
	return err
}

// lookupLocal answers a read from what the region's local tier (WithLocalCache) returned for the
// key, it or err, when it is a fresh value or a cached "not found": the whole read, with no
// round trip. It reports whether it answered.
func (v *View[V]) lookupLocal(ctx context.Context, l *lookup[V], it backends.Item, err error) bool {
	e, _ := v.loadItem(ctx, it, err, &scope{OpGetOrCreate, l.user})
	switch {
	case !e.found:
		return false
	case e.neg:
		if !v.r.negFresh(e.created, e.delta, negTTL[V](v.r, l.p), l.p) {
			return false
		}
		v.c.negHits.Add(1)
		l.loaded, l.hit, l.err = e, true, v.r.fail(OpGetOrCreate, KindCreator, l.user, v.r.notFound(l.p))
		return true
	}
	if exp := expiration(v.r, l.p, e.val); !v.r.fresh(e.created, e.delta, exp) || v.r.early(e.created, e.delta, exp, l.p) {
		return false // the backend may have a newer one: read it
	}
	v.c.hits.add()
	l.loaded, l.hit = e, true
	return true
}

// op is one slow-path call, the engine's view of it.
type op[V any] struct {
	v       *View[V]
	b       *bound
	key     string
	user    string // key as the caller gave it, for errors
	p       *policy
	create  func(context.Context) (V, error)
	started int64 // when Create began: the created-at of what it makes
	delta   int64 // how long Create took
}

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

// freshEntry is fresh for an entry the engine holds, which may be a cached "not found".
func (v *View[V]) freshEntry(e dogpile.Entry, p *policy) bool {
	if _, neg := e.Value.(negative); neg {
		return v.r.negFresh(e.Created, e.Delta, negTTL[V](v.r, p), p)
	}
	val, _ := e.Value.(V)
	return v.r.fresh(e.Created, e.Delta, expiration(v.r, p, val))
}

func (o *op[V]) Create(ctx context.Context) (any, error) {
	// A value counts as created when its creation began: an invalidation during the creation
	// applies to it, since it may have read data from before.
	o.started = o.v.r.stamp()
	start, returned := time.Now(), false
	defer func() {
		if !returned { // a panic or runtime.Goexit, passing through to the engine
			o.v.c.created(time.Since(start), errPanicked)
		}
	}()
	v, err := o.create(ctx)
	returned = true
	o.v.c.created(time.Since(start), err)
	o.delta = o.v.r.now() - o.started
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

func (o *op[V]) TryLock(ctx context.Context) (func(), bool, error) {
	if o.b.locker == nil {
		return nil, true, nil
	}
	r := o.v.r
	var l backends.Lock
	ok, err := false, errSkipped
	if t := r.allow(); t != skip {
		l, ok, err = o.b.locker.TryLock(ctx, o.key, r.cfg.lockTimeout)
		r.settle(ctx, t, err)
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
	}, true, nil
}

// negativeMark is what a ValueStore keeps for a cached "not found".
type negativeMark struct{}

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
