package wrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/dogpile-go/dogpile/backends"
)

// Op names a backend operation as a Hook sees it.
type Op uint8

// The operations a Hook sees. Each is one call of the method of the same name on the wrapped
// backend (OpUnlock: of a Lock it returned). Close, StoresValues and MaxBatch do no I/O worth
// observing and reach the wrapped backend without passing through the hook.
const (
	OpGet Op = iota + 1
	OpSet
	OpDelete
	OpGetMulti
	OpSetMulti
	OpDeleteMulti
	OpTryLock
	OpTryLockMulti
	OpUnlock
	OpGetValue
	OpSetValue
	OpSetIfNotNewer
	OpSetMultiIfNotNewer
)

// numOps is one more than the largest Op.
const numOps = int(OpSetMultiIfNotNewer) + 1

var opNames = [numOps]string{
	OpGet:          "get",
	OpSet:          "set",
	OpDelete:       "delete",
	OpGetMulti:     "getmulti",
	OpSetMulti:     "setmulti",
	OpDeleteMulti:  "deletemulti",
	OpTryLock:      "trylock",
	OpTryLockMulti: "trylockmulti",
	OpUnlock:       "unlock",
	OpGetValue:     "getvalue",
	OpSetValue:     "setvalue",

	OpSetIfNotNewer:      "setifnotnewer",
	OpSetMultiIfNotNewer: "setmultiifnotnewer",
}

// String returns the operation's name in lower case ("get", "trylockmulti"), as logs show it.
func (op Op) String() string {
	if int(op) < numOps && op != 0 {
		return opNames[op]
	}
	return fmt.Sprintf("Op(%d)", uint8(op))
}

// Call describes one operation passing through a wrapper. The wrapper fills the fields that
// describe the request before it calls the Hook, and the fields that describe the result
// (Hits, Taken, and Bytes for reads) when next returns. A Call never carries values: a hook can
// see sizes, not contents, so a logging hook cannot leak cached data.
//
// A Call is valid only during the hook's call; a hook that keeps it must copy it (and Keys).
type Call struct {
	// Op is the operation.
	Op Op
	// Key is the key of a single-key operation (OpGet, OpSet, OpDelete, OpTryLock, OpGetValue,
	// OpSetValue, OpSetIfNotNewer, and OpUnlock of a lock taken by TryLock); empty otherwise.
	Key string
	// Keys are the keys of a multi-key operation (OpGetMulti, OpDeleteMulti and OpTryLockMulti
	// as the caller gave them; OpSetMulti and OpSetMultiIfNotNewer sorted; OpUnlock of a
	// TryLockMulti release: the keys whose locks it holds); nil otherwise. They belong to the
	// caller: do not modify them.
	Keys []string
	// TTL is the storage TTL of OpSet, OpSetMulti, OpSetValue, OpSetIfNotNewer and
	// OpSetMultiIfNotNewer, and the lock timeout of OpTryLock and OpTryLockMulti; zero otherwise.
	TTL time.Duration
	// Bytes is the size of the values: written (OpSet, OpSetMulti, OpSetIfNotNewer,
	// OpSetMultiIfNotNewer: set before the hook runs, whether or not they are stored) or read
	// (OpGet, OpGetMulti: set when next returns). Values of OpGetValue and OpSetValue are Go
	// values with no size; Bytes stays zero.
	Bytes int
	// Hits is the number of keys found by OpGet, OpGetValue (0 or 1) and OpGetMulti, set when
	// next returns.
	Hits int
	// Taken is the number of locks taken by OpTryLock (0 or 1) and OpTryLockMulti, set when
	// next returns.
	Taken int
	// Refused is the number of keys that OpSetIfNotNewer (0 or 1) and OpSetMultiIfNotNewer did
	// not store because a newer entry was held, set when next returns.
	Refused int
}

// Len returns how many keys the call concerns: 1 for a single-key operation, len(Keys) for the
// others.
func (c *Call) Len() int {
	if c.Keys != nil || c.Key == "" {
		return len(c.Keys)
	}
	return 1
}

