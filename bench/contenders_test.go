package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/ristretto"
	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/keys"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
	gocache "github.com/eko/gocache/lib/v4/cache"
	gocachestore "github.com/eko/gocache/lib/v4/store"
	ristrettostore "github.com/eko/gocache/store/ristretto/v4"
	rediscache "github.com/go-redis/cache/v9"
	"github.com/maypok86/otter/v2"
	"github.com/viccon/sturdyc"
	"golang.org/x/sync/singleflight"
)

// user is the cached value of the in-process scenarios.
type user struct {
	ID   int64
	Name string
}

// source is a scenario's data source, the function every cache wraps: it counts its calls and
// the calls in progress, and takes delay to answer.
type source struct {
	calls    atomic.Int64
	inflight atomic.Int64
	delay    atomic.Int64 // time.Duration
}

func (s *source) load(_ context.Context, id int64) (*user, error) {
	s.calls.Add(1)
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	if d := time.Duration(s.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	return &user{ID: id, Name: "gopher"}, nil
}

// loadKey is load for the caches whose loader is handed the key: it reads the id back from it.
func (s *source) loadKey(ctx context.Context, key string) (*user, error) {
	id, err := strconv.ParseInt(key[len(keyPrefix):], 10, 64)
	if err != nil {
		return nil, err
	}
	return s.load(ctx, id)
}

// waitIdle waits until the source has been idle for 10 ms (no call in progress, none started),
// for up to a second: a background refresh that a cache started on a goroutine of its own may
// begin a little after the read that asked for it.
func (s *source) waitIdle() {
	const quiet = 10 * time.Millisecond
	deadline := time.Now().Add(time.Second)
	calls, since := s.calls.Load(), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		if n := s.calls.Load(); n != calls || s.inflight.Load() > 0 {
			calls, since = n, time.Now()
			continue
		}
		if time.Since(since) >= quiet {
			return
		}
	}
}

const keyPrefix = "user:"

// keySpace holds the string keys of ids 0..len-1, built once: the contenders on a prebuilt key
// are handed one, so that they do not pay for building a key in the timed loop. memo's handles
// build their own key from the int64 argument on every call; their like-for-like peer,
// otter-keyed, builds its key on every call too (keyFor).
var keySpace = func() []string {
	ks := make([]string, zipfKeys)
	for i := range ks {
		ks[i] = keyPrefix + strconv.Itoa(i)
	}
	return ks
}()

// keyFor builds the key of id, as code that has an id and no prebuilt key does on every call: in a
// buffer on the stack, and one allocation for the string, as a memo handle builds its key.
func keyFor(id int64) string {
	var buf [32]byte
	return string(strconv.AppendInt(append(buf[:0], keyPrefix...), id, 10))
}

// config is what a scenario asks of a cache.
type config struct {
	src      *source
	capacity int           // about how many entries the cache may hold
	strict   bool          // the bound matters: caches that cannot be bounded sit the scenario out
	expire   time.Duration // how long a value is fresh; 0: for ever
	// stale asks each cache to keep an expired value and serve it while one caller reloads it,
	// where it can (the expiry scenario). Without it an expiration is plain: the value is
	// dropped at expiry, as the README's region (region.WithExpiration alone) does.
	stale   bool
	hitPath bool     // the scenario times warm reads: the hit-path variants take part
	oneKey  bool     // the scenario reads one key: the caches of one value take part
	misses  bool     // the scenario times misses too: the miss-path variants take part
	only    []string // the contenders that take part (among those that can); nil: every one
}

// hitExpire is the expiration of the hit-path scenarios: the README's region.
const hitExpire = 10 * time.Minute

// hitID is the key the one-key scenarios read.
const hitID = 42

// staleTTL is how long a cache that can serve stale values keeps an expired one.
const staleTTL = time.Hour

// cache is one contender's get-or-load: the value of id, loaded through the scenario's source
// on a miss.
type cache interface {
	get(ctx context.Context, id int64) (*user, error)
}

type cacheFunc func(ctx context.Context, id int64) (*user, error)

func (f cacheFunc) get(ctx context.Context, id int64) (*user, error) { return f(ctx, id) }

