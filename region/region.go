package region

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/internal/dogpile"
)

// ErrNotConfigured is returned by every operation on a region that has no backend yet: see
// Region.Configure.
var ErrNotConfigured = errors.New("region: not configured")

// ErrAlreadyConfigured is returned by Configure on a region that has a backend.
var ErrAlreadyConfigured = errors.New("region: already configured")

// ErrClosed is returned by operations on a region after Close, and to callers whose creation
// Close cancelled.
var ErrClosed = errors.New("region: closed")

// ErrInvalidKey is returned for keys no backend can store: the empty key.
var ErrInvalidKey = errors.New("region: invalid key")

// ErrCreationTimeout is the error of the callers of a creation that ran longer than the
// region's creation timeout (WithCreationTimeout).
var ErrCreationTimeout = dogpile.ErrCreationTimeout

// ErrGoexit is the error a creation's waiters get when the creator called runtime.Goexit.
var ErrGoexit = dogpile.ErrGoexit

// PanicError is the error every caller waiting for a creation gets when the creator panicked.
// The panic stops there: locks are released, nothing is cached, the next call creates again.
// Use errors.As to reach its fields: Value, what the creator passed to panic, and Stack, the
// creator's stack at the panic. When Value is an error, errors.Is and errors.As see through to it.
type PanicError = dogpile.PanicError

// Region is a named cache with one policy: a backend, an expiration, a key mangler, a codec.
// Many functions of different types share one region; each reaches it through a typed View or a
// memo handle.
//
// A Region can be declared at package level and configured later, once the program knows its
// environment:
//
//	var cache = region.New("users", region.WithExpiration(10*time.Minute))
//
//	func main() {
//		if err := cache.Configure(memory.New()); err != nil { ... }
//	}
//
// Until Configure, every operation returns an error that errors.Is ErrNotConfigured. A Region is
// safe for concurrent use.
type Region struct {
	name   string
	cfg    config
	engine *dogpile.Engine

	// bound holds the backend and its capabilities: nil before Configure and after Close.
	bound  atomic.Pointer[bound]
	closed atomic.Bool
	// configMu serialises Configure and Close; reads go through bound alone.
	configMu sync.Mutex

	// softAt and hardAt are the times (Unix nanoseconds) of the last soft and hard invalidation:
	// entries created before hardAt are absent, entries created before softAt are expired.
	softAt atomic.Int64
	hardAt atomic.Int64
	// markers are the shared invalidation times (WithSharedInvalidation) last applied, per
	// mode (hard, soft): a stored marker read again at every poll takes effect once.
	markers [2]atomic.Int64

	clock wallClock
	// lastStamp is the last time handed out by stamp.
	lastStamp atomic.Int64

	// reads shares the backend reads of one key among concurrent callers.
	reads reads

	// counters counts what happens outside any view's calls; views has every view's.
	counters counters
	views    views

	// watch follows the invalidations of other processes (WithSharedInvalidation, and the
	// local cache's evictions); set by Configure, stopped by Close, both under configMu.
	watch *watcher
	// origin tells this region's announcements from other processes' (random, per Region).
	origin string

	brk breaker // skips the backend while it is unreachable (WithCircuitBreaker)
	// brkOff keeps the breaker off on a backend of several servers (backends.Partitioned); set
	// by Configure before the backend is bound.
	brkOff  bool
	reports limiter // rate-limits the log lines of reports (ReportInterval)
}

// bound is a configured backend with the capabilities the region found on it.
type bound struct {
	backend backends.Backend
	values  backends.ValueStore // nil unless the backend keeps Go values
	locker  backends.Locker     // nil: the dogpile lock holds within this process only

	// The multi-key capabilities, each nil if the backend lacks it, and the most keys one call
	// of them may carry (0: no limit).
	multiGet  backends.MultiGetter
	multiSet  backends.MultiSetter
	multiDel  backends.MultiDeleter
	multiLock backends.MultiLocker // only with locker
	maxBatch  int

	// condSet and condMulti store creations only where no newer entry is held (nil: with Set),
	// and make deletions leave tombstones.
	condSet   backends.ConditionalSetter
	condMulti backends.ConditionalMultiSetter

	local *local // WithLocalCache, in front of a backend that does not keep Go values; or nil
}

