package memcached_test

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/dogpile-go/dogpile/backends/memcached"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/region"
)

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