// contender is a cache under test.
type contender struct {
	name      string
	new       func(tb testing.TB, cfg config) cache
	unbounded bool // it cannot be bounded: it sits out the scenarios where the bound matters
	staleOnly bool // it differs from another contender only in how it serves expired values
	// variant: it differs from another contender only in what a warm read costs (how the key is
	// built, a key mangler, no expiration); it runs in the hit-path scenarios only.
	variant bool
	oneKey  bool // it caches one value (a function of no argument): it runs where one key is read
	// missVariant: it differs from another contender only in what a miss costs; it runs in the
	// scenarios that time misses among hits (cfg.misses) only.
	missVariant bool
}

// runs reports whether c takes part in a scenario that asks cfg.
func (c contender) runs(cfg config) bool {
	switch {
	case cfg.only != nil && !slices.Contains(cfg.only, c.name),
		c.unbounded && cfg.strict,
		c.staleOnly && !cfg.stale,
		c.variant && !cfg.hitPath,
		c.oneKey && !cfg.oneKey,
		c.missVariant && !cfg.misses:
		return false
	}
	return true
}

// Names of the contenders that the report treats specially or that scenarios pick by name.
const (
	us         = "dogpile"           // the library: memo.Func on a region, the key built per call
	usSHA1     = "dogpile-sha1"      // the same with the README's key mangler, keys.SHA1
	usFunc0    = "dogpile-func0"     // memo.Func0: a function of no argument, one key
	usRaw      = "dogpile-view"      // the library's typed view on a prebuilt key
	usNoExp    = "dogpile-noexp"     // dogpile without expiration
	usBound    = "dogpile-bounded"   // dogpile with a creation timeout: misses on a worker
	usBG       = "dogpile-bg"        // the library with background refresh
	usEarly    = "dogpile-early"     // the library with early refresh (scenario 4b only)
	otterKeyed = "otter-keyed"       // otter with the key built per call, like dogpile's handles
	otterNoExp = "otter-keyed-noexp" // otter-keyed without expiration
	floor      = "syncmap"           // the floor: a sync.Map and nothing else
)

// contenders are the in-process caches, each configured the way its documentation suggests
// for a get-or-load cache. With an expiration each is set to the like-for-like setting of
// region.WithExpiration: otter ExpiryWriting, sturdyc its TTL, go-redis/cache its local TTL,
// gocache its store's expiration, the hand-made ones a deadline checked on every read.
var contenders = []contender{
	{name: us, new: newDogpileMemo},
	{name: usSHA1, new: newDogpileSHA1, variant: true},
	{name: usFunc0, new: newDogpileFunc0, variant: true, oneKey: true},
	{name: usRaw, new: newDogpileView},
	{name: usNoExp, new: noExpiry(newDogpileMemo), variant: true},
	{name: usBound, new: newDogpileBounded, missVariant: true},
	{name: usBG, new: newDogpileBackground, staleOnly: true},
	{name: "otter", new: newOtter},
	{name: otterKeyed, new: newOtterKeyed, variant: true},
	{name: otterNoExp, new: noExpiry(newOtterKeyed), variant: true},
	{name: "sturdyc", new: newSturdyc},
	{name: "goredis-cache", new: newGoRedisCacheLocal},
	{name: "gocache", new: newGocache},
	{name: "singleflight", new: newSingleflight, unbounded: true},
	{name: floor, new: newSyncMap, unbounded: true},
}

// noExpiry returns newCache with the scenario's expiration turned off: values fresh for ever.
func noExpiry(newCache func(testing.TB, config) cache) func(testing.TB, config) cache {
	return func(tb testing.TB, cfg config) cache {
		cfg.expire, cfg.stale = 0, false
		return newCache(tb, cfg)
	}
}

func newRegion(tb testing.TB, cfg config, opts ...region.Option) *region.Region {
	if cfg.expire > 0 {
		opts = append(opts, region.WithExpiration(cfg.expire))
	}
	if cfg.expire > 0 && cfg.stale {
		// The storage TTL outlives the expiration, so that an expired value is still there to
		// serve while one caller regenerates it.
		opts = append(opts, region.WithStorageTTL(staleTTL))
	}
	r := region.New("bench", opts...)
	if err := r.Configure(memory.New(memory.WithMaxEntries(cfg.capacity))); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Close() })
	return r
}

