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

// testWriteWins: one process begins creating a cold key; another (this one) then writes the key
// (a handle's Set, or its Invalidate, which deletes) before that creation ends. The creating
// process's caller gets its own value, but the older creation is not stored over the write:
// this process, and a third one that reads afterwards, see what was written, or, after the
// deletion, create the key again.
func testWriteWins(t *testing.T, e env) {
	for _, write := range []string{"Set", "Invalidate"} {
		t.Run(write, func(t *testing.T) {
			cfg := e.fleet("creator")
			creator := fleettest.Start(t, 1, cfg)[0]
			creator.WaitCreating(t) // it holds the lock and is inside the creator
			cfg.Role = "callers"
			_, h := fleettest.Region(t, cfg)
			ctx := context.Background()
			time.Sleep(2 * time.Millisecond) // the write's stamp after the creation's start
			want := "written"
			switch write {
			case "Set":
				if err := h.Set(ctx, cfg.Key, want); err != nil {
					t.Fatal(err)
				}
			case "Invalidate":
				if err := h.Invalidate(ctx, cfg.Key); err != nil {
					t.Fatal(err)
				}
				want = "" // absent
			}
			if w := creator.Finish(t); w.Results["created"] != 1 || len(w.Errors) > 0 {
				t.Fatalf("the creating process's caller: %v %v, want its own value", w.Results, w.Errors)
			}
			got, ok, err := h.Cached(ctx, cfg.Key)
			switch {
			case err != nil:
				t.Fatal(err)
			case want == "" && ok:
				t.Fatalf("after %s in this process, the other's older creation was stored over it: %q", write, got)
			case want != "" && (!ok || got != want):
				t.Fatalf("after %s in this process, it reads (%q, %v), want %q: the older creation was stored over it", write, got, ok, want)
			}
			third := fleettest.Start(t, 1, cfg)[0]
			w := fleettest.Go(t, []*fleettest.Child{third})[0]
			if want == "" {
				want = "v2" // created again, by the third process: the second creation counted
			}
			if w.Results[want] != cfg.Goroutines {
				t.Fatalf("a third process reads %v %v, want %q for all %d callers", w.Results, w.Errors, want, cfg.Goroutines)
			}
		})
	}
}

// testExpiryFromStored: a creation (1.5s) longer than the expiration (1s), in 4 processes of 50
// callers: one creation, and a second wave right after it is all hits, since the value's
// expiration counts from when it was stored, not from when its creation began.
func testExpiryFromStored(t *testing.T, e env) {
	cfg := e.fleet("callers")
	cfg.Creator, cfg.Expiration, cfg.LockTimeout = 1500*time.Millisecond, time.Second, 5*time.Second
	children := fleettest.Start(t, 4, cfg)
	for _, wave := range []string{"cold", "right after"} {
		for _, w := range fleettest.Go(t, children) {
			if w.Results["v1"] != cfg.Goroutines || len(w.Errors) > 0 {
				t.Fatalf("%s wave, process %d: %v %v; want every caller to get v1", wave, w.PID, w.Results, w.Errors)
			}
		}
	}
	if n := fleettest.Count(t, cfg.CounterURL); n != 1 {
		t.Fatalf("%d creations, want 1: a value created in 1.5s under a 1s expiration must be fresh when stored", n)
	}
}

// TestRedisWriteWinsAcrossProcesses: see testWriteWins.
func TestRedisWriteWinsAcrossProcesses(t *testing.T) { testWriteWins(t, redisEnv(t)) }

// TestRedisExpiryFromStored: see testExpiryFromStored.
func TestRedisExpiryFromStored(t *testing.T) { testExpiryFromStored(t, redisEnv(t)) }
