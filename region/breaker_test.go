package region_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
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
	client := goredis.NewClient(&goredis.Options{Addr: d.server.Addr, MaxRetries: -1, DialerRetries: 1})
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
