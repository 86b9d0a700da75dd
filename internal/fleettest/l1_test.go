package fleettest_test

import (
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/internal/fleettest"
	"github.com/dogpile-go/dogpile/region"
	goredis "github.com/redis/go-redis/v9"
)

// TestLocalCacheFleet: this process and three children, each a region with a memory L1 in front
// of one Redis and shared invalidation (their L1s keep entries, and they poll, a minute: only
// announcements and gaps can tell them of a change in time). A Set, a
// Delete and a region-wide Invalidate here reach every child's reads; a child whose pub/sub
// connection is killed while a write happens does not serve the old value once it is back. The
// times are from when each child got the question, and are logged, not asserted.
func TestLocalCacheFleet(t *testing.T) {
	e := redisEnv(t)
	cfg := fleettest.Config{
		Role: "watcher", BackendURL: e.backendURL("l1fleet:", false), CounterURL: e.counterURL("l1fleet:count"),
		Key: "k", Expiration: time.Hour, LockTimeout: 5 * time.Second,
	}
	r, h := fleettest.Region(t, cfg)
	children := fleettest.Start(t, 3, cfg)
	ctx := t.Context()
	step := func(what, want string) {
		t.Helper()
		ds := fleettest.Expect(t, children, want)
		t.Logf("%s: seen by the 3 watcher processes after %v", what, ds)
	}
	set := func(v string) {
		t.Helper()
		time.Sleep(time.Millisecond) // a write after the last one on any clock
		if err := h.Set(ctx, "k", v); err != nil {
			t.Fatal(err)
		}
	}

	set("v1")
	step("first Set (an L1 miss, read from Redis)", "v1")
	set("v2")
	step("Set", "v2")
	if err := h.Invalidate(ctx, "k"); err != nil { // a Delete of the key
		t.Fatal(err)
	}
	step("Delete (then created by each reader)", "created")
	set("v3")
	step("Set", "v3")
	time.Sleep(time.Millisecond)
	if err := r.Invalidate(ctx, region.Hard); err != nil {
		t.Fatal(err)
	}
	step("region-wide hard Invalidate", "created")

	// Every pub/sub connection killed, then a write: its announcement may be lost; a child that
	// is back clears its L1 and reads the new value.
	set("v4")
	step("Set", "v4")
	kill := goredis.NewClient(&goredis.Options{Addr: e.srv.Addr})
	defer kill.Close()
	if err := kill.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	set("v5")
	step("Set while the subscriptions were killed", "v5")
}
