package memcached

import (
	"hash/crc32"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"
)

// TestLockOnItsKeysServer: a lock key has the CRC-32 of its data key, so a pool's client puts
// both on one server, for keys sent as they are and hashed ones, with any prefix short
// enough.
func TestLockOnItsKeysServer(t *testing.T) {
	var pool memcache.ServerList
	if err := pool.SetServers("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:5"); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[string]string{}
	for _, prefix := range []string{"", "app:", strings.Repeat("p", 160)} {
		b := New(memcache.New("127.0.0.1:1"), WithPrefix(prefix))
		for i := range 2000 {
			name := "users|i64:" + strconv.Itoa(i)
			if i%3 == 0 {
				name += " with a space " + strconv.FormatUint(rng.Uint64(), 36) // hashed data key
			}
			data, lock := b.key(name), b.lockKey(name)
			if len(lock) > maxKeyLen || !sendable(lock) || !strings.HasPrefix(lock, prefix+lockMark) {
				t.Fatalf("lock key %q: not a key memcached takes, or not marked", lock)
			}
			if crc32.ChecksumIEEE([]byte(lock)) != crc32.ChecksumIEEE([]byte(data)) {
				t.Fatalf("lock key %q: CRC-32 %08x, its data key %q has %08x", lock, crc32.ChecksumIEEE([]byte(lock)), data, crc32.ChecksumIEEE([]byte(data)))
			}
			ls, _ := pool.PickServer(lock)
			ds, _ := pool.PickServer(data)
			if ls.String() != ds.String() {
				t.Fatalf("lock of %q on %s, its key on %s", name, ls, ds)
			}
			if other, dup := seen[lock]; dup && other != name {
				t.Fatalf("names %q and %q share the lock key %q", other, name, lock)
			}
			seen[lock] = name
		}
	}
	// A prefix too long for the letters: the plain form.
	long := New(memcache.New("127.0.0.1:1"), WithPrefix(strings.Repeat("p", maxPrefixLen)))
	if got := long.lockKey("k"); got != long.hashed(lockMark, "k") {
		t.Errorf("long prefix: lock key %q", got)
	}
}
