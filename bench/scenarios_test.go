package bench

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
)

// The in-process scenarios. Each Benchmark runs one sub-benchmark per contender (impl=NAME), in
// the same process, one after another; cmd/report runs each command ten times with -count=1 (so
// that the contenders' runs interleave in time) and reads medians through benchstat's statistics.
//
// The scenarios of warm reads (hit, get, zipf, memory) run with the expiration of the README's
// region, region.WithExpiration(10*time.Minute), and each peer with its like-for-like setting (see
// contenders); the -noexp contenders are the same caches with expiration off, extra rows that
// show what the expiration costs.

const (
	hitCapacity = 100_000 // the bound of the caches outside the zipf scenario
	hitKeys     = 1024    // keys read by the parallel hit scenarios

	zipfKeys     = 100_000
	zipfCapacity = zipfKeys / 10
	zipfS        = 1.01       // the skew: a few keys are read very often, most rarely
	zipfWarm     = zipfSeqLen // reads before timing: the hit ratio climbs until about then
	zipfSeqLen   = 1 << 20    // pregenerated key sequence, so sampling is not timed
	zipfSeqMask  = zipfSeqLen - 1
	zipfStride   = 1 << 14 // the distance between parallel readers' starts in the sequence

	memoryItems = 100_000 // the values the memory scenario caches

	stampedeCallers = 1000
	stampedeDelay   = 50 * time.Millisecond

	expiryReaders = 100
	expiryDelay   = 50 * time.Millisecond
	expiryAfter   = 20 * time.Millisecond
	earlyReaders  = 100
	earlySpan     = 1500 * time.Millisecond
	earlyExpire   = 200 * time.Millisecond
	earlyDelay    = 10 * time.Millisecond

	// waitThreshold is the latency above which a caller counts as having waited for the
	// loader rather than being served the old value at once.
	waitThreshold = 10 * time.Millisecond
)

// forEachContender runs f as one sub-benchmark per contender that can take part in a scenario
// that asks cfg, each with a fresh source in cfg.src; f makes the cache itself.
func forEachContender(b *testing.B, cfg config, f func(b *testing.B, ct contender, cfg config)) {
	for _, ct := range contenders {
		if !ct.runs(cfg) {
			continue
		}
		b.Run("impl="+ct.name, func(b *testing.B) {
			cfg := cfg
			cfg.src = new(source)
			f(b, ct, cfg)
		})
	}
}

// forEach runs f as one sub-benchmark per contender that can take part in a scenario that asks
// cfg, each with a fresh cache on a fresh source.
func forEach(b *testing.B, cfg config, f func(b *testing.B, c cache, src *source)) {
	forEachContender(b, cfg, func(b *testing.B, ct contender, cfg config) {
		f(b, ct.new(b, cfg), cfg.src)
	})
}

// forEachPeeker runs f as one sub-benchmark per peeker, each with a fresh cache.
func forEachPeeker(b *testing.B, cfg config, f func(b *testing.B, p peeker)) {
	for _, pk := range peekers {
		b.Run("impl="+pk.name, func(b *testing.B) {
			f(b, pk.new(b, cfg))
		})
	}
}

func check(tb testing.TB, u *user, err error, id int64) {
	if err != nil {
		tb.Fatal(err)
	}
	if u == nil || u.ID != id {
		tb.Fatalf("got %+v, want the user %d", u, id)
	}
}

// hitConfig is the configuration of the hit-path scenarios: the README's region, bounded to
// 100,000 entries, with expiration on.
var hitConfig = config{capacity: hitCapacity, expire: hitExpire, hitPath: true}

// BenchmarkHit is scenario 1, one goroutine: a warm hit on one key through the get-or-load path,
// with expiration on. memo.Func0 (dogpile-func0) takes part: one key is all it holds.
func BenchmarkHit(b *testing.B) {
	cfg := hitConfig
	cfg.oneKey = true
	forEach(b, cfg, func(b *testing.B, c cache, _ *source) {
		ctx := context.Background()
		u, err := c.get(ctx, hitID)
		check(b, u, err, hitID)
		runtime.GC() // the garbage of the contenders before is not this one's to collect
		b.ReportAllocs()
		for b.Loop() {
			u, err := c.get(ctx, hitID)
			if err != nil || u.ID != hitID {
				b.Fatal(u, err)
			}
		}
	})
}

