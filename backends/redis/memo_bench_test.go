package redis_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

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

// TestMemoRoundTrips pins what a memo call costs on Redis: a hit is one GET and nothing else; a
// cold miss is GET, the lock script, a second GET under it, SET, and the unlock script (each
// script an EVALSHA, and an EVAL once when the server does not have it cached yet).
func TestMemoRoundTrips(t *testing.T) {
	client, c := countingClient(t)
	r := region.New("roundtrips", region.WithExpiration(time.Hour))
	if err := r.Configure(redis.New(client, redis.WithPrefix(uniquePrefix(t)))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	h := memo.Func(r, func(_ context.Context, id int64) (*benchUser, error) { return newBenchUser(id), nil },
		memo.WithNamespace("users"))
	ctx := context.Background()
	if _, err := h.Call(ctx, 7); err != nil {
		t.Fatal(err)
	}
	cold, pipes := c.take()
	t.Logf("cold miss: %v", cold)
	want := []string{"get/2", "evalsha/6", "get/2", "evalsha/6", "evalsha/5"} // read, lock, read, conditional store, unlock
	// A script's first use on a server adds an EVAL after its EVALSHA.
	cold = slices.DeleteFunc(cold, func(c string) bool { return strings.HasPrefix(c, "eval/") })
	if len(pipes) != 0 || !slices.Equal(cold, want) {
		t.Fatalf("cold miss sent %v and pipelines %v; want %v", cold, pipes, want)
	}
	for range 3 {
		if _, err := h.Call(ctx, 7); err != nil {
			t.Fatal(err)
		}
	}
	hits, pipes := c.take()
	if len(pipes) != 0 || len(hits) != 3 || hits[0] != "get/2" || hits[1] != "get/2" || hits[2] != "get/2" {
		t.Fatalf("3 hits sent %v and pipelines %v; want exactly one GET each", hits, pipes)
	}
}
