package memcached_test

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/dogpile-go/dogpile/backends/memcached"
	"github.com/dogpile-go/dogpile/internal/counting"
	"github.com/dogpile-go/dogpile/internal/testserver"
)

// TestUnlockDeletes checks, on the real server, that the compare-and-swap with a negative expiry
// that Unlock sends does delete the lock: the item is gone to a plain get, and a new TryLock
// succeeds at once. It also pins the commands: add to lock, gets and cas to unlock.
func TestUnlockDeletes(t *testing.T) {
	ctx := t.Context()
	client, rec := counting.MemcachedClient(t, server.Addr)
	prefix := uniquePrefix(t)
	b := memcached.New(client, memcached.WithPrefix(prefix))
	lockKey := memcached.LockKey(b, "k") // the lock's key, as doc.go describes it

	rec.Take()
	lock, ok, err := b.TryLock(ctx, "k", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	if trips := rec.Take(); len(trips) != 1 || trips[0].Cmd != "add" {
		t.Errorf("TryLock sent %v; want one add", trips)
	}
	it, err := client.Get(lockKey)
	if err != nil || len(it.Value) != 32 || strings.Trim(string(it.Value), "0123456789abcdef") != "" {
		t.Fatalf("the lock item %q = %v, %v; want a token of 32 hex digits", lockKey, it, err)
	}
	if ttl, ok := metaTTL(t, server.Addr, lockKey); !ok || ttl < 60 || ttl > 61 {
		t.Errorf("the lock item: present %v, TTL %ds; want the lock timeout, 60s, plus one", ok, ttl)
	}

	rec.Take()
	if err := lock.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if trips := rec.Take(); len(trips) != 2 || trips[0].Cmd != "gets" || trips[1].Cmd != "cas" {
		t.Errorf("Unlock sent %v; want gets then cas", trips)
	}
	if _, err := client.Get(lockKey); !errors.Is(err, memcache.ErrCacheMiss) {
		t.Fatalf("get of the lock item after Unlock: %v; want a miss (the cas with a negative expiry deletes)", err)
	}
	again, ok, err := b.TryLock(ctx, "k", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock right after Unlock = %v, %v; want taken", ok, err)
	}
	if err := lock.Unlock(ctx); err != nil { // the first holder again: not its lock any more
		t.Fatal(err)
	}
	if _, ok, _ := b.TryLock(ctx, "k", time.Minute); ok {
		t.Fatal("a second Unlock by the first holder released the second holder's lock")
	}
	if err := again.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestUnlockLeavesOthersLock replaces the lock item behind the holder's back, as a holder whose
// lock expired would find it: Unlock leaves the item alone and is not an error.
func TestUnlockLeavesOthersLock(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	prefix := uniquePrefix(t)
	b := memcached.New(client, memcached.WithPrefix(prefix))
	lockKey := memcached.LockKey(b, "k") // the lock's key, as doc.go describes it
	lock, ok, err := b.TryLock(ctx, "k", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	other := []byte(strings.Repeat("0", 32))
	if err := client.Set(&memcache.Item{Key: lockKey, Value: other, Expiration: 60}); err != nil {
		t.Fatal(err)
	}
	if err := lock.Unlock(ctx); err != nil {
		t.Fatalf("Unlock of a lock another holder has: %v; want nil", err)
	}
	if it, err := client.Get(lockKey); err != nil || string(it.Value) != string(other) {
		t.Fatalf("the other holder's lock item after Unlock: %v, %v; want it untouched", it, err)
	}
	_ = client.Delete(lockKey)
}

// TestLockTimeout checks that a lock holds at least its timeout, though memcached counts whole
// seconds, and frees itself within two seconds more.
func TestLockTimeout(t *testing.T) {
	ctx := t.Context()
	b := memcached.New(newClient(t), memcached.WithPrefix(uniquePrefix(t)))
	for _, timeout := range []time.Duration{500 * time.Millisecond, time.Second} {
		key := "k" + timeout.String()
		if _, ok, err := b.TryLock(ctx, key, timeout); err != nil || !ok {
			t.Fatalf("TryLock(%v) = %v, %v", timeout, ok, err)
		}
		taken := time.Now()
		time.Sleep(timeout - 50*time.Millisecond)
		if _, ok, err := b.TryLock(ctx, key, timeout); err != nil || ok {
			t.Fatalf("TryLock %v after another took the lock with timeout %v = %v, %v; want not taken",
				time.Since(taken).Round(time.Millisecond), timeout, ok, err)
		}
		for {
			lock, ok, err := b.TryLock(ctx, key, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				t.Logf("a lock taken with timeout %v freed itself after %v", timeout, time.Since(taken).Round(10*time.Millisecond))
				_ = lock.Unlock(ctx)
				break
			}
			if time.Since(taken) > timeout+2*time.Second+500*time.Millisecond {
				t.Fatalf("a lock taken with timeout %v still held after %v", timeout, time.Since(taken))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func TestTryLockBadTimeout(t *testing.T) {
	b := memcached.New(newClient(t), memcached.WithPrefix(uniquePrefix(t)))
	for _, timeout := range []time.Duration{0, -time.Second} {
		if lock, ok, err := b.TryLock(t.Context(), "k", timeout); err == nil || ok || lock != nil {
			t.Errorf("TryLock with timeout %v = %v, %v, %v; want an error", timeout, lock, ok, err)
		}
	}
}

// The lock named "k" and the data key "\x00lock\x00k" map to different memcached keys: locks have
// keys of their own ("lock:" + hash), which no data key maps to, so storing that data key never
// holds the lock.
func TestLockNameIsNoDataKey(t *testing.T) {
	b := memcached.New(newClient(t), memcached.WithPrefix(uniquePrefix(t)))
	if err := b.Set(t.Context(), "\x00lock\x00k", []byte("data"), 0); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.TryLock(t.Context(), "k", time.Minute); err != nil || !ok {
		t.Errorf("TryLock(k) after Set of data key \\x00lock\\x00k = %v, %v; want taken (distinct names)", ok, err)
	}
}

// A data key that looks like a lock's key is hashed, so it cannot take the lock's place either.
func TestDataKeyLikeALockKey(t *testing.T) {
	prefix := uniquePrefix(t)
	b := memcached.New(newClient(t), memcached.WithPrefix(prefix))
	sum := sha1.Sum([]byte("k"))
	if err := b.Set(t.Context(), "lock:"+hex.EncodeToString(sum[:]), []byte("data"), 0); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.TryLock(t.Context(), "k", time.Minute); err != nil || !ok {
		t.Errorf("TryLock(k) after Set of the data key lock:<sha1 of k> = %v, %v; want taken", ok, err)
	}
}

// When the add that takes a lock runs on the server but its reply is lost with the connection, and
// the backend sends it again on a new one, TryLock reads the lock's token, finds its own, and holds
// the lock, rather than answering "held by another holder" and leaving the key blocked until the
// lock's timeout.
func TestLostAddReplyKeepsTheLock(t *testing.T) {
	client := memcache.New(testserver.DropReplyProxy(t, server.Addr, func(sent []byte) bool {
		return bytes.HasPrefix(sent, []byte("add ")) // the reply to the lock's add is lost
	}))
	client.Timeout = time.Second
	t.Cleanup(func() { _ = client.Close() })
	b := memcached.New(client, memcached.WithPrefix(uniquePrefix(t)))
	l, ok, err := b.TryLock(t.Context(), "k", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock after the reply to its own add was lost = %v, %v; want the lock, which only this call holds", ok, err)
	}
	if err := l.Unlock(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.TryLock(t.Context(), "k", time.Minute); err != nil || !ok {
		t.Fatalf("TryLock after Unlock = %v, %v; want the lock free", ok, err)
	}
}
