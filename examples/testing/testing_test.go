// Package testing_test holds the code of the README's "Testing your code" section: each test
// here is a snippet of that section, run by go test, so that the README shows what the library
// does. The tests are what a user of the library would write in tests of their own code.
package testing_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/backends/null"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/backends/wrap"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestNullBackendRunsEveryCall: on the null backend every read misses and every write is
// dropped, so each call runs the function.
func TestNullBackendRunsEveryCall(t *testing.T) {
	ctx := t.Context()
	loads := 0
	loadUser := func(_ context.Context, id int64) (string, error) {
		loads++
		return fmt.Sprint("user ", id), nil
	}

	cache := region.New("users")
	if err := cache.Configure(null.New()); err != nil { // or DOGPILE_USERS_BACKEND=null://
		t.Fatal(err)
	}
	defer cache.Close()
	userByID := memo.Func(cache, loadUser, memo.WithNamespace("user"))

	_, _ = userByID.Call(ctx, 42)
	_, _ = userByID.Call(ctx, 42)
	if loads != 2 {
		t.Errorf("loadUser ran %d times; want 2", loads)
	}
}

// TestNullBackendStillCoalescesConcurrentCalls: calls of one key in flight together share one
// run of the function on the null backend too; the dogpile lock is the region's, not the
// backend's.
func TestNullBackendStillCoalescesConcurrentCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cache := region.New("users")
		if err := cache.Configure(null.New()); err != nil {
			t.Fatal(err)
		}
		defer cache.Close()
		release := make(chan struct{})
		loads := 0
		userByID := memo.Func(cache, func(_ context.Context, id int64) (string, error) {
			loads++
			<-release
			return fmt.Sprint("user ", id), nil
		}, memo.WithNamespace("user"))

		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() { _, _ = userByID.Call(t.Context(), 42) })
		}
		synctest.Wait() // every caller is in: one runs loadUser, nine wait for it
		close(release)
		wg.Wait()
		if loads != 1 {
			t.Errorf("loadUser ran %d times for 10 concurrent calls; want 1", loads)
		}
	})
}

// Session has what encoding/json, the default codec, does not keep: an unexported field, and an
// interface field whose concrete type JSON does not record.
type Session struct {
	User  string
	token string // unexported: JSON does not see it
	Extra any    // an int stored here comes back a float64 through JSON
}

// TestUnexportedFieldsSurviveOnlyPlainMemory: plain memory:// hands back the Go value itself;
// memory with copy and Redis go through the codec, as production does, and lose what JSON drops.
func TestUnexportedFieldsSurviveOnlyPlainMemory(t *testing.T) {
	srv := testserver.StartRedis(t)
	for _, tc := range []struct {
		name      string
		open      func(t *testing.T) backends.Backend
		wantToken string
		wantExtra any
	}{
		{"memory", func(*testing.T) backends.Backend { return memory.New() }, "t0k", 7},
		{"memory.WithCopy", func(*testing.T) backends.Backend { return memory.New(memory.WithCopy()) }, "", 7.0},
		{"memory://?copy=true", func(t *testing.T) backends.Backend {
			b, err := backends.Open("memory://?copy=true")
			if err != nil {
				t.Fatal(err)
			}
			return b
		}, "", 7.0},
		{"redis", func(t *testing.T) backends.Backend {
			client := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
			t.Cleanup(func() { _ = client.Close() })
			return redis.New(client, redis.WithPrefix(t.Name()+":"))
		}, "", 7.0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			cache := region.New("sessions")
			if err := cache.Configure(tc.open(t)); err != nil {
				t.Fatal(err)
			}
			defer cache.Close()

			sessions := region.NewView[Session](cache)
			if err := sessions.Set(ctx, "s1", Session{User: "ann", token: "t0k", Extra: 7}); err != nil {
				t.Fatal(err)
			}
			s, ok, err := sessions.Get(ctx, "s1")
			if err != nil || !ok {
				t.Fatalf("Get = %v, %v", ok, err)
			}
			if s.User != "ann" || s.token != tc.wantToken || s.Extra != tc.wantExtra {
				t.Errorf("got %#v; want User %q, token %q, Extra %#v", s, "ann", tc.wantToken, tc.wantExtra)
			}
		})
	}
}