// BenchmarkHitParallel is scenario 1 from every P at once (RunParallel), over 1,024 warm keys,
// with expiration on.
func BenchmarkHitParallel(b *testing.B) {
	forEach(b, hitConfig, func(b *testing.B, c cache, _ *source) {
		ctx := context.Background()
		for id := range int64(hitKeys) {
			u, err := c.get(ctx, id)
			check(b, u, err, id)
		}
		runtime.GC()
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := next.Add(1) * 97
			for pb.Next() {
				id := i & (hitKeys - 1)
				if u, err := c.get(ctx, id); err != nil || u.ID != id {
					b.Error(u, err)
					return
				}
				i++
			}
		})
	})
}

// BenchmarkGet is scenario 1b, one goroutine: a warm read on one prebuilt key that never loads,
// dogpile's View.Get beside otter's GetIfPresent, with expiration on.
func BenchmarkGet(b *testing.B) {
	forEachPeeker(b, hitConfig, func(b *testing.B, p peeker) {
		ctx := context.Background()
		if err := p.set(ctx, hitID, &user{ID: hitID, Name: "gopher"}); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		b.ReportAllocs()
		for b.Loop() {
			u, ok, err := p.peek(ctx, hitID)
			if err != nil || !ok || u.ID != hitID {
				b.Fatal(u, ok, err)
			}
		}
	})
}

// BenchmarkGetParallel is scenario 1b from every P at once (RunParallel), over 1,024 warm keys.
func BenchmarkGetParallel(b *testing.B) {
	forEachPeeker(b, hitConfig, func(b *testing.B, p peeker) {
		ctx := context.Background()
		for id := range int64(hitKeys) {
			if err := p.set(ctx, id, &user{ID: id, Name: "gopher"}); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := next.Add(1) * 97
			for pb.Next() {
				id := i & (hitKeys - 1)
				if u, ok, err := p.peek(ctx, id); err != nil || !ok || u.ID != id {
					b.Error(u, ok, err)
					return
				}
				i++
			}
		})
	})
}

// zipfSeq is a fixed sequence of zipf-distributed ids in [0, zipfKeys), the same for every
// contender and every run.
var zipfSeq = sync.OnceValue(func() []int32 {
	z := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), zipfS, 1, zipfKeys-1)
	seq := make([]int32, zipfSeqLen)
	for i := range seq {
		seq[i] = int32(z.Uint64())
	}
	return seq
})

// BenchmarkZipf is scenario 2: zipf-distributed reads from every P over a cache bounded to 10%
// of the key space, with expiration on and a loader that answers at once. It reports throughput
// (ns/op) and the hit ratio of the timed reads (1 - loads/reads). Caches that cannot be bounded
// sit it out. It is the one scenario that times misses among hits, so dogpile-bounded runs here
// beside dogpile: the difference is what a creation timeout costs.
//
// Each cache is warmed once, by one pass of the sequence (zipfWarm reads, on one goroutine),
// and serves every run of its sub-benchmark (b.N grows from 1): read one at a time, the hit
// ratio of dogpile and otter alike climbs through the first million reads (0.76 over the first
// 250,000, 0.79 over the next, about 0.805 from then on), so timing sooner would time the warm-up.
func BenchmarkZipf(b *testing.B) {
	seq := zipfSeq()
	cfg := hitConfig
	cfg.capacity, cfg.strict, cfg.misses = zipfCapacity, true, true
	for _, ct := range contenders {
		if !ct.runs(cfg) {
			continue
		}
		var c cache
		var src *source
		held := &heldTB{}
		b.Run("impl="+ct.name, func(b *testing.B) {
			ctx := context.Background()
			if c == nil {
				cfg := cfg
				cfg.src = new(source)
				held.TB = b
				src, c = cfg.src, ct.new(held, cfg)
				for i := range zipfWarm {
					id := int64(seq[i&zipfSeqMask])
					u, err := c.get(ctx, id)
					check(b, u, err, id)
				}
			}
			runtime.GC()
			before := src.calls.Load()
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := next.Add(1) * zipfStride
				for pb.Next() {
					id := int64(seq[i&zipfSeqMask])
					if u, err := c.get(ctx, id); err != nil || u.ID != id {
						b.Error(u, err)
						return
					}
					i++
				}
			})
			b.StopTimer()
			loads := src.calls.Load() - before
			b.ReportMetric(1-float64(loads)/float64(b.N), "hit-ratio")
		})
		held.release()
	}
}