// Hook is what a wrapper does around each operation. It is given the call's description and
// next, which performs the operation on the wrapped backend (with the context it is passed,
// which may be one the hook derived from ctx) and returns its error. A hook returns the error
// the caller gets. It may:
//
//   - call next once and return its error: observe (log, measure, trace);
//   - return an error without calling next: fail the call before it reaches the backend;
//   - wait before calling next: add latency;
//   - return nil without calling next: the call then reports what a backend without the entry
//     would (Get and GetValue a miss, GetMulti an empty map, TryLock and TryLockMulti nothing
//     taken, writes and Unlock success, conditional stores stored);
//   - return nil after next failed: the call reports what next got, as above (Get and GetValue
//     a miss, never nil, nil; GetMulti what it could read; locks nothing taken; conditional
//     stores stored, but for the keys the backend reported refused).
//
// Calling next a second time returns an error and does nothing. If the hook returns an error
// after next took locks (TryLock, TryLockMulti), the wrapper releases them, so a refused lock
// is never left held.
//
// A hook is called from many goroutines at once and must be safe for concurrent use.
type Hook func(ctx context.Context, call *Call, next func(context.Context) error) error

// errNextTwice is what next returns when a hook calls it a second time.
var errNextTwice = errors.New("wrap: a hook called next twice")

// errNextLate is what next returns when a hook calls it after returning.
var errNextLate = errors.New("wrap: a hook called next after it returned")

// New returns b wrapped by hook: every operation of b, including the optional capabilities
// listed below, goes through hook. A nil hook passes every call through unchanged. New does no
// I/O; it finds b's capabilities now, with backends.As, so wrappers stack (New(New(b, h1), h2)).
//
// The result implements backends.Wrapper (its Unwrap returns b) and exactly the capabilities a
// region would find on b, so that configuring a region with it changes what the hook sees and
// nothing else:
//
//   - MultiGetter, MultiSetter, MultiDeleter: always. Where b lacks one, the wrapper does what a
//     region does without it, one single-key call per key (so the hook sees OpGet calls, not an
//     OpGetMulti that never reaches b): GetMulti and SetMulti go on past a failed key and return
//     what they could read together with the errors, joined; DeleteMulti stops at the first error.
//   - BatchLimiter: always; MaxBatch is b's, or 0 (no limit), which is what a region assumes
//     without one.
//   - ValueStore: always; StoresValues is b's, or false, in which case a region goes through the
//     byte methods as it would with b. GetValue and SetValue go through the hook: on the memory
//     backend they are the calls a region makes.
//   - io.Closer: always; Close closes b if b (or what it wraps) is an io.Closer, and is nil
//     otherwise, which is what a region does without one.
//   - Locker: only if b has one, since a region that finds a Locker trusts it to exclude other
//     processes: claiming one would change the dogpile lock. Locks go through the hook, as does
//     their Unlock.
//   - MultiLocker: only if the link of b that locks has one (regions take a MultiLocker only
//     from their Locker's link). Without it a region calls TryLock once a key, through the hook.
//   - ConditionalSetter and ConditionalMultiSetter: both, only if b has a ConditionalSetter,
//     since a region that finds one trusts its stores to be atomic against other processes'
//     writes: claiming one would let creations overwrite newer writes. Conditional stores go
//     through the hook (OpSetIfNotNewer, OpSetMultiIfNotNewer). SetMultiIfNotNewer is one
//     OpSetMultiIfNotNewer call if the link of b that stores conditionally is a
//     ConditionalMultiSetter too, and otherwise what a region does without one: one
//     OpSetIfNotNewer call per item, in key order, going on past a failed key. (A b whose chain
//     has a ConditionalMultiSetter and no ConditionalSetter loses it behind the wrapper; a region
//     then stores with SetMulti, its documented fallback.)
//
// Go method sets are fixed at compile time, so New picks the result's type among six: without
// Locker, with Locker, with Locker and MultiLocker, each with or without the conditional stores
// (which live in one embedded type, so the six share every method). It returns the interface,
// not a concrete type: use backends.As to reach a capability.
//
// With a hook, each call through the wrapper costs two allocations (the call's state, Call
// included, and the next function), about 300 bytes, on top of the hook's own work; a SetMulti
// also lists and sorts its keys. With a nil hook the wrapper calls b directly and costs nothing
// more than a method call.
//
// New panics if b is nil: that is a programmer error.
func New(b backends.Backend, hook Hook) backends.Backend {
	if b == nil {
		panic("wrap: New: nil backend")
	}
	w := &backend{b: b, hook: hook}
	w.mg, _ = backends.As[backends.MultiGetter](b)
	w.ms, _ = backends.As[backends.MultiSetter](b)
	w.md, _ = backends.As[backends.MultiDeleter](b)
	w.vs, _ = backends.As[backends.ValueStore](b)
	w.bl, _ = backends.As[backends.BatchLimiter](b)
	w.closer, _ = backends.As[io.Closer](b)
	cs, conditionally := backends.As[backends.ConditionalSetter](b)
	cond := conditional{w: w, cs: cs}
	if conditionally {
		cond.cms, _ = cs.(backends.ConditionalMultiSetter)
	}
	l, ok := backends.As[backends.Locker](b)
	switch {
	case !ok && !conditionally:
		return w
	case !ok:
		return &condBackend{w, cond}
	}
	lw := &locking{backend: w, l: l}
	ml, ok := l.(backends.MultiLocker)
	switch {
	case !ok && !conditionally:
		return lw
	case !ok:
		return &condLocking{lw, cond}
	case !conditionally:
		return &multiLocking{locking: lw, ml: ml}
	}
	return &condMultiLocking{&multiLocking{locking: lw, ml: ml}, cond}
}

