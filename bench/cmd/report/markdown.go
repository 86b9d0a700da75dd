package main

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Contenders the report treats specially; the names are the impl=NAME of the benchmarks.
const (
	us         = "dogpile"
	memFloor   = "syncmap"
	redisFloor = "goredis"
)

func ours(impl string) bool    { return strings.HasPrefix(impl, us) }
func isFloor(impl string) bool { return impl == memFloor || impl == redisFloor }

// extra reports whether impl is a cache with expiration off in a scenario that runs with it on: a
// row kept to show what the expiration costs, never a like-for-like peer.
func extra(impl string) bool { return strings.HasSuffix(impl, "-noexp") }

// displayName is impl as the tables show it: dogpile in bold, the extra rows labelled.
func displayName(impl string) string {
	switch {
	case impl == us:
		return "**" + impl + "**"
	case extra(impl):
		return impl + " *(no expiration)*"
	}
	return impl
}

// col is one column of a scenario's table: one unit of one benchmark at one GOMAXPROCS.
type col struct {
	title string
	bench string
	procs int // 0: the GOMAXPROCS the benchmark ran at
	unit  string
}

// scenario is one section of the report.
type scenario struct {
	title  string
	about  string // what it measures and how; no figures
	cols   []col
	ratios []int          // columns whose ratios to the floor and to us get a table
	over   map[int]string // columns shown as the ratio of each median to this contender's
	plots  []string       // plot names (see drawPlots)
}