// newDogpileMemo is the library as its README shows it, without the key mangler: memo.Func on a
// region on the memory backend. The handle builds the key from the int64 argument.
func newDogpileMemo(tb testing.TB, cfg config) cache {
	h := memo.Func(newRegion(tb, cfg), cfg.src.load, memo.WithNamespace("user"))
	return cacheFunc(h.Call)
}

// newDogpileSHA1 is the README's set-up in full: newDogpileMemo on a region that hashes every
// key with keys.SHA1 (region.WithKeyMangler).
func newDogpileSHA1(tb testing.TB, cfg config) cache {
	h := memo.Func(newRegion(tb, cfg, region.WithKeyMangler(keys.SHA1)), cfg.src.load, memo.WithNamespace("user"))
	return cacheFunc(h.Call)
}

// newDogpileBounded is newDogpileMemo on a region whose creations are bounded
// (region.WithCreationTimeout, as a backend with a distributed lock bounds them by default): a
// miss runs its creator on a worker while the caller waits with a timer, where by default on the
// memory backend it runs on the caller's goroutine. It shows what the bound costs a miss.
func newDogpileBounded(tb testing.TB, cfg config) cache {
	h := memo.Func(newRegion(tb, cfg, region.WithCreationTimeout(region.DefaultLockTimeout)), cfg.src.load, memo.WithNamespace("user"))
	return cacheFunc(h.Call)
}

// newDogpileFunc0 is memo.Func0: a function of no argument, whose one key the handle builds
// once. It answers for hitID only, in the scenarios that read one key.
func newDogpileFunc0(tb testing.TB, cfg config) cache {
	load := cfg.src.load
	h := memo.Func0(newRegion(tb, cfg), func(ctx context.Context) (*user, error) { return load(ctx, hitID) },
		memo.WithNamespace("user42"))
	return cacheFunc(func(ctx context.Context, id int64) (*user, error) {
		if id != hitID {
			return nil, fmt.Errorf("the memo.Func0 contender holds the user %d only, not %d", hitID, id)
		}
		return h.Call(ctx)
	})
}

// newDogpileView is the same engine through a typed view, on the prebuilt key the peers get.
func newDogpileView(tb testing.TB, cfg config) cache {
	v := region.NewView[*user](newRegion(tb, cfg))
	load := cfg.src.load
	return cacheFunc(func(ctx context.Context, id int64) (*user, error) {
		return region.GetOrCreateWith(ctx, v, keySpace[id], load, id)
	})
}

// newDogpileBackground is memo.Func on a region that regenerates expired values in the
// background: nobody waits for a regeneration. It runs in the expiry scenario only.
func newDogpileBackground(tb testing.TB, cfg config) cache {
	h := memo.Func(newRegion(tb, cfg, region.WithBackgroundRefresh(1)), cfg.src.load, memo.WithNamespace("user"))
	return cacheFunc(h.Call)
}

// otterOptions are the options of an otter cache for cfg. A plain expiration is ExpiryWriting,
// like region.WithExpiration (fresh for d after the value was stored). With cfg.stale it
// refreshes values in the background (RefreshWriting) and keeps the stale one meanwhile, as
// dogpile does.
func otterOptions(cfg config) *otter.Options[string, *user] {
	o := &otter.Options[string, *user]{MaximumSize: cfg.capacity}
	switch {
	case cfg.expire > 0 && cfg.stale:
		o.RefreshCalculator = otter.RefreshWriting[string, *user](cfg.expire)
		o.ExpiryCalculator = otter.ExpiryWriting[string, *user](staleTTL)
	case cfg.expire > 0:
		o.ExpiryCalculator = otter.ExpiryWriting[string, *user](cfg.expire)
	}
	return o
}

// newOtter is an otter cache with a Loader, on the prebuilt key.
func newOtter(tb testing.TB, cfg config) cache {
	c := otter.Must(otterOptions(cfg))
	tb.Cleanup(func() { c.StopAllGoroutines() })
	loader := otter.LoaderFunc[string, *user](cfg.src.loadKey)
	return cacheFunc(func(ctx context.Context, id int64) (*user, error) {
		return c.Get(ctx, keySpace[id], loader)
	})
}

