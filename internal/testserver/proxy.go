package testserver

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Silent starts a listener on a free loopback port that accepts connections and never answers,
// for tests of clients against a hung server. It is closed, with its connections, when tb ends.
func Silent(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn // held open, never answered; guarded by mu
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	tb.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}

// DropReplyProxy starts a proxy on a free loopback port that forwards every connection to
// upstream, except once: the first time trigger matches bytes a client sent, the server's reply
// to them is lost and the client's connection closed, after the server executed the command. It
// is how the tests show what a backend does when a command ran but its reply never came back.
// The proxy stops when tb ends.
func DropReplyProxy(tb testing.TB, upstream string, trigger func(sent []byte) bool) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var tripped atomic.Bool
	var wg sync.WaitGroup
	tb.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", upstream)
			if err != nil {
				_ = c.Close()
				continue
			}
			var drop atomic.Bool
			wg.Go(func() { // client -> server
				defer s.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if trigger(buf[:n]) && tripped.CompareAndSwap(false, true) {
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
