package memcached_test

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/dogpile-go/dogpile/backends/memcached"
)

// dropAddReplyProxy forwards to the shared server, except that the reply to the first add it sees
// is lost: the connection is closed after the server executed the add, before its answer reaches
// the client.
func dropAddReplyProxy(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var tripped atomic.Bool
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", server.Addr)
			if err != nil {
				c.Close()
				continue
			}
			var drop atomic.Bool
			wg.Go(func() { // client -> server
				defer s.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if bytes.HasPrefix(buf[:n], []byte("add ")) && tripped.CompareAndSwap(false, true) {
							drop.Store(true)
						}
						if _, werr := s.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
			wg.Go(func() { // server -> client
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 {
						if drop.Load() {
							return // the reply is lost with the connection
						}
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
		}
	})
	return l.Addr().String()
}

// TestLostAddReplyKeepsTheLock: the add that takes a lock runs on the server but its reply is lost
// with the connection, and the backend sends it again on a new one. The second add finds the lock
// taken, by our own first add; TryLock used to answer "held by another holder", leaving the key
// blocked until the lock's timeout for every process, this one too. It now reads the lock's token
// and finds its own.
func TestLostAddReplyKeepsTheLock(t *testing.T) {
	client := memcache.New(dropAddReplyProxy(t))
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