// New returns a region named name (used in errors and reports). It panics with the option's
// error (see Option) if an option is invalid (a nil codec, a negative stale-if-error) or not a
// region setting: options are fixed in code, so that is a programmer error, caught as the
// program starts.
func New(name string, opts ...Option) *Region {
	r := &Region{name: name, origin: newOrigin()}
	r.reads.init()
	r.cfg.lockTimeout = DefaultLockTimeout
	r.cfg.codec = JSON
	r.cfg.breakerMin, r.cfg.breakerMax = DefaultBreakerMin, DefaultBreakerMax
	for _, o := range opts {
		if err := r.cfg.apply(o); err != nil {
			panic(err)
		}
	}
	if err := r.cfg.validate(); err != nil {
		panic(err)
	}
	if r.cfg.logger == nil {
		r.cfg.logger = slog.Default()
	}
	r.engine = r.newEngine(r.cfg.background)
	r.engine.CreationTimeout = r.cfg.creation()
	return r
}

// Name returns the region's name.
func (r *Region) Name() string { return r.name }

// Configure gives the region its backend. It fails with ErrAlreadyConfigured if the region has
// one, and with ErrClosed after Close. The region finds the backend's optional capabilities
// (distributed lock, Go value storage) now, through wrappers (backends.As).
//
// The region owns the backend from now on: Close closes it.
func (r *Region) Configure(b backends.Backend) error { return r.ConfigureWith(b) }

// configure binds b, finding its capabilities; configMu is held and the region is unconfigured.
func (r *Region) configure(b backends.Backend) {
	bd := &bound{backend: b}
	if vs, ok := backends.As[backends.ValueStore](b); ok && vs.StoresValues() {
		bd.values = vs
	}
	if l, ok := backends.As[backends.Locker](b); ok {
		bd.locker = l
		// Only from the link that locks: a wrapper with locks of its own (found first) must see
		// batches' locks too, not have them taken past it on the backend it wraps.
		bd.multiLock, _ = l.(backends.MultiLocker)
	}
	bd.multiGet, _ = backends.As[backends.MultiGetter](b)
	bd.multiSet, _ = backends.As[backends.MultiSetter](b)
	bd.multiDel, _ = backends.As[backends.MultiDeleter](b)
	bd.condSet, _ = backends.As[backends.ConditionalSetter](b)
	// Only from the link that stores conditionally, as for the multi-key lock.
	bd.condMulti, _ = bd.condSet.(backends.ConditionalMultiSetter)
	if p, ok := backends.As[backends.Partitioned](b); ok && p.Partitioned() {
		r.brkOff = true // one server's errors do not open the breaker for the others
	}
	if bl, ok := backends.As[backends.BatchLimiter](b); ok {
		bd.maxBatch = max(bl.MaxBatch(), 0)
	}
	if bd.values == nil { // an in-process backend needs no local cache
		bd.local = r.cfg.local
	}
	r.bound.Store(bd)
}

// Configured reports whether the region has a backend.
func (r *Region) Configured() bool { return r.bound.Load() != nil }

// Backend returns the configured backend, or nil.
func (r *Region) Backend() backends.Backend {
	if b := r.bound.Load(); b != nil {
		return b.backend
	}
	return nil
}

// Close stops the region: background refreshes and creations in progress see their context
// cancelled and are waited for (a creator that ignores its context delays Close until it
// returns), the goroutines that follow other processes' invalidations stop, then the backend is
// closed if it, or a backend it wraps, implements io.Closer, and so is the local cache given to
// WithLocalCache. Calls after Close fail with ErrClosed. Close is safe to call more than once.
func (r *Region) Close() error {
	r.configMu.Lock()
	defer r.configMu.Unlock()
	if r.closed.Swap(true) {
		return nil
	}
	r.stopWatcher()
	b := r.bound.Swap(nil)
	r.engine.Close()
	var errs []error
	if b != nil {
		// Through wrappers: a logging wrapper without Close must not leak the connection pool
		// or goroutines of what it wraps.
		if c, ok := backends.As[io.Closer](b.backend); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, r.fail(OpClose, KindClosed, "", fmt.Errorf("close backend: %w", err)))
			}
		}
	}
	if err := r.cfg.local.close(); err != nil { // WithLocalCache's, even if unused
		errs = append(errs, r.fail(OpClose, KindClosed, "", fmt.Errorf("close local cache: %w", err)))
	}
	return r.batchError(scope{op: OpClose}, errs...)
}

