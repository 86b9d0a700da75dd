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

// env is a backend a fleet shares: its server, and the URLs of the backend and of a creation
// counter on it.
type env struct {
	srv *testserver.Server
	// backendURL opens the backend with a key prefix; fast asks for short timeouts and no
	// retries, for tests that stop the server.
	backendURL func(prefix string, fast bool) string
	counterURL func(key string) string
	// freesOnDeath says the backend's lock dies with its holder (flock): a killed holder is
	// replaced at once rather than after the lock timeout.
	freesOnDeath bool
}

func redisEnv(t *testing.T) env {
	srv := testserver.StartRedis(t)
	return env{
		srv: srv,
		backendURL: func(prefix string, fast bool) string {
			u := "redis://" + srv.Addr + "/0?prefix=" + url.QueryEscape(prefix)
			if fast {
				u += "&dial_timeout=200ms&read_timeout=200ms&write_timeout=200ms&max_retries=-1&dialer_retries=1"
			}
			return u
		},
		counterURL: func(key string) string { return "redis://" + srv.Addr + "/" + key },
	}
}

// fleet returns a config for a fleet on e, with keys of its own.
func (e env) fleet(role string) fleettest.Config {
	prefix := fmt.Sprintf("fleet%d:", rand.Uint32())
	return fleettest.Config{
		Role:        role,
		BackendURL:  e.backendURL(prefix, false),
		CounterURL:  e.counterURL(prefix + "creations"),
		Key:         "report",
		Goroutines:  50,
		Creator:     400 * time.Millisecond,
		Expiration:  2 * time.Second,
		LockTimeout: 3 * time.Second,
	}
}

// TestRedisStampedeAcrossProcesses is issue 3's acceptance test; see testStampede.
func TestRedisStampedeAcrossProcesses(t *testing.T) { testStampede(t, redisEnv(t)) }

// TestRedisLockHolderKilled: see testHolderKilled.
func TestRedisLockHolderKilled(t *testing.T) { testHolderKilled(t, redisEnv(t)) }

// TestRedisRestartMidRun: see testRestart.
func TestRedisRestartMidRun(t *testing.T) { testRestart(t, redisEnv(t)) }

// testStampede: 4 processes x 50 goroutines call one cold key with a 400ms creator, then the
// same key once it has expired. The creations are counted on the backend's server: one for the
// cold key, then exactly one regeneration after expiry, during which every other caller in every
// process is served the old value: 199 callers get v1, the regenerating one v2. (A caller that
// started 400ms late would get v2 without waiting and fail the count; the children start their
// callers together, so that would mean a machine stalled for 400ms.)
func testStampede(t *testing.T, e env) {
	cfg := e.fleet("callers")
	const procs = 4
	children := fleettest.Start(t, procs, cfg)
	check := func(wave string, ws []fleettest.Wave) {
		t.Helper()
		for _, w := range ws {
			if len(w.Errors) > 0 || len(w.Reported) > 0 {
				t.Fatalf("%s wave, process %d: caller errors %v, reported %v", wave, w.PID, w.Errors, w.Reported)
			}
		}
	}

	cold := fleettest.Go(t, children)
	check("cold", cold)
	for _, w := range cold {
		if w.Results["v1"] != cfg.Goroutines {
			t.Fatalf("cold wave, process %d: %v; want all %d callers to get v1", w.PID, w.Results, cfg.Goroutines)
		}
	}
	if n := fleettest.Count(t, cfg.CounterURL); n != 1 {
		t.Fatalf("cold key: %d creations across %d processes, want 1", n, procs)
	}
	t.Logf("cold key: %d callers in %d processes, 1 creation; slowest caller per process: %v", procs*cfg.Goroutines, procs, slowest(cold))

	time.Sleep(cfg.Expiration + 200*time.Millisecond) // real processes on a real server: real time
	expired := fleettest.Go(t, children)
	check("expired", expired)
	if n := fleettest.Count(t, cfg.CounterURL); n != 2 {
		t.Fatalf("expired key: %d creations in all, want 2 (exactly one regeneration)", n)
	}
	old, fresh := 0, 0
	for _, w := range expired {
		if w.Results["v1"] == 0 {
			t.Fatalf("expired wave, process %d: %v; want its callers served the old value v1", w.PID, w.Results)
		}
		old += w.Results["v1"]
		fresh += w.Results["v2"]
	}
	if total := procs * cfg.Goroutines; old != total-1 || fresh != 1 {
		t.Fatalf("expired wave: %d callers got the old value and %d the new one; want %d and 1 (only the regenerating caller waits)", old, fresh, total-1)
	}
	t.Logf("expired key: results per process %v, slowest caller per process %v", results(expired), slowest(expired))
}

// testHolderKilled kills a process while it holds the lock of a cold key, in the middle of its
// creation: another process must create the value once the lock times out.
func testHolderKilled(t *testing.T, e env) {
	cfg := e.fleet("holder")
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
	switch {
	case e.freesOnDeath && recovered > cfg.LockTimeout/2:
		t.Fatalf("created %v after the kill; the lock should have died with its holder, not waited for its timeout %v", recovered, cfg.LockTimeout)
	case !e.freesOnDeath && recovered < cfg.LockTimeout/2:
		t.Fatalf("created %v after the kill, before the lock (timeout %v) could have expired: the lock did not hold", recovered, cfg.LockTimeout)
	}
	t.Logf("holder killed with SIGKILL; another process created the value %v later (lock timeout %v)", recovered.Round(time.Millisecond), cfg.LockTimeout)
}

// testRestart stops the server under a running region: calls go on returning the right value
// (from the creator, reported, not failed), and caching resumes once the server is back.
func testRestart(t *testing.T, e env) {
	srv := e.srv
	b, err := backends.Open(e.backendURL("restart:", true))
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
		t.Fatal("the server was down and no error was reported")
	}
	t.Logf("server down: 5 calls answered by the creator in %v, %d errors reported", time.Since(down).Round(time.Millisecond), reported.Load())

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// The client reconnects by itself; the first calls may still fail over while it does.
	deadline := time.Now().Add(10 * time.Second)
	for {
		before := creations.Load()
		call(100)
		call(100)
		if creations.Load() == before+1 { // the second call hit: caching resumed
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("caching did not resume within 10s of the server coming back")
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
