package region

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// expiration resolves the expiration of val under p (a call's or view's policy): the first
// level that sets one decides, p's, else the region's. 0 means never; a negative value means
// already expired. Without a WithExpirationFor at either level (the common case) it does not
// look at val, and costs what a plain expiration costs.
func expiration[V any](r *Region, p *policy, val V) time.Duration {
	if p.expFor == nil && r.cfg.pol.expFor == nil {
		return r.plainExpiration(p)
	}
	return perValueExpiration(r, p, val)
}

// perValueExpiration is expiration when a level has a WithExpirationFor.
func perValueExpiration[V any](r *Region, p *policy, val V) time.Duration {
	if d, ok := levelExpiration(p, val); ok {
		return d
	}
	d, _ := levelExpiration(&r.cfg.pol, val)
	return d
}

// plainExpiration is expiration for levels that set no WithExpirationFor.
func (r *Region) plainExpiration(p *policy) time.Duration {
	switch q := &r.cfg.pol; {
	case p.expFn != nil:
		return p.expFn()
	case p.expSet:
		return p.exp
	case q.expFn != nil:
		return q.expFn()
	default:
		return q.exp
	}
}

// levelExpiration is the expiration that one level, q, sets for val, if it sets one. A
// WithExpirationFor of val's type comes first; then the level's plain expiration.
func levelExpiration[V any](q *policy, val V) (time.Duration, bool) {
	if e := q.expFor; e != nil {
		if f, ok := e.typed.(func(V, error) time.Duration); ok {
			return f(val, nil), true
		}
		if d, ok := e.boxed(val, nil); ok {
			return d, true
		}
	}
	switch {
	case q.expFn != nil:
		return q.expFn(), true
	case q.expSet:
		return q.exp, true
	}
	return 0, false
}

// negTTL resolves how long a cached "not found" holds under p, for a view of values of type V:
// the negative-caching ttl of the first level that sets one, or what the first level's
// WithExpirationFor says for it, when positive.
func negTTL[V any](r *Region, p *policy) time.Duration {
	ttl := r.cfg.pol.negTTL
	if p.negSet {
		ttl = p.negTTL
	}
	e := p.expFor
	if e == nil && !p.expSet {
		e = r.cfg.pol.expFor
	}
	if t := r.negTarget(p); e != nil && t != nil {
		var zero V
		d, ok := time.Duration(0), false
		if f, typed := e.typed.(func(V, error) time.Duration); typed {
			d, ok = f(zero, t), true
		} else {
			d, ok = e.boxed(nil, t)
		}
		if ok && d > 0 {
			ttl = d
		}
	}
	return ttl
}

// fresh reports whether an entry whose creation began at created, took delta, and whose
// expiration (see expiration) is exp may be served without regeneration. Its age counts from
// when it was stored (created+delta), as dogpile.cache stamps a value when its creator returns,
// so that a creation longer than the expiration still stores a value that lives a full
// expiration; a soft invalidation compares with the start, since a creation that began before it
// may have read older data.
func (r *Region) fresh(created, delta int64, exp time.Duration) bool {
	if created < r.softAt.Load() {
		return false
	}
	switch {
	case exp == 0:
		return true
	case exp < 0:
		return false
	default:
		return r.within(stored(created, delta), int64(r.jittered(exp, created)))
	}
}

// within reports whether less than d nanoseconds have passed since at. The coarse clock answers
// when it can say so with a margin (see coarseClock); the precise clock answers the rest: ages
// near d, ages past it, and every age under WithClock.
func (r *Region) within(at, d int64) bool {
	if r.cfg.clock == nil {
		if c := coarse.read(); c != 0 && c-at < d-int64(coarseSlack) {
			return true
		}
	}
	return r.now()-at < d
}

// stored is when an entry whose creation began at created and took delta was stored.
func stored(created, delta int64) int64 {
	if delta <= 0 || created > math.MaxInt64-delta {
		return created
	}
	return created + delta
}

// earlyWindow is the part of a value's lifetime, its last, in which an early refresh may start
// (see WithEarlyRefresh): a value lives at least 1-earlyWindow of its expiration, so that early
// refresh costs at most 1/(1-earlyWindow) = 1.25 times the regenerations of plain expiry, however
// hot the key and however long its creation.
const earlyWindow = 0.2

