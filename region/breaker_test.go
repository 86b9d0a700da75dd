package region_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/internal/counting"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/region"
	goredis "github.com/redis/go-redis/v9"
)

// records is a slog.Handler that keeps every record it is given, for tests that count a
// region's log lines.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *records) WithGroup(string) slog.Handler            { return h }

func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}

// take returns the records kept since the last take.
func (h *records) take() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	recs := h.recs
	h.recs = nil
	return recs
}

// attr returns the value of the attribute key of rec, and whether it has one.
func attr(rec slog.Record, key string) (slog.Value, bool) {
	var v slog.Value
	found := false
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v, found = a.Value, true
			return false
		}
		return true
	})
	return v, found
}

// sum adds up the calls counting.Backend.Take returns, each a round trip, and counts them by
// operation.
func sum(calls map[string][]int) (int, map[string]int) {
	n, by := 0, map[string]int{}
	for op, cs := range calls {
		n += len(cs)
		by[op] = len(cs)
	}
	return n, by
}

// downRedis is a region on a Redis of the test's own, behind a counting wrapper, logging to a
// records handler, with key "warm" cached; then the server is killed (SIGKILL). The client fails
// fast (no retries, one dial attempt), as the redis package's documentation advises for a cache.
// Its pool is large, so that every call the region makes dials: go-redis stops dialing after as
// many failed dials as its pool size and answers from memory, probing from a goroutine that
// outlives Close by up to a second (which the leak check would see).
type downRedis struct {
	server *testserver.Redis
	calls  *counting.Backend
	logs   *records
	r      *region.Region
	v      *region.View[string]
}

func newDownRedis(t *testing.T, opts ...region.Option) *downRedis {
	t.Helper()
	d := &downRedis{server: testserver.StartRedis(t), logs: &records{}}
	client := goredis.NewClient(&goredis.Options{Addr: d.server.Addr, MaxRetries: -1, DialerRetries: 1, PoolSize: 10000})
	d.calls = counting.Wrap(redis.New(client, redis.WithCloseClient()))
	d.r = region.New(t.Name(), append([]region.Option{region.WithLogger(slog.New(d.logs))}, opts...)...)
	if err := d.r.Configure(d.calls); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.r.Close() })
	d.v = region.NewView[string](d.r)
	if got, err := d.v.GetOrCreate(t.Context(), "warm", instant); err != nil || got != "made" {
		t.Fatalf("warming: %q, %v", got, err)
	}
	d.server.Kill()
	d.calls.Take()
	d.logs.take()
	return d
}

// instant is a creator that returns at once.
func instant(_ context.Context) (string, error) { return "made", nil }

// misses makes n GetOrCreate calls for keys no call asked for before (prefix plus a number),
// which must all return the creator's value.
func (d *downRedis) misses(t *testing.T, prefix string, n int) {
	t.Helper()
	for i := range n {
		k := fmt.Sprintf("%s%d", prefix, i)
		got, err := d.v.GetOrCreate(t.Context(), k, func(context.Context) (string, error) { return "made " + k, nil })
		if err != nil || got != "made "+k {
			t.Fatalf("GetOrCreate(%q) = %q, %v; want the creator's value", k, got, err)
		}
	}
}

// TestBackendDownCostsOneRoundTrip measures 1,000 misses on a region whose Redis was killed,
// with the default settings and the real clock: the wall time, the backend calls that reached
// the client, and the log lines. Run it with -v for the figures. With the circuit breaker, the
// first failed read opens it and the misses after it skip the backend (a probe now and then,
// as the intervals pass); the reports are rate-limited.
func TestBackendDownCostsOneRoundTrip(t *testing.T) {
	d := newDownRedis(t)
	start := time.Now()
	d.misses(t, "miss", 1000)
	elapsed := time.Since(start)
	n, by := sum(d.calls.Take())
	logs := d.logs.take()
	t.Logf("1,000 misses with Redis killed: %v wall time, %d backend calls %v, %d log lines", elapsed.Round(time.Millisecond), n, by, len(logs))
	// Probes are at least 100ms apart and the interval doubles: a handful at most in the
	// seconds a slow machine may take.
	if n > 10 {
		t.Errorf("%d backend calls for 1,000 misses; want a few", n)
	}
	if len(logs) > 10 {
		t.Errorf("%d log lines for 1,000 misses; want a few", len(logs))
	}
}