// heldTB is a testing.TB whose cleanups wait for release instead of the end of the test: a
// benchmark's cleanups run after each run of it (each b.N), which would close a cache that the
// next run is to reuse.
type heldTB struct {
	testing.TB
	cleanups []func()
}

func (t *heldTB) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }

// release runs the cleanups, last first, as the testing package would.
func (t *heldTB) release() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}

// BenchmarkMemory is scenario 6: the heap that 100,000 cached values (a *user each) take, in
// dogpile's memory backend through memo.Func and in otter through Get with a Loader, both with
// the key built per call (so that each cache's keys are counted) and expiration on. bytes/item is
// the growth of the heap (runtime.MemStats.HeapAlloc after a runtime.GC) from before the cache
// was made to when it holds the 100,000 values, over 100,000: keys, values and the cache's own
// structures. Each op is then 100,000 gets of the cached values in sequence; ns/get is one of
// them.
func BenchmarkMemory(b *testing.B) {
	cfg := hitConfig
	cfg.only = []string{us, usSHA1, otterKeyed}
	forEachContender(b, cfg, func(b *testing.B, ct contender, cfg config) {
		ctx := context.Background()
		before := heapAfterGC()
		c := ct.new(b, cfg)
		for id := range int64(memoryItems) {
			u, err := c.get(ctx, id)
			check(b, u, err, id)
		}
		held := heapAfterGC() - before
		loads := cfg.src.calls.Load()
		b.ReportAllocs()
		for b.Loop() {
			for id := range int64(memoryItems) {
				if u, err := c.get(ctx, id); err != nil || u.ID != id {
					b.Fatal(u, err)
				}
			}
		}
		if n := cfg.src.calls.Load() - loads; n != 0 {
			b.Fatalf("%d of the %d values were loaded again: the cache did not hold them all", n, memoryItems)
		}
		b.ReportMetric(float64(held)/memoryItems, "bytes/item")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/memoryItems, "ns/get")
	})
}

// heapAfterGC returns the bytes of live heap objects after a garbage collection.
func heapAfterGC() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// crowd runs n goroutines that each read id once, all released at the same moment, and returns
// each one's latency. Only the reads are timed: the goroutines start with the timer stopped.
func crowd(b *testing.B, c cache, id int64, n int) []time.Duration {
	ctx := context.Background()
	lat := make([]time.Duration, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for j := range n {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			u, err := c.get(ctx, id)
			lat[j] = time.Since(t0)
			if err != nil || u == nil || u.ID != id {
				b.Error(u, err)
			}
		})
	}
	b.StartTimer()
	close(start)
	wg.Wait()
	b.StopTimer()
	return lat
}

// BenchmarkStampede is scenario 3: each op, 1,000 goroutines ask for one cold key at once, with a
// loader that takes 50 ms. It reports how many times the loader ran per op and the p50 and p99 of
// the callers' latencies. Run it with a fixed count (-benchtime=5x).
func BenchmarkStampede(b *testing.B) {
	forEach(b, config{capacity: hitCapacity}, func(b *testing.B, c cache, src *source) {
		src.delay.Store(int64(stampedeDelay))
		var all []time.Duration
		b.StopTimer()
		for i := range b.N {
			all = append(all, crowd(b, c, int64(i), stampedeCallers)...)
			src.waitIdle()
		}
		b.StartTimer()
		b.ReportMetric(float64(src.calls.Load())/float64(b.N), "loader-calls/op")
		reportLatency(b, all, false)
	})
}

