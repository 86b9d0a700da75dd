package memcached_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/dogpile-go/dogpile/backends/memcached"
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

// BenchmarkMemoHitMemcached is a warm hit through a memo handle on the memcached backend: the
// key, one gets, the envelope, a JSON decode, the freshness check. Compare with
// BenchmarkBareGomemcacheGetJSON in the same run: the goal is within 1.2x, one round trip and no
// other command per hit.
func BenchmarkMemoHitMemcached(b *testing.B) {
	r := region.New("bench", region.WithExpiration(time.Hour))
	if err := r.Configure(memcached.New(newClient(b), memcached.WithPrefix(uniquePrefix(b)))); err != nil {
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

// BenchmarkBareGomemcacheGetJSON is what a hand-written cache does for the same value: a
// gomemcache Get and a json.Unmarshal, nothing else.
func BenchmarkBareGomemcacheGetJSON(b *testing.B) {
	client := newClient(b)
	key := uniquePrefix(b) + "users|i64:42"
	raw, err := json.Marshal(newBenchUser(42))
	if err != nil {
		b.Fatal(err)
	}
	if err := client.Set(&memcache.Item{Key: key, Value: raw}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = client.Delete(key) })
	b.ReportAllocs()
	for b.Loop() {
		it, err := client.Get(key)
		if err != nil {
			b.Fatal(err)
		}
		var u benchUser
		if err := json.Unmarshal(it.Value, &u); err != nil || u.ID != 42 {
			b.Fatal(err)
		}
	}
}