// Delete removes key from the backend. Deleting an absent key is not an error. It costs one
// backend round trip; backend errors are returned whatever the failure policy, since the caller
// asked for the deletion, and so is ErrBackendUnavailable while the circuit breaker is open.
//
// A creation of the key in progress, in this process or (on a backend that stores
// conditionally, backends.ConditionalSetter: Redis, memcached, files) in any other, will not
// store over the deletion: on such a backend Delete writes a tombstone, a small entry that reads
// as absent, kept as long as a creation may run (the creation timeout plus the lock timeout).
func (r *Region) Delete(ctx context.Context, key string) error {
	b, err := r.use(key)
	if err != nil {
		return r.misuse(OpDelete, key, err)
	}
	k := r.mangle(key)
	r.engine.Forget(k) // a creation in progress must not store over the deletion
	defer b.local.evict(ctx, r, b, scope{OpDelete, key}, k)
	defer r.reads.forget(k) // later reads must not join one that began before the deletion
	err = errSkipped
	if t := r.allow(); t != skip {
		if b.condSet != nil {
			err = b.backend.Set(ctx, k, r.tombstone(k), r.cfg.tombstoneTTL())
		} else {
			err = b.backend.Delete(ctx, k)
		}
		r.settle(ctx, t, err)
	}
	if err != nil {
		err := r.backendFailed(scope{OpDelete, key}, KindWrite, err)
		r.report(ctx, err)
		return err
	}
	return nil
}

// Invalidation says how Invalidate treats the region's entries.
type Invalidation int

const (
	// Hard makes every entry created before the invalidation absent: the next call for a key
	// waits for its creation, as on a cold cache. Creations in progress are not joined by later
	// callers, and what they make counts as absent too.
	Hard Invalidation = iota + 1
	// Soft makes every entry created before the invalidation expired: one caller per key
	// regenerates it while the others are still served the old value.
	Soft
)

// Invalidate invalidates every entry of the region at once, without touching the entries: it
// records the time, and entries created before it count as absent (Hard) or expired (Soft).
// It costs a clock read and a few atomic operations, and no I/O, and applies within this
// process; with WithSharedInvalidation it also stores the time in the backend (one write, and one
// PUBLISH on Redis) for every process of the fleet, and returns the backend's error if that fails.
func (r *Region) Invalidate(ctx context.Context, mode Invalidation) error {
	if r.bound.Load() == nil && !r.closed.Load() {
		// ConfigureWith may be writing the settings (the clock stamp reads) and the engine: wait
		// for it. Once configured, both are fixed. (After Close the lock is not needed, and may be
		// held by a Close waiting for a creator that calls this.)
		r.configMu.Lock()
		defer r.configMu.Unlock()
	}
	var at *atomic.Int64
	switch mode {
	case Hard:
		at = &r.hardAt
	case Soft:
		at = &r.softAt
	default:
		return r.fail(OpInvalidate, KindUsage, "", fmt.Errorf("unknown mode %d", mode))
	}
	// A stamp after every created-at handed out so far: a value set before this call is
	// invalidated even within one clock tick, and one set after it is not.
	s := r.stamp()
	for {
		old := at.Load()
		if old >= s || at.CompareAndSwap(old, s) {
			break
		}
	}
	if mode == Hard {
		r.engine.ForgetAll()
	}
	if r.cfg.sharedPoll > 0 {
		return r.share(ctx, mode, s)
	}
	return nil
}

// tombstone returns the entry a deletion of k leaves on a backend that stores conditionally:
// newer than every creation begun before it.
func (r *Region) tombstone(k string) []byte {
	return r.seal(k, backends.Entry{Created: r.stamp(), Flags: backends.FlagDeleted})
}