var scenarios = []scenario{
	{
		title: "1. Warm hit through the get-or-load path",
		about: "A value already cached, read through each cache's get-or-load call (the one that " +
			"would run the loader on a miss), with expiration on: `region.WithExpiration(10*time.Minute)` " +
			"as the README configures a region, and each peer's like-for-like setting (see the " +
			"contenders). One goroutine on one key (`BenchmarkHit`), and every P at once over 1,024 " +
			"keys (`BenchmarkHitParallel`, RunParallel), at GOMAXPROCS 1 and 2. dogpile-func0 holds " +
			"one key and reads in the one-goroutine case only. The rows marked *(no expiration)* are " +
			"the same caches with expiration off, extra rows that show what the expiration costs. " +
			"B/op and allocs/op are of the one-goroutine case.",
		cols: []col{
			{"1 goroutine, cpu=1", "Hit", 1, "ns/op"},
			{"1 goroutine, cpu=2", "Hit", 2, "ns/op"},
			{"parallel, cpu=1", "HitParallel", 1, "ns/op"},
			{"parallel, cpu=2", "HitParallel", 2, "ns/op"},
			{"B/op", "Hit", 1, "B/op"},
			{"allocs/op", "Hit", 1, "allocs/op"},
		},
		ratios: []int{0, 1, 2, 3},
		plots:  []string{"hit", "hit-parallel"},
	},
	{
		title: "1b. Warm read without a loader",
		about: "A read that never loads, on a prebuilt key, with expiration on as in scenario 1: " +
			"dogpile's `View.Get` (dogpile-view) and otter's `GetIfPresent`; the floor is a " +
			"`sync.Map` `Load` and a check of the deadline. The value was stored by each cache's " +
			"`Set`. One goroutine on one key (`BenchmarkGet`), and every P at once over 1,024 keys " +
			"(`BenchmarkGetParallel`), at GOMAXPROCS 1 and 2.",
		cols: []col{
			{"1 goroutine, cpu=1", "Get", 1, "ns/op"},
			{"1 goroutine, cpu=2", "Get", 2, "ns/op"},
			{"parallel, cpu=1", "GetParallel", 1, "ns/op"},
			{"parallel, cpu=2", "GetParallel", 2, "ns/op"},
			{"B/op", "Get", 1, "B/op"},
			{"allocs/op", "Get", 1, "allocs/op"},
		},
		ratios: []int{0, 1, 2, 3},
		plots:  []string{"get", "get-parallel"},
	},
	{
		title: "2. Zipf-distributed keys over a bounded cache",
		about: "Reads from every P of 100,000 keys drawn from a zipf distribution " +
			"(math/rand/v2, s = 1.01, one fixed sequence for all), over a cache bounded to 10,000 " +
			"entries, with expiration on as in scenario 1 and a loader that answers at once. Each " +
			"cache is warmed once by one pass of the sequence (1,048,576 reads on one goroutine: " +
			"the hit ratio of every cache climbs until about then) and serves every run of its " +
			"sub-benchmark; ns/op is the throughput and hit-ratio is 1 − loads/reads of the " +
			"timed reads. singleflight and syncmap cannot be bounded and sit this one out, so there " +
			"is no floor here. The rows marked *(no expiration)* are extra, as in scenario 1.",
		cols: []col{
			{"ns/op", "Zipf", 0, "ns/op"},
			{"hit ratio", "Zipf", 0, "hit-ratio"},
			{"B/op", "Zipf", 0, "B/op"},
			{"allocs/op", "Zipf", 0, "allocs/op"},
		},
		ratios: []int{0, 1},
		plots:  []string{"zipf", "zipf-hit-ratio"},
	},
	{
		title: "2b. Memory of 100,000 cached values",
		about: "100,000 values of a small struct (`struct{ID int64; Name string}`, by pointer) " +
			"loaded into a cache bounded to 100,000 entries, with expiration on as in scenario 1, " +
			"through each cache's get-or-load call with the key built per call, so that the keys " +
			"are counted: dogpile's memory backend through `memo.Func` (dogpile, and dogpile-sha1, " +
			"whose stored keys are 40-byte hex digests) and otter (otter-keyed). bytes/item is the " +
			"growth of the live heap (`runtime.MemStats.HeapAlloc` after `runtime.GC()`) from before " +
			"the cache was made to when it holds the 100,000 values, over 100,000: keys, values and " +
			"the cache's own structures. Then each op reads the 100,000 values once, in sequence " +
			"(`BenchmarkMemory`): ns/op is the time of the 100,000 gets, ns/get of one of them, and " +
			"B/op and allocs/op are of the 100,000.",
		cols: []col{
			{"bytes/item", "Memory", 0, "bytes/item"},
			{"100,000 gets", "Memory", 0, "ns/op"},
			{"per get", "Memory", 0, "ns/get"},
			{"B/op", "Memory", 0, "B/op"},
			{"allocs/op", "Memory", 0, "allocs/op"},
		},
		ratios: []int{0, 1},
		plots:  []string{"memory"},
	},
	{
		title: "3. Stampede on a cold key",
		about: "Each op, 1,000 goroutines ask for one cold key at the same moment; the loader " +
			"takes 50 ms. loader-calls is how many times it ran per op; p50 and p99 are of the " +
			"1,000 callers' latencies over every op. ns/op is the time until the last caller had " +
			"its answer.",
		cols: []col{
			{"loader calls/op", "Stampede", 0, "loader-calls/op"},
			{"p50", "Stampede", 0, "p50-ms"},
			{"p99", "Stampede", 0, "p99-ms"},
			{"ns/op", "Stampede", 0, "ns/op"},
			{"B/op", "Stampede", 0, "B/op"},
			{"allocs/op", "Stampede", 0, "allocs/op"},
		},
		ratios: []int{2},
		plots:  []string{"stampede"},
	},
	{
		title: "4. Expiry under load",
		about: "Each op, a warm key expires (20 ms after it was loaded) and then 100 goroutines " +
			"read it at the same moment; the loader takes 50 ms. loader-calls counts its runs per " +
			"op, background refreshes included; waiters is how many callers took longer than 10 ms, " +
			"that is, were not served the old value at once. Each cache serves the stale value " +
			"while one reload runs where it can: dogpile (region.WithExpiration, and a storage TTL " +
			"longer than it; the caller that regenerates waits, the others do not), dogpile-bg " +
			"(region.WithBackgroundRefresh: nobody waits), otter (RefreshWriting), sturdyc " +
			"(WithEarlyRefreshes). The others drop the value at expiry. With one waiter in 100, " +
			"the p99 (nearest rank) is the slowest caller that did not wait; max is the waiter.",
		cols: []col{
			{"loader calls/op", "Expiry", 0, "loader-calls/op"},
			{"waiters/op", "Expiry", 0, "waiters/op"},
			{"p50", "Expiry", 0, "p50-ms"},
			{"p99", "Expiry", 0, "p99-ms"},
			{"max", "Expiry", 0, "max-ms"},
			{"B/op", "Expiry", 0, "B/op"},
		},
		ratios: []int{3},
		plots:  []string{"expiry"},
	},
	{
		title: "4b. Early refresh on a hot key",
		about: "Each op, 100 goroutines read one key for 1.5 s, each once a millisecond; the " +
			"expiration is 200 ms and the loader takes 10 ms. dogpile has plain expiry " +
			"(region.WithExpiration: at each expiry the caller that regenerates waits, the others " +
			"are served the old value); dogpile-early adds region.WithEarlyRefresh(1) (XFetch: the " +
			"value is regenerated in the background in the last fifth of its expiration, before it " +
			"expires). loader-calls counts the loader's runs per op, background ones included; " +
			"waiters is how many reads took longer than 10 ms; p99 and max are of every read's " +
			"latency. One op per run (-benchtime=1x).",
		cols: []col{
			{"loader calls/op", "EarlyRefresh", 0, "loader-calls/op"},
			{"waiters/op", "EarlyRefresh", 0, "waiters/op"},
			{"p99", "EarlyRefresh", 0, "p99-ms"},
			{"max", "EarlyRefresh", 0, "max-ms"},
		},
		ratios: []int{0},
	},
	{
		title: "5. Redis: hit latency and round trips",
		about: "A warm hit on a redis-server on loopback that the benchmarks start (as the " +
			"library's tests do), one goroutine, so ns/op is a hit's latency. Each contender has a " +
			"go-redis client of its own with a hook that counts round trips (one per command, one " +
			"per pipeline). The value is about 200 bytes of JSON; go-redis/cache stores it in its " +
			"own encoding (msgpack, s2-compressed). The floor, goredis, is a bare GET and " +
			"json.Unmarshal.",
		cols: []col{
			{"ns/op", "RedisHit", 0, "ns/op"},
			{"round trips/op", "RedisHit", 0, "round-trips/op"},
			{"B/op", "RedisHit", 0, "B/op"},
			{"allocs/op", "RedisHit", 0, "allocs/op"},
		},
		ratios: []int{0},
		plots:  []string{"redis"},
	},
	{
		title: "5b. Redis: a batch of 100 keys",
		about: "The same Redis, 100 keys in one call: dogpile's `memo.Multi` (through " +
			"`region.View.GetOrCreateMulti`), which reads them in one MGET; go-redis/cache and " +
			"gocache have no batch API, so the call is theirs one key after another, as their users " +
			"would write it. The floor is an MGET and 100 json.Unmarshal; on a miss, one batch load " +
			"and the SETs in one pipeline. Warm: all 100 keys cached. Cold: 100 new keys each op, so " +
			"loader-calls is 1 for a batch loader and 100 for a loader called per key.",
		cols: []col{
			{"warm ns/op", "RedisBatch", 0, "ns/op"},
			{"warm round trips/op", "RedisBatch", 0, "round-trips/op"},
			{"warm allocs/op", "RedisBatch", 0, "allocs/op"},
			{"cold ns/op", "RedisBatchCold", 0, "ns/op"},
			{"cold round trips/op", "RedisBatchCold", 0, "round-trips/op"},
			{"cold loader calls/op", "RedisBatchCold", 0, "loader-calls/op"},
		},
		ratios: []int{0, 3},
		plots:  []string{"redis-batch"},
	},
	{
		title: "5c. Redis: a herd on one key",
		about: "The same Redis, one process, one key (`BenchmarkRedisHerd`). Each op, 1,000 goroutines " +
			"call a cold key at the same moment, with a loader that takes 200 ms (the cold burst); then " +
			"the same 1,000 goroutines read it, now warm, 20 times each: 20,000 reads, the timed part. " +
			"GETs are the GET commands the contender's client sent (counted by its hook), so the reads " +
			"of the value: the server counts one more GET in dogpile's cold burst, the one its unlock " +
			"script runs inside Redis to compare the lock's token (cold-server-gets in the raw output, " +
			"from INFO commandstats). dogpile is `memo.Func` on the Redis backend with the JSON codec: " +
			"concurrent callers of a key share one GET, and the callers of a key being created wait for " +
			"that creation; the cold burst's second GET is the read under the distributed lock, before " +
			"creating. go-redis/cache's `Once` (Redis alone, no local cache) shares its GET and its load " +
			"through singleflight, and each caller decodes the bytes itself; dogpile's callers that " +
			"share a GET share its decoding too. The floor shares nothing. The last column is the " +
			"single-caller hit latency of scenario 5.",
		cols: []col{
			{"GETs, cold burst", "RedisHerd", 0, "cold-gets/op"},
			{"loader calls, cold burst", "RedisHerd", 0, "loader-calls/op"},
			{"GETs, 20,000 warm reads", "RedisHerd", 0, "warm-gets/op"},
			{"GETs, % of warm reads", "RedisHerd", 0, "warm-gets-pct"},
			{"warm reads/s", "RedisHerd", 0, "reads/s"},
			{"reads/s ÷ Once's", "RedisHerd", 0, "reads/s"},
			{"1-caller hit", "RedisHit", 0, "ns/op"},
		},
		over:  map[int]string{5: "goredis-cache"},
		plots: []string{"redis-herd"},
	},
}

