package redis_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/backendtest"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/internal/counting"
	"github.com/dogpile-go/dogpile/internal/testserver"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// server is the redis-server the package's tests share; each test keeps to keys under a prefix
// of its own (uniquePrefix). Tests that stop a server start one of their own.
var server *testserver.Redis

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dogpile-redis-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server, err = testserver.NewRedis(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	// go-redis logs connection failures to stderr through a global logger; the tests that stop a
	// server on purpose would fill the output with them.
	goredis.SetLogger(discard{})
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		server.Close()
		_ = os.RemoveAll(dir)
		os.Exit(code)
	}))
}

type discard struct{}

func (discard) Printf(context.Context, string, ...any) {}

// newClient returns a client of the shared server, closed when tb ends.
func newClient(tb testing.TB) *goredis.Client {
	tb.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: server.Addr})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// uniquePrefix returns a key prefix of tb's own on the shared server.
func uniquePrefix(tb testing.TB) string {
	name := strings.NewReplacer("/", ":", " ", "_").Replace(tb.Name())
	return "test:" + name + ":" + strconv.FormatUint(rand.Uint64(), 36) + ":"
}

func TestConformance(t *testing.T) {
	client := newClient(t)
	for _, tc := range []struct {
		name string
		opts []redis.Option
	}{
		{"default", nil},
		{"default_ttl", []redis.Option{redis.WithDefaultTTL(time.Hour)}},
		// Not WithLockWatchdog: a watched lock never unlocked lasts as long as the backend, which
		// the suite's LockTimeout cannot tell from a holder that crashed (whose watchdog dies
		// with it). lock_test.go tests the watchdog.
	} {
		t.Run(tc.name, func(t *testing.T) {
			backendtest.Run(t, func(t *testing.T) backends.Backend {
				return redis.New(client, append([]redis.Option{redis.WithPrefix(uniquePrefix(t))}, tc.opts...)...)
			})
		})
	}
}

// TestConformanceRing runs the suite on a go-redis Ring of two servers, which shards keys in the
// client: a plain MGET or DEL of many keys would go to the first key's shard only.
func TestConformanceRing(t *testing.T) {
	ring := newRing(t)
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		return redis.New(ring, redis.WithPrefix(uniquePrefix(t)))
	})
}

func newRing(t *testing.T) *goredis.Ring {
	t.Helper()
	a, b := testserver.StartRedis(t), testserver.StartRedis(t)
	ring := goredis.NewRing(&goredis.RingOptions{Addrs: map[string]string{"a": a.Addr, "b": b.Addr}})
	t.Cleanup(func() { _ = ring.Close() })
	return ring
}

