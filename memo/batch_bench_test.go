package memo_test

import (
	"context"
	"testing"

	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
)

// batchLoader returns a user for every id: the batch function of the batch benchmarks.
func batchLoader(_ context.Context, ids []int64) (map[int64]*user, error) {
	m := make(map[int64]*user, len(ids))
	for _, id := range ids {
		m[id] = &user{ID: id, Name: "user"}
	}
	return m, nil
}

// batchBench runs the batch benchmark on r: a 100-id batch of which 90 ids are cached and 10
// have never been seen (new ids every iteration), through memo.Multi ("multi") and, for
// comparison, through 100 calls of a memo.Func on the same region ("loop").
func batchBench(b *testing.B, r *region.Region) {
	ctx := context.Background()
	warm := make([]int64, 90)
	for i := range warm {
		warm[i] = int64(i)
	}
	b.Run("multi", func(b *testing.B) {
		h := memo.Multi(r, batchLoader, memo.WithNamespace("bench-multi"))
		if _, err := h.Call(ctx, warm); err != nil {
			b.Fatal(err)
		}
		ids := make([]int64, 100)
		copy(ids, warm)
		next := int64(1 << 40)
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
		h := memo.Func(r, func(ctx context.Context, id int64) (*user, error) {
			m, err := batchLoader(ctx, []int64{id})
			return m[id], err
		}, memo.WithNamespace("bench-loop"))
		for _, id := range warm {
			if _, err := h.Call(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
		next := int64(1 << 40)
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

// BenchmarkBatch100 is a 100-id batch with 10 misses on the memory backend; see batchBench.
func BenchmarkBatch100(b *testing.B) { batchBench(b, benchRegion(b)) }