// summaryRow is one line of the summary: our figure against the best peer's, or against the
// contender named in against.
type summaryRow struct {
	label   string
	c       col
	ours    string
	higher  bool   // higher is better (hit ratio, reads/s)
	against string // the baseline to compare with; "": the best peer
}

var summary = []summaryRow{
	{"Warm hit, 1 goroutine, cpu=1", col{bench: "Hit", procs: 1, unit: "ns/op"}, us, false, ""},
	{"Warm hit, 1 goroutine, cpu=2", col{bench: "Hit", procs: 2, unit: "ns/op"}, us, false, ""},
	{"Warm hit, parallel, cpu=1", col{bench: "HitParallel", procs: 1, unit: "ns/op"}, us, false, ""},
	{"Warm hit, parallel, cpu=2", col{bench: "HitParallel", procs: 2, unit: "ns/op"}, us, false, ""},
	{"Warm read without a loader (View.Get), 1 goroutine, cpu=1", col{bench: "Get", procs: 1, unit: "ns/op"}, "dogpile-view", false, ""},
	{"Warm read without a loader (View.Get), parallel, cpu=2", col{bench: "GetParallel", procs: 2, unit: "ns/op"}, "dogpile-view", false, ""},
	{"Zipf, bounded: time per read", col{bench: "Zipf", unit: "ns/op"}, us, false, ""},
	{"Zipf, bounded: hit ratio", col{bench: "Zipf", unit: "hit-ratio"}, us, true, ""},
	{"100,000 cached values: heap per value", col{bench: "Memory", unit: "bytes/item"}, us, false, ""},
	{"100,000 cached values: 100,000 sequential gets", col{bench: "Memory", unit: "ns/op"}, us, false, ""},
	{"Stampede: loader calls", col{bench: "Stampede", unit: "loader-calls/op"}, us, false, ""},
	{"Stampede: p99 latency", col{bench: "Stampede", unit: "p99-ms"}, us, false, ""},
	{"Expiry: loader calls", col{bench: "Expiry", unit: "loader-calls/op"}, us, false, ""},
	{"Expiry: callers that waited", col{bench: "Expiry", unit: "waiters/op"}, us, false, ""},
	{"Expiry: callers that waited (dogpile-bg)", col{bench: "Expiry", unit: "waiters/op"}, "dogpile-bg", false, ""},
	{"Expiry: p99 latency", col{bench: "Expiry", unit: "p99-ms"}, us, false, ""},
	{"Expiry: max latency (dogpile-bg)", col{bench: "Expiry", unit: "max-ms"}, "dogpile-bg", false, ""},
	{"Redis hit: latency", col{bench: "RedisHit", unit: "ns/op"}, us, false, ""},
	{"Redis hit: round trips", col{bench: "RedisHit", unit: "round-trips/op"}, us, false, ""},
	{"Redis batch of 100, warm: latency", col{bench: "RedisBatch", unit: "ns/op"}, us, false, ""},
	{"Redis batch of 100, warm: latency against a bare MGET (the floor)", col{bench: "RedisBatch", unit: "ns/op"}, us, false, redisFloor},
	{"Redis batch of 100, warm: allocations against a bare MGET (the floor)", col{bench: "RedisBatch", unit: "allocs/op"}, us, false, redisFloor},
	{"Redis batch of 100, warm: round trips", col{bench: "RedisBatch", unit: "round-trips/op"}, us, false, ""},
	{"Redis batch of 100, cold: latency", col{bench: "RedisBatchCold", unit: "ns/op"}, us, false, ""},
	{"Redis batch of 100, cold: round trips", col{bench: "RedisBatchCold", unit: "round-trips/op"}, us, false, ""},
	{"Redis batch of 100, cold: loader calls", col{bench: "RedisBatchCold", unit: "loader-calls/op"}, us, false, ""},
	{"Redis herd, cold burst: GETs", col{bench: "RedisHerd", unit: "cold-gets/op"}, us, false, ""},
	{"Redis herd, cold burst: loader calls", col{bench: "RedisHerd", unit: "loader-calls/op"}, us, false, ""},
	{"Redis herd, warm: GETs for 20,000 reads", col{bench: "RedisHerd", unit: "warm-gets/op"}, us, false, ""},
	{"Redis herd, warm: reads/s", col{bench: "RedisHerd", unit: "reads/s"}, us, true, ""},
}

