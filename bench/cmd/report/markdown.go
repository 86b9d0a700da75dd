package main

import (
	"bytes"
	"fmt"
	"math"
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
			"would run the loader on a miss). One goroutine on one key (`BenchmarkHit`), and every P " +
			"at once over 1,024 keys (`BenchmarkHitParallel`, RunParallel), at GOMAXPROCS 1 and 2. " +
			"Values never expire here.",
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
		title: "2. Zipf-distributed keys over a bounded cache",
		about: "Reads from every P of 100,000 keys drawn from a zipf distribution " +
			"(math/rand/v2, s = 1.01, one fixed sequence for all), over a cache bounded to 10,000 " +
			"entries, with a loader that answers at once. After 200,000 warm-up reads, ns/op is the " +
			"throughput and hit-ratio is 1 − loads/reads of the timed reads. singleflight and " +
			"syncmap cannot be bounded and sit this one out, so there is no floor here.",
		cols: []col{
			{"ns/op", "Zipf", 0, "ns/op"},
			{"hit ratio", "Zipf", 0, "hit-ratio"},
			{"B/op", "Zipf", 0, "B/op"},
			{"allocs/op", "Zipf", 0, "allocs/op"},
		},
		ratios: []int{0},
		plots:  []string{"zipf", "zipf-hit-ratio"},
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

// summaryRow is one line of the summary: our figure against the best peer's.
type summaryRow struct {
	label  string
	c      col
	ours   string
	higher bool // higher is better (hit ratio, reads/s)
}

var summary = []summaryRow{
	{"Warm hit, 1 goroutine, cpu=1", col{bench: "Hit", procs: 1, unit: "ns/op"}, us, false},
	{"Warm hit, 1 goroutine, cpu=2", col{bench: "Hit", procs: 2, unit: "ns/op"}, us, false},
	{"Warm hit, parallel, cpu=1", col{bench: "HitParallel", procs: 1, unit: "ns/op"}, us, false},
	{"Warm hit, parallel, cpu=2", col{bench: "HitParallel", procs: 2, unit: "ns/op"}, us, false},
	{"Zipf, bounded: time per read", col{bench: "Zipf", unit: "ns/op"}, us, false},
	{"Zipf, bounded: hit ratio", col{bench: "Zipf", unit: "hit-ratio"}, us, true},
	{"Stampede: loader calls", col{bench: "Stampede", unit: "loader-calls/op"}, us, false},
	{"Stampede: p99 latency", col{bench: "Stampede", unit: "p99-ms"}, us, false},
	{"Expiry: loader calls", col{bench: "Expiry", unit: "loader-calls/op"}, us, false},
	{"Expiry: callers that waited", col{bench: "Expiry", unit: "waiters/op"}, us, false},
	{"Expiry: callers that waited (dogpile-bg)", col{bench: "Expiry", unit: "waiters/op"}, "dogpile-bg", false},
	{"Expiry: p99 latency", col{bench: "Expiry", unit: "p99-ms"}, us, false},
	{"Expiry: max latency (dogpile-bg)", col{bench: "Expiry", unit: "max-ms"}, "dogpile-bg", false},
	{"Redis hit: latency", col{bench: "RedisHit", unit: "ns/op"}, us, false},
	{"Redis hit: round trips", col{bench: "RedisHit", unit: "round-trips/op"}, us, false},
	{"Redis batch of 100, warm: latency", col{bench: "RedisBatch", unit: "ns/op"}, us, false},
	{"Redis batch of 100, warm: round trips", col{bench: "RedisBatch", unit: "round-trips/op"}, us, false},
	{"Redis batch of 100, cold: latency", col{bench: "RedisBatchCold", unit: "ns/op"}, us, false},
	{"Redis batch of 100, cold: round trips", col{bench: "RedisBatchCold", unit: "round-trips/op"}, us, false},
	{"Redis batch of 100, cold: loader calls", col{bench: "RedisBatchCold", unit: "loader-calls/op"}, us, false},
	{"Redis herd, cold burst: GETs", col{bench: "RedisHerd", unit: "cold-gets/op"}, us, false},
	{"Redis herd, cold burst: loader calls", col{bench: "RedisHerd", unit: "loader-calls/op"}, us, false},
	{"Redis herd, warm: GETs for 20,000 reads", col{bench: "RedisHerd", unit: "warm-gets/op"}, us, false},
	{"Redis herd, warm: reads/s", col{bench: "RedisHerd", unit: "reads/s"}, us, true},
}

// contenderNotes say how each contender is set up; they hold no figures.
var contenderNotes = []struct{ name, note string }{
	{us, "`memo.Func` on a `region.Region` on `backends/memory`, as the README shows it. The handle builds its key from the int64 argument on every call (one allocation); the peers are handed a prebuilt string key."},
	{"dogpile-view", "The same region through `region.GetOrCreateWith` on a typed `View`, with the prebuilt key the peers get: the engine without the key building."},
	{"dogpile-bg", "`dogpile` with `region.WithBackgroundRefresh(1)`; it differs from `dogpile` only once values expire, so it runs in scenario 4 only."},
	{"otter", "`github.com/maypok86/otter/v2`: `Cache.Get` with a `LoaderFunc`; bounded with `MaximumSize`; in scenario 4 `RefreshWriting` with `ExpiryWriting` of an hour."},
	{"sturdyc", "`github.com/viccon/sturdyc`: `GetOrFetch` (a fetch closure per call), 16 shards, 10% evicted when full, `WithNoContinuousEvictions`; in scenario 4 `WithEarlyRefreshes`."},
	{"goredis-cache", "`github.com/go-redis/cache/v9`: `Once`. In memory its `TinyLFU` local cache alone (no Redis), which stores values encoded (msgpack) and decodes them on every hit; on Redis, Redis alone."},
	{"gocache", "`github.com/eko/gocache/lib/v4`: `LoadableCache`, in memory over `store/ristretto/v4` (bounded by cost, synchronous sets), on Redis over `store/redis/v4`."},
	{"singleflight", "A `sync.Map` and `golang.org/x/sync/singleflight`: the get-or-load most Go code writes by hand. It cannot be bounded."},
	{memFloor, "The in-process floor: a `sync.Map` and nothing else. Every caller that misses runs the loader; it cannot be bounded."},
	{redisFloor, "The Redis floor: a go-redis `GET` and `json.Unmarshal`, a `SET` on a miss, nothing else."},
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
	p("go-redis/cache, gocache, singleflight; not the floors, not dogpile's own variants). The ratio is ")
	p("dogpile ÷ best peer. The verdict is benchstat's test (Mann-Whitney U, α = 0.05) over the ")
	p("%d runs of each; \"no significant difference\" means the runs do not tell them apart.\n\n", info.Runs)
	p("| measure | dogpile | best peer | ratio | verdict |\n|---|---|---|---|---|\n")
	for _, row := range summary {
		p("%s\n", summaryLine(d, row))
	}
	p("\n")

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
		if ours(impl) || isFloor(impl) {
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
	ratio := "—"
	if best.summary.Center != 0 {
		ratio = fmt.Sprintf("%.2f×", mine.summary.Center/best.summary.Center)
	}
	verdict := "no significant difference"
	if mine.summary.Center != best.summary.Center && differs(mine, best) {
		better := mine.summary.Center < best.summary.Center
		if row.higher {
			better = !better
		}
		if better {
			verdict = "**dogpile better**"
		} else {
			verdict = bestName + " better"
		}
	}
	return fmt.Sprintf("| %s | %s | %s (%s) | %s | %s |", label, withCI(mine, c.unit), withCI(best, c.unit), bestName, ratio, verdict)
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
		name := impl
		if impl == us {
			name = "**" + impl + "**"
		}
		p("| %s |", name)
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
			p("| %s |", impl)
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