// backend is the wrapper of a backend without a Locker, and the base of the other two.
type backend struct {
	b    backends.Backend
	hook Hook // nil: calls pass through

	// b's capabilities, found once by New; each nil if b lacks it.
	mg     backends.MultiGetter
	ms     backends.MultiSetter
	md     backends.MultiDeleter
	vs     backends.ValueStore
	bl     backends.BatchLimiter
	closer io.Closer
}

// locking is the wrapper of a backend with a Locker and no MultiLocker on the same link.
type locking struct {
	*backend
	l backends.Locker
}

// multiLocking is the wrapper of a backend whose Locker is a MultiLocker too.
type multiLocking struct {
	*locking
	ml backends.MultiLocker
}

// conditional is the conditional stores of a wrapper whose backend has a ConditionalSetter; the
// three types below add it to the three above.
type conditional struct {
	w   *backend
	cs  backends.ConditionalSetter
	cms backends.ConditionalMultiSetter // cs as one, nil if it is not: one OpSetIfNotNewer a key
}

type (
	condBackend struct {
		*backend
		conditional
	}
	condLocking struct {
		*locking
		conditional
	}
	condMultiLocking struct {
		*multiLocking
		conditional
	}
)

var (
	_ backends.Backend      = (*backend)(nil)
	_ backends.Wrapper      = (*backend)(nil)
	_ backends.MultiGetter  = (*backend)(nil)
	_ backends.MultiSetter  = (*backend)(nil)
	_ backends.MultiDeleter = (*backend)(nil)
	_ backends.BatchLimiter = (*backend)(nil)
	_ backends.ValueStore   = (*backend)(nil)
	_ io.Closer             = (*backend)(nil)
	_ backends.Locker       = (*locking)(nil)
	_ backends.MultiLocker  = (*multiLocking)(nil)

	_ backends.ConditionalSetter      = conditional{}
	_ backends.ConditionalMultiSetter = conditional{}
	_ backends.ConditionalSetter      = (*condBackend)(nil)
	_ backends.ConditionalSetter      = (*condLocking)(nil)
	_ backends.Locker                 = (*condLocking)(nil)
	_ backends.ConditionalSetter      = (*condMultiLocking)(nil)
	_ backends.MultiLocker            = (*condMultiLocking)(nil)
)

