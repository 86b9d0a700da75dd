// Package memory is an in-process backend: a concurrent map bounded by entry count with
// W-TinyLFU eviction and a storage TTL per entry, built on github.com/maypok86/otter/v2.
//
// It keeps the region's values as Go values (it is a backends.ValueStore), so a cache hit costs
// neither decoding nor an allocation. The values are shared between callers; WithCopy turns that
// off for regions whose callers mutate what they get.
//
//	b := memory.New(memory.WithMaxEntries(100_000))
//	defer b.Close()
//
// Importing the package registers it under the name "memory" for backends.Open:
//
//	memory://?max_entries=100000&copy=true
//
// Query parameters: max_entries (a count, 0 or absent for no bound) and copy (a boolean, as
// strconv.ParseBool reads it). Any other parameter, a host or a path is an error.
package memory

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/maypok86/otter/v2"
)

var (
	_ backends.Backend      = (*Backend)(nil)
	_ backends.ValueStore   = (*Backend)(nil)
	_ backends.MultiGetter  = (*Backend)(nil)
	_ backends.MultiSetter  = (*Backend)(nil)
	_ backends.MultiDeleter = (*Backend)(nil)
)

// errNotFound is what every miss returns: wrapped once here, so that a miss costs no allocation.
var errNotFound = fmt.Errorf("memory: %w", backends.ErrNotFound)

// noExpiry is the storage TTL of an entry set with ttl <= 0: otter treats it as never.
const noExpiry = time.Duration(math.MaxInt64)

// entry is what the cache holds under a key: an Item from SetValue (its Delta packed), or bytes
// from Set kept in value as a rawBytes; and the storage TTL that the expiry calculator reads
// back. It is kept to 32 bytes: otter copies it out on every hit, and a 64-byte entry (bytes in a
// field of their own, and a flag) made GetValue about 20 ns slower; 40 bytes (an Item with its
// int64 Delta, and the TTL) cost about 15 ns more than 32 on a hit.
type entry struct {
	value   any
	created int64
	ttl     uint32 // the storage TTL in tenths of a second, rounded up; ttlNever: none
	delta   uint32 // Item.Delta in microseconds, rounded up, at most about 71 minutes
}

// ttlNever is the ttl of an entry kept until it is deleted or evicted.
const ttlNever = math.MaxUint32

// ttlUnit is the unit of entry.ttl: the clock's step, so nothing is lost to the rounding.
const ttlUnit = clockStep

func newEntry(value any, created, delta int64, ttl time.Duration) entry {
	e := entry{value: value, created: created, ttl: ttlNever}
	if ttl != noExpiry {
		// Rounded up, and one step more: the TTL runs from the coarse clock's last tick, which
		// may be up to a step before the write, and the backend keeps an entry at least its
		// TTL. Beyond 13 years, never.
		if units := (ttl+ttlUnit-1)/ttlUnit + 1; units < ttlNever {
			e.ttl = uint32(units)
		}
	}
	if delta > 0 {
		e.delta = uint32(min((delta+999)/1000, math.MaxUint32))
	}
	return e
}

func (e *entry) item() backends.Item {
	return backends.Item{Value: e.value, Created: e.created, Delta: int64(e.delta) * 1000}
}

// rawBytes marks bytes stored by Set. No other package can make one, so a value stored by
// SetValue is never mistaken for it.
type rawBytes []byte

// raw returns the bytes of an entry stored by Set, and whether it was.
func (e *entry) raw() ([]byte, bool) {
	r, ok := e.value.(rawBytes)
	return r, ok
}

// Backend is an in-process backend. Create it with New; the zero value is not usable. It is safe
// for concurrent use: the otter cache it owns does all the synchronization.
//
// A key holds either bytes (Set) or a value (SetValue), whichever was written last. Reading it
// the other way is a miss: Get on a key set by SetValue, and GetValue on a key set by Set, return
// an error wrapping backends.ErrNotFound. Delete removes either.
//
// The ctx arguments are not used: no call does I/O or waits for anything but the cache's
// short internal locks.
type Backend struct {
	cache      *otter.Cache[string, entry] // owns its own locking
	clock      *otter.CoarseClock          // the cache's time source; Close stops it
	copyValues bool                        // set by WithCopy; read-only after New
}

// Option configures New.
type Option func(*config)

type config struct {
	maxEntries int
	copyValues bool
}

// WithMaxEntries bounds the backend to about n entries. Past the bound, otter's W-TinyLFU policy
// evicts the entries least likely to be read again; the count may briefly exceed n while eviction
// catches up. n = 0, the default, means no bound. A negative n makes New panic.
func WithMaxEntries(n int) Option {
	return func(c *config) { c.maxEntries = n }
}

// WithCopy makes StoresValues report false, so that a region stores encoded bytes through Set and
// decodes a fresh value on every Get, with its codec. Use it when callers may mutate the values
// they get: without it they would mutate the cached value every other caller sees. It costs an
// encode per write and a decode plus a copy per read.
func WithCopy() Option {
	return func(c *config) { c.copyValues = true }
}

// New returns an empty backend configured by opts.
//
// The backend starts two goroutines: otter's periodic expiry clean-up and the clock that times
// storage TTLs, to within 100ms. Close stops both; they also stop by themselves some time after
// the backend becomes unreachable.
//
// New panics if WithMaxEntries was given a negative count: that is a programmer error, and
// configuration read at run time goes through backends.Open, which returns an error instead.
func New(opts ...Option) *Backend {
	var c config
	for _, opt := range opts {
		opt(&c)
	}
	if c.maxEntries < 0 {
		panic(fmt.Sprintf("memory: New: WithMaxEntries(%d): the count must not be negative", c.maxEntries))
	}
	clock := otter.NewCoarseClock(clockStep)
	cache := otter.Must(&otter.Options[string, entry]{
		MaximumSize:      c.maxEntries,
		ExpiryCalculator: otter.ExpiryWritingFunc(entryTTL),
		Clock:            clock,
	})
	return &Backend{cache: cache, clock: clock, copyValues: c.copyValues}
}

