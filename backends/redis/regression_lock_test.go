package redis_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/region"
	goredis "github.com/redis/go-redis/v9"
)

// TestLostLockReplyKeepsTheLock: the reply to the lock command is lost after Redis executed it, and
// go-redis retries the command (default MaxRetries 3) with the same token. With a plain SET NX the
// retry found the key taken by our own first attempt and TryLock answered "held by another
// holder": nobody held a Lock for that token and the key stayed blocked for the whole timeout,
// for this process too. The lock script now recognises its own token.
func TestLostLockReplyKeepsTheLock(t *testing.T) {
	ctx := t.Context()
	client := goredis.NewClient(&goredis.Options{Addr: dropLockReply(t)})
	t.Cleanup(func() { _ = client.Close() })
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	prefix := uniquePrefix(t)
	b := redis.New(client, redis.WithPrefix(prefix))
	direct := newClient(t)
	// Load the lock script into the server first: otherwise the reply dropped is NOSCRIPT, from
	// a command that took no lock, and the test proves nothing.
	if l, ok, err := redis.New(direct, redis.WithPrefix(prefix)).TryLock(ctx, "warm-up", time.Minute); err != nil || !ok {
		t.Fatalf("warm-up TryLock = %v, %v", ok, err)
	} else {
		_ = l.Unlock(ctx)
	}

	l, ok, err := b.TryLock(ctx, "k", time.Minute)
	held, _ := direct.Get(context.Background(), lockKey(prefix, "k")).Result()
	ttl, _ := direct.PTTL(context.Background(), lockKey(prefix, "k")).Result()
	t.Logf("TryLock = %v, %v, %v; lock key holds %q, PTTL %v", l, ok, err, held, ttl)
	if err == nil && !ok && held != "" {
		t.Fatalf("TryLock said the lock is held by another holder, but the only holder is this call "+
			"(its first SET NX succeeded, the reply was lost, go-redis retried): the key is blocked "+
			"for %v with no Lock to release it", ttl.Round(time.Second))
	}
	if ok {
		_ = l.Unlock(ctx)
	}
}

// TestLostLockReplyDoesNotStallCreation is the same lost reply seen from a region: a cold
// GetOrCreate, which nobody else is creating, used to wait out the whole lock timeout (30s by default)
// for a lock that it held itself, and so did every other process asking for the key.
func TestLostLockReplyDoesNotStallCreation(t *testing.T) {
	const lockTimeout = 2 * time.Second
	client := goredis.NewClient(&goredis.Options{Addr: dropLockReply(t)})
	r := region.New("lostreply", region.WithExpiration(time.Hour), region.WithLockTimeout(lockTimeout))
	if err := r.Configure(redis.New(client, redis.WithPrefix(uniquePrefix(t)), redis.WithCloseClient())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	v := region.NewView[string](r)
	start := time.Now()
	got, err := v.GetOrCreate(t.Context(), "k", func(context.Context) (string, error) { return "v", nil })
	elapsed := time.Since(start)
	if err != nil || got != "v" {
		t.Fatalf("GetOrCreate = %q, %v", got, err)
	}
	if elapsed > lockTimeout/2 {
		t.Fatalf("a cold GetOrCreate with no other caller took %v (lock timeout %v): it waited for its own orphaned lock",
			elapsed.Round(time.Millisecond), lockTimeout)
	}
}

// dropLockReply is a proxy to the shared server that loses the reply to the first command naming a
// lock (its key holds "\x00lock\x00"), as when a network blip or a read timeout loses the reply
// after Redis executed the command.
func dropLockReply(t *testing.T) string {
	return testserver.DropReplyProxy(t, server.Addr, func(sent []byte) bool {
		return bytes.Contains(sent, []byte("\x00lock\x00"))
	})
}
