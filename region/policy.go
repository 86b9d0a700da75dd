package region

import (
	"math"
	"reflect"
	"time"
)

// policy is one level's policy settings: the region's (in its config), a view's, or a call's
// (a copy of its view's with the call's options applied). Each setting has a flag that says
// whether this level sets it; a level that does not defers to the one above.
type policy struct {
	// The expiration: exp, or expFn, or per value expFor, whichever this level set last.
	expSet bool
	exp    time.Duration
	expFn  func() time.Duration
	expFor *valueExpiration // with expSet: consulted first, for values of its type

	earlySet bool
	early    float64 // XFetch's beta; 0: off
	staleSet bool
	stale    time.Duration // 0: off
	negSet   bool
	negErr   error // nil: no negative caching
	negTTL   time.Duration

	creationSet bool
	creation    time.Duration // 0: unbounded

	shouldCache []predicate // each level's are added to the levels above it, never replace them

	ignoreExp bool // Get returns expired values
	bypass    bool // get-or-create runs the creator and stores, without reading
}

// valueExpiration is a WithExpirationFor: typed, the function as given (called without boxing
// when the view's value type is its own), and boxed, for values of other static types.
type valueExpiration struct {
	typed any // func(V, error) time.Duration
	boxed func(v any, neg error) (time.Duration, bool)
	typ   reflect.Type
}

// predicate is a WithShouldCache: f returns true for values not of type typ.
type predicate struct {
	f   func(any) bool
	typ reflect.Type
}

// with returns a copy of p with opts applied, checked for level at; p itself is not changed.
func (p *policy) with(opts []Option, at levels) (*policy, error) {
	q := *p
	for _, o := range opts {
		if err := o.check(at); err != nil {
			return nil, err
		}
		if o.pol != nil {
			o.pol(&q)
		}
	}
	return &q, nil
}

// with1 returns a copy of p with o applied.
func (p *policy) with1(o Option) *policy {
	q := *p
	o.pol(&q)
	return &q
}

