package memcached_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/dogpile-go/dogpile/backends/memcached"
	"github.com/dogpile-go/dogpile/internal/testserver"
)

// TestLostAddReplyKeepsTheLock: the add that takes a lock runs on the server but its reply is lost
// with the connection, and the backend sends it again on a new one. The second add finds the lock
// taken, by our own first add; TryLock used to answer "held by another holder", leaving the key
// blocked until the lock's timeout for every process, this one too. It now reads the lock's token
// and finds its own.
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