// pair is a group of rows of the like-for-like table: a dogpile contender beside the peer set up
// the same way, both measured in the same run.
type pair struct {
	ours, oursWhat string // the contender, and what it is
	peer, peerWhat string
	measures       []measure
}

// measure is one row of a pair: one unit of one benchmark at one GOMAXPROCS.
type measure struct {
	title  string
	c      col
	higher bool // higher is better (hit ratio)
}

// The measures of the pairs, by scenario.
var (
	hitMeasures = []measure{
		{"hit, 1 goroutine, cpu=1", col{bench: "Hit", procs: 1, unit: "ns/op"}, false},
		{"hit, 1 goroutine, cpu=2", col{bench: "Hit", procs: 2, unit: "ns/op"}, false},
		{"hit, parallel, cpu=1", col{bench: "HitParallel", procs: 1, unit: "ns/op"}, false},
		{"hit, parallel, cpu=2", col{bench: "HitParallel", procs: 2, unit: "ns/op"}, false},
	}
	oneKeyMeasures = hitMeasures[:2]
	getMeasures    = []measure{
		{"read, 1 goroutine, cpu=1", col{bench: "Get", procs: 1, unit: "ns/op"}, false},
		{"read, 1 goroutine, cpu=2", col{bench: "Get", procs: 2, unit: "ns/op"}, false},
		{"read, parallel, cpu=1", col{bench: "GetParallel", procs: 1, unit: "ns/op"}, false},
		{"read, parallel, cpu=2", col{bench: "GetParallel", procs: 2, unit: "ns/op"}, false},
	}
	zipfMeasures = []measure{
		{"zipf, time per read", col{bench: "Zipf", unit: "ns/op"}, false},
		{"zipf, hit ratio", col{bench: "Zipf", unit: "hit-ratio"}, true},
	}
	memoryMeasures = []measure{
		{"100,000 values: heap per value", col{bench: "Memory", unit: "bytes/item"}, false},
		{"100,000 values: 100,000 sequential gets", col{bench: "Memory", unit: "ns/op"}, false},
	}
)

