package redis_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/redis"
	goredis "github.com/redis/go-redis/v9"
)

// TestReviewRingTryLockMultiOnFreshShards: on a Ring, scriptAll answers NOSCRIPT with one
// script.Load(ctx, b.client), which a Ring sends to ONE random shard (a keyless command). The
// pipeline run again still gets NOSCRIPT from the other shard, so the first TryLockMulti on a
// Ring whose shards have not seen the script fails, and the locks the second run did take on the
// loaded shard are dropped without release: they stay held until the lock timeout.
func TestReviewRingTryLockMultiOnFreshShards(t *testing.T) {
	ctx := t.Context()
	ring := newRing(t) // two fresh redis-servers: no script loaded anywhere
	prefix := uniquePrefix(t)
	b := redis.New(ring, redis.WithPrefix(prefix))
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	taken, release, err := b.TryLockMulti(ctx, keys, time.Minute)
	if err == nil {
		_ = release.Unlock(ctx)
		t.Logf("taken %v", taken)
		return
	}
	t.Errorf("TryLockMulti of %d keys on a fresh two-shard Ring: %v; want the locks", len(keys), err)
	// What the failed call left behind.
	var (
		mu   sync.Mutex
		left []string
	)
	_ = ring.ForEachShard(ctx, func(ctx context.Context, shard *goredis.Client) error {
		ks, err := shard.Keys(ctx, prefix+"\x00lock\x00*").Result()
		mu.Lock()
		left = append(left, ks...)
		mu.Unlock()
		return err
	})
	if len(left) > 0 {
		t.Errorf("the failed TryLockMulti left %d locks held (until their 1m timeout), with no way to release them", len(left))
	}
}

// TestReviewRingMultiUnlockOnFreshShards: the same on release. With the lock script loaded on
// every shard (so TryLockMulti works) but not yet the unlock script, the pipelined Unlock gets
// NOSCRIPT, loads the script on one random shard, fails again on the other, and the locks there
// stay held until their timeout.
func TestReviewRingMultiUnlockOnFreshShards(t *testing.T) {
	ctx := t.Context()
	ring := newRing(t)
	prefix := uniquePrefix(t)
	b := redis.New(ring, redis.WithPrefix(prefix))
	// What a first single-key TryLock on each shard would leave: the acquire script loaded.
	const acquire = `
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
	return 1
end
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return 1
end
return 0`
	if err := ring.ForEachShard(ctx, func(ctx context.Context, shard *goredis.Client) error {
		return shard.ScriptLoad(ctx, acquire).Err()
	}); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	taken, release, err := b.TryLockMulti(ctx, keys, time.Minute)
	if err != nil {
		t.Fatalf("TryLockMulti with the script on every shard: %v", err)
	}
	for i, ok := range taken {
		if !ok {
			t.Fatalf("lock %s not taken", keys[i])
		}
	}
	if err := release.Unlock(ctx); err != nil {
		t.Errorf("Unlock of %d locks on a Ring whose shards lack the unlock script: %v", len(keys), err)
	}
	var (
		mu   sync.Mutex
		left int
	)
	_ = ring.ForEachShard(ctx, func(ctx context.Context, shard *goredis.Client) error {
		ks, err := shard.Keys(ctx, prefix+"\x00lock\x00*").Result()
		mu.Lock()
		left += len(ks)
		mu.Unlock()
		return err
	})
	if left > 0 {
		t.Errorf("%d locks still held after release.Unlock", left)
	}
}
