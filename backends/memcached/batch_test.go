package memcached_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/memcached"
	"github.com/dogpile-go/dogpile/internal/counting"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
	"github.com/google/go-cmp/cmp"
)

// TestBatchRoundTrips is issue 6's count on a pool of two memcached servers: a memo.Multi call of
// 200 ids, 180 of them cached. The backend wrapper counts the region's calls; the connection
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