// call is one operation in flight: its description (what the hook sees), its arguments, and its
// results. Each operation allocates one, and the method value of next, whatever it carries.
type call struct {
	Call
	mu       sync.Mutex                               // guards called and returned: a hook may call next from another goroutine
	called   bool                                     // next ran
	returned bool                                     // the hook returned: next may no longer start
	running  sync.WaitGroup                           // a next in progress
	do       func(ctx context.Context, c *call) error // the operation on the wrapped backend
	w        *backend

	// Arguments, as the operation needs them.
	value  []byte
	items  map[string][]byte
	item   backends.Item
	locker backends.Locker
	ml     backends.MultiLocker
	lock   backends.Lock // of OpUnlock
	cs     backends.ConditionalSetter
	cms    backends.ConditionalMultiSetter

	// Results, set by do.
	v       []byte
	m       map[string][]byte
	found   bool
	taken   []bool
	held    backends.Lock // the lock or release do got, nil if none
	refused []string      // of OpSetMultiIfNotNewer
}

// next runs the operation once; a second call does nothing and fails, and so does a call made
// after the hook returned.
func (c *call) next(ctx context.Context) error {
	c.mu.Lock()
	switch {
	case c.called:
		c.mu.Unlock()
		return errNextTwice
	case c.returned:
		c.mu.Unlock()
		return errNextLate
	}
	c.called = true
	c.running.Add(1)
	c.mu.Unlock()
	defer c.running.Done()
	return c.do(ctx, c)
}

// run calls the hook around the operation (c.w.hook is not nil here). A next the hook started
// and left running (on a goroutine of its own, say, to return early on a timeout) is waited for
// before run returns: the wrapper reads its results (and releases the locks it took, when the
// hook fails the call) only once it has ended, and never leaves a lock held by nobody.
func (c *call) run(ctx context.Context) error {
	err := c.w.hook(ctx, &c.Call, c.next)
	c.mu.Lock()
	c.returned = true
	c.mu.Unlock()
	c.running.Wait()
	return err
}

// Unwrap returns the wrapped backend.
func (w *backend) Unwrap() backends.Backend { return w.b }

// Get reads key through the hook.
func (w *backend) Get(ctx context.Context, key string) ([]byte, error) {
	if w.hook == nil {
		return w.b.Get(ctx, key)
	}
	c := &call{Call: Call{Op: OpGet, Key: key}, do: doGet, w: w}
	if err := c.run(ctx); err != nil {
		return nil, err
	}
	if !c.found {
		return nil, fmt.Errorf("wrap: get %q: %w", key, backends.ErrNotFound)
	}
	return c.v, nil
}

func doGet(ctx context.Context, c *call) error {
	v, err := c.w.b.Get(ctx, c.Key)
	if err == nil {
		c.v, c.found = v, true
		c.Hits, c.Bytes = 1, len(v)
	}
	return err
}

// Set writes key through the hook.
func (w *backend) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if w.hook == nil {
		return w.b.Set(ctx, key, value, ttl)
	}
	c := &call{Call: Call{Op: OpSet, Key: key, TTL: ttl, Bytes: len(value)}, do: doSet, w: w, value: value}
	return c.run(ctx)
}

func doSet(ctx context.Context, c *call) error { return c.w.b.Set(ctx, c.Key, c.value, c.TTL) }

// Delete removes key through the hook.
func (w *backend) Delete(ctx context.Context, key string) error {
	if w.hook == nil {
		return w.b.Delete(ctx, key)
	}
	c := &call{Call: Call{Op: OpDelete, Key: key}, do: doDelete, w: w}
	return c.run(ctx)
}

func doDelete(ctx context.Context, c *call) error { return c.w.b.Delete(ctx, c.Key) }

