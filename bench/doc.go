// Package bench holds the benchmarks that put dogpile-go side by side with the caches its users
// would otherwise pick: github.com/maypok86/otter/v2 (Get with a Loader, and GetIfPresent),
// github.com/viccon/sturdyc (GetOrFetch), github.com/go-redis/cache/v9 (Once),
// github.com/eko/gocache/lib/v4 (LoadableCache), golang.org/x/sync/singleflight over a sync.Map,
// and a plain sync.Map, the floor.
//
// The scenarios of warm reads (hits, reads without a loader, zipf-distributed reads, the memory
// of 100,000 cached values) run with expiration on, as the README configures a region
// (region.WithExpiration(10*time.Minute)), and each peer with its like-for-like setting (otter
// ExpiryWriting, sturdyc's TTL...). Each way of reading dogpile (memo.Func with its key built per
// call, with the keys.SHA1 mangler, memo.Func0, a View on a prebuilt key, View.Get) has a peer
// that does the same work in the same run, and the report prints each beside it.
//
// It is a module of its own, so that the library's users never download the peers. Its
// benchmarks run in one command from the repository root:
//
//	make bench-peers
//
// which runs cmd/report: the benchmarks, benchstat, and BENCHMARKS.md with its plots, written
// from what the run measured. Every scenario's benchmark is one Benchmark function whose
// sub-benchmarks, one per cache (impl=NAME), run in the same process one after another.
package bench
