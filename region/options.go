package region

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"time"

	"github.com/dogpile-go/dogpile/keys"
)

// Option configures a Region at New.
type Option func(*config) error

// config is a region's settings: fixed at New, read without locks afterwards.
type config struct {
	expiration   time.Duration // 0: never expires
	expirationFn func() time.Duration
	storageTTL   time.Duration
	lockTimeout  time.Duration
	// creationTimeout bounds a creation (WithCreationTimeout); unset (creationSet false), it is
	// the lock timeout.
	creationTimeout time.Duration
	creationSet     bool
	signer          *signer // WithSignedEntries; nil: entries are not signed
	mangler         keys.Mangler
	codec           Codec
	shouldCache     func(any) bool
	background      int
	failClosed      bool
	logger          *slog.Logger
	onError         func(ctx context.Context, err error)
	clock           func() time.Time

	// Freshness policies; each may be overridden per function or call.
	early        float64       // XFetch's beta; 0: off
	staleIfError time.Duration // 0: off
	negErr       error         // nil: no negative caching
	negTTL       time.Duration
	jitter       float64 // region only

	sharedPoll time.Duration // WithSharedInvalidation; 0: invalidations apply in this process only
	l1         LocalCache    // WithLocalCache
	l1MaxAge   time.Duration

	breakerMin, breakerMax time.Duration // WithCircuitBreaker; 0: off
}

// DefaultLockTimeout is how long a distributed lock lives unless WithLockTimeout says otherwise:
// a process that dies while creating a value blocks its key for at most this long.
const DefaultLockTimeout = 30 * time.Second

// WithExpiration sets how long a value stays fresh after its creation. After that it is expired:
// still served to every caller but one while that one regenerates it. d == 0 means values never
// expire (the default); a negative d is an error.
//
// Functions (memo.WithExpiration, NewView with Expiration) and single calls (Expiration) may
// override it.
func WithExpiration(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("WithExpiration(%v): negative duration", d)
		}
		c.expiration = d
		return nil
	}
}

// WithExpirationFunc makes the expiration computed on every read: f returns the current
// expiration (0: never expires; negative: already expired). Use it for expirations that change at
// run time, read from configuration, for instance. f must be cheap and safe for concurrent use;
// it runs on the hit path. It cannot be combined with WithExpiration.
func WithExpirationFunc(f func() time.Duration) Option {
	return func(c *config) error {
		if f == nil {
			return fmt.Errorf("WithExpirationFunc: nil function")
		}
		c.expirationFn = f
		return nil
	}
}

// WithStorageTTL sets the time-to-live the region asks the backend to keep each entry for. It is
// independent of the expiration and must be longer than a fixed WithExpiration, so that expired
// values stay available to serve while one caller regenerates them. 0 (the default) asks the
// backend to keep entries until they are deleted or evicted.
func WithStorageTTL(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("WithStorageTTL(%v): negative duration", d)
		}
		c.storageTTL = d
		return nil
	}
}

// WithLockTimeout sets how long a distributed lock lives (DefaultLockTimeout by default). A
// creation that runs longer may be started a second time by another process; a holder that
// dies blocks its key for at most d. It has no effect on backends without a distributed lock.
func WithLockTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("WithLockTimeout(%v): must be positive", d)
		}
		c.lockTimeout = d
		return nil
	}
}

// WithCreationTimeout bounds how long one creation (a call of the creator, or of a batch
// creator) may run: after d its context is cancelled, the distributed lock it holds is released,
// the callers waiting for it get an error that errors.Is ErrCreationTimeout, and the next call
// for the key may create again. A creator that ignores its context goes on running on its own
// goroutine (Close waits for it), and what it returns then is dropped.
//
// By default a creation is bounded by the lock timeout (WithLockTimeout, DefaultLockTimeout), so
// that it never outlives its lock: set a longer d for creations that take longer and are held
// by the lock watchdog. d == 0 turns the bound off: a creator that never returns then blocks the
// callers of its key in this process that have no deadline, and, with the watchdog, the key in
// every process. A negative d is an error. Each creation costs one goroutine more while the bound
// is on.
func WithCreationTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("WithCreationTimeout(%v): negative duration", d)
		}
		c.creationTimeout, c.creationSet = d, true
		return nil
	}
}

