package region

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/dogpile-go/dogpile/internal/extopt"
	"github.com/dogpile-go/dogpile/keys"
)

// Option is one setting of a cache. Every option is made by one constructor, whose value is
// accepted at each level where the setting makes sense:
//
//   - the region: New, and ConfigureWith for settings that come from the environment;
//   - a view: NewView, and a memo handle (memo.Func and the others), which is a view;
//   - one call: the opts of a View's methods, and of a memo handle's With.
//
// The policy settings (WithExpiration, WithExpirationFunc, WithExpirationFor, WithEarlyRefresh,
// WithStaleIfError, WithNegativeCaching, WithShouldCache, WithCreationTimeout) are accepted at
// every level. The most specific level that sets one decides: a call's over its view's (or
// handle's), a view's over its region's. WithIgnoreExpiration is for views and calls, WithName
// for views, WithBypass for calls; the other settings (a codec, a logger, a lock timeout...) are
// the region's alone.
//
// An option with a bad value (a negative stale-if-error, a nil function), or given at a level
// that does not accept it, has an error that wraps ErrInvalidOption, and its text names the
// option. The same error reaches the program at every level: New, NewView and memo's
// constructors panic with it (they run once, in code, as the program starts: a bad option is a
// programmer error); ConfigureWith returns it; a call given it returns it without doing anything
// else. The zero Option does nothing.
type Option struct {
	name string // the constructor, for errors
	at   levels // where it is accepted
	err  error  // a bad value: reported wherever the option is used
	cfg  func(*config) error
	pol  func(*policy)
	ext  any // a setting of a package built on views (internal/extopt)

	viewName string // WithName's
}

// levels is a set of the levels an Option may be given at.
type levels uint8

const (
	atRegion levels = 1 << iota
	atView
	atCall
	atPolicy = atRegion | atView | atCall
)

// ErrInvalidOption is wrapped by the error of an option with a bad value, or given at a level
// that does not accept it (see Option).
var ErrInvalidOption = errors.New("region: invalid option")

// invalid returns an error that wraps ErrInvalidOption with a message.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidOption, fmt.Sprintf(format, args...))
}

// regionOption is a setting of the region alone; f validates and applies it.
func regionOption(name string, f func(*config) error) Option {
	return Option{name: name, at: atRegion, cfg: f}
}

// policyOption is a setting accepted at every level in at; err, if not nil, is its bad value.
func policyOption(name string, at levels, err error, f func(*policy)) Option {
	return Option{name: name, at: at, err: err, pol: f}
}

func init() {
	extopt.New = func(name string, v any) any { return Option{name: name, ext: v} }
	extopt.Value = func(o any) (any, bool) {
		opt, ok := o.(Option)
		if !ok || opt.ext == nil {
			return nil, false
		}
		return opt.ext, true
	}
}

// check returns the option's error at level at: its bad value, or that it is not accepted there.
func (o Option) check(at levels) error {
	switch {
	case o.name == "":
		return nil // the zero Option
	case o.err != nil:
		return o.err
	case o.at&at != 0:
		return nil
	case o.ext != nil:
		return invalid("%s is a setting of a memoized function: give it to the handle's constructor", o.name)
	case o.at == atRegion:
		return invalid("%s is a setting of the region: give it to region.New", o.name)
	case at == atRegion && o.at == atView:
		return invalid("%s is a setting of views and handles, not of a region", o.name)
	case at == atRegion:
		return invalid("%s is a setting of views and calls, not of a region", o.name)
	case at == atView:
		return invalid("%s is a setting of one call, not of a view or handle", o.name)
	}
	return invalid("%s is a setting of a view or handle, not of one call", o.name)
}