// newOtterKeyed is newOtter with the key built on every call (keyFor), as dogpile's memo handles
// build theirs: their like-for-like peer.
func newOtterKeyed(tb testing.TB, cfg config) cache {
	c := otter.Must(otterOptions(cfg))
	tb.Cleanup(func() { c.StopAllGoroutines() })
	loader := otter.LoaderFunc[string, *user](cfg.src.loadKey)
	return cacheFunc(func(ctx context.Context, id int64) (*user, error) {
		return c.Get(ctx, keyFor(id), loader)
	})
}

// newSturdyc is a sturdyc client and GetOrFetch. A plain expiration is its TTL; with cfg.stale
// it refreshes values early, in the background, and keeps serving the old one meanwhile
// (WithEarlyRefreshes).
func newSturdyc(tb testing.TB, cfg config) cache {
	const shards = 16
	capacity := cfg.capacity
	if capacity == 0 {
		capacity = 1 << 30
	}
	opts := []sturdyc.Option{sturdyc.WithNoContinuousEvictions()} // else a goroutine no call stops
	ttl := staleTTL
	switch {
	case cfg.expire > 0 && cfg.stale:
		opts = append(opts, sturdyc.WithEarlyRefreshes(cfg.expire, cfg.expire, staleTTL, time.Second))
	case cfg.expire > 0:
		ttl = cfg.expire
	}
	c := sturdyc.New[*user](capacity, shards, ttl, 10, opts...)
	load := cfg.src.load
	return cacheFunc(func(ctx context.Context, id int64) (*user, error) {
		return sturdyc.GetOrFetch(ctx, c, keySpace[id], func(ctx context.Context) (*user, error) {
			return load(ctx, id)
		})
	})
}

// newGoRedisCacheLocal is go-redis/cache with its in-process TinyLFU and no Redis: Once loads a
// missing key once. Values are stored encoded (msgpack) and decoded on every hit.
func newGoRedisCacheLocal(tb testing.TB, cfg config) cache {
	size, ttl := cfg.capacity, cfg.expire
	if size == 0 {
		size = 1 << 20
	}
	if ttl == 0 {
		ttl = staleTTL
	}
	local := rediscache.NewTinyLFU(size, ttl)
	local.UseRandomizedTTL(0) // expire when asked, not up to 10% later
	c := rediscache.New(&rediscache.Options{LocalCache: local})
	load := cfg.src.load
	return cacheFunc(func(ctx context.Context, id int64) (*user, error) {
		u := new(user)
		err := c.Once(&rediscache.Item{
			Ctx:   ctx,
			Key:   keySpace[id],
			Value: u,
			Do:    func(it *rediscache.Item) (any, error) { return load(it.Context(), id) },
		})
		return u, err
	})
}

// newGocache is gocache's LoadableCache over its ristretto store (bounded, TinyLFU admission),
// with synchronous sets so that a loaded value is readable at once.
func newGocache(tb testing.TB, cfg config) cache {
	maxCost := int64(cfg.capacity)
	if maxCost == 0 {
		maxCost = 1 << 30
	}
	client, err := ristretto.NewCache(&ristretto.Config{
		NumCounters: 10 * max(maxCost, zipfKeys),
		MaxCost:     maxCost,
		BufferItems: 64,
	})
	if err != nil {
		tb.Fatal(err)
	}
	opts := []gocachestore.Option{gocachestore.WithCost(1), gocachestore.WithSynchronousSet()}
	if cfg.expire > 0 {
		opts = append(opts, gocachestore.WithExpiration(cfg.expire))
	}
	st := ristrettostore.NewRistretto(client, opts...)
	load := func(ctx context.Context, key any) (*user, []gocachestore.Option, error) {
		u, err := cfg.src.loadKey(ctx, key.(string))
		return u, opts, err
	}
	c := gocache.NewLoadable[*user](load, gocache.New[*user](st))
	tb.Cleanup(func() {
		_ = c.Close()
		client.Close()
	})
	return cacheFunc(func(ctx context.Context, id int64) (*user, error) {
		return c.Get(ctx, keySpace[id])
	})
}