// TestFaultsInjectReadErrorsAndLatency: reads failed by wrap.Faults are misses under FailOpen
// (the default): the function runs, the call succeeds, and the region counts the read errors.
// Then every operation is delayed; in a synctest bubble the delay is exact, and takes no real
// time.
func TestFaultsInjectReadErrorsAndLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		loads := 0
		loadUser := func(_ context.Context, id int64) (string, error) {
			loads++
			return fmt.Sprint("user ", id), nil
		}

		faults := wrap.NewFaults(1) // 1 seeds its random choices (Rate, Jitter)
		cache := region.New("users", region.WithLogger(slog.New(slog.DiscardHandler)))
		if err := cache.Configure(wrap.New(memory.New(), faults.Hook)); err != nil {
			t.Fatal(err)
		}
		defer cache.Close()
		userByID := memo.Func(cache, loadUser, memo.WithNamespace("user"))

		_, _ = userByID.Call(ctx, 42) // cached
		// Every read fails. The memory backend keeps Go values, so a region reads it with
		// GetValue; other backends with Get.
		_ = faults.Set(wrap.Fault{Rate: 1}, wrap.OpGet, wrap.OpGetValue)

		u, err := userByID.Call(ctx, 42) // a miss: loadUser runs again
		if u != "user 42" || err != nil || loads != 2 {
			t.Errorf("Call = %q, %v after %d loads; want the value, no error, 2 loads", u, err, loads)
		}
		if cache.Stats().Errors.Read == 0 {
			t.Error("the failed reads are not in Stats().Errors.Read")
		}

		_ = faults.Set(wrap.Fault{Latency: 50 * time.Millisecond}) // every operation, reads no longer failing
		start := time.Now()
		_, _ = userByID.Call(ctx, 42) // a hit: one read, 50ms late
		if d := time.Since(start); d != 50*time.Millisecond {
			t.Errorf("a hit took %v; want 50ms", d)
		}
	})
}

// TestExpiryWithoutWaiting: inside a testing/synctest bubble the region's default clock is the
// bubble's, so expiry is tested by moving that clock, not by waiting.
func TestExpiryWithoutWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		loads := 0
		loadUser := func(_ context.Context, id int64) (string, error) {
			loads++
			return fmt.Sprint("user ", id), nil
		}

		ctx := t.Context()
		cache := region.New("users", region.WithExpiration(time.Minute))
		if err := cache.Configure(memory.New()); err != nil {
			t.Fatal(err)
		}
		defer cache.Close()
		userByID := memo.Func(cache, loadUser, memo.WithNamespace("user"))

		_, _ = userByID.Call(ctx, 42)
		time.Sleep(59 * time.Second)  // returns at once: the bubble's clock moves on
		_, _ = userByID.Call(ctx, 42) // fresh: loads == 1
		if loads != 1 {
			t.Fatalf("after 59s: %d loads; want 1 (still fresh)", loads)
		}
		time.Sleep(2 * time.Second)
		_, _ = userByID.Call(ctx, 42) // expired: regenerated, loads == 2
		if loads != 2 {
			t.Fatalf("after 61s: %d loads; want 2 (expired, regenerated)", loads)
		}
	})
}

// TestHandleStatsCountHitsAndCreations: a memo handle's Stats count that one function's calls.
func TestHandleStatsCountHitsAndCreations(t *testing.T) {
	ctx := t.Context()
	loadUser := func(_ context.Context, id int64) (string, error) {
		return fmt.Sprint("user ", id), nil
	}
	cache := region.New("users")
	if err := cache.Configure(memory.New()); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	userByID := memo.Func(cache, loadUser, memo.WithNamespace("user"))

	_, _ = userByID.Call(ctx, 42) // a miss, and a creation
	_, _ = userByID.Call(ctx, 42) // a hit
	if s := userByID.Stats(); s.Misses != 1 || s.Creations != 1 || s.Hits != 1 {
		t.Errorf("Stats() = %+v; want 1 miss, 1 creation, 1 hit", s)
	}
}
