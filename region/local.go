package region

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memory"
)

// LocalCache is an in-process cache of Go values that a region can put in front of its backend
// (WithLocalCache): the memory backend.
type LocalCache interface {
	backends.ValueStore
	Delete(ctx context.Context, key string) error
	// Clear removes every entry.
	Clear()
}

// WithLocalCache puts l1, an in-process cache of decoded values (memory.New(), bounded with
// memory.WithMaxEntries), in front of the region's backend, when the backend does not keep Go
// values itself (Redis, Memcached, files). A read that finds a fresh value in l1 is answered from
// it, with no round trip and no decoding (GetOrCreate and memo Calls; a View's Get still reads
// the backend); any other read goes to the backend, and what it finds
// is kept in l1. Writes and deletes go to both. l1 keeps an entry at most maxAge.
//
// Other processes' writes reach l1 in two ways: on a backend that can broadcast
// (backends.Notifier: Redis pub/sub) every Set, Delete and creation announces its keys (one
// PUBLISH more a write), and the
// other processes drop them from their l1 at once; a process whose subscription dropped clears
// its whole l1 when it is back, since it may have missed some. Otherwise, and as a bound in any
// case, an entry is served at most maxAge after it was read. Invalidate applies to l1 entries as
// to the backend's. Batch reads (GetMulti, GetOrCreateMulti) go to the backend and do not use l1.
// Only regions with a local cache announce their writes: give every process of the fleet the
// option, or the others learn of the writes of those without it only as their entries age out.
//
// While the backend is down, l1 carries the process, within the same bound. Under FailOpen, a
// read the backend failed (or the circuit breaker skipped) takes what l1 holds for the key as
// the backend's answer: a fresh value is served, without calling the creator; an expired one is
// the old value of a regeneration, served at once to this process's other callers while one
// regenerates, as an expired value read from the backend is. A value created while the backend
// cannot be reached (its write failed with a connection error, or was skipped) is kept in l1,
// so that the creator runs once a key per expiration or maxAge, whichever ends first, rather than
// on every call. This is what l1 already promises: an entry served at most maxAge after this
// process got it, other processes' writes arriving by announcement, which a backend that is
// down does not carry either; and a process whose subscription dropped clears l1 once the
// backend is back. An expired value is not served in place of calling the creator: only the
// region's expiration says how old a value may be, and a backend being down says nothing of the
// creator's own sources. Under FailClosed the backend's failure is returned, as without l1.
//
// l1 must keep Go values (StoresValues) and maxAge must be positive. Over a backend that keeps
// Go values itself (the memory backend) l1 would never be used: Configure refuses it.
//
// Configuration documents, environment variables and URLs set the local tier with two region
// parameters (see ConfigureURL): local_cache=10000 makes l1 a memory backend of at most that
// many entries (memory.WithMaxEntries), and local_max_age=30s sets maxAge. They go together,
// or with a local cache given in code: local_cache replaces its l1 (keeping its maxAge unless
// local_max_age is given), local_max_age changes its maxAge. Either alone, without a local cache
// in code, is an error: there is no good default for how late a process may see another's
// write.
func WithLocalCache(l1 LocalCache, maxAge time.Duration) Option {
	return regionOption("WithLocalCache", func(c *config) error {
		if l1 == nil || !l1.StoresValues() {
			return fmt.Errorf("WithLocalCache: need an in-process cache that keeps Go values (memory.New(), without WithCopy)")
		}
		if maxAge <= 0 {
			return fmt.Errorf("WithLocalCache(%v): maxAge must be positive", maxAge)
		}
		c.local = newLocal(l1, maxAge)
		c.localSize, c.localAge = 0, 0
		return nil
	})
}

// localCacheParam reads local_cache, the most entries of a local tier of the memory backend.
func localCacheParam(name, value string) (Option, error) {
	n, err := strconv.Atoi(value)
	if err != nil || n <= 0 {
		return Option{}, fmt.Errorf("parameter %s: %q: want a number of entries > 0", name, value)
	}
	return regionOption(name, func(c *config) error { c.localSize = n; return nil }), nil
}

// localMaxAgeParam reads local_max_age, the max age of the local tier.
func localMaxAgeParam(name, value string) (Option, error) {
	d, err := time.ParseDuration(value)
	if err != nil || d <= 0 {
		return Option{}, fmt.Errorf("parameter %s: %q: want a duration > 0 (say 30s)", name, value)
	}
	return regionOption(name, func(c *config) error { c.localAge = d; return nil }), nil
}

