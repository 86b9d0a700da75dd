package memcached_test

import (
	"crypto/sha1"
	"encoding/hex"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/memcached"
)

// TestLockNameIsNoDataKey: the data key "\x00lock\x00k" and the lock named "k" used to map to the
// same memcached key: storing that data key held the lock "k" until the data expired. Locks now
// have keys of their own ("lock:" + hash), which no data key maps to.
func TestLockNameIsNoDataKey(t *testing.T) {
	b := memcached.New(newClient(t), memcached.WithPrefix(uniquePrefix(t)))
	if err := b.Set(t.Context(), "\x00lock\x00k", []byte("data"), 0); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.TryLock(t.Context(), "k", time.Minute); err != nil || !ok {
		t.Errorf("TryLock(k) after Set of data key \\x00lock\\x00k = %v, %v; want taken (distinct names)", ok, err)
	}
}

// TestDataKeyLikeALockKey: a data key that looks like a lock's key is hashed, so it cannot take
// the lock's place either.
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