// config is a region's settings: fixed at New (and ConfigureWith), read without locks afterwards.
type config struct {
	pol         policy // the region's level of the policy settings
	storageTTL  time.Duration
	lockTimeout time.Duration
	// locks: the backend has a distributed lock (backends.Locker). Set when the region is
	// configured.
	locks      bool
	signer     *signer // WithSignedEntries; nil: entries are not signed
	mangler    keys.Mangler
	sha1       bool // mangler is keys.SHA1, which the hit path applies with keys.AppendSHA1
	codec      Codec
	background int
	failClosed bool
	logger     *slog.Logger
	onError    func(ctx context.Context, err error)
	clock      func() time.Time
	jitter     float64

	sharedPoll time.Duration // WithSharedInvalidation; 0: invalidations apply in this process only
	local      *local        // WithLocalCache; nil: none
	// local_cache and local_max_age (see WithLocalCache): the tier Configure makes (makeLocal).
	localSize int
	localAge  time.Duration

	breakerMin, breakerMax time.Duration // WithCircuitBreaker; 0: off

	lockPollMin, lockPollMax time.Duration // WithLockPoll
}

// apply applies o to the region's settings, as New and ConfigureWith do.
func (c *config) apply(o Option) error {
	if err := o.check(atRegion); err != nil {
		return err
	}
	switch {
	case o.cfg != nil:
		if err := o.cfg(c); err != nil {
			return invalid("%s: %v", o.name, err)
		}
	case o.pol != nil:
		c.pol = *c.pol.with1(o)
	}
	return nil
}

// DefaultLockTimeout is how long a distributed lock lives unless WithLockTimeout says otherwise:
// a process that dies while creating a value blocks its key for at most this long.
const DefaultLockTimeout = 30 * time.Second

// creation is the creation timeout in force at the region level: the one set or, on a backend
// with a distributed lock, the lock timeout (none on a backend without one).
func (c *config) creation() time.Duration {
	switch {
	case c.pol.creationSet:
		return c.pol.creation
	case c.locks:
		return c.lockTimeout
	}
	return 0
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

// WithStorageTTL sets the time-to-live the region asks the backend to keep each entry for. It is
// independent of the expiration and must be longer than a fixed WithExpiration, so that expired
// values stay available to serve while one caller regenerates them. 0 (the default) asks the
// backend to keep entries until they are deleted or evicted. A region setting.
func WithStorageTTL(d time.Duration) Option {
	return regionOption("WithStorageTTL", func(c *config) error {
		if d < 0 {
			return fmt.Errorf("WithStorageTTL(%v): negative duration", d)
		}
		c.storageTTL = d
		return nil
	})
}

// WithLockTimeout sets how long a distributed lock lives (DefaultLockTimeout by default). A
// creation that runs longer may be started a second time by another process; a holder that
// dies blocks its key for at most d. It has no effect on backends without a distributed lock.
// A region setting.
func WithLockTimeout(d time.Duration) Option {
	return regionOption("WithLockTimeout", func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("WithLockTimeout(%v): must be positive", d)
		}
		c.lockTimeout = d
		return nil
	})
}

// WithKeyMangler sets a function applied to every key before it reaches the backend: keys.SHA1
// to bound key length, keys.Prefix to share a backend between applications, keys.Chain of
// several. A region setting.
//
// keys.SHA1 given as it is (not wrapped in a Chain or a closure) is applied on the hit path
// without allocating: the region mangles into a buffer on its stack with keys.AppendSHA1.
func WithKeyMangler(m keys.Mangler) Option {
	return regionOption("WithKeyMangler", func(c *config) error {
		c.mangler = m
		c.sha1 = m != nil && reflect.ValueOf(m).Pointer() == reflect.ValueOf(keys.Mangler(keys.SHA1)).Pointer()
		return nil
	})
}

// WithCodec sets how values are encoded for byte backends (Redis, Memcached, files). JSON by
// default. Backends that keep Go values (the memory backend) do not use it. A region setting.
func WithCodec(codec Codec) Option {
	return regionOption("WithCodec", func(c *config) error {
		if codec == nil {
			return fmt.Errorf("WithCodec(nil): need a codec")
		}
		c.codec = codec
		return nil
	})
}