// creation is the creation timeout in force: the one set, or the lock timeout.
func (c *config) creation() time.Duration {
	if c.creationSet {
		return c.creationTimeout
	}
	return c.lockTimeout
}

// tombstoneTTL is how long a deletion's tombstone stays in a backend that stores conditionally:
// as long as a creation that began before it may still store (its timeout, and the lock timeout
// for the write that follows), or an hour when creations are not bounded.
func (c *config) tombstoneTTL() time.Duration {
	if d := c.creation(); d > 0 {
		return d + c.lockTimeout
	}
	return time.Hour
}

// WithKeyMangler sets a function applied to every key before it reaches the backend: keys.SHA1
// to bound key length, keys.Prefix to share a backend between applications, keys.Chain of several.
func WithKeyMangler(m keys.Mangler) Option {
	return func(c *config) error {
		c.mangler = m
		return nil
	}
}

// WithCodec sets how values are encoded for byte backends (Redis, Memcached, files). JSON by
// default. Backends that keep Go values (the memory backend) do not use it.
func WithCodec(codec Codec) Option {
	return func(c *config) error {
		if codec == nil {
			return fmt.Errorf("WithCodec: nil codec")
		}
		c.codec = codec
		return nil
	}
}

// WithShouldCache sets a predicate on created values: a value for which f returns false is
// returned to its callers but not stored, so the next call creates again. Functions and calls
// may add their own typed predicate (ShouldCache); a value is stored only if every one agrees.
func WithShouldCache(f func(v any) bool) Option {
	return func(c *config) error {
		c.shouldCache = f
		return nil
	}
}

// WithBackgroundRefresh turns on stale-while-revalidate: the caller that wins the lock of an
// expired key returns the old value at once, like every other caller, and the value is
// regenerated on a goroutine of a pool of at most workers. When every worker is busy the refresh
// is skipped and a later caller tries again. Close stops the pool.
func WithBackgroundRefresh(workers int) Option {
	return func(c *config) error {
		if workers <= 0 {
			return fmt.Errorf("WithBackgroundRefresh(%d): need at least one worker", workers)
		}
		c.background = workers
		return nil
	}
}

// FailurePolicy says what a region does when its backend fails.
type FailurePolicy int

const (
	// FailOpen (the default) keeps the application up when the cache is down: a failed read counts
	// as a miss, a failed write or lock is reported and the creator's value is still returned.
	FailOpen FailurePolicy = iota
	// FailClosed returns backend errors to the caller.
	FailClosed
)

// WithFailurePolicy sets what happens when the backend fails; FailOpen by default. Either way the
// error is reported to the logger and the error handler.
func WithFailurePolicy(p FailurePolicy) Option {
	return func(c *config) error {
		if p != FailOpen && p != FailClosed {
			return fmt.Errorf("WithFailurePolicy(%d): unknown policy", p)
		}
		c.failClosed = p == FailClosed
		return nil
	}
}

// WithLogger sets the logger for the region's reports (backend errors, malformed entries, skipped
// refreshes, the circuit breaker opening and closing); slog.Default() by default. The region
// never prints. Lines are rate-limited: one per kind of error per ReportInterval.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("WithLogger: nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithErrorHandler sets a hook called with every error the region reports (besides logging it):
// backend failures, malformed entries, values that failed to encode, background refreshes that
// failed. It sees every error, also those whose log line the rate limit left out
// (ReportInterval), but not the calls the circuit breaker skipped (WithCircuitBreaker; counted in
// Stats.Skipped). It runs on the goroutine that met the error (a caller's, a creation's or a
// background worker's), must be safe for concurrent use, and should return quickly.
func WithErrorHandler(f func(ctx context.Context, err error)) Option {
	return func(c *config) error {
		c.onError = f
		return nil
	}
}

