package bench

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Scenario 5c: a herd on one key of the Redis of scenario 5, in one process.

const (
	herdCallers = 1000
	herdReads   = 20 // warm reads of each caller, after the cold burst
	herdDelay   = 200 * time.Millisecond
)

// herdContenders are the Redis contenders of the herd: dogpile, go-redis/cache's Once (Redis
// alone, no local cache) and the floor, which shares nothing (a GET per read).
var herdContenders = []redisContender{
	{us, newDogpileRedis},
	{"goredis-cache", newGoRedisCache},
	{redisFloor, newBareRedis},
}

// serverGets returns how many GET commands the redis-server has run since it started, from
// INFO commandstats: counted by the server, whatever client sent them.
func serverGets(tb testing.TB, admin *goredis.Client) int64 {
	tb.Helper()
	info, err := admin.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_get:calls=")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(rest[:strings.IndexByte(rest+",", ',')], 10, 64)
		if err != nil {
			tb.Fatalf("INFO commandstats: %q: %v", line, err)
		}
		return n
	}
	return 0 // no GET yet
}

// BenchmarkRedisHerd is scenario 5c. Each op, a cold key: 1,000 goroutines call it at the same
// moment, with a loader that takes 200 ms (the cold burst, untimed), then the same 1,000 read it
// 20 times each, now warm (the timed part: ns/op is the time of those 20,000 reads). It reports
// the loader's calls and the GET commands the contender's client sent in each part (the reads
// of the value), the warm ones also as a percentage of the warm reads, and the warm reads per
// second. cold-server-gets is the cold burst's GETs as the server counted them (INFO
// commandstats), which also counts the GETs that scripts run inside the server: dogpile's unlock
// script compares the lock's token with a GET. The server runs nothing else meanwhile: the
// sub-benchmarks run one after another. Run it with a fixed count (-benchtime=3x).
func BenchmarkRedisHerd(b *testing.B) {
	for _, rc := range herdContenders {
		b.Run("impl="+rc.name, func(b *testing.B) {
			c := newRedisCache(b, rc)
			c.delay = herdDelay
			admin := goredis.NewClient(&goredis.Options{Addr: redisAddr(b)})
			b.Cleanup(func() { _ = admin.Close() })
			var coldGets, serverGetsCold, warmGets, loads int64
			var warm time.Duration
			b.StopTimer()
			for i := range b.N {
				id := int64(i)
				l0, g0, s0 := c.loads.Load(), c.trips.gets.Load(), serverGets(b, admin)
				h := startHerd(b, c, id)
				h.cold()
				l1, g1, s1 := c.loads.Load(), c.trips.gets.Load(), serverGets(b, admin)
				b.StartTimer()
				warm += h.warm()
				b.StopTimer()
				loads += l1 - l0
				coldGets += g1 - g0
				serverGetsCold += s1 - s0
				warmGets += c.trips.gets.Load() - g1
			}
			b.StartTimer()
			n := float64(b.N)
			b.ReportMetric(float64(coldGets)/n, "cold-gets/op")
			b.ReportMetric(float64(serverGetsCold)/n, "cold-server-gets/op")
			b.ReportMetric(float64(loads)/n, "loader-calls/op")
			b.ReportMetric(float64(warmGets)/n, "warm-gets/op")
			b.ReportMetric(100*float64(warmGets)/(n*herdCallers*herdReads), "warm-gets-pct")
			b.ReportMetric(n*herdCallers*herdReads/warm.Seconds(), "reads/s")
		})
	}
}

// herd is 1,000 goroutines parked on one key: they read it once together (cold), then 20 times
// each together (warm).
type herd struct {
	coldGo, warmGo chan struct{}
	coldWG, warmWG sync.WaitGroup
}

func startHerd(b *testing.B, c *redisCache, id int64) *herd {
	h := &herd{coldGo: make(chan struct{}), warmGo: make(chan struct{})}
	ctx := context.Background()
	read := func() bool {
		p, err := c.get(ctx, id)
		if err != nil || p == nil || p.ID != id {
			b.Error(p, err)
			return false
		}
		return true
	}
	h.coldWG.Add(herdCallers)
	h.warmWG.Add(herdCallers)
	for range herdCallers {
		go func() {
			defer h.warmWG.Done()
			<-h.coldGo
			ok := read()
			h.coldWG.Done()
			<-h.warmGo
			for j := 0; ok && j < herdReads; j++ {
				ok = read()
			}
		}()
	}
	return h
}

// cold releases the herd on the cold key and waits until every caller has its answer.
func (h *herd) cold() {
	close(h.coldGo)
	h.coldWG.Wait()
}

// warm releases the herd's warm reads and returns how long they took, all of them.
func (h *herd) warm() time.Duration {
	t0 := time.Now()
	close(h.warmGo)
	h.warmWG.Wait()
	return time.Since(t0)
}