// GetMulti reads keys through the hook: one OpGetMulti call if the wrapped backend is a
// MultiGetter, one OpGet call per key otherwise. An empty keys slice does no I/O and does not
// reach the hook.
func (w *backend) GetMulti(ctx context.Context, keys []string) (map[string][]byte, error) {
	if len(keys) == 0 {
		return map[string][]byte{}, nil
	}
	if w.mg == nil {
		m := make(map[string][]byte, len(keys))
		var errs []error
		for _, k := range keys {
			if _, done := m[k]; done {
				continue
			}
			v, err := w.Get(ctx, k)
			switch {
			case err == nil:
				m[k] = v
			case !errors.Is(err, backends.ErrNotFound):
				errs = append(errs, err)
			}
		}
		return m, errors.Join(errs...)
	}
	if w.hook == nil {
		return w.mg.GetMulti(ctx, keys)
	}
	c := &call{Call: Call{Op: OpGetMulti, Keys: keys}, do: doGetMulti, w: w}
	err := c.run(ctx)
	if c.m == nil {
		return map[string][]byte{}, err // the hook skipped next, or the backend gave no map
	}
	return c.m, err
}

func doGetMulti(ctx context.Context, c *call) error {
	m, err := c.w.mg.GetMulti(ctx, c.Keys)
	c.m, c.Hits = m, len(m)
	for _, v := range m {
		c.Bytes += len(v)
	}
	return err
}