// write stores raw under k: conditionally (cond, a creation's value) where the backend can, so
// that a newer entry held is not overwritten. stored is false when the backend refused it.
// Reads of k that come after it do not join a read started before it.
// While the circuit breaker is open it fails with errSkipped and does no I/O.
func (r *Region) write(ctx context.Context, b *bound, k string, raw []byte, ttl time.Duration, cond bool) (stored bool, err error) {
	defer r.reads.forget(k)
	t := r.allow()
	if t == skip {
		return false, errSkipped
	}
	if cond && b.condSet != nil {
		stored, err = b.condSet.SetIfNotNewer(ctx, k, raw, ttl)
	} else {
		stored, err = true, b.backend.Set(ctx, k, raw, ttl)
	}
	r.settle(ctx, t, err)
	return stored, err
}

// use returns the bound backend, or why there is none.
func (r *Region) use(key string) (*bound, error) {
	b := r.bound.Load()
	if b == nil {
		return nil, r.unusable()
	}
	if key == "" {
		return nil, ErrInvalidKey
	}
	return b, nil
}

// unusable is why the region has no backend: ErrClosed or ErrNotConfigured.
func (r *Region) unusable() error {
	if r.closed.Load() {
		return ErrClosed
	}
	return ErrNotConfigured
}

func (r *Region) mangle(key string) string {
	if r.cfg.mangler == nil {
		return key
	}
	return r.cfg.mangler(key)
}

func (r *Region) now() int64 {
	if r.cfg.clock != nil {
		return r.cfg.clock().UnixNano()
	}
	return r.clock.now()
}

// stamp returns the current time for a write (a created-at or an invalidation), strictly after
// every stamp before it, so that writes and invalidations in one process are totally ordered even
// within one clock tick or across a step back of the clock. It costs a clock read and a
// compare-and-swap; reads use now.
func (r *Region) stamp() int64 {
	for {
		now, last := r.now(), r.lastStamp.Load()
		if now <= last {
			now = last + 1
		}
		if r.lastStamp.CompareAndSwap(last, now) {
			return now
		}
	}
}

// expiration resolves the expiration of val under p (a call's or view's policy): the first
// level that sets one decides, p's, else the region's. 0 means never; a negative value means
// already expired.
func expiration[V any](r *Region, p *policy, val V) time.Duration {
	if d, ok := levelExpiration(p, val); ok {
		return d
	}
	d, _ := levelExpiration(&r.cfg.pol, val)
	return d
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
		return r.now()-stored(created, delta) < int64(r.jittered(exp, created))
	}
}

// stored is when an entry whose creation began at created and took delta was stored.
func stored(created, delta int64) int64 {
	if delta <= 0 || created > math.MaxInt64-delta {
		return created
	}
	return created + delta
}

// early reports whether a fresh entry should be regenerated now, before it expires: the
// probabilistic early refresh ("XFetch") of Vattani, Chierichetti and Lowenstein, "Optimal
// Probabilistic Cache Stampede Prevention" (VLDB 2015). An entry whose creation took delta is
// refreshed early when now + delta*beta*X >= expiry, with X drawn from the exponential
// distribution of mean 1 (the paper's -ln(rand())): the closer the expiry and the longer the
// creation, the likelier. Off (false) when beta is 0, the delta unknown, or the entry never
// expires.
func (r *Region) early(created, delta int64, exp time.Duration, p *policy) bool {
	beta := r.beta(p)
	if beta <= 0 || delta <= 0 || exp <= 0 {
		return false
	}
	// Relative to when it was stored, so that no sum overflows however long the expiration.
	age := float64(r.now() - stored(created, delta))
	return age+float64(delta)*beta*rand.ExpFloat64() >= float64(r.jittered(exp, created))
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
	return r.now()-stored(created, delta) < int64(r.jittered(ttl, created))
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

// report logs err, an *Error, and hands it to the error handler.
func (r *Region) report(ctx context.Context, err error) { r.reportTo(ctx, nil, err) }

// reportTo is report for an error met in the calls of the view whose counters are c (nil: the
// region's own). Calls the circuit breaker skipped are only counted; the log is rate-limited.
func (r *Region) reportTo(ctx context.Context, c *counters, err error) {
	if err = r.withoutSkipped(c, err); err == nil {
		return
	}
	r.countError(c, err)
	r.logReport(ctx, err)
	if r.cfg.onError != nil {
		r.cfg.onError(ctx, err)
	}
}
