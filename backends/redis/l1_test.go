package redis_test

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
)

// TestLocalCacheAcrossProcesses: three processes' regions (each with its own client and its own
// memory L1 that keeps entries a minute) on one Redis. A Set or a Delete on one reaches the
// others' L1 through pub/sub; one whose subscription was killed clears its L1 when it is back,
// and does not serve the value it held after that.
func TestLocalCacheAcrossProcesses(t *testing.T) {
	ctx := t.Context()
	prefix := uniquePrefix(t)
	open := func() (*region.Region, *region.View[string], *countingStore) {
		l1 := memory.New()
		r := region.New("l1", region.WithLocalCache(l1, time.Minute), region.WithLogger(slog.New(slog.DiscardHandler)))
		cs := &countingStore{Backend: redis.New(newClient(t), redis.WithPrefix(prefix))}
		if err := r.Configure(cs); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close(); l1.Close() })
		return r, region.NewView[string](r), cs
	}
	_, v1, _ := open()
	_, v2, c2 := open()
	_, v3, _ := open()
	get := func(v *region.View[string]) (string, bool) {
		s, ok, _ := v.Get(ctx, "k")
		return s, ok
	}
	// GetOrCreate reads through L1; Get peeks at the backend.
	read := func(v *region.View[string]) string {
		s, _ := v.GetOrCreate(ctx, "k", func(context.Context) (string, error) { return "created", nil })
		return s
	}
	if err := v1.Set(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	for _, v := range []*region.View[string]{v2, v3} {
		if got := read(v); got != "v1" {
			t.Fatalf("first read %q", got)
		}
	}
	// From L1 soon: a read whose fill the announcement of v1's own Set refused (it may arrive
	// after the read began) reads the backend once more; then the reads stop reaching it.
	fromL1 := false
	for range 5 {
		before := c2.gets.Load()
		if got := read(v2); got != "v1" {
			t.Fatalf("read %q, want v1", got)
		}
		if c2.gets.Load() == before {
			fromL1 = true
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !fromL1 {
		t.Fatal("5 reads of a key nobody writes all reached the backend: the local cache never answered")
	}
	seen := func(what, want string) {
		t.Helper()
		for i, v := range []*region.View[string]{v2, v3} {
			start := time.Now()
			for read(v) != want {
				if time.Since(start) > 5*time.Second {
					t.Fatalf("%s: process %d still reads %q after 5s", what, i+2, read(v))
				}
				time.Sleep(100 * time.Microsecond)
			}
			t.Logf("%s: seen by process %d %v after the write returned", what, i+2, time.Since(start))
		}
	}
	if err := v1.Set(ctx, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	seen("Set", "v2")
	if err := v1.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	seen("Delete (then created again)", "created")

	// Subscriptions killed while a write happens: its announcement may be lost; the gap clears L1.
	if err := newClient(t).ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	if err := v1.Set(ctx, "k", "v3"); err != nil {
		t.Fatal(err)
	}
	seen("Set with the subscriptions killed", "v3")
	_, _ = get(v1)
}

// countingStore counts the backend reads of a region.
type countingStore struct {
	*redis.Backend
	gets atomicInt
}

func (c *countingStore) Get(ctx context.Context, k string) ([]byte, error) {
	c.gets.Add(1)
	return c.Backend.Get(ctx, k)
}

type atomicInt = atomic.Int64

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

// TestLocalCacheKeepsTheLock: regions with local caches still create a cold key once for the
// fleet: a miss in L1 goes through the engine and Redis's lock as without one.
func TestLocalCacheKeepsTheLock(t *testing.T) {
	prefix := uniquePrefix(t)
	var made atomic.Int32
	var views []*region.View[string]
	for range 3 {
		l1 := memory.New()
		r := region.New("l1lock", region.WithLocalCache(l1, time.Minute), region.WithLogger(slog.New(slog.DiscardHandler)))
		if err := r.Configure(redis.New(newClient(t), redis.WithPrefix(prefix))); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close(); l1.Close() })
		views = append(views, region.NewView[string](r))
	}
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			got, err := views[i%3].GetOrCreate(t.Context(), "cold", func(context.Context) (string, error) {
				made.Add(1)
				time.Sleep(50 * time.Millisecond)
				return "v", nil
			})
			if err != nil || got != "v" {
				t.Errorf("got %q, %v", got, err)
			}
		})
	}
	wg.Wait()
	if n := made.Load(); n != 1 {
		t.Errorf("a cold key was created %d times by 3 regions with local caches, want 1", n)
	}
}
