package fleettest_test

import (
	"bufio"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/internal/fleettest"
	goredis "github.com/redis/go-redis/v9"
)

// coldKey is what a fleet's callers of one cold key cost: how long each waited beyond the
// creator's time (over: its call's time less the creator's), how late it had the value (late:
// from when the creator returned it, in whichever process, to when the call returned), and the
// commands the server ran meanwhile, by name (INFO commandstats: the commands a script runs
// count too).
type coldKey struct {
	over, late []time.Duration
	cmds       map[string]int
}

// runColdKey starts rounds fleets of procs processes x 250 callers on one cold key of e's Redis,
// with a 200ms creator and the lock poll given (zero: the default), one wave each.
func runColdKey(t *testing.T, e env, procs, rounds int, poll [2]time.Duration) coldKey {
	t.Helper()
	stats := goredis.NewClient(&goredis.Options{Addr: e.srv.Addr})
	defer stats.Close()
	res := coldKey{cmds: map[string]int{}}
	for range rounds {
		cfg := e.fleet("callers")
		cfg.Goroutines, cfg.Creator, cfg.LockPoll = 250, 200*time.Millisecond, poll
		children := fleettest.Start(t, procs, cfg)
		before := commandStats(t, stats)
		waves := fleettest.Go(t, children)
		after := commandStats(t, stats)
		for name, n := range after {
			if name != "info" && name != "incr" { // the measurement and the creation counter
				res.cmds[name] += n - before[name]
			}
		}
		var created time.Time
		for _, w := range waves {
			if at, ok := w.Created["v1"]; ok {
				created = at
			}
		}
		for _, w := range waves {
			if len(w.Errors) > 0 || len(w.Reported) > 0 {
				t.Fatalf("process %d: errors %v, reported %v", w.PID, firstFew(w.Errors), firstFew(w.Reported))
			}
			for _, c := range w.Calls {
				res.over = append(res.over, c.Took-cfg.Creator)
				res.late = append(res.late, c.Start.Add(c.Took).Sub(created))
			}
		}
		if n := fleettest.Count(t, cfg.CounterURL); n != 1 {
			t.Fatalf("%d creations of one cold key, want 1", n)
		}
	}
	slices.Sort(res.over)
	slices.Sort(res.late)
	return res
}

// percentile returns the p-th percentile (0 to 1) of the sorted ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	return ds[int(p*float64(len(ds)-1))].Round(100 * time.Microsecond)
}

func (c coldKey) String() string {
	total := 0
	for _, n := range c.cmds {
		total += n
	}
	return fmt.Sprintf("call time beyond the creator's: p50 %v, p99 %v, max %v; value after it was created: p50 %v, p99 %v, max %v; Redis commands %d %v",
		percentile(c.over, 0.5), percentile(c.over, 0.99), percentile(c.over, 1),
		percentile(c.late, 0.5), percentile(c.late, 0.99), percentile(c.late, 1), total, c.cmds)
}

// commandStats returns how many times the server ran each command (INFO commandstats).
func commandStats(t *testing.T, c *goredis.Client) map[string]int {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		// cmdstat_get:calls=12,usec=...
		name, rest, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
		out[name] = n
	}
	return out
}

// TestRedisWaitersWakeOnRelease: 4 processes x 250 callers on one cold key with a 200ms
// creator, and a lock poll of 10s: the three processes that find the lock held would read the
// value some 10s late by polling, but they say they wait, the creating process announces the
// lock's release, and every caller has the value within a fraction of that (2s, for loaded
// machines; it is some 10ms).
func TestRedisWaitersWakeOnRelease(t *testing.T) {
	c := runColdKey(t, redisEnv(t), 4, 1, [2]time.Duration{10 * time.Second, 10 * time.Second})
	t.Logf("lock_poll=10s,10s: %v", c)
	if got := percentile(c.late, 1); got > 2*time.Second {
		t.Errorf("the last caller had the value %v after it was created; want well before the 10s poll", got)
	}
}

// TestRedisColdKeyWait measures what a cold key costs a fleet of 4 processes x 250 callers with
// a 200ms creator on one Redis, under the default lock poll and a long one: how long the callers
// wait beyond the creator's time, and the commands the server runs. Run it with -v.
func TestRedisColdKeyWait(t *testing.T) {
	if testing.Short() {
		t.Skip("a measurement")
	}
	e := redisEnv(t)
	const procs, rounds = 4, 5
	for _, poll := range [][2]time.Duration{{}, {10 * time.Millisecond, time.Second}} {
		name := "default lock_poll"
		if poll[0] > 0 {
			name = fmt.Sprintf("lock_poll=%v,%v", poll[0], poll[1])
		}
		t.Logf("%d rounds of %d processes x 250 callers, %s: %v", rounds, procs, name, runColdKey(t, e, procs, rounds, poll))
	}
}
