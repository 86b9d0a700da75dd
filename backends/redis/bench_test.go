package redis_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/redis"
)

// The benchmarks put the backend beside bare go-redis on the same local server, in one run, to
// keep the backend's overhead honest: a Get should cost what a bare GET costs, and a 100-key
// GetMulti one round trip instead of 100. The figures depend on the machine and belong in notes;
// rerun with
//
//	go test ./backends/redis -run '^$' -bench . -benchmem -count 6

// benchValue is about the size of a small cached record in its envelope.
var benchValue = backends.EncodeEntry(backends.Entry{Created: 1, Payload: []byte(`{"id":42,"name":"` + strings.Repeat("g", 160) + `"}`)})

func BenchmarkRedisGet(b *testing.B) {
	for _, bc := range []struct{ name, prefix string }{{"prefix=none", ""}, {"prefix=app", "app:"}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := b.Context()
			client := newClient(b)
			be := redis.New(client, redis.WithPrefix(bc.prefix))
			key := "bench:get:" + strconv.Itoa(len(benchValue))
			if err := be.Set(ctx, key, benchValue, 0); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = be.Delete(context.Background(), key) }) // b.Context() is done by then
			b.ReportAllocs()
			for b.Loop() {
				if _, err := be.Get(ctx, key); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBareGoRedisGet(b *testing.B) {
	ctx := b.Context()
	client := newClient(b)
	key := "bench:bare:" + strconv.Itoa(len(benchValue))
	if err := client.Set(ctx, key, benchValue, 0).Err(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { client.Del(context.Background(), key) })
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Get(ctx, key).Bytes(); err != nil {
			b.Fatal(err)
		}
	}
}

// multiBench sets up 100 keys holding benchValue and returns the backend and the keys.
func multiBench(b *testing.B) (*redis.Backend, []string) {
	ctx := b.Context()
	be := redis.New(newClient(b), redis.WithPrefix("bench:multi:"))
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
	ctx := b.Context()
	be, keys := multiBench(b)
	b.ReportAllocs()
	for b.Loop() {
		m, err := be.GetMulti(ctx, keys)
		if err != nil || len(m) != len(keys) {
			b.Fatal(len(m), err)
		}
	}
}

func BenchmarkSequentialGet100(b *testing.B) {
	ctx := b.Context()
	be, keys := multiBench(b)
	b.ReportAllocs()
	for b.Loop() {
		for _, k := range keys {
			if _, err := be.Get(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkSetMulti100(b *testing.B) {
	ctx := b.Context()
	be, keys := multiBench(b)
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
}
