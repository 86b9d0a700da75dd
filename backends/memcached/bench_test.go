package memcached_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memcached"
	"github.com/dogpile-go/dogpile/internal/testserver"
)

// The benchmarks put the backend beside bare gomemcache on the same local server, in one run, to
// keep the backend's overhead honest: a Get should cost what a bare Get costs, and a 100-key
// GetMulti one round trip instead of 100. The figures depend on the machine and belong in notes;
// rerun with
//
//	go test ./backends/memcached -run '^$' -bench . -benchmem -count 6

// benchValue is about the size of a small cached record in its envelope.
var benchValue = backends.EncodeEntry(backends.Entry{Created: 1, Payload: []byte(`{"id":42,"name":"` + strings.Repeat("g", 160) + `"}`)})

func BenchmarkMemcachedGet(b *testing.B) {
	for _, bc := range []struct{ name, prefix string }{{"prefix=none", ""}, {"prefix=app", "app:"}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := b.Context()
			be := memcached.New(newClient(b), memcached.WithPrefix(bc.prefix))
			key := "bench:get:" + strconv.Itoa(len(benchValue))
			if err := be.Set(ctx, key, benchValue, 0); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = be.Delete(context.Background(), key) })
			b.ReportAllocs()
			for b.Loop() {
				if _, err := be.Get(ctx, key); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBareGomemcacheGet(b *testing.B) {
	client := newClient(b)
	key := "bench:bare:" + strconv.Itoa(len(benchValue))
	if err := client.Set(&memcache.Item{Key: key, Value: benchValue}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = client.Delete(key) })
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Get(key); err != nil {
			b.Fatal(err)
		}
	}
}

// multiBench sets up 100 keys holding benchValue on one server or two and returns the backend
// and the keys.
func multiBench(b *testing.B, servers int) (*memcached.Backend, []string) {
	ctx := b.Context()
	addrs := []string{server.Addr}
	if servers == 2 {
		addrs = append(addrs, testserver.StartMemcached(b).Addr)
	}
	be := memcached.New(newClient(b, addrs...), memcached.WithPrefix("bench:multi:"))
	keys := make([]string, 100)
	items := make(map[string][]byte, len(keys))
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
		items[keys[i]] = benchValue
	}
	if err := be.SetMulti(ctx, items, 0); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = be.DeleteMulti(context.Background(), keys) })
	return be, keys
}

func BenchmarkGetMulti100(b *testing.B) {
	for _, servers := range []int{1, 2} {
		b.Run("servers="+strconv.Itoa(servers), func(b *testing.B) {
			ctx := b.Context()
			be, keys := multiBench(b, servers)
			b.ReportAllocs()
			for b.Loop() {
				m, err := be.GetMulti(ctx, keys)
				if err != nil || len(m) != len(keys) {
					b.Fatal(len(m), err)
				}
			}
		})
	}
}

func BenchmarkSequentialGet100(b *testing.B) {
	for _, servers := range []int{1, 2} {
		b.Run("servers="+strconv.Itoa(servers), func(b *testing.B) {
			ctx := b.Context()
			be, keys := multiBench(b, servers)
			b.ReportAllocs()
			for b.Loop() {
				for _, k := range keys {
					if _, err := be.Get(ctx, k); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

func BenchmarkSetMulti100(b *testing.B) {
	for _, servers := range []int{1, 2} {
		b.Run("servers="+strconv.Itoa(servers), func(b *testing.B) {
			ctx := b.Context()
			be, keys := multiBench(b, servers)
			items := make(map[string][]byte, len(keys))
			for _, k := range keys {
				items[k] = benchValue
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := be.SetMulti(ctx, items, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