// BenchmarkExpiry is scenario 4: each op, a warm key expires and then 100 goroutines read it at
// once, with a loader that takes 50 ms. It reports how many times the loader ran per op, how
// many callers waited (took longer than 10 ms, rather than being served the old value at once),
// and the p50, p99 and maximum of their latencies. Each cache is set up to serve the stale value
// while one caller reloads, where it can: dogpile (the regenerating caller waits, the others
// do not), dogpile-bg (nobody waits), otter (RefreshWriting), sturdyc (WithEarlyRefreshes). The
// others drop the value at expiry. Run it with a fixed count (-benchtime=5x).
func BenchmarkExpiry(b *testing.B) {
	forEach(b, config{capacity: hitCapacity, expire: expiryAfter, stale: true}, func(b *testing.B, c cache, src *source) {
		ctx := context.Background()
		var all []time.Duration
		var loads, waited int64
		b.StopTimer()
		for i := range b.N {
			id := int64(i)
			src.delay.Store(0)
			u, err := c.get(ctx, id) // fresh now
			check(b, u, err, id)
			src.waitIdle()
			time.Sleep(expiryAfter + expiryAfter/2) // expired now
			src.delay.Store(int64(expiryDelay))
			before := src.calls.Load()
			lat := crowd(b, c, id, expiryReaders)
			src.waitIdle() // a refresh in the background counts too
			loads += src.calls.Load() - before
			waited += waiters(lat)
			all = append(all, lat...)
		}
		b.StartTimer()
		b.ReportMetric(float64(loads)/float64(b.N), "loader-calls/op")
		b.ReportMetric(float64(waited)/float64(b.N), "waiters/op")
		reportLatency(b, all, true)
	})
}

// BenchmarkEarlyRefresh is scenario 4b: early refresh (XFetch) on a hot key against plain expiry.
// Each op, 100 goroutines read one key for 1.5 s, each once a millisecond, with a 200 ms
// expiration and a loader that takes 10 ms: dogpile with plain expiry (the caller that
// regenerates waits, the others are served the old value) and dogpile-early
// (region.WithEarlyRefresh(1): the key is regenerated in the background before it expires). It
// reports how many times the loader ran per op, how many callers waited (took longer than
// 10 ms), and the p99 and maximum of the callers' latencies. An op lasts 1.5 s: run it with
// -benchtime=1x.
func BenchmarkEarlyRefresh(b *testing.B) {
	for _, ct := range []struct {
		name string
		opts []region.Option
	}{
		{us, nil},
		{usEarly, []region.Option{region.WithEarlyRefresh(1)}},
	} {
		b.Run("impl="+ct.name, func(b *testing.B) {
			src := new(source)
			cfg := config{src: src, capacity: hitCapacity, expire: earlyExpire}
			c := cacheFunc(memo.Func(newRegion(b, cfg, ct.opts...), src.load, memo.WithNamespace("user")).Call)
			ctx := context.Background()
			var all []time.Duration
			var loads, waited int64
			b.StopTimer()
			for i := range b.N {
				id := int64(i)
				src.delay.Store(int64(earlyDelay))
				u, err := c.get(ctx, id) // fresh now
				check(b, u, err, id)
				before := src.calls.Load()
				lat := readFor(b, c, id, earlyReaders, earlySpan)
				src.waitIdle() // a refresh in the background counts too
				loads += src.calls.Load() - before
				waited += waiters(lat)
				all = append(all, lat...)
			}
			b.StartTimer()
			b.ReportMetric(float64(loads)/float64(b.N), "loader-calls/op")
			b.ReportMetric(float64(waited)/float64(b.N), "waiters/op")
			slices.Sort(all)
			b.ReportMetric(float64(percentile(all, 0.99))/float64(time.Millisecond), "p99-ms")
			b.ReportMetric(float64(all[len(all)-1])/float64(time.Millisecond), "max-ms")
		})
	}
}

// waiters counts the callers among lat that waited: took longer than waitThreshold.
func waiters(lat []time.Duration) int64 {
	var n int64
	for _, d := range lat {
		if d > waitThreshold {
			n++
		}
	}
	return n
}

// readFor runs n goroutines that read id once a millisecond for span, and returns the latency
// of every read. The reads are timed, the span included.
func readFor(b *testing.B, c cache, id int64, n int, span time.Duration) []time.Duration {
	ctx := context.Background()
	lats := make([][]time.Duration, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for j := range n {
		wg.Go(func() {
			<-start
			for end := time.Now().Add(span); time.Now().Before(end); {
				t0 := time.Now()
				u, err := c.get(ctx, id)
				lats[j] = append(lats[j], time.Since(t0))
				if err != nil || u == nil || u.ID != id {
					b.Error(u, err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	b.StartTimer()
	close(start)
	wg.Wait()
	b.StopTimer()
	return slices.Concat(lats...)
}

// reportLatency reports the p50 and p99 (nearest rank) of lat in milliseconds, and the maximum
// too if withMax.
func reportLatency(b *testing.B, lat []time.Duration, withMax bool) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(percentile(lat, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 0.99)), "p99-ms")
	if withMax {
		b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	}
}

// percentile returns the nearest-rank p-quantile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}
