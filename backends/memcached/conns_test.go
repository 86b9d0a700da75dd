package memcached_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/memcached"
	"github.com/dogpile-go/dogpile/internal/counting"
	"github.com/dogpile-go/dogpile/internal/testserver"
)

// stat returns the number a statistic of memcached's stats holds (the stats query itself opens
// a connection, which the server counts).
func stat(tb testing.TB, m map[string]string, name string) int64 {
	tb.Helper()
	n, err := strconv.ParseInt(m[name], 10, 64)
	if err != nil {
		tb.Fatalf("stats: %s = %q", name, m[name])
	}
	return n
}

// TestConnectionsCappedUnderLoad: 3,000 goroutines reading one warm key ten times each, through a
// backend whose cap is 16 connections, against a memcached that refuses more than 64: every read
// hits, the server is asked for no more than 16 connections in all (the idle ones are reused, not
// closed and dialed again), and refuses none. (Without the cap gomemcache dialed a connection for
// every call that found no idle one: 28,300 dials, 28,218 of them refused, as many reads failed.)
func TestConnectionsCappedUnderLoad(t *testing.T) {
	const (
		goroutines = 3000
		reads      = 10
		maxConns   = 16
	)
	srv := testserver.StartMemcachedArgs(t, "-c", "64").Addr
	b := openURL(t, srv, "max_conns="+strconv.Itoa(maxConns)+"&timeout=5s")
	ctx := t.Context()
	if err := b.Set(ctx, "hot", []byte("value"), 0); err != nil {
		t.Fatal(err)
	}
	before := stats(t, srv)

	var hits, misses, failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range goroutines {
		wg.Go(func() {
			for range reads {
				v, err := b.Get(ctx, "hot")
				switch {
				case err == nil && string(v) == "value":
					hits.Add(1)
				case err == nil:
					misses.Add(1)
				default:
					if failures.Add(1) == 1 {
						firstErr.Store(err)
					}
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	after := stats(t, srv)
	opened := stat(t, after, "total_connections") - stat(t, before, "total_connections") - 1 // less the second stats query's
	refused := stat(t, after, "rejected_connections") - stat(t, before, "rejected_connections")
	t.Logf("%d×%d reads in %v: %d hits, %d wrong values, %d errors; connections opened %d, refused %d, open at the end %d (stats included)",
		goroutines, reads, elapsed.Round(time.Millisecond), hits.Load(), misses.Load(), failures.Load(), opened, refused, stat(t, after, "curr_connections"))
	if n := failures.Load(); n != 0 {
		t.Errorf("%d reads failed; want none (first: %v)", n, firstErr.Load())
	}
	if n := hits.Load(); n != goroutines*reads {
		t.Errorf("%d hits; want %d", n, goroutines*reads)
	}
	if opened+refused > maxConns { // memcached counts refused connections apart
		t.Errorf("the backend opened %d connections (%d refused); want at most its cap, %d", opened+refused, refused, maxConns)
	}
	if refused != 0 {
		t.Errorf("the server refused %d connections; want none", refused)
	}
}

// TestWaitForConnectionHonoursDeadline: with every connection of the cap busy (one, held by a call
// that its caller gave up on, to a paused server), a call waits for one, without dialing another,
// until its deadline.
func TestWaitForConnectionHonoursDeadline(t *testing.T) {
	srv := testserver.StartMemcached(t)
	client, rec := counting.MemcachedClient(t, srv.Addr)
	client.Timeout = 2 * time.Second
	b := memcached.New(client, memcached.WithPrefix(uniquePrefix(t)), memcached.WithMaxConns(1))
	if err := b.Set(t.Context(), "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	srv.Pause(t)
	// Abandoned after 200ms; its connection stays busy until the client's timeout, 2s.
	testserver.WithinDeadline(t, "Get (abandoned)", func(ctx context.Context) error { _, err := b.Get(ctx, "k"); return err }, failedByDeadline)
	testserver.WithinDeadline(t, "Get (waiting for a connection)", func(ctx context.Context) error { _, err := b.Get(ctx, "k"); return err }, failedByDeadline)
	if n := rec.Dials(); n != 1 {
		t.Errorf("the client dialed %d times; want 1: a cap of one connection", n)
	}
}
