package redis

import (
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

// TestLockInItsKeysSlot: on a Cluster, a key's lock lives in the hash slot of the key, whatever
// the prefix and the key, except for the documented rare forms.
func TestLockInItsKeysSlot(t *testing.T) {
	client := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}}) // never dialed
	defer client.Close()
	for _, prefix := range []string{"", "app:", "{app}:", "a{b}c:", "{}:", "x{:"} {
		b := New(client, WithPrefix(prefix))
		for _, key := range []string{"k", "users|i64:42", "{tag}rest", "a{b", "{}", "x}y", strings.Repeat("z", 300)} {
			data, lock := prefix+key, b.lockKey(key)
			if !strings.HasPrefix(lock, prefix+lockTag) {
				t.Errorf("prefix %q, key %q: lock key %q does not start with the prefix and the lock mark", prefix, key, lock)
			}
			// The rare forms: a prefix with a '{' but no hash tag of its own, or a key without a
			// hash tag that holds a '}'.
			rare := strings.ContainsRune(prefix, '{') && hashPart(prefix) == prefix || strings.ContainsRune(data, '}') && hashPart(data) == data
			if hashSlot(lock) != hashSlot(data) && !rare {
				t.Errorf("prefix %q, key %q: lock %q in slot %d, its key in %d", prefix, key, lock, hashSlot(lock), hashSlot(data))
			}
		}
	}
	// Outside a Cluster the lock key keeps its plain form.
	single := New(goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"}), WithPrefix("app:"))
	defer single.client.Close()
	if got := single.lockKey("k"); got != "app:"+lockTag+"k" {
		t.Errorf("single node: lock key %q", got)
	}
}