// validateLocal checks the local tier's settings against each other and against b, the backend
// to be configured (nil: not known yet).
func (c *config) validateLocal(b backends.Backend) error {
	switch {
	case c.local == nil && c.localSize > 0 && c.localAge == 0:
		return invalid("local_cache without local_max_age: say how long the local tier keeps an entry (local_max_age=30s)")
	case c.local == nil && c.localSize == 0 && c.localAge > 0:
		return invalid("local_max_age without local_cache: say how many entries the local tier keeps (local_cache=10000)")
	case b == nil || c.local == nil && c.localSize == 0:
		return nil
	}
	if vs, ok := backends.As[backends.ValueStore](b); ok && vs.StoresValues() {
		name := "WithLocalCache"
		if c.localSize > 0 {
			name = "local_cache"
		}
		return invalid("%s over a backend that keeps Go values (%T): the local tier would never be used", name, vs)
	}
	return nil
}

// makeLocal gives c the local tier its parameters describe (local_cache, local_max_age), if any:
// a memory backend, or the tier given in code with another max age. A tier given in code that
// local_cache replaces is closed. Configure calls it once the settings are valid: the memory
// backend starts goroutines, which the region's Close stops.
func (c *config) makeLocal() {
	switch {
	case c.localSize > 0:
		age := c.localAge
		if age == 0 {
			age = c.local.maxAge
		}
		_ = c.local.close()
		c.local = newLocal(memory.New(memory.WithMaxEntries(c.localSize)), age)
	case c.localAge > 0:
		c.local = newLocal(c.local.cache, c.localAge)
	}
	c.localSize, c.localAge = 0, 0
}

// local is the region's local tier (WithLocalCache): decoded values kept in this process in
// front of a backend that keeps bytes. A region without one (no option, or a backend that keeps
// Go values itself) holds a nil *local, whose methods find nothing and do nothing, so the read
// and write paths never ask whether there is one. On the hit path that costs a nil check per
// method, inlined.
type local struct {
	cache  LocalCache
	maxAge time.Duration // how long the tier keeps an entry
	guard  fillGuard
}

func newLocal(cache LocalCache, maxAge time.Duration) *local {
	c := &local{cache: cache, maxAge: maxAge}
	c.guard.seed = maphash.MakeSeed()
	return c
}

// get returns the entry the tier holds under k: found is false for a miss, and always without
// a tier; err is a failure of the cache other than a miss.
func (c *local) get(ctx context.Context, k string) (it backends.Item, found bool, err error) {
	if c == nil {
		return
	}
	return c.lookup(ctx, k)
}

func (c *local) lookup(ctx context.Context, k string) (backends.Item, bool, error) {
	it, err := c.cache.GetValue(ctx, k)
	switch {
	case err == nil:
		return it, true, nil
	case isNotFound(err):
		return backends.Item{}, false, nil
	}
	return backends.Item{}, false, err
}

// epoch returns the key's stripe's count of evictions, taken before a backend read or write (see
// fill and write); 0 without a tier.
func (c *local) epoch(k string) uint64 {
	if c == nil {
		return 0
	}
	return c.guard.epoch(k)
}

// epochs is epoch for each of keys; nil without a tier.
func (c *local) epochs(keys []string) []uint64 {
	if c == nil {
		return nil
	}
	since := make([]uint64, 0, len(keys))
	for _, k := range keys {
		since = append(since, c.guard.epoch(k))
	}
	return since
}

// fill keeps item() under k after a backend read that found it, unless the key's stripe was
// evicted since epoch since. item is called only when there is a tier: making the tier's item
// boxes the value, which a region without one must not pay for on its hit path.
func (c *local) fill(ctx context.Context, k string, since uint64, item func() backends.Item) {
	if c == nil {
		return
	}
	c.guard.fill(ctx, c.cache, k, item, c.maxAge, since)
}

// write keeps item() under k after this process wrote it to the backend (see fillGuard.write).
func (c *local) write(ctx context.Context, k string, since uint64, item func() backends.Item) {
	if c == nil {
		return
	}
	c.guard.write(ctx, c.cache, k, item, c.maxAge, since)
}

// writeEach is write for a batch written after since (epochs): item(i) is what keys[i] holds
// now, or ok is false when it is not known to be stored, and the key is dropped instead.
func (c *local) writeEach(ctx context.Context, keys []string, since []uint64, item func(i int) (it backends.Item, ok bool)) {
	if c == nil {
		return
	}
	for i, k := range keys {
		if it, ok := item(i); ok {
			c.guard.write(ctx, c.cache, k, func() backends.Item { return it }, c.maxAge, since[i])
		} else {
			c.guard.drop(ctx, c.cache, k)
		}
	}
}

// localItem is what the local tier keeps for e.
func (e *loaded[V]) localItem() backends.Item {
	it := backends.Item{Value: any(e.val), Created: e.created, Delta: e.delta}
	if e.neg {
		it.Value = negativeMark{}
	}
	return it
}

// drop removes k from this process's tier, and refuses the fills of reads in flight.
func (c *local) drop(ctx context.Context, k string) {
	if c == nil {
		return
	}
	c.guard.drop(ctx, c.cache, k)
}

// clear removes every entry, and refuses the fills of every read in flight.
func (c *local) clear() {
	if c == nil {
		return
	}
	c.guard.clear(c.cache)
}