// pairs are the rows of the like-for-like table: each way of reading dogpile's hit path beside
// the peer that does the same work, with expiration on; the last pair, with expiration off, is
// there to show what the expiration costs each.
var pairs = []pair{
	{us, "`memo.Func`, key built per call", "otter-keyed", "otter `Get` + Loader, key built per call",
		slices.Concat(hitMeasures, zipfMeasures, memoryMeasures)},
	{"dogpile-sha1", "`memo.Func` + `keys.SHA1` mangler (the README's set-up)", "otter-keyed", "otter `Get` + Loader, key built per call",
		slices.Concat(hitMeasures, zipfMeasures, memoryMeasures)},
	{"dogpile-func0", "`memo.Func0`", "otter", "otter `Get` + Loader, prebuilt key",
		oneKeyMeasures},
	{"dogpile-view", "`region.GetOrCreateWith` on a `View`, prebuilt key", "otter", "otter `Get` + Loader, prebuilt key",
		slices.Concat(hitMeasures, zipfMeasures)},
	{"dogpile-view", "`View.Get`, prebuilt key", "otter", "otter `GetIfPresent`, prebuilt key",
		getMeasures},
	{"dogpile-bounded", "`memo.Func`, key built per call, `WithCreationTimeout(30s)`", "otter-keyed", "otter `Get` + Loader, key built per call",
		zipfMeasures},
	{"dogpile-noexp", "`memo.Func`, key built per call, *no expiration*", "otter-keyed-noexp", "otter `Get` + Loader, key built per call, *no expiration*",
		slices.Concat(hitMeasures, zipfMeasures)},
}

// contenderNotes say how each contender is set up; they hold no figures.
var contenderNotes = []struct{ name, note string }{
	{us, "`memo.Func` on a `region.Region` on `backends/memory` bounded to 100,000 entries, with `region.WithExpiration(10*time.Minute)`, as the README shows it but without its key mangler. The handle builds its key from the int64 argument on every call (one allocation); the peers are handed a prebuilt string key, but for otter-keyed."},
	{"dogpile-sha1", "`dogpile` with the README's `region.WithKeyMangler(keys.SHA1)`: the README's set-up in full. Warm-read scenarios only."},
	{"dogpile-func0", "`memo.Func0`, a function of no argument, whose one key the handle builds once. The one-key hit scenario only."},
	{"dogpile-view", "The same region through `region.GetOrCreateWith` on a typed `View`, with the prebuilt key the peers get: the engine without the key building. In scenario 1b, `View.Get`."},
	{"dogpile-noexp", "`dogpile` without `region.WithExpiration`: an extra row, in the warm-read scenarios only, that shows what the expiration costs."},
	{"dogpile-bounded", "`dogpile` with `region.WithCreationTimeout(region.DefaultLockTimeout)`, the bound a backend with a distributed lock has by default: its creators run on a worker while their caller waits, where on the memory backend by default they run on their caller's goroutine. It runs in the Zipf scenario only, the one that times misses among hits, to show what the bound costs."},
	{"dogpile-bg", "`dogpile` with `region.WithBackgroundRefresh(1)`; it differs from `dogpile` only in how it serves expired values, so it runs in scenario 4 only."},
	{"dogpile-early", "`dogpile` with `region.WithEarlyRefresh(1)`; it runs in scenario 4b only, beside `dogpile` with plain expiry."},
	{"otter", "`github.com/maypok86/otter/v2`: `Cache.Get` with a `LoaderFunc`, on the prebuilt key; bounded with `MaximumSize`; with expiration, `ExpiryWriting` of 10 minutes (the like of `region.WithExpiration`), and in scenario 4 `RefreshWriting` with `ExpiryWriting` of an hour. In scenario 1b, `GetIfPresent`."},
	{"otter-keyed", "`otter` with the key built on every call (in a buffer on the stack, one allocation), as dogpile's memo handles build theirs: their like-for-like peer. Warm-read scenarios only."},
	{"otter-keyed-noexp", "`otter-keyed` without expiration: the extra row beside `dogpile-noexp`."},
	{"sturdyc", "`github.com/viccon/sturdyc`: `GetOrFetch` (a fetch closure per call), 16 shards, 10% evicted when full, `WithNoContinuousEvictions`, its TTL the expiration; in scenario 4 `WithEarlyRefreshes`."},
	{"goredis-cache", "`github.com/go-redis/cache/v9`: `Once`. In memory its `TinyLFU` local cache alone (no Redis), its TTL the expiration, which stores values encoded (msgpack) and decodes them on every hit; on Redis, Redis alone."},
	{"gocache", "`github.com/eko/gocache/lib/v4`: `LoadableCache`, in memory over `store/ristretto/v4` (bounded by cost, synchronous sets, the store's expiration), on Redis over `store/redis/v4`."},
	{"singleflight", "A `sync.Map` and `golang.org/x/sync/singleflight`: the get-or-load most Go code writes by hand, with a deadline checked on every read. It cannot be bounded."},
	{memFloor, "The in-process floor: a `sync.Map` and a deadline checked on every read, nothing else. Every caller that misses runs the loader; it cannot be bounded."},
	{redisFloor, "The Redis floor: a go-redis `GET` and `json.Unmarshal`, a `SET` on a miss, nothing else; for a batch, an `MGET`."},
}

