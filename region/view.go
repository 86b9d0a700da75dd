package region

import (
	"context"
	"reflect"
	"strings"
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
	p, err := v.pol.with(opts, atView)
	if err == nil {
		err = p.accepts(v.typ)
	}
	if err != nil {
		panic(err)
	}
	v.pol = *p
	track(r, v, viewName(opts, v.typ))
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
	var e loaded[V]
	if b.mem != nil {
		// As View.hit: key is lent to a read that does not keep it.
		k := key
		if v.r.cfg.mangler != nil {
			var buf mangleBuf // declared here, so that a region without a mangler does not clear it
			k = v.r.mangleInto(&buf, key)
		}
		it, rerr := b.mem.GetValue(ctx, noescape(k))
		e, err = v.loadItem(ctx, it, rerr, &scope{OpGet, key})
	} else {
		k := strings.Clone(key) // the backend and the shared reads may keep it
		e, err = v.load(ctx, b, v.r.mangle(k), &scope{OpGet, k})
	}
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
// A hit costs one backend read and no lock; on the memory backend it allocates nothing. No call
// of a View keeps key once it returns (the slow path copies it), so a key the caller builds for
// the call, in a buffer or by a short concatenation, can stay on the caller's stack. A closure
// that captures variables is allocated by its caller on every call, hit or not:
// GetOrCreateWith avoids that on hot paths.
//
// create's error is returned to the caller and to every caller waiting on the same creation, and
// nothing is cached. If create panics, they all get a *PanicError. If ctx ends while the caller
// waits, it returns ctx.Err(); the creation goes on for the others, with a context that keeps
// ctx's values but not its cancellation (Close cancels it).
//
// opts apply to this call (see Option); WithBypass makes it a Refresh.
func (v *View[V]) GetOrCreate(ctx context.Context, key string, create func(context.Context) (V, error), opts ...Option) (V, error) {
	var l lookup[V]
	err := v.lookup(ctx, &l, key, create == nil, opts)
	if err != nil || l.hit {
		return l.val, cmpErr(err, l.err)
	}
	if l.p.bypass {
		return v.refresh(ctx, l.b, l.key, l.p, create, scope{OpGetOrCreate, l.user})
	}
	if v.served(&l, l.key) {
		return l.val, nil
	}
	return v.resolve(ctx, &l, create)
}

// GetOrCreateWith is GetOrCreate for a creator that takes one argument, passed separately, so
// that the caller need not allocate a closure to bind it: memo handles call it with the wrapped
// function and its arguments. The closure is made here, on the slow path only.
func GetOrCreateWith[V, A any](ctx context.Context, v *View[V], key string, create func(context.Context, A) (V, error), arg A, opts ...Option) (V, error) {
	var l lookup[V]
	err := v.lookup(ctx, &l, key, create == nil, opts)
	if err != nil || l.hit {
		return l.val, cmpErr(err, l.err)
	}
	if l.p.bypass {
		return v.refresh(ctx, l.b, l.key, l.p, func(ctx context.Context) (V, error) { return create(ctx, arg) }, scope{OpGetOrCreate, l.user})
	}
	if v.served(&l, l.key) {
		return l.val, nil
	}
	return resolveWith(ctx, v, &l, create, arg)
}

// resolveWith binds arg to create in the op it hands to the engine; apart from GetOrCreateWith
// so that only the slow path allocates the op.
func resolveWith[V, A any](ctx context.Context, v *View[V], l *lookup[V], create func(context.Context, A) (V, error), arg A) (V, error) {
	o := &opWith[V, A]{fn: create, arg: arg}
	o.with = o
	return v.resolveOp(ctx, l, &o.op)
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

func (v *View[V]) lookup(ctx context.Context, l *lookup[V], key string, nilCreate bool, opts []Option) error {
	if nilCreate {
		return v.nilCreator(OpGetOrCreate, key)
	}
	p, err := v.policy(opts)
	if err != nil {
		return v.r.misuse(OpGetOrCreate, key, err)
	}
	b, err := v.r.use(key)
	if err != nil {
		return v.r.misuse(OpGetOrCreate, key, err)
	}
	l.b, l.p = b, p
	if b.mem != nil && !p.bypass {
		if v.hit(ctx, l, key) {
			return nil
		}
		l.user = strings.Clone(key)
		l.key = v.r.mangle(l.user)
		return nil
	}
	return v.lookupOwned(ctx, l, strings.Clone(key))
}

// hit is lookup on the memory backend, up to the answer: it reports whether l is a hit. It reads
// with key as its caller lent it (a memo handle builds keys in a buffer on its stack): nothing it
// calls keeps key, or anything made of it, past the call, as the compiler's escape analysis
// checks for every use but the memory backend's read, whose key is hidden from it (noescape):
// that read does not keep its key. A hit costs no allocation, nor does a miss up to here. An
// expired value whose regeneration is in flight here is served as a hit is (see served).
func (v *View[V]) hit(ctx context.Context, l *lookup[V], key string) bool {
	k := key
	if v.r.cfg.mangler != nil {
		var buf mangleBuf // declared here, so that a region without a mangler does not clear it
		k = v.r.mangleInto(&buf, key)
	}
	it, err := l.b.mem.GetValue(ctx, noescape(k))
	l.loaded, _ = v.loadItem(ctx, it, err, &scope{OpGetOrCreate, key}) // a miss is its only error
	if v.judge(l, key) || v.served(l, k) {
		l.hit = true
		return true
	}
	return false
}

// lookupOwned is lookup on the other backends, and for a call that bypasses the cache: key is the
// lookup's own (it is kept in l and may be kept by the backend).
func (v *View[V]) lookupOwned(ctx context.Context, l *lookup[V], key string) error {
	b := l.b
	l.key = v.r.mangle(key)
	l.user = key
	if l.p.bypass {
		v.c.misses.Add(1)
		return nil
	}
	if it, found, err := b.local.get(ctx, l.key); found || err != nil {
		if v.lookupLocal(ctx, l, it, err) {
			return nil
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
			return nil
		}
	}
	var err error
	l.loaded, err = v.load(ctx, b, l.key, &scope{OpGetOrCreate, key})
	switch {
	case err == nil && l.found:
		b.local.fill(ctx, l.key, since, l.loaded.localItem)
	case err == nil && l.failed:
		l.loaded = v.localStandIn(ctx, l) // the backend is down: see WithLocalCache
	}
	if err != nil {
		v.c.misses.Add(1)
		return err
	}
	v.judge(l, key)
	return nil
}

// judge decides what the entry a lookup read, l.loaded, is worth: a hit (it reports true), or a
// miss, counted, for the slow path. key is the caller's, for the error of a cached "not found".
func (v *View[V]) judge(l *lookup[V], key string) bool {
	switch {
	case !l.found:
		v.c.misses.Add(1)
		return false
	case l.neg:
		if v.r.negFresh(l.created, l.delta, negTTL[V](v.r, l.p), l.p) {
			v.c.negHits.Add(1)
			l.hit, l.err = true, v.r.fail(OpGetOrCreate, KindCreator, key, v.r.notFound(l.p))
			return true
		}
		v.c.misses.Add(1)
		l.loaded = loaded[V]{} // an expired "not found": absent
		return false
	}
	exp := expiration(v.r, l.p, l.val)
	if !v.r.fresh(l.created, l.delta, exp) {
		v.c.expired.Add(1)
		return false
	}
	if v.r.early(l.created, l.delta, exp, l.p) {
		v.c.expired.Add(1)
		v.c.early.Add(1)
		return false
	}
	l.hit = true
	v.c.hits.add()
	return true
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

// localStandIn is what the local tier holds for l's key, taken as the answer of a backend read
// that failed under FailOpen (see WithLocalCache): the rest of the lookup serves it if fresh,
// and hands it to the engine as the old value if expired. Without a tier, or without the key in
// it, it is absent, as the failed read is.
func (v *View[V]) localStandIn(ctx context.Context, l *lookup[V]) loaded[V] {
	it, found, err := l.b.local.get(ctx, l.key)
	if !found || err != nil {
		return loaded[V]{}
	}
	e, _ := v.loadItem(ctx, it, nil, &scope{OpGetOrCreate, l.user})
	return e
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