// clockStep is how often the backend's clock reads the time. Storage TTLs are kept to within
// about this much, which is plenty for a bound on storage (the region's expiration, which decides
// freshness, reads its own precise clock). A precise clock read on every hit made GetValue about
// 1.8 times slower; the coarse clock costs a goroutine that wakes 10 times a second.
const clockStep = 100 * time.Millisecond

// entryTTL is the expiry calculator: the entry's own TTL, reset on every write.
func entryTTL(e otter.Entry[string, entry]) time.Duration {
	if e.Value.ttl == ttlNever {
		return noExpiry
	}
	return time.Duration(e.Value.ttl) * ttlUnit
}

// storageTTL maps the contract's ttl (<= 0: keep) to otter's.
func storageTTL(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return noExpiry
	}
	return ttl
}

// Get returns a copy of the bytes stored under key by Set or SetMulti, or an error wrapping
// backends.ErrNotFound. A hit allocates the copy; a miss allocates nothing.
func (b *Backend) Get(_ context.Context, key string) ([]byte, error) {
	e, ok := b.cache.GetIfPresent(key)
	if !ok {
		return nil, errNotFound
	}
	raw, ok := e.raw()
	if !ok {
		return nil, errNotFound
	}
	return cloneBytes(raw), nil
}

// Set stores a copy of value under key, replacing what the key held. A ttl > 0 removes the entry
// that long after this write; ttl <= 0 keeps it until it is deleted or evicted. It allocates the
// copy, its 24-byte slice header and otter's node.
func (b *Backend) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	b.cache.Set(key, rawEntry(value, storageTTL(ttl)))
	return nil
}

func rawEntry(value []byte, ttl time.Duration) entry {
	return newEntry(rawBytes(cloneBytes(value)), 0, 0, ttl)
}

// Clear removes every entry. Regions call it on a local cache (region.WithLocalCache) whose
// invalidation messages may have been lost.
func (b *Backend) Clear() { b.cache.InvalidateAll() }

// Delete removes key, whether it holds bytes or a value. It never fails.
func (b *Backend) Delete(_ context.Context, key string) error {
	b.cache.Invalidate(key)
	return nil
}

// StoresValues reports whether regions should use GetValue and SetValue: true unless the backend
// was created WithCopy.
func (b *Backend) StoresValues() bool {
	return !b.copyValues
}

// GetValue returns the item stored under key by SetValue, or an error wrapping
// backends.ErrNotFound. It returns the item as stored, without copying item.Value, and does not
// allocate: a hit costs one otter lookup. It keeps no reference to key once it returns: regions
// read with keys that live on their caller's stack.
func (b *Backend) GetValue(_ context.Context, key string) (backends.Item, error) {
	e, ok := b.cache.GetIfPresent(key)
	if !ok {
		return backends.Item{}, errNotFound
	}
	if _, isRaw := e.raw(); isRaw {
		return backends.Item{}, errNotFound
	}
	return e.item(), nil
}

// SetValue stores item under key as it is, without copying item.Value, with the ttl rule of Set.
// It allocates only otter's node.
func (b *Backend) SetValue(_ context.Context, key string, item backends.Item, ttl time.Duration) error {
	b.cache.Set(key, newEntry(item.Value, item.Created, item.Delta, storageTTL(ttl)))
	return nil
}

// GetMulti returns copies of the bytes stored under the keys that hold bytes; other keys are
// absent from the map. It allocates the map and one copy per hit, and never fails.
func (b *Backend) GetMulti(_ context.Context, keys []string) (map[string][]byte, error) {
	m := make(map[string][]byte, len(keys))
	for _, key := range keys {
		if e, ok := b.cache.GetIfPresent(key); ok {
			if raw, ok := e.raw(); ok {
				m[key] = cloneBytes(raw)
			}
		}
	}
	return m, nil
}

// SetMulti stores a copy of every value with the ttl rule of Set. The writes are not atomic as a
// group: a concurrent reader may see some of them before others. It never fails.
func (b *Backend) SetMulti(_ context.Context, items map[string][]byte, ttl time.Duration) error {
	ttl = storageTTL(ttl)
	for key, value := range items {
		b.cache.Set(key, rawEntry(value, ttl))
	}
	return nil
}

// DeleteMulti removes every key. It never fails.
func (b *Backend) DeleteMulti(_ context.Context, keys []string) error {
	for _, key := range keys {
		b.cache.Invalidate(key)
	}
	return nil
}

// Len returns the approximate number of entries: it may count entries that expired or are about
// to be evicted but were not removed yet. It is cheap (an atomic counter read).
func (b *Backend) Len() int {
	return b.cache.EstimatedSize()
}

// Close stops the backend's clean-up and clock goroutines and waits for them. It always returns
// nil and may be called more than once. The backend keeps working after Close, with the precise
// clock (reads cost about 25ns more): entries stay readable and expired ones invisible, but they
// are removed only as writes happen.
func (b *Backend) Close() error {
	b.cache.StopAllGoroutines()
	b.clock.Stop()
	return nil
}

// cloneBytes returns a copy of p that is never nil, so that an empty value is not mistaken for
// the absence of one.
func cloneBytes(p []byte) []byte {
	c := make([]byte, len(p))
	copy(c, p)
	return c
}
