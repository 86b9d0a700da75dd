// Package counting counts, for tests, what a region costs: the calls it makes to its backend
// (Wrap), each a round trip on a network backend, per operation, and what reaches the server
// (RedisClient, MemcachedClient). The wrapper forwards every capability of the backend it wraps
// (multi-key operations, locks), so that regions call them through it and it sees them.
package counting

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/dogpile-go/dogpile/backends"
)

// Backend wraps a backend and records its calls. Use Wrap.
type Backend struct {
	b backends.Backend

	mu    sync.Mutex
	calls map[string][]int // operation -> the key count of each call
}

// Wrap returns a counting wrapper of b. The capabilities b lacks are answered as a region would
// do without them, and counted as what reaches b: a GetMulti of a backend without one is counted
// as a "get" per key, a TryLockMulti as a "trylock" per key. The wrapper always offers a Locker
// and conditional stores: wrap backends that have them. A ValueStore is not forwarded and is found past the wrapper (its
// calls are not counted).
func Wrap(b backends.Backend) *Backend {
	return &Backend{b: b, calls: map[string][]int{}}
}

// Unwrap returns the wrapped backend.
func (c *Backend) Unwrap() backends.Backend { return c.b }

func (c *Backend) record(op string, n int) {
	c.mu.Lock()
	c.calls[op] = append(c.calls[op], n)
	c.mu.Unlock()
}

// Take returns the calls recorded since the last Take, by operation ("get", "set", "delete",
// "getmulti", "setmulti", "deletemulti", "setifnotnewer", "setmultiifnotnewer", "trylock",
// "trylockmulti", "unlock"): the number of keys of each call, in order.
func (c *Backend) Take() map[string][]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	calls := c.calls
	c.calls = map[string][]int{}
	return calls
}

// Get forwards to the wrapped backend.
func (c *Backend) Get(ctx context.Context, key string) ([]byte, error) {
	c.record("get", 1)
	return c.b.Get(ctx, key)
}

// Set forwards to the wrapped backend.
func (c *Backend) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	c.record("set", 1)
	return c.b.Set(ctx, key, value, ttl)
}

// Delete forwards to the wrapped backend.
func (c *Backend) Delete(ctx context.Context, key string) error {
	c.record("delete", 1)
	return c.b.Delete(ctx, key)
}

// GetMulti forwards to the wrapped backend.
func (c *Backend) GetMulti(ctx context.Context, keys []string) (map[string][]byte, error) {
	if mg, ok := backends.As[backends.MultiGetter](c.b); ok {
		c.record("getmulti", len(keys))
		return mg.GetMulti(ctx, keys)
	}
	m := map[string][]byte{}
	for _, k := range keys {
		v, err := c.Get(ctx, k)
		switch {
		case err == nil:
			m[k] = v
		case !errors.Is(err, backends.ErrNotFound):
			return m, err
		}
	}
	return m, nil
}

// SetMulti forwards to the wrapped backend.
func (c *Backend) SetMulti(ctx context.Context, items map[string][]byte, ttl time.Duration) error {
	if ms, ok := backends.As[backends.MultiSetter](c.b); ok {
		c.record("setmulti", len(items))
		return ms.SetMulti(ctx, items, ttl)
	}
	for k, v := range items {
		if err := c.Set(ctx, k, v, ttl); err != nil {
			return err
		}
	}
	return nil
}

// DeleteMulti forwards to the wrapped backend.
func (c *Backend) DeleteMulti(ctx context.Context, keys []string) error {
	if md, ok := backends.As[backends.MultiDeleter](c.b); ok {
		c.record("deletemulti", len(keys))
		return md.DeleteMulti(ctx, keys)
	}
	for _, k := range keys {
		if err := c.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// TryLock forwards to the wrapped backend; its lock's Unlock is counted too.
func (c *Backend) TryLock(ctx context.Context, key string, timeout time.Duration) (backends.Lock, bool, error) {
	c.record("trylock", 1)
	l, ok := backends.As[backends.Locker](c.b)
	if !ok {
		return nil, true, nil
	}
	lock, taken, err := l.TryLock(ctx, key, timeout)
	if lock != nil {
		lock = &countedLock{c: c, l: lock, n: 1}
	}
	return lock, taken, err
}

// TryLockMulti forwards to the wrapped backend, or calls TryLock once a key if it has no
// MultiLocker.
func (c *Backend) TryLockMulti(ctx context.Context, keys []string, timeout time.Duration) ([]bool, backends.Lock, error) {
	if ml, ok := backends.As[backends.MultiLocker](c.b); ok {
		c.record("trylockmulti", len(keys))
		taken, release, err := ml.TryLockMulti(ctx, keys, timeout)
		if release != nil {
			n := 0
			for _, t := range taken {
				if t {
					n++
				}
			}
			release = &countedLock{c: c, l: release, n: n}
		}
		return taken, release, err
	}
	taken := make([]bool, len(keys))
	var held []backends.Lock
	for i, k := range keys {
		lock, ok, err := c.TryLock(ctx, k, timeout)
		if err != nil {
			return nil, nil, err
		}
		taken[i] = ok
		if lock != nil {
			held = append(held, lock)
		}
	}
	return taken, locks(held), nil
}

// SetIfNotNewer forwards to the wrapped backend, or stores with Set (counted as a "set") if it
// has no ConditionalSetter.
func (c *Backend) SetIfNotNewer(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	cs, ok := backends.As[backends.ConditionalSetter](c.b)
	if !ok {
		return true, c.Set(ctx, key, value, ttl)
	}
	c.record("setifnotnewer", 1)
	return cs.SetIfNotNewer(ctx, key, value, ttl)
}

// SetMultiIfNotNewer forwards to the wrapped backend, or calls SetIfNotNewer once a key if it has
// no ConditionalMultiSetter.
func (c *Backend) SetMultiIfNotNewer(ctx context.Context, items map[string][]byte, ttl time.Duration) ([]string, error) {
	if cm, ok := backends.As[backends.ConditionalMultiSetter](c.b); ok {
		c.record("setmultiifnotnewer", len(items))
		return cm.SetMultiIfNotNewer(ctx, items, ttl)
	}
	var refused []string
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(items)) {
		stored, err := c.SetIfNotNewer(ctx, k, items[k], ttl)
		if err != nil {
			errs = append(errs, err)
		} else if !stored {
			refused = append(refused, k)
		}
	}
	return refused, errors.Join(errs...)
}

// MaxBatch is the wrapped backend's, or 0.
func (c *Backend) MaxBatch() int {
	if bl, ok := backends.As[backends.BatchLimiter](c.b); ok {
		return bl.MaxBatch()
	}
	return 0
}

type countedLock struct {
	c *Backend
	l backends.Lock
	n int
}

func (l *countedLock) Unlock(ctx context.Context) error {
	l.c.record("unlock", l.n)
	return l.l.Unlock(ctx)
}

type locks []backends.Lock

func (ls locks) Unlock(ctx context.Context) error {
	for _, l := range slices.Backward(ls) {
		if err := l.Unlock(ctx); err != nil {
			return err
		}
	}
	return nil
}