// evict removes keys from the tier after a delete, and announces them (see announce).
func (c *local) evict(ctx context.Context, r *Region, b *bound, s scope, keys ...string) {
	if c == nil {
		return
	}
	for _, k := range keys {
		c.guard.drop(ctx, c.cache, k)
	}
	c.announce(ctx, r, b, s, keys...)
}

// close closes the cache given to WithLocalCache if it is an io.Closer.
func (c *local) close() error {
	if c == nil {
		return nil
	}
	if cl, ok := c.cache.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// follows reports whether the tier follows other processes' writes: the region's watcher
// subscribes to their announcements for it (see WithLocalCache).
func (c *local) follows() bool { return c != nil }

// announce tells the other processes that keys changed, so that they drop them from their local
// tiers: "k:<origin>:<JSON array of keys>" on the region's channel (see sharedChannel); s is the
// call that changed them, for errors. Only a region with a tier announces; without a Notifier
// it does nothing, and the others' entries age out.
func (c *local) announce(ctx context.Context, r *Region, b *bound, s scope, keys ...string) {
	if c == nil {
		return
	}
	n, ok := backends.As[backends.Notifier](b.backend)
	if !ok || len(keys) == 0 {
		return
	}
	raw := make([][]byte, len(keys))
	for i, k := range keys {
		raw[i] = []byte(k) // base64 in JSON: keys need not be UTF-8
	}
	js, _ := json.Marshal(raw)
	msg := append([]byte("k:"+r.origin+":"), js...)
	if err := n.Publish(ctx, r.sharedChannel(), msg); err != nil {
		r.report(ctx, r.failAt(s, KindWrite, fmt.Errorf("announce the write to other processes: %w", err)))
	}
}

// announced drops the keys another process announced, "<origin>:<JSON array>" (the part of the
// message after "k:"; this region's own are skipped).
func (c *local) announced(r *Region, msg string) {
	if c == nil {
		return
	}
	origin, js, ok := strings.Cut(msg, ":")
	if !ok || origin == r.origin {
		return
	}
	var keys [][]byte
	if json.Unmarshal([]byte(js), &keys) != nil {
		return
	}
	for _, k := range keys {
		// Another process wrote the key: a creation in progress here began before that
		// write, so it must not store over it, and the local copy is out of date.
		r.engine.Forget(string(k))
		r.reads.forget(string(k))
		c.guard.drop(context.Background(), c.cache, string(k))
	}
}

func newOrigin() string {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// fillGuard orders the local tier's fills against its evictions, per key stripe: a read that
// found a value in the backend puts it in the tier only if no eviction (another process's
// announcement, a gap, this process's own write or delete) touched the key's stripe since the
// read began. Without it, a read in flight when another process's write was announced would put
// the value it read, now old, back after the eviction, to be served for up to maxAge.
type fillGuard struct {
	seed    maphash.Seed
	stripes [64]struct {
		mu    sync.Mutex
		epoch uint64 // guarded by mu
		_     [48]byte
	}
}

func (g *fillGuard) stripe(k string) int { return int(maphash.String(g.seed, k) % 64) }

// epoch returns the key's stripe's count of evictions, taken before a backend read.
func (g *fillGuard) epoch(k string) uint64 {
	st := &g.stripes[g.stripe(k)]
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.epoch
}

// fill stores item() under k unless the key's stripe was evicted since epoch since.
func (g *fillGuard) fill(ctx context.Context, l1 LocalCache, k string, item func() backends.Item, maxAge time.Duration, since uint64) {
	it := item()
	st := &g.stripes[g.stripe(k)]
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.epoch == since {
		_ = l1.SetValue(ctx, k, it, maxAge)
	}
}

// write stores item() under k after this process wrote it to the backend, if nothing touched
// the key's stripe since epoch since (taken before the backend write); otherwise another write
// may have landed after this one, and the key is dropped instead. Either way the fills of reads
// in flight are refused.
func (g *fillGuard) write(ctx context.Context, l1 LocalCache, k string, item func() backends.Item, maxAge time.Duration, since uint64) {
	it := item()
	st := &g.stripes[g.stripe(k)]
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.epoch == since {
		st.epoch++
		_ = l1.SetValue(ctx, k, it, maxAge)
		return
	}
	st.epoch++
	_ = l1.Delete(ctx, k)
}

// drop removes k, and refuses the fills of reads in flight.
func (g *fillGuard) drop(ctx context.Context, l1 LocalCache, k string) {
	st := &g.stripes[g.stripe(k)]
	st.mu.Lock()
	defer st.mu.Unlock()
	st.epoch++
	_ = l1.Delete(ctx, k)
}

// clear removes every entry, and refuses the fills of every read in flight.
func (g *fillGuard) clear(l1 LocalCache) {
	for i := range g.stripes {
		g.stripes[i].mu.Lock()
		g.stripes[i].epoch++
	}
	l1.Clear()
	for i := range g.stripes {
		g.stripes[i].mu.Unlock()
	}
}
