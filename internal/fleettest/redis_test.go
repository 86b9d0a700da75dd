package fleettest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	_ "github.com/dogpile-go/dogpile/backends/redis" // registers redis://
	"github.com/dogpile-go/dogpile/internal/fleettest"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
)

// redisFleet returns a config for a fleet on srv, with keys of its own.
func redisFleet(srv *testserver.Redis, role string) fleettest.Config {
	prefix := fmt.Sprintf("fleet%d:", rand.Uint32())
	return fleettest.Config{
		Role:        role,
		BackendURL:  "redis://" + srv.Addr + "/0?prefix=" + url.QueryEscape(prefix),
		CounterURL:  "redis://" + srv.Addr + "/" + prefix + "creations",
		Key:         "report",
		Goroutines:  50,
		Creator:     200 * time.Millisecond,
		Expiration:  2 * time.Second,
		LockTimeout: 3 * time.Second,
	}
}

// TestRedisStampedeAcrossProcesses is issue 3's acceptance test: 4 processes x 50 goroutines call
// one cold key with a 200ms creator, then the same key once it has expired. The creations are
// counted in Redis: one for the cold key, one regeneration after expiry, and while it runs every
// process is served the old value.
func TestRedisStampedeAcrossProcesses(t *testing.T) {
	srv := testserver.StartRedis(t)
	cfg := redisFleet(srv, "callers")
	children := fleettest.Start(t, 4, cfg)

	cold := fleettest.Go(t, children)
	for _, w := range cold {
		if len(w.Errors) > 0 || w.Results["v1"] != cfg.Goroutines {
			t.Fatalf("cold wave, process %d: %v, errors %v; want all %d callers to get v1", w.PID, w.Results, w.Errors, cfg.Goroutines)
		}
	}
	if n := fleettest.Count(t, cfg.CounterURL); n != 1 {
		t.Fatalf("cold key: %d creations across 4 processes, want 1", n)
	}
	t.Logf("cold key: 200 callers in 4 processes, 1 creation; slowest caller per process: %v", slowest(cold))

	time.Sleep(cfg.Expiration + 200*time.Millisecond) // real processes on a real server: real time
	expired := fleettest.Go(t, children)
	if n := fleettest.Count(t, cfg.CounterURL); n != 2 {
		t.Fatalf("expired key: %d creations in all, want 2 (exactly one regeneration)", n)
	}
	for _, w := range expired {
		if len(w.Errors) > 0 || w.Results["v1"] == 0 {
			t.Fatalf("expired wave, process %d: %v, errors %v; want callers served the old value v1", w.PID, w.Results, w.Errors)
		}
	}
	t.Logf("expired key: results per process %v, slowest caller per process %v", results(expired), slowest(expired))
}

// TestRedisLockHolderKilled kills a process while it holds the lock of a cold key, in the middle
// of its creation: another process must create the value once the lock times out.
func TestRedisLockHolderKilled(t *testing.T) {
	srv := testserver.StartRedis(t)
	cfg := redisFleet(srv, "holder")
	holder := fleettest.Start(t, 1, cfg)[0]
	holder.WaitCreating(t) // it holds the lock and is inside the creator
	holder.Kill(t)
	killed := time.Now()

	cfg.Role = "callers"
	_, h := fleettest.Region(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := h.Call(ctx, cfg.Key)
	if err != nil {
		t.Fatalf("after the holder died: %v", err)
	}
	recovered := time.Since(killed)
	if v != "v2" || fleettest.Count(t, cfg.CounterURL) != 2 {
		t.Fatalf("got %q after %d creations, want v2: the dead holder's creation and ours", v, fleettest.Count(t, cfg.CounterURL))
	}
	if recovered < cfg.LockTimeout/2 {
		t.Fatalf("created %v after the kill, before the lock (timeout %v) could have expired: the lock did not hold", recovered, cfg.LockTimeout)
	}
	t.Logf("holder killed with SIGKILL; another process created the value %v later (lock timeout %v)", recovered.Round(time.Millisecond), cfg.LockTimeout)
}

// TestRedisRestartMidRun stops Redis under a running region: calls go on returning the right
// value (from the creator, reported, not failed), and caching resumes once Redis is back.
func TestRedisRestartMidRun(t *testing.T) {
	srv := testserver.StartRedis(t)
	b, err := backends.Open("redis://" + srv.Addr + "/0?dial_timeout=200ms&read_timeout=200ms&write_timeout=200ms&max_retries=-1")
	if err != nil {
		t.Fatal(err)
	}
	var reported atomic.Int32
	r := region.New("restart", region.WithExpiration(time.Minute),
		region.WithErrorHandler(func(context.Context, error) { reported.Add(1) }))
	if err := r.Configure(b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	var creations atomic.Int32
	double := memo.Func(r, func(_ context.Context, n int) (int, error) {
		creations.Add(1)
		return 2 * n, nil
	}, memo.WithNamespace("double"))
	ctx := context.Background()
	call := func(n int) {
		t.Helper()
		if v, err := double.Call(ctx, n); err != nil || v != 2*n {
			t.Fatalf("Call(%d) = (%d, %v), want (%d, nil)", n, v, err, 2*n)
		}
	}

	call(1)
	call(1)
	if creations.Load() != 1 {
		t.Fatalf("%d creations before the restart, want 1 (the second call hits)", creations.Load())
	}

	srv.Stop()
	down := time.Now()
	for i := range 5 {
		call(10 + i) // each from the creator, since nothing can be read or stored
	}
	if reported.Load() == 0 {
		t.Fatal("Redis was down and no error was reported")
	}
	t.Logf("Redis down: 5 calls answered by the creator in %v, %d errors reported", time.Since(down).Round(time.Millisecond), reported.Load())

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// The pool reconnects by itself; the first calls may still fail over while it does.
	deadline := time.Now().Add(10 * time.Second)
	for {
		before := creations.Load()
		call(100)
		call(100)
		if creations.Load() == before+1 { // the second call hit: caching resumed
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("caching did not resume within 10s of Redis coming back")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func slowest(ws []fleettest.Wave) []time.Duration {
	var out []time.Duration
	for _, w := range ws {
		out = append(out, w.Slowest.Round(time.Millisecond))
	}
	return out
}

func results(ws []fleettest.Wave) []map[string]int {
	var out []map[string]int
	for _, w := range ws {
		out = append(out, w.Results)
	}
	return out
}
