package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
	gocache "github.com/eko/gocache/lib/v4/cache"
	gocachestore "github.com/eko/gocache/lib/v4/store"
	redisstore "github.com/eko/gocache/store/redis/v4"
	rediscache "github.com/go-redis/cache/v9"
	goredis "github.com/redis/go-redis/v9"
)

// Scenario 5: on a redis-server on loopback, started by the benchmarks as the library's tests
// start theirs. Every contender has a go-redis client of its own, with a hook that counts round
// trips: one per command, one per pipeline.

// profile is the cached value of the Redis scenarios: about 200 bytes of JSON.
type profile struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

func newProfile(id int64) *profile {
	return &profile{ID: id, Name: strings.Repeat("g", 120), Email: "gopher@example.com"}
}

// roundTrips is a go-redis hook that counts round trips to the server, and the GET commands
// among what it sends (alone or in a pipeline).
type roundTrips struct{ n, gets atomic.Int64 }

func (r *roundTrips) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (r *roundTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		r.n.Add(1)
		r.countGets(cmd)
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		r.n.Add(1)
		r.countGets(cmds...)
		return next(ctx, cmds)
	}
}

func (r *roundTrips) countGets(cmds ...goredis.Cmder) {
	for _, c := range cmds {
		if c.Name() == "get" {
			r.gets.Add(1)
		}
	}
}

// redisCache is one contender's get-or-load on Redis, with its round-trip counter.
type redisCache struct {
	get func(ctx context.Context, id int64) (*profile, error)
	// getMulti returns the values of ids, loading the missing ones: in one call of loadMulti where
	// the cache has a batch API, else one by one through get, as its users would.
	getMulti func(ctx context.Context, ids []int64) (map[int64]*profile, error)
	trips    *roundTrips
	loads    *atomic.Int64
	client   *goredis.Client
	prefix   string        // of every key the contender writes
	delay    time.Duration // how long load takes; set before the first call
}

type redisContender struct {
	name string
	new  func(tb testing.TB, rc *redisCache, prefix string) // sets rc.get
}

// Names of the Redis contenders that the report treats specially.
const redisFloor = "goredis" // a bare GET and json.Unmarshal: the floor of any cache on Redis

var redisContenders = []redisContender{
	{us, newDogpileRedis},
	{"goredis-cache", newGoRedisCache},
	{"gocache", newGocacheRedis},
	{redisFloor, newBareRedis},
}

var prefixes atomic.Int64

// newRedisCache gives each sub-benchmark run a client of its own on the shared server and a key
// prefix of its own.
func newRedisCache(tb testing.TB, rc redisContender) *redisCache {
	client := goredis.NewClient(&goredis.Options{Addr: redisAddr(tb)})
	c := &redisCache{trips: new(roundTrips), loads: new(atomic.Int64), client: client,
		prefix: fmt.Sprintf("bench%d:", prefixes.Add(1))}
	client.AddHook(c.trips)
	tb.Cleanup(func() { _ = client.Close() })
	rc.new(tb, c, c.prefix)
	return c
}

func (c *redisCache) load(_ context.Context, id int64) (*profile, error) {
	c.loads.Add(1)
	if c.delay > 0 {
		time.Sleep(c.delay)
	}
	return newProfile(id), nil
}

// loadMulti is the batch loader (one query for many ids): one call, however many ids.
func (c *redisCache) loadMulti(_ context.Context, ids []int64) (map[int64]*profile, error) {
	c.loads.Add(1)
	m := make(map[int64]*profile, len(ids))
	for _, id := range ids {
		m[id] = newProfile(id)
	}
	return m, nil
}

// oneByOne is getMulti for a cache without a batch API: get, id after id.
func (c *redisCache) oneByOne(ctx context.Context, ids []int64) (map[int64]*profile, error) {
	m := make(map[int64]*profile, len(ids))
	for _, id := range ids {
		p, err := c.get(ctx, id)
		if err != nil {
			return nil, err
		}
		m[id] = p
	}
	return m, nil
}

// newDogpileRedis is memo.Func on a region on the Redis backend, with the default JSON codec.
func newDogpileRedis(tb testing.TB, c *redisCache, prefix string) {
	r := region.New("bench", region.WithExpiration(time.Hour))
	if err := r.Configure(redis.New(c.client, redis.WithPrefix(prefix))); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Close() })
	c.get = memo.Func(r, c.load, memo.WithNamespace("profile")).Call
	c.getMulti = memo.Multi(r, c.loadMulti, memo.WithNamespace("profile")).Call
}

