package redis_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/region"
	goredis "github.com/redis/go-redis/v9"
)

// Scale-out tests: the backend on a real six-node Redis Cluster and a real Sentinel setup, on
// loopback, with a master killed under load.

// TestClusterScaleOut runs on one cluster, in order: a batch of 200 keys over every master, then
// a master killed with SIGKILL under load.
func TestClusterScaleOut(t *testing.T) {
	c := testserver.StartCluster(t)
	rt := &roundTrips{byAddr: map[string]int{}}
	client := goredis.NewClusterClient(&goredis.ClusterOptions{
		Addrs: c.Addrs(),
		NewClient: func(opt *goredis.Options) *goredis.Client {
			cl := goredis.NewClient(opt)
			cl.AddHook(rt.hook(opt.Addr))
			return cl
		},
	})
	t.Cleanup(func() { _ = client.Close() })
	ctx := t.Context()

	t.Run("Batch200", func(t *testing.T) {
		b := redis.New(client, redis.WithPrefix("batch:"))
		r := region.New("batch", region.WithExpiration(time.Hour), region.WithFailurePolicy(region.FailClosed))
		if err := r.Configure(b); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		v := region.NewView[string](r)
		keys := make([]string, 200)
		for i := range keys {
			keys[i] = "user:" + strconv.Itoa(i)
		}
		var asked [][]string
		create := func(_ context.Context, missing []string) (map[string]string, error) {
			asked = append(asked, slices.Clone(missing))
			m := make(map[string]string, len(missing))
			for _, k := range missing {
				m[k] = "value of " + k
			}
			return m, nil
		}
		check := func(what string) {
			t.Helper()
			got, err := v.GetOrCreateMulti(ctx, keys, create)
			if err != nil {
				t.Fatalf("%s batch: %v", what, err)
			}
			if len(got) != len(keys) {
				t.Fatalf("%s batch: %d values for %d keys", what, len(got), len(keys))
			}
			for _, k := range keys {
				if got[k] != "value of "+k {
					t.Fatalf("%s batch: %s = %q", what, k, got[k])
				}
			}
		}
		check("cold")
		if len(asked) != 1 || len(asked[0]) != 200 {
			t.Fatalf("the creator was asked %d times (%d keys the first), want once for all 200", len(asked), len(asked[0]))
		}
		rt.take()
		check("warm")
		if len(asked) != 1 {
			t.Fatalf("the warm batch called the creator again")
		}
		warm := rt.take()

		// Where the values landed: each master's share, asked of the masters themselves.
		masters, err := c.Masters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(masters) != 3 {
			t.Fatalf("%d masters, want 3", len(masters))
		}
		held := map[string]int{}
		total := 0
		for _, m := range masters {
			mc := goredis.NewClient(&goredis.Options{Addr: m.Addr})
			n, err := mc.DBSize(ctx).Result()
			_ = mc.Close()
			if err != nil {
				t.Fatal(err)
			}
			held[m.Addr] = int(n)
			total += int(n)
			if n == 0 {
				t.Errorf("master %s holds none of the 200 keys", m.Addr)
			}
			if warm[m.Addr] != 1 {
				t.Errorf("the warm batch made %d round trips to master %s, want 1 (one pipeline of per-slot MGETs)", warm[m.Addr], m.Addr)
			}
		}
		if total != 200 {
			t.Errorf("the masters hold %d keys in all, want 200 (and no lock left behind)", total)
		}
		t.Logf("200 keys over 3 masters: keys per master %v; round trips of the warm batch per node %v", held, warm)
	})

	t.Run("MasterKilled", func(t *testing.T) {
		masters, err := c.Masters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		victim := masters[0]
		// go-redis reloads a cluster's slot map on MOVED, ASK and READONLY answers, and
		// otherwise every ClusterStateReloadInterval (60s by default): a master that died and
		// was not started again refuses connections and answers nothing, so with the default
		// the client goes on dialing the dead master for the slots its replica took over, for
		// up to a minute (seen here: still failing 30s after the kill). The package
		// documentation tells users to set it low, as here.
		client := goredis.NewClusterClient(&goredis.ClusterOptions{
			Addrs:                      c.Addrs(),
			ClusterStateReloadInterval: time.Second,
			ContextTimeoutEnabled:      true, // as redis.New's documentation asks
		})
		t.Cleanup(func() { _ = client.Close(); time.Sleep(2 * time.Second) }) // see closeDialing
		b := redis.New(client, redis.WithPrefix("failover:"))
		f := failover(t, b, func() error { victim.Kill(); return nil })
		t.Logf("cluster master %s killed (SIGKILL) under load: %s", victim.Addr, f)
		after, err := c.Masters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != 3 || slices.Contains(after, victim) {
			t.Fatalf("after the failover the masters are %d, killed one among them: %v", len(after), after)
		}
	})
}