// WithClock replaces time.Now for creation times and expiration, for tests of time-dependent
// behaviour. Inside testing/synctest bubbles the default clock already works.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("WithClock: nil function")
		}
		c.clock = now
		return nil
	}
}

// WithEarlyRefresh turns on probabilistic early refresh ("XFetch", from Vattani, Chierichetti and
// Lowenstein, "Optimal Probabilistic Cache Stampede Prevention", VLDB 2015): a fresh value is
// regenerated before it expires, by one caller, with a probability that grows as its expiry
// nears and with how long its last creation took (recorded with every value). beta scales it:
// 1 is the paper's optimum, larger refreshes earlier, 0 turns it off (the default). With
// WithBackgroundRefresh the early regeneration runs in the background, so a hot key is
// refreshed before it ever expires and no caller waits; without it, the one caller that
// regenerates waits for the creation while the others are served the current value. The
// regeneration takes the key's dogpile lock like any other: one at a time, one per fleet where
// the backend can lock. It costs a random draw on every hit of a value with an expiration. beta
// must be a non-negative number.
func WithEarlyRefresh(beta float64) Option {
	return func(c *config) error {
		if !(beta >= 0) || math.IsInf(beta, 1) {
			return fmt.Errorf("WithEarlyRefresh(%v): beta must be a non-negative number", beta)
		}
		c.early = beta
		return nil
	}
}

// WithStaleIfError serves an expired value instead of failing when its regeneration fails: the
// caller that regenerated gets the old value and the creator's error goes to the logger and the
// error handler, as long as the value has been expired for at most max. A value older than that,
// or an absent one, gets the error as before. 0 turns it off (the default). Functions and calls
// may override it (StaleIfError).
func WithStaleIfError(max time.Duration) Option {
	return func(c *config) error {
		if max < 0 {
			return fmt.Errorf("WithStaleIfError(%v): negative duration", max)
		}
		c.staleIfError = max
		return nil
	}
}

// WithNegativeCaching caches "not found": when a creator fails with an error that errors.Is
// target (say, sql.ErrNoRows or an ErrUserNotFound of your own), the region stores that the key
// has no value, for ttl, and calls in that time get an error that errors.Is target without
// calling the creator. A batch creator (GetOrCreateMulti, memo.Multi) that leaves a key out of its
// result stores the same "not found" for the key, and batches see the key absent. ttl is
// usually much shorter than the expiration; Set, Delete, Refresh and invalidation replace a
// cached "not found" as they replace values. Functions and calls may override it
// (NegativeCaching). target must not be nil and ttl must be positive.
func WithNegativeCaching(target error, ttl time.Duration) Option {
	return func(c *config) error {
		if target == nil || ttl <= 0 {
			return fmt.Errorf("WithNegativeCaching(%v, %v): need an error and a positive duration", target, ttl)
		}
		c.negErr, c.negTTL = target, ttl
		return nil
	}
}

// WithJitter spreads the lifetimes of entries so that entries written together do not expire
// together: each entry's expiration (and negative-caching time) is shortened by up to fraction
// of itself, by an amount drawn from its creation time (the same on every read of the entry),
// and each write's storage TTL is lengthened by up to fraction. fraction is in [0, 1); 0 (the
// default) turns it off. 0.1 spreads a 10-minute expiration over 9 to 10 minutes.
func WithJitter(fraction float64) Option {
	return func(c *config) error {
		if !(fraction >= 0 && fraction < 1) {
			return fmt.Errorf("WithJitter(%v): the fraction must be in [0, 1)", fraction)
		}
		c.jitter = fraction
		return nil
	}
}

