package memory_test

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/maypok86/otter/v2"
)

// The benchmarks compare the backend's hit path with a bare otter cache of the same options (an
// expiry calculator on otter's coarse clock, as New sets up) and without expiry, to keep the
// backend's overhead honest and to price per-entry TTLs. The figures belong in notes, not here,
// since they depend on the machine; rerun with
//
//	go test ./backends/memory -run '^$' -bench . -benchmem -count 10

const benchKeys = 1024

func benchKey(i int) string { return "user:" + strconv.Itoa(i) }

func newBenchBackend(b *testing.B, maxEntries int) *memory.Backend {
	m := memory.New(memory.WithMaxEntries(maxEntries))
	b.Cleanup(func() { _ = m.Close() })
	for i := range benchKeys {
		if err := m.SetValue(b.Context(), benchKey(i), backends.Item{Value: &struct{ N int }{i}, Created: int64(i)}, 0); err != nil {
			b.Fatal(err)
		}
	}
	return m
}

func newBenchOtter(b *testing.B, maxEntries int, expiry bool) *otter.Cache[string, backends.Item] {
	opts := &otter.Options[string, backends.Item]{MaximumSize: maxEntries}
	if expiry {
		clock := otter.NewCoarseClock(100 * time.Millisecond)
		b.Cleanup(clock.Stop)
		opts.Clock = clock
		opts.ExpiryCalculator = otter.ExpiryWritingFunc(func(otter.Entry[string, backends.Item]) time.Duration {
			return time.Duration(math.MaxInt64)
		})
	}
	c := otter.Must(opts)
	b.Cleanup(func() { c.StopAllGoroutines() })
	for i := range benchKeys {
		c.Set(benchKey(i), backends.Item{Value: &struct{ N int }{i}, Created: int64(i)})
	}
	return c
}

var benchSizes = []struct {
	name string
	max  int
}{
	{"unbounded", 0},
	{"max=10000", 10_000},
}

// BenchmarkGetValue is a hit through the backend's value path, one prebuilt key.
func BenchmarkGetValue(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			m := newBenchBackend(b, size.max)
			ctx, key := b.Context(), benchKey(7)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.GetValue(ctx, key); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOtterGet is the same hit on a bare otter cache: with an expiry calculator as the
// backend has (expiry), and without one (noexpiry), to price per-entry TTLs.
func BenchmarkOtterGet(b *testing.B) {
	for _, size := range benchSizes {
		for _, expiry := range []bool{true, false} {
			name := size.name + "/expiry"
			if !expiry {
				name = size.name + "/noexpiry"
			}
			b.Run(name, func(b *testing.B) {
				c := newBenchOtter(b, size.max, expiry)
				key := benchKey(7)
				b.ReportAllocs()
				for b.Loop() {
					if _, ok := c.GetIfPresent(key); !ok {
						b.Fatal("miss")
					}
				}
			})
		}
	}
}

// BenchmarkGetValueParallel reads 1024 hot keys from every P.
func BenchmarkGetValueParallel(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			m := newBenchBackend(b, size.max)
			ctx := b.Context()
			keys := make([]string, benchKeys)
			for i := range keys {
				keys[i] = benchKey(i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := m.GetValue(ctx, keys[i&(benchKeys-1)]); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}

// BenchmarkOtterGetParallel is BenchmarkGetValueParallel on a bare otter cache.
func BenchmarkOtterGetParallel(b *testing.B) {
	for _, size := range benchSizes {
		for _, expiry := range []bool{true, false} {
			name := size.name + "/expiry"
			if !expiry {
				name = size.name + "/noexpiry"
			}
			b.Run(name, func(b *testing.B) {
				c := newBenchOtter(b, size.max, expiry)
				keys := make([]string, benchKeys)
				for i := range keys {
					keys[i] = benchKey(i)
				}
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						if _, ok := c.GetIfPresent(keys[i&(benchKeys-1)]); !ok {
							b.Error("miss")
							return
						}
						i++
					}
				})
			})
		}
	}
}

// BenchmarkGet is a hit through the byte path (100-byte value, copied out), for comparison.
func BenchmarkGet(b *testing.B) {
	m := memory.New()
	b.Cleanup(func() { _ = m.Close() })
	ctx, key := b.Context(), "k"
	if err := m.Set(ctx, key, make([]byte, 100), 0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Get(ctx, key); err != nil {
			b.Fatal(err)
		}
	}
}
