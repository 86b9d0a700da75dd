package redis_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/internal/failover"
	"github.com/dogpile-go/dogpile/internal/testserver"
	goredis "github.com/redis/go-redis/v9"
)

// TestSentinelFailover kills the master of a Sentinel setup under load: reads and writes follow
// the sentinels to the promoted replica, and a lock written to the replica before the kill
// still holds there (see the package documentation for what is not guaranteed).
func TestSentinelFailover(t *testing.T) {
	s := testserver.StartSentinel(t)
	client := goredis.NewFailoverClient(&goredis.FailoverOptions{
		MasterName:            testserver.SentinelMaster,
		SentinelAddrs:         s.Addrs(),
		ContextTimeoutEnabled: true, // as redis.New's documentation asks
	})
	t.Cleanup(func() { _ = client.Close(); time.Sleep(2 * time.Second) }) // see closeDialing
	ctx := t.Context()
	b := redis.New(client, redis.WithPrefix("sentinel:"))
	old, err := s.MasterAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}

	var held backends.Lock
	f := failover.Run(t, b, func() error {
		l, ok, err := b.TryLock(ctx, "locked", 30*time.Second)
		if err != nil || !ok {
			return fmt.Errorf("TryLock before the failover = %v, %v", ok, err)
		}
		held = l
		// The lock is on the replica too before the master dies: WAIT 1 replica.
		if n, err := client.Do(ctx, "WAIT", 1, 1000).Int(); err != nil || n != 1 {
			return fmt.Errorf("WAIT 1 1000 = %d, %v", n, err)
		}
		s.Server(old).Kill()
		return nil
	})
	t.Logf("sentinel master %s killed (SIGKILL) under load: %s", old, f)

	now, err := s.MasterAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if now == old {
		t.Fatalf("the sentinels still name %s the master", old)
	}
	// Writes go to the new master: a value set through the backend is there.
	if err := b.Set(ctx, "after", []byte("x"), time.Minute); err != nil {
		t.Fatal(err)
	}
	direct := goredis.NewClient(&goredis.Options{Addr: now})
	defer direct.Close()
	if v, err := direct.Get(ctx, "sentinel:after").Result(); err != nil || v != "x" {
		t.Fatalf("the new master %s holds %q, %v for the key just set; want x", now, v, err)
	}
	// The replicated lock survived the failover: nobody else can take it, and its holder's
	// token still releases it.
	if _, ok, err := b.TryLock(ctx, "locked", time.Second); err != nil || ok {
		t.Fatalf("TryLock on the new master of a lock replicated before the failover = %v, %v; want not taken", ok, err)
	}
	if err := held.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	l, ok, err := b.TryLock(ctx, "locked", time.Second)
	if err != nil || !ok {
		t.Fatalf("TryLock after the holder's Unlock on the new master = %v, %v", ok, err)
	}
	_ = l.Unlock(ctx)
}
