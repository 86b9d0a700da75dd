package counting

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"
)

// Trip is one round trip a memcached client made: the server, the command and, for get and gets,
// how many keys it named.
type Trip struct {
	Addr string
	Cmd  string
	Keys int
}

// Trips records the round trips of a gomemcache client's connections, through the client's
// DialContext.
type Trips struct {
	mu    sync.Mutex
	trips []Trip // guarded by mu
	dials int    // guarded by mu
}

// MemcachedClient returns a client of the memcached servers at addrs whose round trips the
// returned Trips record. Its idle connections are closed when tb ends.
func MemcachedClient(tb testing.TB, addrs ...string) (*memcache.Client, *Trips) {
	tb.Helper()
	client := memcache.New(addrs...)
	tb.Cleanup(func() { _ = client.Close() })
	rec := new(Trips)
	var d net.Dialer
	client.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		rec.mu.Lock()
		rec.dials++
		rec.mu.Unlock()
		return &countingConn{Conn: c, rec: rec, addr: addr}, nil
	}
	return client, rec
}

// Take returns the round trips recorded since the last Take and forgets them.
func (r *Trips) Take() []Trip {
	r.mu.Lock()
	defer r.mu.Unlock()
	trips := r.trips
	r.trips = nil
	return trips
}

// Dials returns how many connections the client has dialed.
func (r *Trips) Dials() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dials
}

// Count returns how many of trips sent cmd.
func Count(trips []Trip, cmd string) int {
	n := 0
	for _, tr := range trips {
		if tr.Cmd == cmd {
			n++
		}
	}
	return n
}

// countingConn counts a round trip each time the client reads after writing: a request is one
// or more writes (bufio splits long ones), its reply one or more reads.
type countingConn struct {
	net.Conn
	rec  *Trips
	addr string

	// Used by one goroutine at a time, as gomemcache uses a connection.
	writing bool
	line    []byte // the request's first line, as far as written
}

func (c *countingConn) Write(p []byte) (int, error) {
	if !c.writing {
		c.writing, c.line = true, c.line[:0]
	}
	if !bytes.Contains(c.line, []byte("\r\n")) {
		c.line = append(c.line, p[:min(len(p), 1<<20)]...)
	}
	return c.Conn.Write(p)
}

func (c *countingConn) Read(p []byte) (int, error) {
	if c.writing {
		c.writing = false
		line, _, _ := bytes.Cut(c.line, []byte("\r\n"))
		fields := strings.Fields(string(line))
		tr := Trip{Addr: c.addr}
		if len(fields) > 0 {
			tr.Cmd = fields[0]
		}
		if tr.Cmd == "gets" || tr.Cmd == "get" {
			tr.Keys = len(fields) - 1
		}
		c.rec.mu.Lock()
		c.rec.trips = append(c.rec.trips, tr)
		c.rec.mu.Unlock()
	}
	return c.Conn.Read(p)
}