// renderReport writes BENCHMARKS.md. plotDir and resultsDir are relative to the report.
func renderReport(info runInfo, d *dataset, plotFiles map[string]string, plotDir, resultsDir string) []byte {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("# Benchmarks: dogpile-go and its peers\n\n")
	p("<!-- Generated by `make bench-peers` (bench/cmd/report) from the run recorded in %s/; do not edit by hand. -->\n\n", resultsDir)
	p("dogpile-go side by side with the Go caches its users would otherwise pick, in one run of one command, ")
	p("`make bench-peers`. Every figure on this page comes from that run: the command writes this file, ")
	p("its plots and the raw `go test -bench` output it read them from. ")
	p("Medians of %d runs, with the 95%% confidence interval of the median as benchstat gives it; a ratio is ", info.Runs)
	p("between medians. Lower is better everywhere but in the hit ratio and in reads per second.\n\n")
	if info.Quick {
		p("> **This is a -quick run**, brief runs to try the pipeline: its figures are not worth keeping.\n\n")
	}

	p("## The machine\n\n")
	m := info.Machine
	p("| | |\n|---|---|\n")
	p("| CPU | %s (from /proc/cpuinfo), %d cores |\n", orDash(m.CPU), m.Cores)
	p("| Memory | %s |\n", orDash(m.Memory))
	p("| OS | %s |\n", orDash(m.Kernel))
	p("| Go | %s |\n", orDash(m.Go))
	p("| Redis | %s |\n", orDash(m.Redis))
	p("| Commit | %s |\n", orDash(m.Commit))
	p("| Run | %s, %s wall time for the benchmarks and benchstat |\n", info.Started.Format(time.DateTime+" MST"), (time.Duration(info.Seconds) * time.Second).String())
	p("| Load average (1, 5, 15 min) | %s before, %s after |\n\n", orDash(m.LoadBefore), orDash(m.LoadAfter))
	p("The machine is **shared**: other work (other engineers' test runs under the race detector) may ")
	p("have run during the benchmarks, and the load averages above say how busy it was. Expect the ")
	p("absolute figures to move between runs by more than the confidence intervals suggest; the ratios ")
	p("between contenders measured in the same run move less.\n\n")

	p("## Summary: dogpile against the best peer\n\n")
	p("For each measure, dogpile's median against the best median among the peers (otter, sturdyc, ")
	p("go-redis/cache, gocache, singleflight; not the floors, not dogpile's own variants, not the rows ")
	p("without expiration), or, where the measure says so, against a baseline it names. The ratio is ")
	p("dogpile ÷ peer. The verdict is benchstat's test (Mann-Whitney U, α = 0.05) over the ")
	p("%d runs of each; \"no significant difference\" means the runs do not tell them apart.\n\n", info.Runs)
	p("| measure | dogpile | best peer | ratio | verdict |\n|---|---|---|---|---|\n")
	for _, row := range summary {
		p("%s\n", summaryLine(d, row))
	}
	p("\n")

	renderPairs(&b, d)

	p("## The contenders\n\n")
	for _, c := range contenderNotes {
		p("- **%s**: %s\n", c.name, c.note)
	}
	p("\n")

	for _, sc := range scenarios {
		renderScenario(&b, d, sc, plotFiles, plotDir)
	}

	p("## How to reproduce\n\n")
	p("From the repository root, on a machine with Go and `redis-server` (`make servers` installs it):\n\n")
	p("```sh\nmake bench-peers\n```\n\n")
	p("It installs benchstat if it is missing, then runs `go run ./cmd/report` in `bench/`, which runs ")
	p("these commands there, one after another, saving each one's output in `bench/%s/`. ", strings.TrimPrefix(resultsDir, "bench/"))
	p("Each is run %d times with `-count=1` rather than once with `-count=%d`, so that the contenders' runs ", info.Runs, info.Runs)
	p("interleave in time and a quiet or busy spell of the machine does not fall on one of them only.\n\n```sh\n")
	for _, s := range info.Steps {
		p("%s > %s/%s.txt   # %s\n", s.Command, strings.TrimPrefix(resultsDir, "bench/"), s.Name, (time.Duration(s.Seconds) * time.Second).String())
	}
	p("```\n\nand then benchstat on each, its tables (every contender against dogpile) saved beside them:\n\n```sh\n")
	for _, c := range info.Benchstat {
		p("%s\n", c)
	}
	p("```\n\n")
	p("To compare a new run with the committed one, keep the committed raw output before running, then ")
	p("give both to benchstat:\n\n```sh\n")
	p("git show HEAD:%s/hit.txt > /tmp/hit-before.txt\nmake bench-peers\nbenchstat /tmp/hit-before.txt %s/hit.txt\n```\n", resultsDir, resultsDir)
	p("\n`go run ./cmd/report -render` (in `bench/`) writes this page again from the saved output without running anything.\n")
	return b.Bytes()
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func summaryLine(d *dataset, row summaryRow) string {
	c := row.c
	mine, ok := d.get(c.bench, row.ours, c.procs, c.unit)
	if !ok {
		return fmt.Sprintf("| %s | — | — | — | not measured |", row.label)
	}
	var best stat
	bestName := ""
	for _, impl := range d.impls[c.bench] {
		if row.against != "" && impl != row.against {
			continue
		}
		if row.against == "" && (ours(impl) || isFloor(impl) || extra(impl)) {
			continue
		}
		s, ok := d.get(c.bench, impl, c.procs, c.unit)
		if !ok {
			continue
		}
		v := s.summary.Center
		if bestName == "" || (row.higher && v > best.summary.Center) || (!row.higher && v < best.summary.Center) {
			best, bestName = s, impl
		}
	}
	label := row.label
	if bestName == "" {
		return fmt.Sprintf("| %s | %s | — | — | no peer measured |", label, format(mine.summary.Center, c.unit))
	}
	ratio, verdict := compare(mine, best, row.higher, bestName)
	return fmt.Sprintf("| %s | %s | %s (%s) | %s | %s |", label, withCI(mine, c.unit), withCI(best, c.unit), bestName, ratio, verdict)
}

// compare returns the ratio of mine's median to theirs and benchstat's verdict on the two
// samples, naming the peer theirs is of when it is the better.
func compare(mine, theirs stat, higher bool, peer string) (ratio, verdict string) {
	ratio = "—"
	if theirs.summary.Center != 0 {
		ratio = fmt.Sprintf("%.2f×", mine.summary.Center/theirs.summary.Center)
	}
	verdict = "no significant difference"
	if mine.summary.Center != theirs.summary.Center && differs(mine, theirs) {
		better := mine.summary.Center < theirs.summary.Center
		if higher {
			better = !better
		}
		if better {
			verdict = "**dogpile better**"
		} else {
			verdict = peer + " better"
		}
	}
	return ratio, verdict
}

// renderPairs writes the like-for-like table: each pair's measures, dogpile's beside its peer's,
// with the ratio, the verdict, and the allocations of a timed op of each.
func renderPairs(b *bytes.Buffer, d *dataset) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## The hit path, like for like\n\n")
	p("Each way of reading dogpile's hit path beside the peer that does the same work, measured in the ")
	p("same run, with expiration on (`region.WithExpiration(10*time.Minute)` as the README configures a ")
	p("region; otter `ExpiryWriting` of 10 minutes): a key built per call against a key built per call, ")
	p("a prebuilt key against a prebuilt key, a read without a loader against a read without a loader. ")
	p("The figures come from scenarios 1, 1b, 2 and 2b below. The ratio is dogpile ÷ peer, of the ")
	p("medians; the paired ratio is the median of the ten runs' own ratios (each run measures both, ")
	p("seconds apart), which a change of the shared machine's speed between runs moves less. The ")
	p("verdict is benchstat's test, as in the summary. The last pair, with expiration off, shows what ")
	p("the expiration costs each; it is not a target.\n\n")
	p("| dogpile | peer | measure | dogpile | peer | dogpile ÷ peer | paired | verdict | B/op, allocs/op: dogpile; peer |\n")
	p("|---|---|---|---|---|---|---|---|---|\n")
	for _, pr := range pairs {
		for i, m := range pr.measures {
			oursCell, peerCell := "", ""
			if i == 0 {
				oursCell = fmt.Sprintf("%s (%s)", pr.oursWhat, pr.ours)
				peerCell = fmt.Sprintf("%s (%s)", pr.peerWhat, pr.peer)
			}
			c := m.c
			mine, ok1 := d.get(c.bench, pr.ours, c.procs, c.unit)
			theirs, ok2 := d.get(c.bench, pr.peer, c.procs, c.unit)
			if !ok1 || !ok2 {
				p("| %s | %s | %s | — | — | — | — | not measured | |\n", oursCell, peerCell, m.title)
				continue
			}
			ratio, verdict := compare(mine, theirs, m.higher, pr.peer)
			paired := "—"
			if r, ok := d.pairedRatio(c.bench, pr.ours, pr.peer, c.procs, c.unit); ok {
				paired = fmt.Sprintf("%.2f×", r)
			}
			allocs := ""
			if c.unit == "ns/op" {
				allocs = allocsOf(d, c, pr.ours) + "; " + allocsOf(d, c, pr.peer)
			}
			p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", oursCell, peerCell, m.title,
				withCI(mine, c.unit), withCI(theirs, c.unit), ratio, paired, verdict, allocs)
		}
	}
	p("\n")
}