// newGoRedisCache is go-redis/cache on Redis alone (no local cache): Once, with its default
// encoding (msgpack, s2-compressed above 64 bytes).
func newGoRedisCache(_ testing.TB, c *redisCache, prefix string) {
	rcache := rediscache.New(&rediscache.Options{Redis: c.client})
	c.get = func(ctx context.Context, id int64) (*profile, error) {
		p := new(profile)
		err := rcache.Once(&rediscache.Item{
			Ctx:   ctx,
			Key:   prefix + keySpace[id],
			Value: p,
			TTL:   time.Hour,
			Do:    func(it *rediscache.Item) (any, error) { return c.load(it.Context(), id) },
		})
		return p, err
	}
	c.getMulti = c.oneByOne // go-redis/cache has no batch API
}

// newGocacheRedis is gocache's LoadableCache over its Redis store. The store reads values back
// as strings, so the cache holds the JSON text and each call decodes it.
func newGocacheRedis(tb testing.TB, c *redisCache, prefix string) {
	opts := []gocachestore.Option{gocachestore.WithExpiration(time.Hour)}
	load := func(ctx context.Context, key any) (string, []gocachestore.Option, error) {
		id, err := idOf(strings.TrimPrefix(key.(string), prefix))
		if err != nil {
			return "", nil, err
		}
		p, err := c.load(ctx, id)
		if err != nil {
			return "", nil, err
		}
		b, err := json.Marshal(p)
		return string(b), opts, err
	}
	lc := gocache.NewLoadable[string](load, gocache.New[string](redisstore.NewRedis(c.client, opts...)))
	tb.Cleanup(func() { _ = lc.Close() })
	c.get = func(ctx context.Context, id int64) (*profile, error) {
		s, err := lc.Get(ctx, prefix+keySpace[id])
		if err != nil {
			return nil, err
		}
		p := new(profile)
		return p, json.Unmarshal([]byte(s), p)
	}
	c.getMulti = c.oneByOne // LoadableCache has no batch API
}

// newBareRedis is the floor: GET and json.Unmarshal, with a SET on a miss and no coalescing; for
// a batch, MGET, then one batch load of the missing ids and their SETs in one pipeline.
func newBareRedis(_ testing.TB, c *redisCache, prefix string) {
	c.getMulti = func(ctx context.Context, ids []int64) (map[int64]*profile, error) {
		keys := make([]string, len(ids))
		for i, id := range ids {
			keys[i] = prefix + keyOf(id)
		}
		vals, err := c.client.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, err
		}
		m := make(map[int64]*profile, len(ids))
		var missing []int64
		for i, v := range vals {
			s, ok := v.(string)
			if !ok {
				missing = append(missing, ids[i])
				continue
			}
			p := new(profile)
			if err := json.Unmarshal([]byte(s), p); err != nil {
				return nil, err
			}
			m[ids[i]] = p
		}
		if len(missing) == 0 {
			return m, nil
		}
		loaded, err := c.loadMulti(ctx, missing)
		if err != nil {
			return nil, err
		}
		_, err = c.client.Pipelined(ctx, func(pipe goredis.Pipeliner) error {
			for id, p := range loaded {
				b, err := json.Marshal(p)
				if err != nil {
					return err
				}
				pipe.Set(ctx, prefix+keyOf(id), b, time.Hour)
				m[id] = p
			}
			return nil
		})
		return m, err
	}
	c.get = func(ctx context.Context, id int64) (*profile, error) {
		key := prefix + keySpace[id]
		b, err := c.client.Get(ctx, key).Bytes()
		if err == goredis.Nil {
			p, err := c.load(ctx, id)
			if err != nil {
				return nil, err
			}
			if b, err = json.Marshal(p); err != nil {
				return nil, err
			}
			return p, c.client.Set(ctx, key, b, time.Hour).Err()
		}
		if err != nil {
			return nil, err
		}
		p := new(profile)
		return p, json.Unmarshal(b, p)
	}
}