// TestBreakerSkipsTheBackendWhileOpen: on the region's clock, standing still, the first miss
// after the kill costs one failed read and opens the breaker; the 999 after it reach the
// backend not at all, and log nothing. Once the server is back and the interval has passed,
// the next call is the probe: it closes the breaker, and values are cached again.
func TestBreakerSkipsTheBackendWhileOpen(t *testing.T) {
	clk := newClock()
	d := newDownRedis(t, clk.option())
	d.misses(t, "miss", 1000)
	if n, by := sum(d.calls.Take()); n != 1 {
		t.Errorf("%d backend calls %v for 1,000 misses; want the one read that failed", n, by)
	}
	logs := d.logs.take()
	if len(logs) != 2 {
		t.Errorf("%d log lines; want two, the failed read and the breaker opening: %v", len(logs), logs)
	}
	s := d.r.Stats()
	if s.Errors.Read != 1 || s.Errors.Lock != 0 || s.Errors.Write != 0 || s.Skipped != 3+999*4 {
		t.Errorf("stats %+v; want one read error and the rest skipped (the first miss's lock, second read and write, and all four of each other's)", s)
	}

	if err := d.server.Start(); err != nil {
		t.Fatal(err)
	}
	d.misses(t, "still", 10) // the interval has not passed: still skipped
	if n, by := sum(d.calls.Take()); n != 0 {
		t.Errorf("%d backend calls %v before the interval passed; want none", n, by)
	}
	clk.advance(region.DefaultBreakerMin * 5 / 4) // the interval and the most jitter adds
	d.misses(t, "back", 1)
	if n, by := sum(d.calls.Take()); by["get"] != 2 || by["setifnotnewer"] != 1 || by["trylock"] != 1 {
		t.Errorf("%d backend calls %v for the miss after the interval; want the probe's read, a lock, a read and a write", n, by)
	}
	if got, ok, err := d.v.Get(t.Context(), "back0"); err != nil || !ok || got != "made back0" {
		t.Errorf("after the probe: Get = %q, %v, %v; want the created value cached", got, ok, err)
	}
	if logs := d.logs.take(); len(logs) != 1 || logs[0].Level != slog.LevelInfo {
		t.Errorf("log lines %v; want one, the breaker closing", logs)
	}
}

// TestBreakerBacksOff: every failed probe doubles the interval, up to the maximum, and no call
// goes before it has passed.
func TestBreakerBacksOff(t *testing.T) {
	clk := newClock()
	d := newDownRedis(t, clk.option(), region.WithCircuitBreaker(100*time.Millisecond, time.Second))
	d.misses(t, "open", 1)
	d.calls.Take()
	for i, interval := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		interval *= time.Millisecond
		clk.advance(interval - 1)
		d.misses(t, fmt.Sprintf("early%d-", i), 1)
		if n, by := sum(d.calls.Take()); n != 0 {
			t.Fatalf("interval %v: %d backend calls %v before it passed; want none", interval, n, by)
		}
		clk.advance(interval/4 + 1)
		d.misses(t, fmt.Sprintf("probe%d-", i), 3)
		if n, by := sum(d.calls.Take()); n != 1 {
			t.Fatalf("interval %v: %d backend calls %v once it passed; want one probe", interval, n, by)
		}
	}
}

// TestBreakerFailClosed: under FailClosed, reads the open breaker skips fail with
// ErrBackendUnavailable; a Set fails with it under any policy, and reaches nothing.
func TestBreakerFailClosed(t *testing.T) {
	clk := newClock()
	d := newDownRedis(t, clk.option(), region.WithFailurePolicy(region.FailClosed))
	ctx := t.Context()
	if _, err := d.v.GetOrCreate(ctx, "first", instant); err == nil || errors.Is(err, region.ErrBackendUnavailable) {
		t.Fatalf("first miss: %v; want the connection error", err)
	}
	if _, err := d.v.GetOrCreate(ctx, "second", instant); !errors.Is(err, region.ErrBackendUnavailable) {
		t.Errorf("second miss: %v; want ErrBackendUnavailable", err)
	}
	if _, _, err := d.v.Get(ctx, "warm"); !errors.Is(err, region.ErrBackendUnavailable) {
		t.Errorf("Get: %v; want ErrBackendUnavailable", err)
	}
	if err := d.v.Set(ctx, "k", "v"); !errors.Is(err, region.ErrBackendUnavailable) {
		t.Errorf("Set: %v; want ErrBackendUnavailable", err)
	}
	if err := d.r.Delete(ctx, "k"); !errors.Is(err, region.ErrBackendUnavailable) {
		t.Errorf("Delete: %v; want ErrBackendUnavailable", err)
	}
	if n, by := sum(d.calls.Take()); n != 1 {
		t.Errorf("%d backend calls %v; want the first read only", n, by)
	}
}