// validate checks the settings that only make sense together.
func (c *config) validate() error {
	if c.expiration > 0 && c.expirationFn != nil {
		return fmt.Errorf("WithExpiration and WithExpirationFunc: choose one")
	}
	if c.storageTTL > 0 && c.expiration > 0 && c.storageTTL <= c.expiration {
		return fmt.Errorf("WithStorageTTL(%v) must be longer than WithExpiration(%v): expired values must stay stored to be served while one caller regenerates them", c.storageTTL, c.expiration)
	}
	return nil
}

// CallOption changes the policy of one function (NewView, memo options) or one call.
type CallOption func(*policy)

// policy is the resolved per-function or per-call settings. A View keeps one; a call with options
// copies it.
type policy struct {
	expSet      bool
	exp         time.Duration
	expFn       func() time.Duration
	ignoreExp   bool
	shouldCache []func(any) bool
	// cacheTypes are the V of each ShouldCache, checked against the view's at NewView.
	cacheTypes []reflect.Type

	earlySet bool
	early    float64
	staleSet bool
	stale    time.Duration
	negSet   bool
	negErr   error
	negTTL   time.Duration
}

// EarlyRefresh overrides the region's probabilistic early refresh (WithEarlyRefresh) for a
// function or a call; 0 turns it off. A negative or infinite beta counts as 0.
func EarlyRefresh(beta float64) CallOption {
	return func(p *policy) {
		if !(beta >= 0) || math.IsInf(beta, 1) {
			beta = 0
		}
		p.earlySet, p.early = true, beta
	}
}

// StaleIfError overrides the region's stale-if-error (WithStaleIfError) for a function or a
// call; 0 (or a negative max) turns it off.
func StaleIfError(max time.Duration) CallOption {
	return func(p *policy) { p.staleSet, p.stale = true, max }
}

// NegativeCaching overrides the region's negative caching (WithNegativeCaching) for a function
// or a call. A nil target or a ttl that is not positive turns it off.
func NegativeCaching(target error, ttl time.Duration) CallOption {
	return func(p *policy) {
		if target == nil || ttl <= 0 {
			target, ttl = nil, 0
		}
		p.negSet, p.negErr, p.negTTL = true, target, ttl
	}
}

// Expiration overrides the region's expiration for a function or a call: d > 0 expires values d
// after their creation, d == 0 never expires them, and d < 0 makes them expired already (every
// call regenerates, while the others are served the old value).
func Expiration(d time.Duration) CallOption {
	return func(p *policy) {
		p.expSet, p.exp, p.expFn = true, d, nil
	}
}

// ExpirationFunc overrides the region's expiration with one computed on every read, with the
// meanings of Expiration's argument.
func ExpirationFunc(f func() time.Duration) CallOption {
	return func(p *policy) {
		if f != nil {
			p.expSet, p.expFn = true, f
		}
	}
}

// IgnoreExpiration makes Get return expired values too (never hard-invalidated ones). It has no
// effect on GetOrCreate.
func IgnoreExpiration() CallOption {
	return func(p *policy) { p.ignoreExp = true }
}

// ShouldCache adds a typed predicate on created values: a value for which f returns false is
// returned but not stored. V is inferred from f and must be the value type of the view: NewView
// (and so memo's constructors) panics otherwise; a per-call ShouldCache of another type is never
// consulted.
func ShouldCache[V any](f func(V) bool) CallOption {
	return func(p *policy) {
		if f == nil {
			return
		}
		p.shouldCache = append(p.shouldCache[:len(p.shouldCache):len(p.shouldCache)], func(v any) bool {
			tv, ok := v.(V)
			if !ok && v != nil { // not a V: another type's predicate
				return true
			}
			return f(tv) // a nil v is the zero value of an interface V
		})
		p.cacheTypes = append(p.cacheTypes[:len(p.cacheTypes):len(p.cacheTypes)], reflect.TypeFor[V]())
	}
}

// with returns a copy of p with opts applied; p itself is not changed.
func (p *policy) with(opts []CallOption) *policy {
	q := *p
	for _, o := range opts {
		if o != nil {
			o(&q)
		}
	}
	return &q
}