// SetMulti writes items through the hook: one OpSetMulti call if the wrapped backend is a
// MultiSetter, one OpSet call per item (in key order) otherwise. Empty items do no I/O and do
// not reach the hook.
func (w *backend) SetMulti(ctx context.Context, items map[string][]byte, ttl time.Duration) error {
	if len(items) == 0 {
		return nil
	}
	if w.ms != nil && w.hook == nil {
		return w.ms.SetMulti(ctx, items, ttl)
	}
	keys := make([]string, 0, len(items))
	size := 0
	for k, v := range items {
		keys = append(keys, k)
		size += len(v)
	}
	slices.Sort(keys) // a fixed order, so that a seeded hook decides the same way each run
	if w.ms == nil {
		var errs []error
		for _, k := range keys {
			if err := w.Set(ctx, k, items[k], ttl); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	c := &call{Call: Call{Op: OpSetMulti, Keys: keys, TTL: ttl, Bytes: size}, do: doSetMulti, w: w, items: items}
	return c.run(ctx)
}

func doSetMulti(ctx context.Context, c *call) error { return c.w.ms.SetMulti(ctx, c.items, c.TTL) }

// DeleteMulti removes keys through the hook: one OpDeleteMulti call if the wrapped backend is a
// MultiDeleter, one OpDelete call per key otherwise, stopping at the first error. An empty keys
// slice does no I/O and does not reach the hook.
func (w *backend) DeleteMulti(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	if w.md == nil {
		for _, k := range keys {
			if err := w.Delete(ctx, k); err != nil {
				return err
			}
		}
		return nil
	}
	if w.hook == nil {
		return w.md.DeleteMulti(ctx, keys)
	}
	c := &call{Call: Call{Op: OpDeleteMulti, Keys: keys}, do: doDeleteMulti, w: w}
	return c.run(ctx)
}

func doDeleteMulti(ctx context.Context, c *call) error { return c.w.md.DeleteMulti(ctx, c.Keys) }

// MaxBatch returns the wrapped backend's limit, or 0 (no limit) if it has none.
func (w *backend) MaxBatch() int {
	if w.bl == nil {
		return 0
	}
	return w.bl.MaxBatch()
}

// StoresValues reports whether the wrapped backend keeps Go values: false if it is not a
// ValueStore.
func (w *backend) StoresValues() bool { return w.vs != nil && w.vs.StoresValues() }

// GetValue reads the item under key through the hook. If the wrapped backend is not a
// ValueStore, it reports a miss without calling the hook (a region never calls it then, since
// StoresValues is false).
func (w *backend) GetValue(ctx context.Context, key string) (backends.Item, error) {
	if w.vs == nil {
		return backends.Item{}, fmt.Errorf("wrap: getvalue %q: the wrapped backend keeps no values: %w", key, backends.ErrNotFound)
	}
	if w.hook == nil {
		return w.vs.GetValue(ctx, key)
	}
	c := &call{Call: Call{Op: OpGetValue, Key: key}, do: doGetValue, w: w}
	if err := c.run(ctx); err != nil {
		return backends.Item{}, err
	}
	if !c.found {
		return backends.Item{}, fmt.Errorf("wrap: getvalue %q: %w", key, backends.ErrNotFound)
	}
	return c.item, nil
}

func doGetValue(ctx context.Context, c *call) error {
	item, err := c.w.vs.GetValue(ctx, c.Key)
	if err == nil {
		c.item, c.found, c.Hits = item, true, 1
	}
	return err
}

// SetValue stores item under key through the hook. If the wrapped backend is not a ValueStore,
// it fails with an error wrapping errors.ErrUnsupported without calling the hook.
func (w *backend) SetValue(ctx context.Context, key string, item backends.Item, ttl time.Duration) error {
	if w.vs == nil {
		return fmt.Errorf("wrap: setvalue %q: the wrapped backend keeps no values: %w", key, errors.ErrUnsupported)
	}
	if w.hook == nil {
		return w.vs.SetValue(ctx, key, item, ttl)
	}
	c := &call{Call: Call{Op: OpSetValue, Key: key, TTL: ttl}, do: doSetValue, w: w, item: item}
	return c.run(ctx)
}

func doSetValue(ctx context.Context, c *call) error {
	return c.w.vs.SetValue(ctx, c.Key, c.item, c.TTL)
}

// Close closes the wrapped backend if it is an io.Closer (directly or through wrappers), without
// calling the hook; it returns nil otherwise.
func (w *backend) Close() error {
	if w.closer == nil {
		return nil
	}
	return w.closer.Close()
}

// TryLock tries the wrapped backend's lock through the hook; the Lock it returns unlocks through
// the hook too.
func (w *locking) TryLock(ctx context.Context, key string, timeout time.Duration) (backends.Lock, bool, error) {
	if w.hook == nil {
		return w.l.TryLock(ctx, key, timeout)
	}
	c := &call{Call: Call{Op: OpTryLock, Key: key, TTL: timeout}, do: doTryLock, w: w.backend, locker: w.l}
	err := c.run(ctx)
	if err != nil {
		if c.held != nil {
			release(ctx, c.held) // the hook refused a lock the backend gave
		}
		return nil, false, err
	}
	if c.held == nil {
		return nil, false, nil
	}
	return &wrappedLock{w: w.backend, l: c.held, key: key}, true, nil
}

func doTryLock(ctx context.Context, c *call) error {
	l, ok, err := c.locker.TryLock(ctx, c.Key, c.TTL)
	if ok && l != nil {
		c.held, c.Taken = l, 1
	}
	return err
}

// TryLockMulti tries the wrapped backend's locks through the hook, in one OpTryLockMulti call;
// its release unlocks through the hook too. An empty keys slice does no I/O and does not reach
// the hook.
func (w *multiLocking) TryLockMulti(ctx context.Context, keys []string, timeout time.Duration) ([]bool, backends.Lock, error) {
	if w.hook == nil {
		return w.ml.TryLockMulti(ctx, keys, timeout)
	}
	if len(keys) == 0 {
		return []bool{}, noLock{}, nil
	}
	c := &call{Call: Call{Op: OpTryLockMulti, Keys: keys, TTL: timeout}, do: doTryLockMulti, w: w.backend, ml: w.ml}
	err := c.run(ctx)
	if err != nil || c.taken == nil {
		if c.held != nil {
			// The hook refused, or the backend failed having taken some: release them rather than
			// leave them held until their timeout.
			release(ctx, c.held)
		}
		if err != nil {
			return nil, nil, err
		}
		return make([]bool, len(keys)), noLock{}, nil
	}
	held := make([]string, 0, c.Taken)
	for i, ok := range c.taken {
		if ok {
			held = append(held, keys[i])
		}
	}
	return c.taken, &wrappedLock{w: w.backend, l: c.held, keys: held}, nil
}

func doTryLockMulti(ctx context.Context, c *call) error {
	taken, rel, err := c.ml.TryLockMulti(ctx, c.Keys, c.TTL)
	c.held = rel
	if err == nil && rel != nil && len(taken) == len(c.Keys) {
		c.taken = taken
		for _, ok := range taken {
			if ok {
				c.Taken++
			}
		}
	}
	return err
}

// release unlocks l, which the caller will not get, on a context that outlives ctx's
// cancellation (an unlock after a cancelled lock attempt must still happen) but not by long.
func release(ctx context.Context, l backends.Lock) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = l.Unlock(uctx)
}

// wrappedLock is a lock of the wrapped backend whose Unlock goes through the hook.
type wrappedLock struct {
	w    *backend
	l    backends.Lock
	key  string   // of TryLock
	keys []string // of TryLockMulti: those taken
}

// Unlock releases the lock through the hook. A hook that fails the call without calling next
// leaves the lock held until its timeout, as a lost Unlock would.
func (l *wrappedLock) Unlock(ctx context.Context) error {
	c := &call{Call: Call{Op: OpUnlock, Key: l.key, Keys: l.keys}, do: doUnlock, w: l.w, lock: l.l}
	return c.run(ctx)
}

func doUnlock(ctx context.Context, c *call) error { return c.lock.Unlock(ctx) }

// noLock is the release of a TryLockMulti that took nothing.
type noLock struct{}

func (noLock) Unlock(context.Context) error { return nil }

// SetIfNotNewer stores value under key conditionally through the hook, in one OpSetIfNotNewer
// call.
func (c conditional) SetIfNotNewer(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if c.w.hook == nil {
		return c.cs.SetIfNotNewer(ctx, key, value, ttl)
	}
	k := &call{Call: Call{Op: OpSetIfNotNewer, Key: key, TTL: ttl, Bytes: len(value)}, do: doSetIfNotNewer, w: c.w, value: value, cs: c.cs}
	if err := k.run(ctx); err != nil {
		return false, err
	}
	return k.Refused == 0, nil
}

func doSetIfNotNewer(ctx context.Context, c *call) error {
	stored, err := c.cs.SetIfNotNewer(ctx, c.Key, c.value, c.TTL)
	if err == nil && !stored {
		c.Refused = 1
	}
	return err
}

// SetMultiIfNotNewer stores items conditionally through the hook: one OpSetMultiIfNotNewer call
// if the wrapped backend's ConditionalSetter is a ConditionalMultiSetter, one OpSetIfNotNewer
// call per item (in key order) otherwise, going on past a failed one and returning the errors
// joined. Empty items do no I/O and do not reach the hook.
func (c conditional) SetMultiIfNotNewer(ctx context.Context, items map[string][]byte, ttl time.Duration) ([]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	if c.cms != nil && c.w.hook == nil {
		return c.cms.SetMultiIfNotNewer(ctx, items, ttl)
	}
	keys := make([]string, 0, len(items))
	size := 0
	for k, v := range items {
		keys = append(keys, k)
		size += len(v)
	}
	slices.Sort(keys) // a fixed order, so that a seeded hook decides the same way each run
	if c.cms == nil {
		var refused []string
		var errs []error
		for _, k := range keys {
			stored, err := c.SetIfNotNewer(ctx, k, items[k], ttl)
			switch {
			case err != nil:
				errs = append(errs, err)
			case !stored:
				refused = append(refused, k)
			}
		}
		return refused, errors.Join(errs...)
	}
	k := &call{Call: Call{Op: OpSetMultiIfNotNewer, Keys: keys, TTL: ttl, Bytes: size}, do: doSetMultiIfNotNewer, w: c.w, items: items, cms: c.cms}
	err := k.run(ctx)
	return k.refused, err
}

func doSetMultiIfNotNewer(ctx context.Context, c *call) error {
	refused, err := c.cms.SetMultiIfNotNewer(ctx, c.items, c.TTL)
	c.refused, c.Refused = refused, len(refused)
	return err
}
