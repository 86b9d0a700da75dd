package region

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/internal/dogpile"
	"github.com/dogpile-go/dogpile/keys"
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
	// lastStamp is the last time handed out by stamp, written by every creation: on a cache line
	// of its own, away from what every hit reads (bound, softAt, hardAt, cfg).
	_         [64]byte
	lastStamp atomic.Int64
	_         [56]byte

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
	// mem is values when it is the memory backend, whose reads do not retain the key: the hit
	// path reads it with a key it borrows from its caller (see View.hit).
	mem    *memory.Backend
	locker backends.Locker // nil: the dogpile lock holds within this process only

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

	// waker announces the releases of this process's creations and wakes the callers waiting
	// for other processes' (see WithLockPoll); nil unless the backend locks and broadcasts.
	waker *waker
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
	r.cfg.lockPollMin, r.cfg.lockPollMax = DefaultLockPollMin, DefaultLockPollMax
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
	r.engine.PollMin, r.engine.PollMax = r.cfg.lockPollMin, r.cfg.lockPollMax
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
		bd.mem, _ = vs.(*memory.Backend)
	}
	if l, ok := backends.As[backends.Locker](b); ok {
		bd.locker = l
		// Only from the link that locks: a wrapper with locks of its own (found first) must see
		// batches' locks too, not have them taken past it on the backend it wraps.
		bd.multiLock, _ = l.(backends.MultiLocker)
		if n, ok := backends.As[backends.Notifier](b); ok {
			bd.waker = newWaker(r, n)
			r.engine.Waker = bd.waker // before the bound is published, as every engine setting
		}
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

// mangleBuf is the buffer on the stack that the hit path mangles keys into.
type mangleBuf [64]byte

// mangleInto is mangle for a key the caller lends (see View.hit): without a mangler the key
// itself, else the mangled key, which the mangler may not keep; a custom mangler, which could,
// is given a copy.
func (r *Region) mangleInto(buf *mangleBuf, key string) string {
	switch {
	case r.cfg.mangler == nil:
		return key
	case r.cfg.sha1:
		b := keys.AppendSHA1(buf[:0], key)
		return unsafe.String(unsafe.SliceData(b), len(b))
	}
	return r.cfg.mangler(strings.Clone(key))
}

// noescape returns s, hidden from the compiler's escape analysis, so that a string built on the
// caller's stack can be handed to a call that the compiler cannot see through (an interface, a
// hash of otter's) but that does not keep it. Only for such calls: a string that outlives the
// stack frame it points into is memory corruption.
func noescape(s string) string {
	p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	return unsafe.String(*(**byte)(unsafe.Pointer(&p)), len(s))
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
	s, _ := r.stampRead()
	return s
}

// stampRead is stamp, with the clock reading it was made from (which may be earlier).
func (r *Region) stampRead() (stamp, read int64) {
	read = r.now()
	for {
		last := r.lastStamp.Load()
		stamp = max(read, last+1)
		if r.lastStamp.CompareAndSwap(last, stamp) {
			return stamp, read
		}
	}
}