// early reports whether a fresh entry should be regenerated now, before it expires: the
// probabilistic early refresh ("XFetch") of Vattani, Chierichetti and Lowenstein, "Optimal
// Probabilistic Cache Stampede Prevention" (VLDB 2015). An entry whose creation took delta is
// refreshed early when now + delta*beta*X >= expiry, with X drawn from the exponential
// distribution of mean 1 (the paper's -ln(rand())): the closer the expiry and the longer the
// creation, the likelier. Never before the last earlyWindow of its expiration: on a hot key the
// draw comes out early soon after the window opens, so without the bound the key would be
// regenerated at least delta*beta*ln(reads) before expiry, a large part of a short expiration.
// Off (false) when beta is 0, the delta unknown, or the entry never expires. It draws no random
// number before the window.
func (r *Region) early(created, delta int64, exp time.Duration, p *policy) bool {
	beta := r.beta(p)
	if beta <= 0 || delta <= 0 || exp <= 0 {
		return false
	}
	// Relative to when it was stored, so that no sum overflows however long the expiration.
	age, life := float64(r.now()-stored(created, delta)), float64(r.jittered(exp, created))
	if age < (1-earlyWindow)*life {
		return false
	}
	return age+float64(delta)*beta*rand.ExpFloat64() >= life
}

func (r *Region) beta(p *policy) float64 {
	if p.earlySet {
		return p.early
	}
	return r.cfg.pol.early
}

// jittered shortens d by the region's jitter fraction times a number in [0, 1) drawn from
// created: the same for every read of one entry, different between entries written apart.
func (r *Region) jittered(d time.Duration, created int64) time.Duration {
	if r.cfg.jitter == 0 {
		return d
	}
	return d - time.Duration(r.cfg.jitter*unit(created)*float64(d))
}

// unit maps x to [0, 1) by the SplitMix64 finalizer: neighbouring inputs land far apart.
func unit(x int64) float64 {
	z := uint64(x) + 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}

// storageTTL is the TTL a write asks of the backend: the configured one, lengthened by up to the
// jitter fraction, so that entries written together do not leave the backend together.
func (r *Region) storageTTL() time.Duration {
	return r.stretched(r.cfg.storageTTL)
}

func (r *Region) stretched(d time.Duration) time.Duration {
	if d <= 0 || r.cfg.jitter == 0 {
		return d
	}
	return d + time.Duration(rand.Float64()*r.cfg.jitter*float64(d))
}

// staleUsable reports whether an expired entry (created, delta: see fresh) is recent enough to be
// served in place of a creator's error (stale-if-error): no more than the maximum staleness past
// its expiry (its expiration, or the soft invalidation that expired it).
func (r *Region) staleUsable(created, delta int64, exp time.Duration, p *policy) bool {
	limit := r.cfg.pol.stale
	if p.staleSet {
		limit = p.stale
	}
	if limit <= 0 {
		return false
	}
	expiredAt := int64(math.MaxInt64) // not expired (an early refresh failed)
	at := stored(created, delta)
	switch {
	case exp < 0:
		expiredAt = at
	case exp > 0:
		if j := int64(r.jittered(exp, created)); at <= math.MaxInt64-j {
			expiredAt = at + j
		}
	}
	if s := r.softAt.Load(); created < s {
		expiredAt = min(expiredAt, s)
	}
	return r.now()-expiredAt <= int64(limit)
}

// negTarget is the error whose creations negative caching caches, nil when it is off.
func (r *Region) negTarget(p *policy) error {
	if p.negSet {
		return p.negErr
	}
	return r.cfg.pol.negErr
}

// negMatch reports whether a creator's error is one that negative caching caches.
func (r *Region) negMatch(err error, p *policy) bool {
	t := r.negTarget(p)
	return t != nil && errors.Is(err, t)
}

// negFresh reports whether a cached "not found" (created, delta: see fresh) that holds for ttl
// (see negTTL) still holds.
func (r *Region) negFresh(created, delta int64, ttl time.Duration, p *policy) bool {
	if r.negTarget(p) == nil || created < r.softAt.Load() {
		return false
	}
	return r.within(stored(created, delta), int64(r.jittered(ttl, created)))
}

// notFound is the cause of the error of a call that finds a cached "not found".
func (r *Region) notFound(p *policy) error {
	return fmt.Errorf("cached as not found: %w", r.negTarget(p))
}

// usable reports whether an entry survived hard invalidation.
func (r *Region) usable(created int64) bool { return created >= r.hardAt.Load() }

// shouldCache reports whether v may be stored: every predicate of the region's and of p agrees.
func (r *Region) shouldCache(v any, p *policy) bool {
	for _, s := range r.cfg.pol.shouldCache {
		if !s.f(v) {
			return false
		}
	}
	for _, s := range p.shouldCache {
		if !s.f(v) {
			return false
		}
	}
	return true
}
