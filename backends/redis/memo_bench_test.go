package redis_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
)

// benchUser is the value of the memo benchmarks: about 200 bytes of JSON.
type benchUser struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

func newBenchUser(id int64) *benchUser {
	return &benchUser{ID: id, Name: strings.Repeat("g", 120), Email: "gopher@example.com"}
}

// BenchmarkMemoHitRedis is a warm hit through a memo handle on the Redis backend: the key, one
// GET, the envelope, a JSON decode, the freshness check. Compare with BenchmarkBareGoRedisGetJSON
// in the same run: the goal is within 1.2x, one round trip and no other command per hit.
func BenchmarkMemoHitRedis(b *testing.B) { benchMemoHitRedis(b) }

// BenchmarkMemoHitRedisSigned is BenchmarkMemoHitRedis with signed entries
// (region.WithSignedEntries): the same hit plus the entry's HMAC-SHA256. Compare the two in one
// run: the goal is at most 2µs more.
func BenchmarkMemoHitRedisSigned(b *testing.B) {
	benchMemoHitRedis(b, region.WithSignedEntries(region.SigningKey{ID: "bench", Secret: []byte(strings.Repeat("s", 32))}))
}

func benchMemoHitRedis(b *testing.B, opts ...region.Option) {
	client := newClient(b)
	r := region.New("bench", append([]region.Option{region.WithExpiration(time.Hour)}, opts...)...)
	if err := r.Configure(redis.New(client, redis.WithPrefix(uniquePrefix(b)))); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	h := memo.Func(r, func(_ context.Context, id int64) (*benchUser, error) { return newBenchUser(id), nil },
		memo.WithNamespace("users"))
	ctx := context.Background()
	if _, err := h.Call(ctx, 42); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if u, err := h.Call(ctx, 42); err != nil || u.ID != 42 {
			b.Fatal(u, err)
		}
	}
}

// BenchmarkBareGoRedisGetJSON is what a hand-written cache does for the same value: a go-redis
// GET and a json.Unmarshal, nothing else.
func BenchmarkBareGoRedisGetJSON(b *testing.B) {
	client := newClient(b)
	ctx := context.Background()
	key := uniquePrefix(b) + "users|i64:42"
	raw, err := json.Marshal(newBenchUser(42))
	if err != nil {
		b.Fatal(err)
	}
	if err := client.Set(ctx, key, raw, 0).Err(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		data, err := client.Get(ctx, key).Bytes()
		if err != nil {
			b.Fatal(err)
		}
		var u benchUser
		if err := json.Unmarshal(data, &u); err != nil || u.ID != 42 {
			b.Fatal(err)
		}
	}
}

// BenchmarkLocalCacheHit compares, in one run, a memo hit on a region with a memory L1 in front
// of Redis, on a memory-only region, and on a Redis-only region (the L1 hit is meant to stay
// within 1.5x of memory-only).
func BenchmarkLocalCacheHit(b *testing.B) {
	load := func(_ context.Context, id int64) (*benchUser, error) { return newBenchUser(id), nil }
	for _, tc := range []struct {
		name string
		make func() (*region.Region, func())
	}{
		{"l1+redis", func() (*region.Region, func()) {
			l1 := memory.New()
			r := region.New("bench", region.WithExpiration(time.Hour), region.WithLocalCache(l1, time.Minute))
			if err := r.Configure(redis.New(newClient(b), redis.WithPrefix(uniquePrefix(b)))); err != nil {
				b.Fatal(err)
			}
			return r, func() { _ = r.Close(); l1.Close() }
		}},
		{"memory", func() (*region.Region, func()) {
			r := region.New("bench", region.WithExpiration(time.Hour))
			if err := r.Configure(memory.New()); err != nil {
				b.Fatal(err)
			}
			return r, func() { _ = r.Close() }
		}},
		{"redis", func() (*region.Region, func()) {
			r := region.New("bench", region.WithExpiration(time.Hour))
			if err := r.Configure(redis.New(newClient(b), redis.WithPrefix(uniquePrefix(b)))); err != nil {
				b.Fatal(err)
			}
			return r, func() { _ = r.Close() }
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r, done := tc.make()
			defer done()
			h := memo.Func(r, load, memo.WithNamespace("users"))
			ctx := context.Background()
			if _, err := h.Call(ctx, 42); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if u, err := h.Call(ctx, 42); err != nil || u.ID != 42 {
					b.Fatal(u, err)
				}
			}
		})
	}
}
