package memcached_test

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/dogpile-go/dogpile/backends/memcached"
	"github.com/dogpile-go/dogpile/internal/counting"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/region"
)

// TestPoolScaleOut: on a pool of three memcached servers the client spreads a
// batch's keys over all three, GetMulti asks each server once, and with one server killed
// (SIGKILL) a FailOpen region still hits on the other two and treats the dead server's keys as
// misses, not errors; when the server comes back empty, its keys are made once more and cached.
func TestPoolScaleOut(t *testing.T) {
	ctx := t.Context()
	pool := testserver.StartMemcachedPool(t, 3)
	var addrs []string
	for _, s := range pool {
		addrs = append(addrs, s.Addr)
	}
	client, rec := counting.MemcachedClient(t, addrs...)
	client.Timeout = time.Second // live servers answer well within it, even under -race on a loaded machine
	prefix := uniquePrefix(t)
	b := memcached.New(client, memcached.WithPrefix(prefix))
	var reported atomic.Int32
	// A client given to New counts as one server (backends.Partitioned: the backend cannot see
	// its servers), so the region's breaker would open for the live servers on the dead one's
	// errors: a pool built in code turns it off, as one opened from a URL has it off.
	r := region.New("pool", region.WithExpiration(time.Hour), region.WithLogger(slog.New(slog.DiscardHandler)),
		region.WithErrorHandler(func(context.Context, error) { reported.Add(1) }), region.WithCircuitBreaker(0, 0))
	if err := r.Configure(b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	v := region.NewView[string](r)

	// Where the client puts each key: memcache.ServerList's rule, which New's client uses.
	var sl memcache.ServerList
	if err := sl.SetServers(addrs...); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 300)
	on := map[string][]string{} // server -> its keys
	for i := range keys {
		keys[i] = "item:" + strconv.Itoa(i)
		addr, err := sl.PickServer(prefix + keys[i])
		if err != nil {
			t.Fatal(err)
		}
		on[addr.String()] = append(on[addr.String()], keys[i])
	}
	var asked []string
	create := func(_ context.Context, missing []string) (map[string]string, error) {
		asked = append(asked, missing...)
		m := make(map[string]string, len(missing))
		for _, k := range missing {
			m[k] = "value of " + k
		}
		return m, nil
	}
	batch := func(what string) {
		t.Helper()
		got, err := v.GetOrCreateMulti(ctx, keys, create)
		if err != nil {
			t.Fatalf("%s batch: %v", what, err)
		}
		for _, k := range keys {
			if got[k] != "value of "+k {
				t.Fatalf("%s batch: %s = %q", what, k, got[k])
			}
		}
	}

	batch("cold")
	asked = nil
	rec.Take()
	batch("warm")
	if len(asked) != 0 {
		t.Fatalf("the warm batch created %d keys", len(asked))
	}
	// One gets per server, naming that server's keys.
	perServer := map[string]int{}
	for _, tr := range rec.Take() {
		if tr.Cmd != "gets" {
			t.Errorf("the warm batch sent %q to %s; want only gets", tr.Cmd, tr.Addr)
		}
		if perServer[tr.Addr] != 0 {
			t.Errorf("the warm batch asked %s twice", tr.Addr)
		}
		perServer[tr.Addr] = tr.Keys
	}
	for _, addr := range addrs {
		if len(on[addr]) == 0 || perServer[addr] != len(on[addr]) {
			t.Errorf("server %s: %d keys picked for it, %d asked of it in the warm batch; want some, all in one gets", addr, len(on[addr]), perServer[addr])
		}
	}
	t.Logf("300 keys over 3 servers: keys asked per server in one gets each %v", perServer)

	// One server dies.
	dead := pool[1]
	dead.Kill()
	killed := time.Now()
	asked = nil
	reported.Store(0)
	batch("one server dead")
	took := time.Since(killed)
	slices.Sort(asked)
	want := slices.Sorted(slices.Values(on[dead.Addr]))
	if !slices.Equal(asked, want) {
		t.Errorf("with %s dead the creator was asked for %d keys, want its %d keys and no others", dead.Addr, len(asked), len(want))
	}
	if reported.Load() == 0 {
		t.Error("a server was down and the region reported nothing")
	}
	t.Logf("server %s killed (SIGKILL): the next batch answered in %v (no wait for recovery), %d creator calls (the dead server's keys), %d errors reported; the other %d keys hit",
		dead.Addr, took.Round(time.Millisecond), len(asked), reported.Load(), len(keys)-len(asked))

	// Single keys too: a live server's key hits, a dead server's key is created, neither fails.
	live := on[pool[0].Addr][0]
	if got, err := v.GetOrCreate(ctx, live, func(context.Context) (string, error) {
		t.Errorf("GetOrCreate(%s) created; its server is alive and holds it", live)
		return "", nil
	}); err != nil || got != "value of "+live {
		t.Fatalf("GetOrCreate(%s) = %q, %v", live, got, err)
	}
	gone := on[dead.Addr][0]
	if got, err := v.GetOrCreate(ctx, gone, func(context.Context) (string, error) { return "made", nil }); err != nil || got != "made" {
		t.Fatalf("GetOrCreate(%s) on the dead server = %q, %v; want the creator's value and no error", gone, got, err)
	}
	// The backend's GetMulti: the live servers' values together with the dead one's error.
	m, err := b.GetMulti(ctx, keys)
	if err == nil {
		t.Error("GetMulti with a server dead returned no error")
	}
	if len(m) != len(keys)-len(on[dead.Addr]) {
		t.Errorf("GetMulti with a server dead returned %d values, want the %d of the live servers", len(m), len(keys)-len(on[dead.Addr]))
	}

	// It comes back, empty: its keys are made once more, then hit.
	if err := dead.Start(); err != nil {
		t.Fatal(err)
	}
	asked = nil
	batch("server back")
	if len(asked) != len(on[dead.Addr]) {
		t.Errorf("after the server came back empty the creator was asked for %d keys, want its %d", len(asked), len(on[dead.Addr]))
	}
	asked = nil
	reported.Store(0)
	batch("all back")
	if len(asked) != 0 || reported.Load() != 0 {
		t.Errorf("with every server back, a batch created %d keys and reported %d errors; want none", len(asked), reported.Load())
	}
}