func TestRingMultiAcrossShards(t *testing.T) {
	ctx := t.Context()
	ring := newRing(t)
	b := redis.New(ring, redis.WithPrefix("ring:"))
	items := make(map[string][]byte)
	var keys []string
	for i := range 100 {
		k := "k" + strconv.Itoa(i)
		keys = append(keys, k)
		items[k] = []byte("v" + strconv.Itoa(i))
	}
	if err := b.SetMulti(ctx, items, 0); err != nil {
		t.Fatal(err)
	}
	// Both shards hold some of the keys, or the test proves nothing.
	err := ring.ForEachShard(ctx, func(ctx context.Context, shard *goredis.Client) error {
		n, err := shard.DBSize(ctx).Result()
		if err == nil && n == 0 {
			err = fmt.Errorf("shard %s holds no key", shard.Options().Addr)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.GetMulti(ctx, append(keys, "absent"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != len(items) {
		t.Fatalf("GetMulti over two shards: %d of %d keys found", len(m), len(items))
	}
	for k, v := range items {
		if string(m[k]) != string(v) {
			t.Fatalf("GetMulti: %q = %q, want %q", k, m[k], v)
		}
	}
	if err := b.DeleteMulti(ctx, keys); err != nil {
		t.Fatal(err)
	}
	if m, err := b.GetMulti(ctx, keys); err != nil || len(m) != 0 {
		t.Fatalf("GetMulti after DeleteMulti = %d keys, %v; want none", len(m), err)
	}
}

func TestStoredAsIs(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	prefix := uniquePrefix(t)
	b := redis.New(client, redis.WithPrefix(prefix))
	value := []byte("not an envelope \x00\xff")
	if err := b.Set(ctx, "k", value, 0); err != nil {
		t.Fatal(err)
	}
	raw, err := client.Get(ctx, prefix+"k").Bytes()
	if err != nil || string(raw) != string(value) {
		t.Fatalf("GET %sk = %q, %v; want %q: the value is stored under the prefixed key, as is", prefix, raw, err, value)
	}
	if ttl, err := client.PTTL(ctx, prefix+"k").Result(); err != nil || ttl != -1 {
		t.Fatalf("PTTL after Set with ttl 0 and no default = %v, %v; want -1 (no expiry)", ttl, err)
	}
	got, err := b.Get(ctx, "k")
	if err != nil || string(got) != string(value) {
		t.Fatalf("Get = %q, %v; want %q", got, err, value)
	}
	client.Del(ctx, prefix+"k")
}

func TestTTL(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	prefix := uniquePrefix(t)
	plain := redis.New(client, redis.WithPrefix(prefix))
	withDefault := redis.New(client, redis.WithPrefix(prefix), redis.WithDefaultTTL(time.Hour))
	t.Cleanup(func() { client.Del(context.Background(), prefix+"a", prefix+"b", prefix+"c", prefix+"d", prefix+"e") })

	for _, tc := range []struct {
		name     string
		set      func(key string) error
		min, max time.Duration // PTTL bounds; -1: no expiry
	}{
		{"a", func(k string) error { return plain.Set(ctx, k, []byte("v"), 90*time.Second) }, 89 * time.Second, 90 * time.Second},
		{"b", func(k string) error { return withDefault.Set(ctx, k, []byte("v"), 0) }, 59 * time.Minute, time.Hour},
		{"c", func(k string) error { return withDefault.Set(ctx, k, []byte("v"), time.Minute) }, 59 * time.Second, time.Minute},
		{"d", func(k string) error {
			return withDefault.SetMulti(ctx, map[string][]byte{k: []byte("v")}, 0)
		}, 59 * time.Minute, time.Hour},
		// A fraction of a millisecond is rounded up, not down to "no expiry" or an error.
		{"e", func(k string) error { return plain.Set(ctx, k, []byte("v"), 10*time.Second+time.Microsecond) }, 9 * time.Second, 10*time.Second + time.Millisecond},
	} {
		if err := tc.set(tc.name); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		ttl, err := client.PTTL(ctx, prefix+tc.name).Result()
		if err != nil || ttl < tc.min || ttl > tc.max {
			t.Errorf("%s: PTTL = %v, %v; want within [%v, %v]", tc.name, ttl, err, tc.min, tc.max)
		}
	}
}

func TestRoundTrips(t *testing.T) {
	ctx := t.Context()
	client, c := counting.RedisClient(t, server.Addr)
	b := redis.New(client, redis.WithPrefix(uniquePrefix(t)))

	const n = 100
	keys := make([]string, n)
	items := make(map[string][]byte, n)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
		if i%10 != 0 { // every tenth key stays absent
			items[keys[i]] = []byte(strings.Repeat("v", 200) + strconv.Itoa(i))
		}
	}
	t.Cleanup(func() { _ = b.DeleteMulti(context.Background(), keys) })

	check := func(op string, wantCmds []string, wantPipelines [][]string) {
		t.Helper()
		cmds, pipelines := c.Take()
		if fmt.Sprint(cmds) != fmt.Sprint(wantCmds) || fmt.Sprint(pipelines) != fmt.Sprint(wantPipelines) {
			t.Errorf("%s sent commands %v and pipelines %v; want commands %v and pipelines %v",
				op, cmds, pipelines, wantCmds, wantPipelines)
		}
	}

	c.Take()
	if err := b.SetMulti(ctx, items, time.Hour); err != nil {
		t.Fatal(err)
	}
	sets := make([]string, len(items))
	for i := range sets {
		sets[i] = "set/5" // SET key value PX|EX ttl
	}
	check("SetMulti of 90 keys", nil, [][]string{sets})

	m, err := b.GetMulti(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	check("GetMulti of 100 keys", []string{"mget/101"}, nil)
	if len(m) != len(items) {
		t.Fatalf("GetMulti: %d keys found, want %d", len(m), len(items))
	}
	for k, v := range items {
		if string(m[k]) != string(v) {
			t.Fatalf("GetMulti: %q = %q, want %q", k, m[k], v)
		}
	}

	if _, err := b.Get(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	check("Get (hit)", []string{"get/2"}, nil)
	if _, err := b.Get(ctx, "k0"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Get of an absent key: %v; want ErrNotFound", err)
	}
	check("Get (miss)", []string{"get/2"}, nil)

	if err := b.DeleteMulti(ctx, keys); err != nil {
		t.Fatal(err)
	}
	check("DeleteMulti of 100 keys", []string{"del/101"}, nil)

	// No keys, no I/O.
	if _, err := b.GetMulti(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.SetMulti(ctx, nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteMulti(ctx, nil); err != nil {
		t.Fatal(err)
	}
	check("multi operations on no keys", nil, nil)
}

func TestMissAllocatesNothingExtra(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	b := redis.New(client)
	key := uniquePrefix(t) + "absent"
	bare := testing.AllocsPerRun(200, func() { _ = client.Get(ctx, key).Err() })
	ours := testing.AllocsPerRun(200, func() { _, _ = b.Get(ctx, key) })
	if ours > bare {
		t.Errorf("Get miss allocates %v times, a bare go-redis GET %v: the miss error must not allocate", ours, bare)
	}
}

func TestRedisDown(t *testing.T) {
	srv := testserver.StartRedis(t)
	client := goredis.NewClient(&goredis.Options{
		Addr:          srv.Addr,
		DialTimeout:   200 * time.Millisecond,
		ReadTimeout:   200 * time.Millisecond,
		WriteTimeout:  200 * time.Millisecond,
		MaxRetries:    -1,
		DialerRetries: 1,
	})
	b := redis.New(client, redis.WithCloseClient())
	t.Cleanup(func() { _ = b.Close() })
	ctx := t.Context()
	if err := b.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	ops := []struct {
		name string
		run  func() error
	}{
		{"Get", func() error { _, err := b.Get(ctx, "k"); return err }},
		{"Set", func() error { return b.Set(ctx, "k", []byte("v"), 0) }},
		{"Delete", func() error { return b.Delete(ctx, "k") }},
		{"GetMulti", func() error { _, err := b.GetMulti(ctx, []string{"k", "l"}); return err }},
		{"SetMulti", func() error { return b.SetMulti(ctx, map[string][]byte{"k": []byte("v")}, 0) }},
		{"DeleteMulti", func() error { return b.DeleteMulti(ctx, []string{"k", "l"}) }},
		{"TryLock", func() error { _, _, err := b.TryLock(ctx, "k", time.Second); return err }},
	}
	for _, op := range ops {
		start := time.Now()
		err := op.run()
		elapsed := time.Since(start)
		t.Logf("%s with Redis stopped: %v after %v", op.name, err, elapsed.Round(time.Millisecond))
		if err == nil {
			t.Errorf("%s with Redis stopped: no error", op.name)
		} else if errors.Is(err, backends.ErrNotFound) {
			t.Errorf("%s with Redis stopped: %v, which is a miss; want a failure", op.name, err)
		} else if !strings.HasPrefix(err.Error(), "redis: ") {
			t.Errorf("%s with Redis stopped: %v; want the error wrapped with the backend's name", op.name, err)
		}
		if elapsed > 2*time.Second {
			t.Errorf("%s with Redis stopped took %v; want a prompt failure (dial timeout 200ms)", op.name, elapsed)
		}
	}

	// Back up (empty: the server keeps nothing on disk): the backend works again.
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := b.Set(ctx, "k", []byte("again"), 0)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Set after Redis restarted: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v, err := b.Get(ctx, "k"); err != nil || string(v) != "again" {
		t.Fatalf("Get after Redis restarted = %q, %v; want %q", v, err, "again")
	}
}

// TestRedisHung points the backend at a server that accepts connections and never answers: a
// call fails after the client's read timeout, and is not a miss.
func TestRedisHung(t *testing.T) {
	addr := testserver.Silent(t)
	client := goredis.NewClient(&goredis.Options{
		Addr:          addr,
		DialTimeout:   200 * time.Millisecond,
		ReadTimeout:   200 * time.Millisecond,
		WriteTimeout:  200 * time.Millisecond,
		MaxRetries:    -1,
		DialerRetries: 1,
	})
	b := redis.New(client, redis.WithCloseClient())
	t.Cleanup(func() { _ = b.Close() })

	start := time.Now()
	_, err := b.Get(t.Context(), "k")
	elapsed := time.Since(start)
	t.Logf("Get on a hung server: %v after %v", err, elapsed.Round(time.Millisecond))
	if err == nil || errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Get on a server that never answers: %v; want a failure that is not a miss", err)
	}
	if elapsed > 2*time.Second {
		t.Fatalf("Get on a server that never answers took %v; want about the read timeout (200ms)", elapsed)
	}
}

func TestContextDone(t *testing.T) {
	client := newClient(t)
	b := redis.New(client, redis.WithPrefix(uniquePrefix(t)))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.Get(ctx, "k"); !errors.Is(err, context.Canceled) || errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Get with a cancelled context: %v; want an error wrapping context.Canceled, not a miss", err)
	}
}

func TestClose(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: server.Addr})
	t.Cleanup(func() { _ = client.Close() })

	// Without WithCloseClient the caller's client stays open.
	if err := redis.New(client).Close(); err != nil {
		t.Fatal(err)
	}
	if err := client.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("Ping after the backend's Close: %v; the client is the caller's", err)
	}

	b := redis.New(client, redis.WithCloseClient())
	for range 2 {
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if err := client.Ping(t.Context()).Err(); !errors.Is(err, goredis.ErrClosed) {
		t.Fatalf("Ping after Close of a backend WithCloseClient: %v; want %v", err, goredis.ErrClosed)
	}
}

func TestNewPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"nil client":   func() { redis.New(nil) },
		"negative TTL": func() { redis.New(newClient(t), redis.WithDefaultTTL(-time.Second)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New with %s did not panic", name)
				}
			}()
			f()
		}()
	}
}