// WithBackgroundRefresh turns on stale-while-revalidate: the caller that wins the lock of an
// expired key returns the old value at once, like every other caller, and the value is
// regenerated on a goroutine of a pool of at most workers. When every worker is busy the refresh
// is skipped and a later caller tries again. Close stops the pool. A region setting.
func WithBackgroundRefresh(workers int) Option {
	return regionOption("WithBackgroundRefresh", func(c *config) error {
		if workers <= 0 {
			return fmt.Errorf("WithBackgroundRefresh(%d): need at least one worker", workers)
		}
		c.background = workers
		return nil
	})
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
// error is reported to the logger and the error handler. A region setting.
func WithFailurePolicy(p FailurePolicy) Option {
	return regionOption("WithFailurePolicy", func(c *config) error {
		if p != FailOpen && p != FailClosed {
			return fmt.Errorf("WithFailurePolicy(%d): unknown policy", p)
		}
		c.failClosed = p == FailClosed
		return nil
	})
}

// WithLogger sets the logger for the region's reports (backend errors, malformed entries, skipped
// refreshes, the circuit breaker opening and closing); slog.Default() by default. The region
// never prints. Lines are rate-limited: one per kind of error per ReportInterval. A region
// setting.
func WithLogger(l *slog.Logger) Option {
	return regionOption("WithLogger", func(c *config) error {
		if l == nil {
			return fmt.Errorf("WithLogger(nil): need a logger")
		}
		c.logger = l
		return nil
	})
}

// WithErrorHandler sets a hook called with every error the region reports (besides logging it):
// backend failures, malformed entries, values that failed to encode, background refreshes that
// failed. err is a *Error, which says the operation, the kind, the key and the region. It sees every error, also those whose log line the rate limit left out
// (ReportInterval), but not the calls the circuit breaker skipped (WithCircuitBreaker; counted in
// Stats.Skipped). It runs on the goroutine that met the error (a caller's, a creation's or a
// background worker's), must be safe for concurrent use, and should return quickly. A region
// setting.
func WithErrorHandler(f func(ctx context.Context, err error)) Option {
	return regionOption("WithErrorHandler", func(c *config) error {
		c.onError = f
		return nil
	})
}

// WithClock replaces time.Now for creation times and expiration, for tests of time-dependent
// behaviour. Inside testing/synctest bubbles the default clock already works. A region setting.
func WithClock(now func() time.Time) Option {
	return regionOption("WithClock", func(c *config) error {
		if now == nil {
			return fmt.Errorf("WithClock(nil): need a function")
		}
		c.clock = now
		return nil
	})
}

// WithJitter spreads the lifetimes of entries so that entries written together do not expire
// together: each entry's expiration (and negative-caching time) is shortened by up to fraction
// of itself, by an amount drawn from its creation time (the same on every read of the entry),
// and each write's storage TTL is lengthened by up to fraction. fraction is in [0, 1); 0 (the
// default) turns it off. 0.1 spreads a 10-minute expiration over 9 to 10 minutes. A region
// setting.
func WithJitter(fraction float64) Option {
	return regionOption("WithJitter", func(c *config) error {
		if !(fraction >= 0 && fraction < 1) {
			return fmt.Errorf("WithJitter(%v): the fraction must be in [0, 1)", fraction)
		}
		c.jitter = fraction
		return nil
	})
}

// validate checks the settings that only make sense together.
func (c *config) validate() error {
	if p := c.pol; p.expSet && p.expFn == nil && p.expFor == nil && c.storageTTL > 0 && p.exp > 0 && c.storageTTL <= p.exp {
		return invalid("WithStorageTTL(%v) must be longer than WithExpiration(%v): expired values must stay stored to be served while one caller regenerates them", c.storageTTL, p.exp)
	}
	return nil
}
