package redis_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/region"
	goredis "github.com/redis/go-redis/v9"
)

// TestSharedInvalidationOverPubSub: three processes' regions (each with its own client) on one
// Redis, polling only once a minute: an invalidation on one reaches the others through pub/sub,
// and one whose subscription was killed meanwhile learns it from its gap, when it is back.
func TestSharedInvalidationOverPubSub(t *testing.T) {
	ctx := t.Context()
	prefix := uniquePrefix(t)
	open := func() (*region.Region, *region.View[string]) {
		client := newClient(t)
		r := region.New("shared", region.WithSharedInvalidation(time.Minute), region.WithLogger(slog.New(slog.DiscardHandler)))
		if err := r.Configure(redis.New(client, redis.WithPrefix(prefix))); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return r, region.NewView[string](r)
	}
	r1, v1 := open()
	_, v2 := open()
	_, v3 := open()
	seen := func(what string, gone func(*region.View[string]) bool) {
		t.Helper()
		for i, v := range []*region.View[string]{v2, v3} {
			start := time.Now()
			for !gone(v) {
				if time.Since(start) > 5*time.Second {
					t.Fatalf("%s: process %d did not see it within 5s", what, i+2)
				}
				time.Sleep(100 * time.Microsecond)
			}
			t.Logf("%s: seen by process %d %v after Invalidate returned", what, i+2, time.Since(start))
		}
	}
	absent := func(v *region.View[string]) bool {
		_, ok, _ := v.Get(ctx, "k", region.WithIgnoreExpiration())
		return !ok
	}
	expired := func(v *region.View[string]) bool {
		_, fresh, _ := v.Get(ctx, "k")
		_, there, _ := v.Get(ctx, "k", region.WithIgnoreExpiration())
		return !fresh && there
	}
	write := func() {
		t.Helper()
		time.Sleep(time.Millisecond)
		if err := v1.Set(ctx, "k", "v"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}

	write()
	if err := r1.Invalidate(ctx, region.Hard); err != nil {
		t.Fatal(err)
	}
	seen("hard invalidation", absent)

	write()
	if err := r1.Invalidate(ctx, region.Soft); err != nil {
		t.Fatal(err)
	}
	seen("soft invalidation", expired)

	// Every subscription's connection killed: the announcement below may be published before
	// they are back, and lost; their gaps make them read the stored time.
	write()
	if err := newClient(t).ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	if err := r1.Invalidate(ctx, region.Hard); err != nil {
		t.Fatal(err)
	}
	seen("hard invalidation with the subscriptions killed", absent)
}

// TestSharedInvalidationFromAFastClockOnRedis: two processes' regions on one Redis, one whose
// clock runs a minute ahead. Its hard invalidation (stored, and announced over pub/sub) takes
// effect once in the other, which keeps reading a key and polling every 10ms for a second: the
// key is created again once, not at every poll.
func TestSharedInvalidationFromAFastClockOnRedis(t *testing.T) {
	ctx := t.Context()
	prefix := uniquePrefix(t)
	open := func(opts ...region.Option) *region.Region {
		r := region.New("skew", append([]region.Option{region.WithSharedInvalidation(10 * time.Millisecond),
			region.WithExpiration(time.Hour), region.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
		if err := r.Configure(redis.New(newClient(t), redis.WithPrefix(prefix))); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return r
	}
	fast := open(region.WithClock(func() time.Time { return time.Now().Add(time.Minute) }))
	v := region.NewView[int](open())
	var n atomic.Int32
	create := func(context.Context) (int, error) { return int(n.Add(1)), nil }
	if _, err := v.GetOrCreate(ctx, "k", create); err != nil {
		t.Fatal(err)
	}
	if err := fast.Invalidate(ctx, region.Hard); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if _, err := v.GetOrCreate(ctx, "k", create); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.Load(); got != 2 {
		t.Errorf("%d creations in 1s after one invalidation from a clock a minute ahead, want 2", got)
	}
}

// TestConfigureBoundedOnPausedServer: configuring a region that shares its invalidations, on a
// Redis that is paused (it accepts connections and never answers), returns by the context's
// deadline (ConfigureContext) or after region.DefaultConfigureTimeout (ConfigureWith): the
// subscription and the read of the stored invalidations fail, are reported, and are tried again
// in the background. Close does not wait for the server either. Once the server is back, an
// invalidation made elsewhere reaches the region.
func TestConfigureBoundedOnPausedServer(t *testing.T) {
	srv := testserver.StartRedis(t)
	prefix := uniquePrefix(t)
	newRegion := func() *region.Region {
		return region.New("shared", region.WithSharedInvalidation(50*time.Millisecond), region.WithLogger(slog.New(slog.DiscardHandler)))
	}
	srv.Pause(t)

	r := newRegion()
	ctx, cancel := context.WithTimeout(t.Context(), testserver.CallDeadline)
	start := time.Now()
	err := r.ConfigureContext(ctx, redis.New(newClientOf(t, srv.Addr), redis.WithPrefix(prefix)))
	elapsed := time.Since(start)
	cancel()
	t.Logf("ConfigureContext with a %v deadline on a paused Redis: %v after %v", testserver.CallDeadline, err, elapsed.Round(time.Millisecond))
	if err != nil {
		t.Fatalf("ConfigureContext: %v; want the region configured, the failures reported", err)
	}
	if elapsed > time.Second {
		t.Errorf("ConfigureContext with a %v deadline on a paused Redis took %v; want about the deadline", testserver.CallDeadline, elapsed)
	}

	r2 := newRegion()
	start = time.Now()
	err = r2.ConfigureWith(redis.New(newClientOf(t, srv.Addr), redis.WithPrefix(prefix)))
	elapsed = time.Since(start)
	t.Logf("ConfigureWith on a paused Redis: %v after %v", err, elapsed.Round(time.Millisecond))
	if err != nil {
		t.Fatalf("ConfigureWith: %v", err)
	}
	if elapsed > region.DefaultConfigureTimeout+2*time.Second {
		t.Errorf("ConfigureWith on a paused Redis took %v; want about region.DefaultConfigureTimeout, %v", elapsed, region.DefaultConfigureTimeout)
	}
	start = time.Now()
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Close on a paused Redis took %v; want it not to wait for the server", elapsed)
	}

	// Back: the first region reads what another process stores (its poll, or its subscription
	// once it is made again).
	srv.Resume()
	v := region.NewView[string](r)
	other := region.New("shared", region.WithSharedInvalidation(time.Minute), region.WithLogger(slog.New(slog.DiscardHandler)))
	if err := other.Configure(redis.New(newClientOf(t, srv.Addr), redis.WithPrefix(prefix))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	if err := v.Set(t.Context(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	if err := other.Invalidate(t.Context(), region.Hard); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		if _, ok, _ := v.Get(t.Context(), "k", region.WithIgnoreExpiration()); !ok {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("the invalidation made elsewhere did not reach the region within 5s of the server's return")
		}
	}
	start = time.Now()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close: %v", time.Since(start))
}

// newClientOf returns a client of the server at addr, as Open builds it (ContextTimeoutEnabled),
// closed when tb ends.
func newClientOf(tb testing.TB, addr string) *goredis.Client {
	tb.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr, ContextTimeoutEnabled: true})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}