// accepts checks that the type-specific settings of p fit a view of values of type t: each
// WithShouldCache and WithExpirationFor must be for t or an interface t implements.
func (p *policy) accepts(t reflect.Type) error {
	for _, s := range p.shouldCache {
		if !t.AssignableTo(s.typ) {
			return invalid("WithShouldCache for %v, given to a view of %v", s.typ, t)
		}
	}
	if e := p.expFor; e != nil && !t.AssignableTo(e.typ) {
		return invalid("WithExpirationFor for %v, given to a view of %v", e.typ, t)
	}
	return nil
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

// WithExpiration sets how long a value stays fresh after it was stored. After that it is
// expired: still served to every caller but one while that one regenerates it. d > 0 expires
// values d after they were stored; d == 0 never expires them (the region's default); d < 0
// makes them expired already, so that every call regenerates while the others are served the
// stored value. Every value of d is valid. Accepted at every level (see Option).
func WithExpiration(d time.Duration) Option {
	return policyOption("WithExpiration", atPolicy, nil, func(p *policy) {
		p.expSet, p.exp, p.expFn, p.expFor = true, d, nil, nil
	})
}

// WithExpirationFunc makes the expiration computed on every read: f returns the current
// expiration, with WithExpiration's meanings (0: never expires; negative: already expired). Use
// it for expirations that change at run time, read from configuration, for instance. f must be
// cheap and safe for concurrent use: it runs on the hit path. A nil f is an error. Accepted at
// every level (see Option).
func WithExpirationFunc(f func() time.Duration) Option {
	var err error
	if f == nil {
		err = invalid("WithExpirationFunc(nil): need a function")
	}
	return policyOption("WithExpirationFunc", atPolicy, err, func(p *policy) {
		p.expSet, p.exp, p.expFn, p.expFor = true, 0, f, nil
	})
}

// WithExpirationFor chooses each value's expiration from the value: f receives a value of type V
// and returns its expiration, with WithExpiration's meanings (0: never expires; negative:
// already expired). Use it for a token that carries its own lifetime, or a shorter expiration
// for empty results. For a cached "not found" (WithNegativeCaching) f receives V's zero value
// and the negative-caching error, and a positive result replaces the negative-caching ttl for it.
//
// f is called when the entry is read, to decide whether it is fresh, not only when it is
// created: it must be a function of the value alone (the same value, the same expiration), cheap
// and safe for concurrent use. A token's absolute expiry is thus said as a duration from the
// token's own issue time, not from now.
//
// Accepted at every level (see Option); at a view, a handle or a call, V must be their value
// type or an interface it implements. At the region it applies to values of type V, and values
// of other types keep the region's WithExpiration or WithExpirationFunc. A nil f is an error.
func WithExpirationFor[V any](f func(v V, negative error) time.Duration) Option {
	var err error
	if f == nil {
		err = invalid("WithExpirationFor(nil): need a function")
	}
	e := &valueExpiration{typed: f, typ: reflect.TypeFor[V]()}
	e.boxed = func(v any, neg error) (time.Duration, bool) {
		tv, ok := v.(V)
		if !ok && v != nil && neg == nil {
			return 0, false
		}
		return f(tv, neg), true
	}
	return policyOption("WithExpirationFor", atPolicy, err, func(p *policy) {
		p.expSet, p.expFor = true, e
	})
}

// WithEarlyRefresh turns on probabilistic early refresh ("XFetch", from Vattani, Chierichetti and
// Lowenstein, "Optimal Probabilistic Cache Stampede Prevention", VLDB 2015): a fresh value is
// regenerated before it expires, by one caller, with a probability that grows as its expiry
// nears and with how long its last creation took (recorded with every value). beta scales it:
// 1 is the paper's optimum, larger refreshes earlier, 0 turns it off (the default).
//
// A value is never refreshed before it has lived four fifths of its expiration: an early
// refresh starts, if at all, in the last 20% of it. So a value lives at least 80% of its
// expiration, and a hot key is regenerated at most 1.25 times as often as with plain expiry,
// whatever beta and however long the creation. A creation longer than a fifth of the
// expiration starts at the window's opening and ends after the expiry: meanwhile callers are
// served the old value, as they are while any regeneration runs.
//
// Nobody waits for an early refresh, since the value is still fresh: the caller whose read
// starts it, and every caller while it runs, get the current value at once, and the value is
// regenerated in the background, on a worker of WithBackgroundRefresh when the region has them
// (skipped when every one is busy, and tried again by a later read). Without them it runs on a
// goroutine of its own, at most one per key at a time, which Close cancels and waits for. The
// regeneration takes the key's dogpile lock like any other: one at a time, one per fleet where
// the backend can lock. Its error goes to the logger and the error handler. It costs a random
// draw on the hits of a value in the last fifth of its expiration, and a clock reading on the
// hits of a value with an expiration. beta must be a finite, non-negative number. Accepted at
// every level (see Option).
func WithEarlyRefresh(beta float64) Option {
	var err error
	if !(beta >= 0) || math.IsInf(beta, 1) {
		err = invalid("WithEarlyRefresh(%v): beta must be a finite, non-negative number", beta)
	}
	return policyOption("WithEarlyRefresh", atPolicy, err, func(p *policy) {
		p.earlySet, p.early = true, beta
	})
}

// WithStaleIfError serves an expired value instead of failing when its regeneration fails: the
// caller that regenerated gets the old value and the creator's error goes to the logger and the
// error handler, as long as the value has been expired for at most max. A value older than that,
// or an absent one, gets the error as before. 0 turns it off (the default); a negative max is an
// error. Accepted at every level (see Option).
func WithStaleIfError(max time.Duration) Option {
	var err error
	if max < 0 {
		err = invalid("WithStaleIfError(%v): negative duration", max)
	}
	return policyOption("WithStaleIfError", atPolicy, err, func(p *policy) {
		p.staleSet, p.stale = true, max
	})
}

// WithNegativeCaching caches "not found": when a creator fails with an error that errors.Is
// target (say, sql.ErrNoRows or an ErrUserNotFound of your own), the region stores that the key
// has no value, for ttl, and calls in that time get an error that errors.Is target without
// calling the creator. A batch creator (GetOrCreateMulti, memo.Multi) that leaves a key out of its
// result stores the same "not found" for the key, and batches see the key absent. ttl is
// usually much shorter than the expiration; Set, Delete, Refresh and invalidation replace a
// cached "not found" as they replace values.
//
// WithNegativeCaching(nil, 0) turns it off (the default; useful at a view or call under a region
// that has it). Otherwise target must not be nil and ttl must be positive: anything else is an
// error. Accepted at every level (see Option).
func WithNegativeCaching(target error, ttl time.Duration) Option {
	var err error
	if (target == nil) != (ttl == 0) || ttl < 0 {
		err = invalid("WithNegativeCaching(%v, %v): need an error and a positive duration, or nil and 0 (off)", target, ttl)
	}
	return policyOption("WithNegativeCaching", atPolicy, err, func(p *policy) {
		p.negSet, p.negErr, p.negTTL = true, target, ttl
	})
}

// WithShouldCache adds a predicate on created values: a value for which f returns false is
// returned to its callers but not stored, so the next call creates again (an empty list, a
// partial answer). Predicates add up across levels: a value is stored only if every one of its
// region's, view's and call's agrees. Set, which stores what it is given, does not consult them.
//
// Accepted at every level (see Option); at a view, a handle or a call, V must be their value
// type or an interface it implements (V is inferred from f). At the region, f sees the values of
// type V (with V any: every value). A nil f is an error.
func WithShouldCache[V any](f func(V) bool) Option {
	var err error
	if f == nil {
		err = invalid("WithShouldCache(nil): need a function")
	}
	pred := predicate{typ: reflect.TypeFor[V](), f: func(v any) bool {
		tv, ok := v.(V)
		if !ok && v != nil { // not a V: another type's predicate
			return true
		}
		return f(tv) // a nil v is the zero value of an interface V
	}}
	return policyOption("WithShouldCache", atPolicy, err, func(p *policy) {
		p.shouldCache = append(p.shouldCache[:len(p.shouldCache):len(p.shouldCache)], pred)
	})
}

// WithCreationTimeout bounds how long one creation (a call of the creator, or of a batch
// creator) may run: after d its context is cancelled, the distributed lock it holds is released,
// the callers waiting for it get an error that errors.Is ErrCreationTimeout, and the next call
// for the key may create again. While the bound is on, a creation runs on a goroutine of a pool
// of idle workers, not on its caller's, and the caller waits for it with a timer, so that the
// caller gets ErrCreationTimeout on time even from a creator that ignores its context: that
// creator goes on running on its worker (Close waits for it), and what it returns then is
// dropped. The hand-off costs one to two microseconds a miss (scenario 2 of BENCHMARKS.md),
// which matters on the memory backend only.
//
// By default, on a backend with a distributed lock (backends.Locker: Redis, memcached, files),
// a creation is bounded by the lock timeout (WithLockTimeout, DefaultLockTimeout), so that it
// never outlives its lock: set a longer d for creations that take longer and are held by the
// lock watchdog. On a backend without one (memory), creations are not bounded by default: one
// led by a caller whose context cannot end runs on its caller's goroutine, as a loader does in
// otter or singleflight (any other runs on a worker, so that its caller may leave), and a
// creator that never returns holds its key, and blocks its callers that have no deadline; set d
// to bound them (an HTTP handler behind httpcache, say). d == 0 turns the bound off everywhere:
// with the watchdog, a creator that never returns then holds its key in every process. A
// negative d is an error. Accepted at every level (see Option): the creation takes the bound of
// the call that starts it.
func WithCreationTimeout(d time.Duration) Option {
	var err error
	if d < 0 {
		err = invalid("WithCreationTimeout(%v): negative duration", d)
	}
	return policyOption("WithCreationTimeout", atPolicy, err, func(p *policy) {
		p.creationSet, p.creation = true, d
	})
}

// WithIgnoreExpiration makes Get and GetMulti return expired values too (never hard-invalidated
// ones). Get-or-create calls are not changed by it. Accepted by views, handles and calls.
func WithIgnoreExpiration() Option {
	return policyOption("WithIgnoreExpiration", atView|atCall, nil, func(p *policy) { p.ignoreExp = true })
}

// WithBypass makes a get-or-create call read through: it runs the creator and stores its value
// (subject to WithShouldCache) without reading what is cached, as Refresh does, and returns it:
// what a request with "Cache-Control: no-cache" asks of a cache. It takes no dogpile lock, so a
// bypass per request runs the creator per request. Accepted by calls only.
func WithBypass() Option {
	return policyOption("WithBypass", atCall, nil, func(p *policy) { p.bypass = true })
}
