package memo_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
	"github.com/maypok86/otter/v2"
)

// The hit-path benchmarks run side by side in one `make bench` (or
// `go test -run '^$' -bench 'Hit|Floor|Miss' -benchmem ./memo`): the memo hit and the typed
// region Get against a bare otter Get on a prebuilt key, the floor any cache on otter pays.
// The figures and ratios are in the issue notes, measured with benchstat; they are not repeated
// here because they depend on the machine.

func benchRegion(b *testing.B) *region.Region {
	r := region.New("bench", region.WithExpiration(10*time.Minute))
	if err := r.Configure(memory.New(memory.WithMaxEntries(100_000))); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	return r
}

// BenchmarkMemoHit is a warm hit through a one-argument memo handle with an int64 argument:
// key encoding, one memory read, the freshness check. One allocation: the key string.
func BenchmarkMemoHit(b *testing.B) {
	h := memo.Func(benchRegion(b), loadUser)
	ctx := context.Background()
	if _, err := h.Call(ctx, 42); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Call(ctx, 42); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoHitParallel is BenchmarkMemoHit from every P at once, over 1,024 keys.
func BenchmarkMemoHitParallel(b *testing.B) {
	h := memo.Func(benchRegion(b), loadUser)
	ctx := context.Background()
	for i := range int64(1024) {
		if _, err := h.Call(ctx, i); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var i int64
		for pb.Next() {
			if _, err := h.Call(ctx, i&1023); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkViewGetHit is a warm hit through a typed region view with a string key: no key
// encoding, no allocation.
func BenchmarkViewGetHit(b *testing.B) {
	v := region.NewView[*user](benchRegion(b))
	ctx := context.Background()
	if err := v.Set(ctx, "user:42", &user{ID: 42}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, _ := v.Get(ctx, "user:42"); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkViewGetOrCreateHit is the same hit through GetOrCreate, the dogpile-locked path.
func BenchmarkViewGetOrCreateHit(b *testing.B) {
	v := region.NewView[*user](benchRegion(b))
	ctx := context.Background()
	create := func(context.Context) (*user, error) { return &user{ID: 42}, nil }
	if _, err := v.GetOrCreate(ctx, "user:42", create); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.GetOrCreate(ctx, "user:42", create); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOtterFloor is a bare otter GetIfPresent on a prebuilt string key, with the bound the
// other benchmarks' memory backend has: the floor.
func BenchmarkOtterFloor(b *testing.B) {
	c := otter.Must(&otter.Options[string, backends.Item]{MaximumSize: 100_000})
	b.Cleanup(func() { c.StopAllGoroutines() })
	const key = "github.com/dogpile-go/dogpile/memo_test.loadUser|i64:42"
	c.Set(key, backends.Item{Value: &user{ID: 42}, Created: time.Now().UnixNano()})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.GetIfPresent(key); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkMemoColdMiss is a miss with a trivial creator: each iteration a new key, so it
// measures the whole slow path (flight, re-read, create, store).
func BenchmarkMemoColdMiss(b *testing.B) {
	h := memo.Func(benchRegion(b), func(_ context.Context, id int64) (int64, error) { return id, nil },
		memo.WithNamespace("cold"))
	ctx := context.Background()
	var i atomic.Int64
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Call(ctx, i.Add(1)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoColdMissCancelable is BenchmarkMemoColdMiss with a context that can be cancelled:
// the creation then runs on its own goroutine so that the caller can leave.
func BenchmarkMemoColdMissCancelable(b *testing.B) {
	h := memo.Func(benchRegion(b), func(_ context.Context, id int64) (int64, error) { return id, nil },
		memo.WithNamespace("cold-cancel"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var i atomic.Int64
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Call(ctx, i.Add(1)); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleFunc0() {
	r := region.New("config")
	if err := r.Configure(memory.New()); err != nil {
		panic(err)
	}
	defer r.Close()
	settings := memo.Func0(r, func(context.Context) (map[string]string, error) {
		return map[string]string{"theme": "dark"}, nil
	}, memo.WithNamespace("settings"))
	s, _ := settings.Call(context.Background())
	fmt.Println(s["theme"])
	// Output: dark
}

// BenchmarkOtterFloorBuiltKey is the floor for a cache whose key is built per call, as any
// function cache must: the key "namespace|i64:42" appended into a stack buffer and converted to a
// string (one allocation), then a bare otter GetIfPresent. The gap to BenchmarkOtterFloor is the
// key's allocation and a full string comparison in place of the pointer-equal one a prebuilt key
// gets; BenchmarkMemoHit pays both too.
func BenchmarkOtterFloorBuiltKey(b *testing.B) {
	c := otter.Must(&otter.Options[string, backends.Item]{MaximumSize: 100_000})
	b.Cleanup(func() { c.StopAllGoroutines() })
	const prefix = "github.com/dogpile-go/dogpile/memo_test.loadUser|"
	c.Set(prefix+"i64:42", backends.Item{Value: &user{ID: 42}, Created: time.Now().UnixNano()})
	id := int64(42)
	b.ReportAllocs()
	for b.Loop() {
		var buf [128]byte
		k := strconv.AppendInt(append(append(buf[:0], prefix...), "i64:"...), id, 10)
		if _, ok := c.GetIfPresent(string(k)); !ok {
			b.Fatal("miss")
		}
	}
}