// TestSentinelFailover kills the master of a Sentinel setup under load: reads and writes follow
// the sentinels to the promoted replica, and a lock written to the replica before the kill
// still holds there (see the package documentation for what is not guaranteed).
func TestSentinelFailover(t *testing.T) {
	s := testserver.StartSentinel(t)
	client := goredis.NewFailoverClient(&goredis.FailoverOptions{
		MasterName:            testserver.SentinelMaster,
		SentinelAddrs:         s.Addrs(),
		ContextTimeoutEnabled: true, // as redis.New's documentation asks
	})
	t.Cleanup(func() { _ = client.Close(); time.Sleep(2 * time.Second) }) // see closeDialing
	ctx := t.Context()
	b := redis.New(client, redis.WithPrefix("sentinel:"))
	old, err := s.MasterAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}

	var held backends.Lock
	f := failover(t, b, func() error {
		l, ok, err := b.TryLock(ctx, "locked", 30*time.Second)
		if err != nil || !ok {
			return fmt.Errorf("TryLock before the failover = %v, %v", ok, err)
		}
		held = l
		// The lock is on the replica too before the master dies: WAIT 1 replica.
		if n, err := client.Do(ctx, "WAIT", 1, 1000).Int(); err != nil || n != 1 {
			return fmt.Errorf("WAIT 1 1000 = %d, %v", n, err)
		}
		s.Server(old).Kill()
		return nil
	})
	t.Logf("sentinel master %s killed (SIGKILL) under load: %s", old, f)

	now, err := s.MasterAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if now == old {
		t.Fatalf("the sentinels still name %s the master", old)
	}
	// Writes go to the new master: a value set through the backend is there.
	if err := b.Set(ctx, "after", []byte("x"), time.Minute); err != nil {
		t.Fatal(err)
	}
	direct := goredis.NewClient(&goredis.Options{Addr: now})
	defer direct.Close()
	if v, err := direct.Get(ctx, "sentinel:after").Result(); err != nil || v != "x" {
		t.Fatalf("the new master %s holds %q, %v for the key just set; want x", now, v, err)
	}
	// The replicated lock survived the failover: nobody else can take it, and its holder's
	// token still releases it.
	if _, ok, err := b.TryLock(ctx, "locked", time.Second); err != nil || ok {
		t.Fatalf("TryLock on the new master of a lock replicated before the failover = %v, %v; want not taken", ok, err)
	}
	if err := held.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	l, ok, err := b.TryLock(ctx, "locked", time.Second)
	if err != nil || !ok {
		t.Fatalf("TryLock after the holder's Unlock on the new master = %v, %v", ok, err)
	}
	_ = l.Unlock(ctx)
}

// outage is what failover measured.
type outage struct {
	recovered     time.Duration // from the kill to the last failure seen (call or report)
	failedCalls   int           // FailClosed calls that returned an error in that time
	creations     int           // creator calls (both regions) in that time
	reported      int           // backend errors the FailOpen region reported in that time
	deadlineCalls int           // calls ended by their context's deadline in that time
	calls         int           // calls during the whole load
	slowest       time.Duration // the slowest call
	callsDeadline time.Duration // every call's context deadline
}

func (o outage) String() string {
	return fmt.Sprintf("recovered %v after the kill; during it %d creator calls, %d failed FailClosed calls (%d more ended by their deadline), %d errors reported by the FailOpen region; %d calls in all, slowest %v (deadline %v)",
		o.recovered.Round(time.Millisecond), o.creations, o.failedCalls, o.deadlineCalls, o.reported, o.calls, o.slowest.Round(time.Millisecond), o.callsDeadline)
}

