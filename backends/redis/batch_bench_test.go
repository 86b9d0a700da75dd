package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
)

// BenchmarkBatch100Redis is the batch benchmark on Redis: a 100-id batch of which 90 ids are
// cached and 10 have never been seen (new ids every iteration), through memo.Multi ("multi": two
// MGETs and three pipelines) and, for comparison, through 100 calls of a memo.Func ("loop": 90
// GETs, and five round trips for each of the 10 misses). memo's BenchmarkBatch100 is the same on
// the memory backend.
func BenchmarkBatch100Redis(b *testing.B) {
	client := newClient(b)
	r := region.New("bench", region.WithExpiration(time.Hour))
	if err := r.Configure(redis.New(client, redis.WithPrefix(uniquePrefix(b)), redis.WithDefaultTTL(time.Minute))); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	ctx := context.Background()
	load := func(_ context.Context, ids []int64) (map[int64]*benchUser, error) {
		m := make(map[int64]*benchUser, len(ids))
		for _, id := range ids {
			m[id] = newBenchUser(id)
		}
		return m, nil
	}
	warm := make([]int64, 90)
	for i := range warm {
		warm[i] = int64(i)
	}
	b.Run("multi", func(b *testing.B) {
		h := memo.Multi(r, load, memo.WithNamespace("bench-multi"))
		if _, err := h.Call(ctx, warm); err != nil {
			b.Fatal(err)
		}
		ids := make([]int64, 100)
		copy(ids, warm)
		next := time.Now().UnixNano() // ids no earlier run has cached
		b.ReportAllocs()
		for b.Loop() {
			for j := 90; j < 100; j++ {
				ids[j] = next
				next++
			}
			m, err := h.Call(ctx, ids)
			if err != nil || len(m) != 100 {
				b.Fatalf("%d values, %v", len(m), err)
			}
		}
	})
	b.Run("loop", func(b *testing.B) {
		h := memo.Func(r, func(ctx context.Context, id int64) (*benchUser, error) {
			m, err := load(ctx, []int64{id})
			return m[id], err
		}, memo.WithNamespace("bench-loop"))
		for _, id := range warm {
			if _, err := h.Call(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
		next := time.Now().UnixNano()
		b.ReportAllocs()
		for b.Loop() {
			for _, id := range warm {
				if _, err := h.Call(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
			for range 10 {
				if _, err := h.Call(ctx, next); err != nil {
					b.Fatal(err)
				}
				next++
			}
		}
	})
}
