package wrap_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/backendtest"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/backends/wrap"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/region"
	"github.com/google/go-cmp/cmp"
	goredis "github.com/redis/go-redis/v9"
)

// newRedis returns a backend on server with a key prefix of t's own, its client (closed when t
// ends) and the prefix.
func newRedis(t *testing.T, server *testserver.Redis) (*redis.Backend, *goredis.Client, string) {
	t.Helper()
	client := goredis.NewClient(&goredis.Options{Addr: server.Addr})
	t.Cleanup(func() { _ = client.Close() })
	prefix := "wrap:" + strings.ReplaceAll(t.Name(), "/", ":") + ":" + strconv.FormatUint(rand.Uint64(), 36) + ":"
	return redis.New(client, redis.WithPrefix(prefix)), client, prefix
}

func TestRedis(t *testing.T) {
	server := testserver.StartRedis(t)
	debug := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))

	t.Run("Conformance/Log", func(t *testing.T) {
		backendtest.Run(t, func(t *testing.T) backends.Backend {
			b, _, _ := newRedis(t, server)
			return wrap.New(b, wrap.Log(debug))
		})
	})
	t.Run("Conformance/Faults", func(t *testing.T) {
		backendtest.Run(t, func(t *testing.T) backends.Backend {
			b, _, _ := newRedis(t, server)
			f := wrap.NewFaults(1)
			mustSet(t, f, wrap.Fault{Jitter: time.Millisecond})
			return wrap.New(b, f.Hook)
		})
	})

	t.Run("Capabilities", func(t *testing.T) {
		b, _, _ := newRedis(t, server)
		w := wrap.New(wrap.New(b, wrap.Log(debug)), wrap.NewFaults(1).Hook)
		want := map[string]string{
			"MultiGetter": "wrapper", "MultiSetter": "wrapper", "MultiDeleter": "wrapper",
			"Locker": "wrapper", "MultiLocker": "wrapper", "BatchLimiter": "wrapper", "Closer": "wrapper",
			"ConditionalSetter": "wrapper", "ConditionalMultiSetter": "wrapper",
		}
		got := caps(w)
		if len(got) != len(want) {
			t.Errorf("capabilities = %v; want %v", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("capability %s found on %q; want on %q", k, got[k], v)
			}
		}
		l, _ := backends.As[backends.Locker](w)
		if l != backends.Locker(w.(backends.Locker)) {
			t.Error("As[Locker] reached past the outer wrapper")
		}
		if bl, _ := backends.As[backends.BatchLimiter](w); bl.MaxBatch() != b.MaxBatch() {
			t.Errorf("MaxBatch() = %d; want Redis's %d", bl.MaxBatch(), b.MaxBatch())
		}
	})

	t.Run("ConditionalCallsSeen", func(t *testing.T) {
		ctx := t.Context()
		b, _, _ := newRedis(t, server)
		rec := new(recorder)
		cms, _ := backends.As[backends.ConditionalMultiSetter](wrap.New(b, rec.hook))
		older, newer := stamped(1), stamped(2)
		if err := b.Set(ctx, "a", newer, 0); err != nil {
			t.Fatal(err)
		}
		refused, err := cms.SetMultiIfNotNewer(ctx, map[string][]byte{"b": newer, "a": older}, time.Minute)
		if err != nil || !slices.Equal(refused, []string{"a"}) {
			t.Fatalf("SetMultiIfNotNewer = %q, %v; want [a] refused", refused, err)
		}
		want := []wrap.Call{{Op: wrap.OpSetMultiIfNotNewer, Keys: []string{"a", "b"}, TTL: time.Minute, Bytes: 2 * len(older), Refused: 1}}
		if diff := cmp.Diff(want, rec.take()); diff != "" {
			t.Errorf("calls seen (-want +got):\n%s", diff)
		}
	})

	t.Run("Region", func(t *testing.T) {
		ctx := t.Context()
		b, client, prefix := newRedis(t, server)
		rec := new(recorder)
		r := region.New("wrapped-redis", region.WithLockTimeout(5*time.Second), region.WithLogger(slog.New(slog.DiscardHandler)))
		if err := r.Configure(wrap.New(b, rec.hook)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		v := region.NewView[string](r)

		created := 0
		create := func(_ context.Context, keys []string) (map[string]string, error) {
			created += len(keys)
			m := map[string]string{}
			for _, k := range keys {
				m[k] = "value of " + k
			}
			return m, nil
		}
		keys := []string{"a", "b", "c"}
		for round := range 2 {
			m, err := v.GetOrCreateMulti(ctx, keys, create)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if m[k] != "value of "+k {
					t.Fatalf("round %d: GetOrCreateMulti()[%q] = %q", round, k, m[k])
				}
			}
		}
		if created != 3 {
			t.Errorf("the creator made %d values; want 3 (the second round reads them from Redis)", created)
		}
		// The batch locks went through the wrapper in one round trip, and so did the rest.
		seen := ops(rec.take())
		for _, op := range []string{"getmulti", "trylockmulti", "setmultiifnotnewer", "unlock"} {
			if !slices.Contains(seen, op) {
				t.Errorf("the hook saw %v; want a %s among them", seen, op)
			}
		}
		for _, op := range []string{"get", "trylock", "set"} {
			if slices.Contains(seen, op) {
				t.Errorf("the hook saw %v; want no single-key %s: a capability was lost", seen, op)
			}
		}

		// Another process (another backend on the same Redis and prefix) holds the lock of
		// "held": the region, through the wrapper, waits for it instead of creating.
		other := redis.New(client, redis.WithPrefix(prefix))
		lock, ok, err := other.TryLock(ctx, "held", time.Minute)
		if err != nil || !ok {
			t.Fatalf("TryLock by the other process = %v, %v", ok, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		calls := 0
		one := func(context.Context) (string, error) { calls++; return "made", nil }
		if _, err := v.GetOrCreate(wctx, "held", one); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("GetOrCreate of a key whose lock another process holds: %v; want to wait until the deadline", err)
		}
		if _, err := v.GetOrCreateMulti(wctx, []string{"held"}, create); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("GetOrCreateMulti of a key whose lock another process holds: %v; want to wait until the deadline", err)
		}
		if calls != 0 || created != 3 {
			t.Errorf("a creator ran while another process held the lock")
		}
		if err := lock.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		if got, err := v.GetOrCreate(ctx, "held", one); err != nil || got != "made" || calls != 1 {
			t.Errorf("GetOrCreate after the other process let go = %q, %v (%d calls); want it made once", got, err, calls)
		}
		if seen := ops(rec.take()); !slices.Contains(seen, "trylock") {
			t.Errorf("the hook saw %v; want the single-key lock among them", seen)
		}
	})
}