// TestBreakerStaysClosedOnAnswers: misses, malformed entries and error replies are answers of
// a live backend: they open nothing, and every call reaches the backend.
func TestBreakerStaysClosedOnAnswers(t *testing.T) {
	server := testserver.StartRedis(t)
	client := goredis.NewClient(&goredis.Options{Addr: server.Addr})
	calls := counting.Wrap(redis.New(client, redis.WithCloseClient()))
	r := region.New(t.Name(), region.WithLogger(slog.New(slog.DiscardHandler)))
	if err := r.Configure(calls); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	v := region.NewView[string](r)
	ctx := t.Context()
	for i := range 10 {
		bad, list := fmt.Sprintf("bad%d", i), fmt.Sprintf("list%d", i)
		if err := client.Set(ctx, bad, "not an entry", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := client.RPush(ctx, list, "x").Err(); err != nil { // GET answers WRONGTYPE
			t.Fatal(err)
		}
		for _, k := range []string{bad, list, fmt.Sprintf("absent%d", i)} {
			if got, err := v.GetOrCreate(ctx, k, instant); err != nil || got != "made" {
				t.Fatalf("GetOrCreate(%q): %q, %v", k, got, err)
			}
		}
	}
	if n, by := sum(calls.Take()); by["get"] != 60 || by["setifnotnewer"] != 30 || by["trylock"] != 30 {
		t.Errorf("%d backend calls %v; want every read, lock and write", n, by)
	}
	if s := r.Stats(); s.Skipped != 0 || s.Errors.Malformed != 20 || s.Errors.Read != 20 {
		t.Errorf("stats %+v; want 20 malformed entries, 20 failed reads and nothing skipped", s)
	}
}

// TestReportsAreRateLimited: with the breaker off, every miss on a dead Redis fails four times;
// the statistics and the error handler see every failure, the log one line per kind per
// ReportInterval, the next one carrying the number of those it left out.
func TestReportsAreRateLimited(t *testing.T) {
	clk := newClock()
	var handled atomic.Int64
	d := newDownRedis(t, clk.option(), region.WithCircuitBreaker(0, 0),
		region.WithErrorHandler(func(context.Context, error) { handled.Add(1) }))
	d.misses(t, "miss", 1000)
	if n, by := sum(d.calls.Take()); n != 4000 {
		t.Errorf("%d backend calls %v with the breaker off; want 4,000", n, by)
	}
	if n := handled.Load(); n != 4000 {
		t.Errorf("the error handler saw %d errors; want 4,000", n)
	}
	if s := d.r.Stats(); s.Errors.Read != 2000 || s.Errors.Lock != 1000 || s.Errors.Write != 1000 || s.Skipped != 0 {
		t.Errorf("stats %+v; want every error counted", s)
	}
	if logs := d.logs.take(); len(logs) != 3 {
		t.Errorf("%d log lines; want one each for get, lock and set: %v", len(logs), logs)
	}
	clk.advance(region.ReportInterval)
	d.misses(t, "later", 1)
	logs := d.logs.take()
	if len(logs) != 3 {
		t.Fatalf("%d log lines after the interval; want one each for get, lock and set: %v", len(logs), logs)
	}
	var suppressed []int64
	for _, rec := range logs {
		v, _ := attr(rec, "suppressed")
		suppressed = append(suppressed, v.Int64())
	}
	// The first miss's lines went out; of the rest, 999 misses each read twice (and once more
	// now before the line), locked once and wrote once.
	if want := []int64{1999, 999, 999}; !slices.Equal(suppressed, want) {
		t.Errorf("suppressed %v; want %v (get, lock, set)", suppressed, want)
	}
}

// refusing is a backend of several servers (backends.Partitioned) whose every call fails as a
// refused connection does: one server of the pool is down.
type refusing struct {
	*batchBackend
	partitioned bool
	calls       atomic.Int32
}

func (b *refusing) Partitioned() bool { return b.partitioned }

var errRefused = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

func (b *refusing) Get(context.Context, string) ([]byte, error) {
	b.calls.Add(1)
	return nil, errRefused
}

// TestBreakerOffOnPartitionedBackends: on a backend of several servers (a memcached pool, a Redis
// Cluster) one server's connection errors do not open the breaker, which would skip the healthy
// servers too: every read still goes to the backend. On one server they do.
func TestBreakerOffOnPartitionedBackends(t *testing.T) {
	for _, partitioned := range []bool{true, false} {
		b := &refusing{batchBackend: newBatchBackend(newShared()), partitioned: partitioned}
		v := region.NewView[string](newRegion(t, b))
		for i := range 100 {
			_, _, _ = v.Get(t.Context(), strconv.Itoa(i))
		}
		want := map[bool]int32{true: 100, false: 1}[partitioned]
		if got := b.calls.Load(); got != want {
			t.Errorf("partitioned=%v: %d reads reached the backend for 100 calls, want %d", partitioned, got, want)
		}
	}
}