// allocsOf is "B/op, allocs/op" of impl in the benchmark of c, "—" where they were not measured.
func allocsOf(d *dataset, c col, impl string) string {
	bs, ok1 := d.get(c.bench, impl, c.procs, "B/op")
	as, ok2 := d.get(c.bench, impl, c.procs, "allocs/op")
	if !ok1 || !ok2 {
		return "—"
	}
	return format(bs.summary.Center, "B/op") + ", " + format(as.summary.Center, "allocs/op")
}

func withCI(s stat, unit string) string {
	v := format(s.summary.Center, unit)
	if ci := s.ci(); ci != "" {
		v += " " + ci
	}
	return v
}

func renderScenario(b *bytes.Buffer, d *dataset, sc scenario, plotFiles map[string]string, plotDir string) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## %s\n\n%s\n\n", sc.title, sc.about)
	bench := sc.cols[0].bench
	impls := d.impls[bench]
	if len(impls) == 0 {
		p("Not measured in this run.\n\n")
		return
	}
	p("| cache |")
	for _, c := range sc.cols {
		p(" %s |", c.title)
	}
	p("\n|---|")
	for range sc.cols {
		p("---|")
	}
	p("\n")
	for _, impl := range impls {
		p("| %s |", displayName(impl))
		for i, c := range sc.cols {
			s, ok := d.get(c.bench, impl, c.procs, c.unit)
			switch base, isRatio := sc.over[i]; {
			case !ok:
				p(" — |")
			case isRatio:
				bs, ok := d.get(c.bench, base, c.procs, c.unit)
				if !ok || bs.summary.Center == 0 {
					p(" — |")
					continue
				}
				p(" %.2f× |", s.summary.Center/bs.summary.Center)
			default:
				p(" %s |", withCI(s, c.unit))
			}
		}
		p("\n")
	}
	p("\n")

	floor := memFloor
	if strings.HasPrefix(bench, "Redis") {
		floor = redisFloor
	}
	for _, base := range []string{floor, us} {
		if len(sc.ratios) == 0 || !containsImpl(impls, base) {
			continue
		}
		what := "the floor (" + base + ")"
		if base == us {
			what = "dogpile"
		}
		p("Ratio of each median to %s's:\n\n| cache |", what)
		for _, i := range sc.ratios {
			p(" %s |", sc.cols[i].title)
		}
		p("\n|---|")
		for range sc.ratios {
			p("---|")
		}
		p("\n")
		for _, impl := range impls {
			p("| %s |", displayName(impl))
			for _, i := range sc.ratios {
				c := sc.cols[i]
				s, ok1 := d.get(c.bench, impl, c.procs, c.unit)
				bs, ok2 := d.get(c.bench, base, c.procs, c.unit)
				if !ok1 || !ok2 || bs.summary.Center == 0 || math.IsNaN(s.summary.Center) {
					p(" — |")
					continue
				}
				p(" %.2f× |", s.summary.Center/bs.summary.Center)
			}
			p("\n")
		}
		p("\n")
	}
	for _, name := range sc.plots {
		if f, ok := plotFiles[name]; ok {
			p("![%s](%s/%s)\n\n", name, plotDir, f)
		}
	}
}

func containsImpl(impls []string, name string) bool {
	for _, i := range impls {
		if i == name {
			return true
		}
	}
	return false
}
