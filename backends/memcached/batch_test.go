package memcached_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/dogpile-go/dogpile/backends/memcached"
	"github.com/dogpile-go/dogpile/internal/counting"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
	"github.com/google/go-cmp/cmp"
)

// TestBatchRoundTrips counts the round trips on a pool of two memcached servers for a memo.Multi
// call of 200 ids, 180 of them cached. The backend wrapper counts the region's calls; the connection
// recorder counts the commands that reach the servers.
func TestBatchRoundTrips(t *testing.T) {
	ctx := t.Context()
	other := testserver.StartMemcached(t)
	client, rec := countingClient(t, server.Addr, other.Addr)
	b := counting.Wrap(memcached.New(client, memcached.WithPrefix(uniquePrefix(t))))
	r := region.New("batch", region.WithExpiration(time.Hour))
	if err := r.Configure(b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	var asked [][]int64
	users := memo.Multi(r, func(_ context.Context, ids []int64) (map[int64]string, error) {
		asked = append(asked, ids)
		m := make(map[int64]string, len(ids))
		for _, id := range ids {
			m[id] = fmt.Sprint("user ", id)
		}
		return m, nil
	}, memo.WithNamespace("users"))

	ids := make([]int64, 200)
	var warm, cold []int64
	for i := range ids {
		ids[i] = int64(i)
		if i%10 == 4 {
			cold = append(cold, int64(i))
		} else {
			warm = append(warm, int64(i))
		}
	}
	if _, err := users.Call(ctx, warm); err != nil {
		t.Fatal(err)
	}
	asked = nil
	b.Take()
	rec.take()

	got, err := users.Call(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 200 || !cmp.Equal(asked, [][]int64{cold}) {
		t.Fatalf("%d users; the loader was asked for %v, want once for %v", len(got), asked, cold)
	}
	ones := make([]int, 20)
	for i := range ones {
		ones[i] = 1
	}
	// memcached has no multi-key lock: a TryLock and an Unlock a key.
	// memcached has no multi-key conditional store either: one a key.
	wantCalls := map[string][]int{
		"getmulti":      {200, 20}, // two reads: all ids, then the 20 missing under their locks
		"setifnotnewer": ones,      // the writes, conditional: a creation
		"trylock":       ones,
		"unlock":        ones,
	}
	if calls := b.Take(); !cmp.Equal(calls, wantCalls) {
		t.Errorf("region calls %v, want %v", calls, wantCalls)
	}
	trips := rec.take()
	counts := map[string]int{}
	for _, tr := range trips {
		counts[tr.cmd]++
	}
	// Each GetMulti is one gets per server; a conditional store is a gets and an add (a cas
	// over an entry) per key (the text protocol has no multi-key set, and gomemcache does not
	// pipeline); each lock an add, each unlock a gets and a cas.
	want := map[string]int{"gets": 2*2 + 20 + 20, "add": 20 + 20, "cas": 20}
	if !cmp.Equal(counts, want) {
		t.Errorf("memcached saw %v, want %v", counts, want)
	}
	t.Logf("200 ids, 20 missing, 2 servers: commands %v", counts)
}

// On a pool of two memcached servers with one down, GetMulti returns the healthy server's items
// along with the down server's error, so a batch under FailOpen re-creates only the down server's
// keys, not the ones the healthy server holds and single-key calls still hit.
func TestGetMultiKeepsHealthyServersItems(t *testing.T) {
	ctx := t.Context()
	a, b := testserver.StartMemcached(t), testserver.StartMemcached(t)
	client := newClient(t, a.Addr, b.Addr)
	client.Timeout = 200 * time.Millisecond
	prefix := uniquePrefix(t)
	r := region.New("pool", region.WithExpiration(time.Hour), region.WithLogger(slog.New(slog.DiscardHandler)))
	if err := r.Configure(memcached.New(client, memcached.WithPrefix(prefix))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	v := region.NewView[string](r)

	// Which server each key lands on, as the client picks it.
	var sl memcache.ServerList
	if err := sl.SetServers(a.Addr, b.Addr); err != nil {
		t.Fatal(err)
	}
	var onA, onB []string
	for i := 0; len(onA) < 10 || len(onB) < 1; i++ {
		k := "k" + strconv.Itoa(i)
		addr, err := sl.PickServer(prefix + k)
		if err != nil {
			t.Fatal(err)
		}
		if addr.String() == a.Addr {
			if len(onA) < 10 {
				onA = append(onA, k)
			}
		} else if len(onB) < 1 {
			onB = append(onB, k)
		}
	}
	keys := append(slices.Clone(onA), onB...)
	for _, k := range onA {
		if err := v.Set(ctx, k, "cached "+k); err != nil {
			t.Fatal(err)
		}
	}
	b.Stop() // the server of onB goes down

	// Single-key calls still hit on the healthy server.
	for _, k := range onA {
		got, err := v.GetOrCreate(ctx, k, func(context.Context) (string, error) {
			t.Errorf("single-key GetOrCreate(%s) created; it is cached on the healthy server", k)
			return "", nil
		})
		if err != nil || got != "cached "+k {
			t.Fatalf("GetOrCreate(%s) = %q, %v", k, got, err)
		}
	}
	var asked []string
	got, err := v.GetOrCreateMulti(ctx, keys, func(_ context.Context, ks []string) (map[string]string, error) {
		asked = append(asked, ks...)
		m := map[string]string{}
		for _, k := range ks {
			m[k] = "new " + k
		}
		return m, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(asked, onB) {
		t.Errorf("with one server of two down, the batch creator was asked for %d keys %v; want only %v (the healthy server holds the other %d)", len(asked), asked, onB, len(onA))
	}
	if got[onA[0]] != "cached "+onA[0] {
		t.Errorf("%s = %q, want the cached value", onA[0], got[onA[0]])
	}
}

// A SetMulti with one item too large writes every item that fits once: the items memcached stored
// are not sent again with Set, one round trip each, and the one too large is not tried twice.
func TestSetMultiTooLargeWritesOnce(t *testing.T) {
	ctx := t.Context()
	client, rec := countingClient(t, server.Addr)
	r := region.New("big", region.WithCodec(region.Raw), region.WithLogger(slog.New(slog.DiscardHandler)))
	if err := r.Configure(memcached.New(client, memcached.WithPrefix(uniquePrefix(t)))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	v := region.NewView[[]byte](r)
	items := map[string][]byte{"big": make([]byte, 3<<20)}
	for i := range 10 {
		items["small"+strconv.Itoa(i)] = []byte("s")
	}
	rec.take()
	_ = v.SetMulti(ctx, items)
	sets := 0
	for _, tr := range rec.take() {
		if tr.cmd == "set" {
			sets++
		}
	}
	if sets != 10 {
		t.Errorf("SetMulti of 10 small values and one too large sent %d sets to memcached, want 10", sets)
	}
}