// timed is a value with its expiry, for the two hand-made caches.
type timed struct {
	u       *user
	expires int64 // Unix nanoseconds; 0: never
}

func (t *timed) fresh() bool { return t.expires == 0 || time.Now().UnixNano() < t.expires }

func stamp(u *user, expire time.Duration) *timed {
	t := &timed{u: u}
	if expire > 0 {
		t.expires = time.Now().Add(expire).UnixNano()
	}
	return t
}

// newSingleflight is the hand-made get-or-load most Go code has: a sync.Map, and
// golang.org/x/sync/singleflight so that a missing key is loaded once. It cannot be bounded.
func newSingleflight(_ testing.TB, cfg config) cache {
	var (
		m sync.Map // key -> *timed
		g singleflight.Group
	)
	load := cfg.src.load
	return cacheFunc(func(ctx context.Context, id int64) (*user, error) {
		key := keySpace[id]
		if v, ok := m.Load(key); ok && v.(*timed).fresh() {
			return v.(*timed).u, nil
		}
		v, err, _ := g.Do(key, func() (any, error) {
			u, err := load(ctx, id)
			if err != nil {
				return nil, err
			}
			m.Store(key, stamp(u, cfg.expire))
			return u, nil
		})
		if err != nil {
			return nil, err
		}
		return v.(*user), nil
	})
}

// newSyncMap is the floor: a sync.Map, no coalescing, no bound. Every caller that misses loads.
func newSyncMap(_ testing.TB, cfg config) cache {
	var m sync.Map // key -> *timed
	load := cfg.src.load
	return cacheFunc(func(ctx context.Context, id int64) (*user, error) {
		key := keySpace[id]
		if v, ok := m.Load(key); ok && v.(*timed).fresh() {
			return v.(*timed).u, nil
		}
		u, err := load(ctx, id)
		if err != nil {
			return nil, err
		}
		m.Store(key, stamp(u, cfg.expire))
		return u, nil
	})
}

// peeker is one contender's read that never loads (a miss is (nil, false, nil)), and the write
// that fills it.
type peeker struct {
	peek func(ctx context.Context, id int64) (*user, bool, error)
	set  func(ctx context.Context, id int64, u *user) error
}

// peekers are the contenders of the scenarios that read without a loader, each on the prebuilt
// key and with the scenario's expiration, set as in contenders.
var peekers = []struct {
	name string
	new  func(tb testing.TB, cfg config) peeker
}{
	{usRaw, newDogpileViewPeek},
	{"otter", newOtterPeek},
	{floor, newSyncMapPeek},
}

// newDogpileViewPeek is View.Get and View.Set on a region on the memory backend.
func newDogpileViewPeek(tb testing.TB, cfg config) peeker {
	v := region.NewView[*user](newRegion(tb, cfg))
	return peeker{
		peek: func(ctx context.Context, id int64) (*user, bool, error) { return v.Get(ctx, keySpace[id]) },
		set:  func(ctx context.Context, id int64, u *user) error { return v.Set(ctx, keySpace[id], u) },
	}
}

// newOtterPeek is otter's GetIfPresent and Set.
func newOtterPeek(tb testing.TB, cfg config) peeker {
	c := otter.Must(otterOptions(cfg))
	tb.Cleanup(func() { c.StopAllGoroutines() })
	return peeker{
		peek: func(_ context.Context, id int64) (*user, bool, error) {
			u, ok := c.GetIfPresent(keySpace[id])
			return u, ok, nil
		},
		set: func(_ context.Context, id int64, u *user) error {
			c.Set(keySpace[id], u)
			return nil
		},
	}
}

// newSyncMapPeek is the floor: a sync.Map's Load with the deadline checked, and Store.
func newSyncMapPeek(_ testing.TB, cfg config) peeker {
	var m sync.Map // key -> *timed
	return peeker{
		peek: func(_ context.Context, id int64) (*user, bool, error) {
			if v, ok := m.Load(keySpace[id]); ok && v.(*timed).fresh() {
				return v.(*timed).u, true, nil
			}
			return nil, false, nil
		},
		set: func(_ context.Context, id int64, u *user) error {
			m.Store(keySpace[id], stamp(u, cfg.expire))
			return nil
		},
	}
}