// failover puts load on b through two regions, one FailOpen (the default: a failed read is a
// miss, the creator runs, the error is reported) and one FailClosed (the caller gets the error),
// 4 goroutines each, cycling over 40 keys cached beforehand, with a 1s deadline per call. It
// calls kill under that load and keeps the load on until nothing has failed for 2s (at most
// 30s), then checks that no call outlived its deadline and that every key is read from the
// cache again, and returns the figures.
func failover(t *testing.T, b backends.Backend, kill func() error) outage {
	t.Helper()
	const (
		goroutines = 4
		deadline   = time.Second
		quiet      = 2 * time.Second
	)
	var (
		mu          sync.Mutex
		lastFailure time.Time   // guarded by mu
		lastErr     error       // guarded by mu
		creations   []time.Time // guarded by mu
		reported    []time.Time // guarded by mu
		failedCalls []time.Time // guarded by mu
		expired     []time.Time // guarded by mu: calls ended by their deadline
	)
	failed := func(list *[]time.Time, err error) {
		mu.Lock()
		defer mu.Unlock()
		lastErr = err
		now := time.Now()
		*list = append(*list, now)
		lastFailure = now
	}
	newView := func(name string, policy region.FailurePolicy) *region.View[string] {
		r := region.New(name, region.WithExpiration(time.Hour), region.WithLockTimeout(2*time.Second),
			region.WithFailurePolicy(policy), region.WithLogger(slog.New(slog.DiscardHandler)),
			region.WithErrorHandler(func(_ context.Context, err error) {
				if policy == region.FailOpen {
					failed(&reported, err)
				}
			}))
		if err := r.Configure(b); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return region.NewView[string](r)
	}
	open, closed := newView("open", region.FailOpen), newView("closed", region.FailClosed)
	keys := make([]string, 40) // the two regions share them: their entries are of one format
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	create := func(k string) func(context.Context) (string, error) {
		return func(context.Context) (string, error) {
			mu.Lock()
			creations = append(creations, time.Now())
			mu.Unlock()
			return "v:" + k, nil
		}
	}
	ctx := t.Context()
	for _, v := range []*region.View[string]{open, closed} {
		for _, k := range keys {
			if _, err := v.GetOrCreate(ctx, k, create(k)); err != nil {
				t.Fatalf("warming %s: %v", k, err)
			}
		}
	}
	warmed := len(creations)

	stop := make(chan struct{})
	var calls atomic.Int64
	var slowest atomic.Int64
	var wg sync.WaitGroup
	for g := range 2 * goroutines {
		v := open
		if g%2 == 1 {
			v = closed
		}
		wg.Go(func() {
			for i := g; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := keys[i%len(keys)]
				cctx, cancel := context.WithTimeout(ctx, deadline)
				t0 := time.Now()
				got, err := v.GetOrCreate(cctx, k, create(k))
				d := time.Since(t0)
				cancel()
				calls.Add(1)
				for {
					s := slowest.Load()
					if int64(d) <= s || slowest.CompareAndSwap(s, int64(d)) {
						break
					}
				}
				switch {
				case errors.Is(err, context.DeadlineExceeded):
					// The backend was slow to fail (go-redis retries with backoff): the call
					// ends at its deadline, as it must.
					failed(&expired, err)
				case err != nil && v == open:
					t.Errorf("a FailOpen call failed: %v", err)
				case err != nil:
					failed(&failedCalls, err)
				case got != "v:"+k:
					t.Errorf("%s = %q", k, got)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	killed := time.Now()
	if err := kill(); err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	for {
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		last := lastFailure
		mu.Unlock()
		if last.After(killed) && time.Since(last) > quiet {
			break
		}
		if time.Since(killed) > 30*time.Second {
			close(stop)
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("still failing 30s after the kill (last failure %v after it: %v)", last.Sub(killed), lastErr)
		}
	}
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	o := outage{recovered: lastFailure.Sub(killed), calls: int(calls.Load()), slowest: time.Duration(slowest.Load()), callsDeadline: deadline}
	in := func(ts []time.Time) int {
		n := 0
		for _, at := range ts {
			if !at.Before(killed) && !at.After(lastFailure) {
				n++
			}
		}
		return n
	}
	o.creations, o.failedCalls, o.reported = in(creations[warmed:]), in(failedCalls), in(reported)
	o.deadlineCalls = in(expired)
	// A call may end a little after its deadline: the deadline is checked between round trips,
	// and a machine of 2 shared cores running the race detector is slow.
	if slack := 500 * time.Millisecond; o.slowest > deadline+slack {
		t.Errorf("a call took %v, past its deadline of %v", o.slowest, deadline)
	}
	// Every key is cached again, wherever its slot went: no creator call now.
	before := len(creations)
	for _, v := range []*region.View[string]{open, closed} {
		for _, k := range keys {
			mu.Unlock()
			got, err := v.GetOrCreate(ctx, k, create(k))
			mu.Lock()
			if err != nil || got != "v:"+k {
				t.Fatalf("after the failover, %s = %q, %v", k, got, err)
			}
		}
	}
	if n := len(creations) - before; n > 0 {
		t.Errorf("after the failover, %d of %d keys were created again rather than read", n, 2*len(keys))
	}
	return o
}

// roundTrips counts, per node address, the commands and pipelines a cluster client sends.
type roundTrips struct {
	mu     sync.Mutex
	byAddr map[string]int // guarded by mu
}

func (rt *roundTrips) hook(addr string) goredis.Hook { return rtHook{rt, addr} }

// take returns the counts since the last call and forgets them.
func (rt *roundTrips) take() map[string]int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	m := rt.byAddr
	rt.byAddr = map[string]int{}
	return m
}

func (rt *roundTrips) add(addr string) {
	rt.mu.Lock()
	rt.byAddr[addr]++
	rt.mu.Unlock()
}

type rtHook struct {
	rt   *roundTrips
	addr string
}

func (h rtHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h rtHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if cmd.Name() != "cluster" { // the client's own CLUSTER SLOTS
			h.rt.add(h.addr)
		}
		return next(ctx, cmd)
	}
}

func (h rtHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		h.rt.add(h.addr)
		return next(ctx, cmds)
	}
}