// BenchmarkRedisHit is scenario 5: a warm hit through each cache's get-or-load path on Redis,
// one goroutine, so ns/op is the latency of a hit. round-trips/op counts what the hook saw.
func BenchmarkRedisHit(b *testing.B) {
	for _, rc := range redisContenders {
		b.Run("impl="+rc.name, func(b *testing.B) {
			c := newRedisCache(b, rc)
			ctx := context.Background()
			for range 2 { // the load, then a hit that settles asynchronous writes (gocache)
				p, err := c.get(ctx, 42)
				if err != nil || p.ID != 42 {
					b.Fatal(p, err)
				}
			}
			waitStored(b, c)
			trips := c.trips.n.Load()
			b.ReportAllocs()
			for b.Loop() {
				if p, err := c.get(ctx, 42); err != nil || p.ID != 42 {
					b.Fatal(p, err)
				}
			}
			b.ReportMetric(float64(c.trips.n.Load()-trips)/float64(b.N), "round-trips/op")
			if n := c.loads.Load(); n != 1 {
				b.Fatalf("the loader ran %d times, want 1", n)
			}
		})
	}
}

// waitStored waits until the contender's value is in Redis (gocache writes it in the
// background after a load, and serves it from memory until then), for up to a second.
func waitStored(b *testing.B, c *redisCache) {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		keys, err := c.client.Keys(context.Background(), c.prefix+"*").Result()
		if err != nil {
			b.Fatal(err)
		}
		if len(keys) > 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	b.Fatal("the value never reached Redis")
}

// keyOf returns the key of id, from keySpace when id is in it.
func keyOf(id int64) string {
	if id < int64(len(keySpace)) {
		return keySpace[id]
	}
	return keyPrefix + strconv.FormatInt(id, 10)
}

const batchSize = 100

// BenchmarkRedisBatch is scenario 5's batch: 100 warm keys read in one call (memo.Multi, through
// region.View.GetOrCreateMulti), or one by one where the cache has no batch API. The floor is an
// MGET and 100 json.Unmarshal.
func BenchmarkRedisBatch(b *testing.B) {
	ids := make([]int64, batchSize)
	for i := range ids {
		ids[i] = int64(i)
	}
	for _, rc := range redisContenders {
		b.Run("impl="+rc.name, func(b *testing.B) {
			c := newRedisCache(b, rc)
			ctx := context.Background()
			for range 2 {
				checkBatch(b, c, ids)
			}
			waitStoredN(b, c, batchSize)
			trips := c.trips.n.Load()
			b.ReportAllocs()
			for b.Loop() {
				if m, err := c.getMulti(ctx, ids); err != nil || len(m) != batchSize {
					b.Fatal(len(m), err)
				}
			}
			b.ReportMetric(float64(c.trips.n.Load()-trips)/float64(b.N), "round-trips/op")
		})
	}
}

// BenchmarkRedisBatchCold is the batch on 100 keys that are all absent, new ones each op: how
// many times the loader runs (once for a batch API, once per key without one) and what the
// misses cost in round trips.
func BenchmarkRedisBatchCold(b *testing.B) {
	for _, rc := range redisContenders {
		b.Run("impl="+rc.name, func(b *testing.B) {
			c := newRedisCache(b, rc)
			ctx := context.Background()
			ids := make([]int64, batchSize)
			next := int64(0)
			trips, loads := c.trips.n.Load(), c.loads.Load()
			b.ReportAllocs()
			for b.Loop() {
				for i := range ids {
					ids[i] = next
					next++
				}
				if m, err := c.getMulti(ctx, ids); err != nil || len(m) != batchSize {
					b.Fatal(len(m), err)
				}
			}
			b.ReportMetric(float64(c.trips.n.Load()-trips)/float64(b.N), "round-trips/op")
			b.ReportMetric(float64(c.loads.Load()-loads)/float64(b.N), "loader-calls/op")
		})
	}
}

func checkBatch(b *testing.B, c *redisCache, ids []int64) {
	m, err := c.getMulti(context.Background(), ids)
	if err != nil {
		b.Fatal(err)
	}
	for _, id := range ids {
		if p := m[id]; p == nil || p.ID != id {
			b.Fatalf("id %d: got %+v", id, p)
		}
	}
}

// waitStoredN waits until n of the contender's values are in Redis, for up to a second.
func waitStoredN(b *testing.B, c *redisCache, n int) {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		keys, err := c.client.Keys(context.Background(), c.prefix+"*").Result()
		if err != nil {
			b.Fatal(err)
		}
		if len(keys) >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	b.Fatalf("fewer than %d values reached Redis", n)
}

// idOf reads the id back from a key of keySpace.
func idOf(key string) (int64, error) {
	return strconv.ParseInt(strings.TrimPrefix(key, keyPrefix), 10, 64)
}
