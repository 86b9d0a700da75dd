package bench

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/ristretto"
	"github.com/dogpile-go/dogpile/backends/memory"
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

// keySpace holds the string keys of ids 0..len-1, built once: the caches that take string keys
// are handed a prebuilt one, so that no peer pays for building a key in the timed loop.
// dogpile's memo handle builds its own key from the int64 argument (one allocation); the
// dogpile-view contender is the same engine on the prebuilt key.
var keySpace = func() []string {
	ks := make([]string, zipfKeys)
	for i := range ks {
		ks[i] = keyPrefix + strconv.Itoa(i)
	}
	return ks
}()

// config is what a scenario asks of a cache.
type config struct {
	src      *source
	capacity int           // about how many entries the cache may hold
	strict   bool          // the bound matters: caches that cannot be bounded sit the scenario out
	expire   time.Duration // how long a value is fresh; 0: for ever
}

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
	name       string
	new        func(tb testing.TB, cfg config) cache
	unbounded  bool // it cannot be bounded: it sits out the scenarios where the bound matters
	expiryOnly bool // it differs from another contender only once values expire
}

// runs reports whether c takes part in a scenario that asks cfg.
func (c contender) runs(cfg config) bool {
	return !(c.unbounded && cfg.strict) && !(c.expiryOnly && cfg.expire == 0)
}

// Names of the contenders that the report treats specially.
const (
	us    = "dogpile"      // the library: memo.Func on a region
	floor = "syncmap"      // the floor: a sync.Map and nothing else
	usBG  = "dogpile-bg"   // the library with background refresh
	usRaw = "dogpile-view" // the library's typed view on a prebuilt key
)

// contenders are the in-process caches, each configured the way its documentation suggests
// for a get-or-load cache.
var contenders = []contender{
	{name: us, new: newDogpileMemo},
	{name: usRaw, new: newDogpileView},
	{name: usBG, new: newDogpileBackground, expiryOnly: true},
	{name: "otter", new: newOtter},
	{name: "sturdyc", new: newSturdyc},
	{name: "goredis-cache", new: newGoRedisCacheLocal},
	{name: "gocache", new: newGocache},
	{name: "singleflight", new: newSingleflight, unbounded: true},
	{name: floor, new: newSyncMap, unbounded: true},
}

func newRegion(tb testing.TB, cfg config, opts ...region.Option) *region.Region {
	if cfg.expire > 0 {
		// The storage TTL outlives the expiration, so that an expired value is still there to
		// serve while one caller regenerates it.
		opts = append(opts, region.WithExpiration(cfg.expire), region.WithStorageTTL(staleTTL))
	}
	r := region.New("bench", opts...)
	if err := r.Configure(memory.New(memory.WithMaxEntries(cfg.capacity))); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Close() })
	return r
}

// newDogpileMemo is the library as its README shows it: memo.Func on a region on the memory
// backend. The handle builds the key from the int64 argument.
func newDogpileMemo(tb testing.TB, cfg config) cache {
	h := memo.Func(newRegion(tb, cfg), cfg.src.load, memo.WithNamespace("user"))
	return cacheFunc(h.Call)
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

// newOtter is an otter cache with a Loader. With an expiration it refreshes values in the
// background (RefreshWriting) and keeps the stale one meanwhile, as dogpile does.
func newOtter(tb testing.TB, cfg config) cache {
	o := &otter.Options[string, *user]{MaximumSize: cfg.capacity}
	if cfg.expire > 0 {
		o.RefreshCalculator = otter.RefreshWriting[string, *user](cfg.expire)
		o.ExpiryCalculator = otter.ExpiryWriting[string, *user](staleTTL)
	}
	c := otter.Must(o)
	tb.Cleanup(func() { c.StopAllGoroutines() })
	loader := otter.LoaderFunc[string, *user](cfg.src.loadKey)
	return cacheFunc(func(ctx context.Context, id int64) (*user, error) {
		return c.Get(ctx, keySpace[id], loader)
	})
}

// newSturdyc is a sturdyc client and GetOrFetch. With an expiration it refreshes values early,
// in the background, and keeps serving the old one meanwhile (WithEarlyRefreshes).
func newSturdyc(tb testing.TB, cfg config) cache {
	const shards = 16
	capacity := cfg.capacity
	if capacity == 0 {
		capacity = 1 << 30
	}
	opts := []sturdyc.Option{sturdyc.WithNoContinuousEvictions()} // else a goroutine no call stops
	if cfg.expire > 0 {
		opts = append(opts, sturdyc.WithEarlyRefreshes(cfg.expire, cfg.expire, staleTTL, time.Second))
	}
	c := sturdyc.New[*user](capacity, shards, staleTTL, 10, opts...)
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
