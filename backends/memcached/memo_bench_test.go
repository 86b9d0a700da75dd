package memcached_test

import (
	"context"
	"encoding/json"
	"slices"
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

// TestMemoRoundTrips pins what a memo call costs on memcached: a hit is one gets and nothing
// else; a cold miss is gets, the lock (add), a second gets under it, set, and the unlock (gets,
// cas).
func TestMemoRoundTrips(t *testing.T) {
	client, rec := countingClient(t, server.Addr)
	r := region.New("roundtrips", region.WithExpiration(time.Hour))
	if err := r.Configure(memcached.New(client, memcached.WithPrefix(uniquePrefix(t)))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	h := memo.Func(r, func(_ context.Context, id int64) (*benchUser, error) { return newBenchUser(id), nil },
		memo.WithNamespace("users"))
	ctx := context.Background()
	if _, err := h.Call(ctx, 7); err != nil {
		t.Fatal(err)
	}
	var cold []string
	for _, tr := range rec.take() {
		cold = append(cold, tr.cmd)
	}
	t.Logf("cold miss: %v", cold)
	// read, lock, read, conditional store (gets, then add on an absent key), unlock (gets, cas)
	if want := []string{"gets", "add", "gets", "gets", "add", "gets", "cas"}; !slices.Equal(cold, want) {
		t.Fatalf("cold miss sent %v; want %v", cold, want)
	}
	for range 3 {
		if _, err := h.Call(ctx, 7); err != nil {
			t.Fatal(err)
		}
	}
	if hits := rec.take(); len(hits) != 3 || countCmd(hits, "gets") != 3 {
		t.Fatalf("3 hits sent %v; want exactly one gets each", hits)
	}
}

// TestMemoStringKeys runs memo keys that memcached cannot take as they are (a string argument with
// spaces and a newline, a long one) through a region: each is cached once and found again.
func TestMemoStringKeys(t *testing.T) {
	r := region.New("strings", region.WithExpiration(time.Hour))
	if err := r.Configure(memcached.New(newClient(t), memcached.WithPrefix(uniquePrefix(t)))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	calls := map[string]int{}
	h := memo.Func(r, func(_ context.Context, s string) (string, error) { calls[s]++; return "v:" + s, nil },
		memo.WithNamespace("greet"))
	ctx := context.Background()
	args := []string{"plain", "a b", "a  b", "line\nbreak", strings.Repeat("long ", 100), ""}
	for range 2 {
		for _, s := range args {
			if v, err := h.Call(ctx, s); err != nil || v != "v:"+s {
				t.Fatalf("Call(%q) = %q, %v", s, v, err)
			}
		}
	}
	for _, s := range args {
		if calls[s] != 1 {
			t.Errorf("Call(%q) ran the function %d times in two calls; want once", s, calls[s])
		}
	}
}
