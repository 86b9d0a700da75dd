package region_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/region"
)

// hotKey runs 100 goroutines reading one key, every 20ms of the bubble's virtual time, for 50
// expiry periods of 1s, while the creator takes 100ms. It returns the creations (when each
// started, and when the value it replaced expired) and how many calls blocked (took any virtual
// time: they waited for a creation).
func hotKey(t *testing.T, opts ...region.Option) (starts, expiries []time.Time, blocked int64) {
	const (
		period   = time.Second
		creation = 100 * time.Millisecond
		readers  = 100
		every    = 20 * time.Millisecond
	)
	r := newRegion(t, memory.New(), append([]region.Option{region.WithExpiration(period), region.WithBackgroundRefresh(1)}, opts...)...)
	v := region.NewView[int](r)
	var mu sync.Mutex
	var current time.Time // created-at of the value in the cache
	n := 0
	create := func(context.Context) (int, error) {
		start := time.Now()
		mu.Lock()
		starts = append(starts, start)
		expiries = append(expiries, current.Add(period))
		mu.Unlock()
		time.Sleep(creation)
		mu.Lock()
		defer mu.Unlock()
		current = time.Now() // stored: freshness counts from here
		n++
		return n, nil
	}
	ctx := t.Context()
	if _, err := v.GetOrCreate(ctx, "hot", create); err != nil { // cold: the one miss
		t.Fatal(err)
	}
	starts, expiries = nil, nil
	end := time.Now().Add(50 * period)
	var waited atomic.Int64
	var wg sync.WaitGroup
	for range readers {
		wg.Go(func() {
			for time.Now().Before(end) {
				before := time.Now()
				if _, err := v.GetOrCreate(ctx, "hot", create); err != nil {
					t.Error(err)
					return
				}
				if time.Since(before) > 0 {
					waited.Add(1)
				}
				time.Sleep(every)
			}
		})
	}
	wg.Wait()
	synctest.Wait() // the last background refresh
	return starts, expiries, waited.Load()
}

func TestEarlyRefreshKeepsAHotKeyFresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		starts, expiries, blocked := hotKey(t, region.WithEarlyRefresh(1))
		if blocked != 0 {
			t.Errorf("%d calls blocked", blocked)
		}
		if len(starts) < 50 {
			t.Errorf("%d creations in 50 periods, want at least 50", len(starts))
		}
		for i, s := range starts {
			if !s.Before(expiries[i]) {
				t.Errorf("creation %d started %v after the value it replaced expired: a caller saw it expired", i, s.Sub(expiries[i]))
			}
		}
		t.Logf("XFetch (beta 1): %d creations in 50 periods, every one before expiry, %d calls blocked", len(starts), blocked)
	})
}

func TestEarlyRefreshOffIsPlainExpiry(t *testing.T) {
	for _, opt := range []region.Option{{}, region.WithEarlyRefresh(0)} {
		synctest.Test(t, func(t *testing.T) {
			starts, expiries, blocked := hotKey(t, opt)
			if blocked != 0 {
				t.Errorf("%d calls blocked (background refresh serves the old value)", blocked)
			}
			for i, s := range starts {
				if s.Before(expiries[i]) {
					t.Errorf("creation %d started %v before expiry without early refresh", i, expiries[i].Sub(s))
				}
			}
			// One creation a period of 1s + 100ms of creation + up to 20ms until a read.
			if len(starts) < 40 || len(starts) > 50 {
				t.Errorf("%d creations in 50 periods, want one a period", len(starts))
			}
		})
	}
}

// encodeV1 writes an entry as releases before format version 2 did: no delta.
func encodeV1(created int64, payload string) []byte {
	b := []byte{'d', 'p', 1, 0}
	b = binary.BigEndian.AppendUint64(b, uint64(created))
	return append(b, payload...)
}

func TestEarlyRefreshReadsEntriesWithoutDelta(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	b := newBatchBackend(newShared())
	r := newRegion(t, b, region.WithExpiration(time.Minute), region.WithEarlyRefresh(100), clk.option())
	v := region.NewView[string](r)
	if err := b.Set(ctx, "old", encodeV1(clk.now().UnixNano(), `"from v1"`), 0); err != nil {
		t.Fatal(err)
	}
	clk.advance(59 * time.Second) // an entry with a delta would be refreshed now, almost surely
	for range 100 {
		got, err := v.GetOrCreate(ctx, "old", func(context.Context) (string, error) { return "new", nil })
		if err != nil || got != "from v1" {
			t.Fatalf("a version 1 entry before expiry = %q, %v; want it served as it is", got, err)
		}
	}
	clk.advance(2 * time.Second)
	if got, _ := v.GetOrCreate(ctx, "old", func(context.Context) (string, error) { return "new", nil }); got != "new" {
		t.Errorf("a version 1 entry after expiry = %q, want it regenerated", got)
	}
	// What the region writes now records the creation's duration (here 0 on the frozen clock,
	// so a creation that takes time is needed to see it).
	raw, _ := b.Get(ctx, "old")
	if e, err := backends.DecodeEntry(raw); err != nil || raw[2] != backends.EntryVersion {
		t.Errorf("stored %v, %v; want a version %d entry", e, err, backends.EntryVersion)
	}
}

func TestEarlyRefreshRecordsDelta(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		b := newBatchBackend(newShared())
		r := newRegion(t, b, region.WithExpiration(time.Minute))
		v := region.NewView[string](r)
		if _, err := v.GetOrCreate(ctx, "k", func(context.Context) (string, error) {
			time.Sleep(250 * time.Millisecond)
			return "v", nil
		}); err != nil {
			t.Fatal(err)
		}
		raw, _ := b.Get(ctx, "k")
		e, err := backends.DecodeEntry(raw)
		if err != nil || time.Duration(e.Delta) != 250*time.Millisecond {
			t.Errorf("stored delta %v, %v; want the creation's 250ms", time.Duration(e.Delta), err)
		}
	})
}

var errUpstream = errors.New("upstream down")

func TestStaleIfError(t *testing.T) {
	failing := func(context.Context) (string, error) { return "", errUpstream }
	for _, tc := range []struct {
		name    string
		opts    []region.Option
		call    []region.Option
		expired time.Duration // how long the value has been expired when the creator fails
		stale   bool          // the old value is served
	}{
		{"off", nil, nil, time.Second, false},
		{"on", []region.Option{region.WithStaleIfError(time.Hour)}, nil, time.Second, true},
		{"at the bound", []region.Option{region.WithStaleIfError(time.Hour)}, nil, time.Hour, true},
		{"past the bound", []region.Option{region.WithStaleIfError(time.Hour)}, nil, time.Hour + time.Nanosecond, false},
		{"per call on", nil, []region.Option{region.WithStaleIfError(time.Minute)}, time.Second, true},
		{"per call off", []region.Option{region.WithStaleIfError(time.Hour)}, []region.Option{region.WithStaleIfError(0)}, time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			clk := newClock()
			var reported []error
			var mu sync.Mutex
			opts := append([]region.Option{region.WithExpiration(time.Minute), clk.option(),
				region.WithErrorHandler(func(_ context.Context, err error) {
					mu.Lock()
					reported = append(reported, err)
					mu.Unlock()
				})}, tc.opts...)
			r := newRegion(t, nil, opts...)
			v := region.NewView[string](r, tc.call...)
			if err := v.Set(ctx, "k", "old"); err != nil {
				t.Fatal(err)
			}
			clk.advance(time.Minute + tc.expired)
			got, err := v.GetOrCreate(ctx, "k", failing)
			if tc.stale {
				if err != nil || got != "old" {
					t.Fatalf("got %q, %v; want the old value", got, err)
				}
				if len(reported) != 1 || !errors.Is(reported[0], errUpstream) {
					t.Errorf("reported %v, want the creator's error", reported)
				}
			} else if !errors.Is(err, errUpstream) || got != "" {
				t.Fatalf("got %q, %v; want the creator's error", got, err)
			}
			// Absent values have nothing to serve.
			if _, err := v.GetOrCreate(ctx, "absent", failing); !errors.Is(err, errUpstream) {
				t.Errorf("absent key: %v, want the creator's error", err)
			}
			// Batches: served stale only when every key that needed creating has an old value.
			clk.advance(time.Millisecond) // past the stamps of the writes above (1ns apart)
			if err := v.Set(ctx, "b", "old b"); err != nil {
				t.Fatal(err)
			}
			clk.advance(time.Minute + tc.expired)
			failingBatch := func(context.Context, []string) (map[string]string, error) { return nil, errUpstream }
			m, err := v.GetOrCreateMulti(ctx, []string{"b"}, failingBatch)
			if tc.stale != (err == nil && m["b"] == "old b") {
				t.Errorf("batch: %v, %v (stale-if-error %v)", m, err, tc.stale)
			}
			if _, err := v.GetOrCreateMulti(ctx, []string{"b", "absent"}, failingBatch); !errors.Is(err, errUpstream) {
				t.Errorf("batch with an absent key: %v, want the creator's error", err)
			}
		})
	}
}

func TestStaleIfErrorAfterSoftInvalidation(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	r := newRegion(t, nil, region.WithStaleIfError(time.Minute), clk.option()) // never expires
	v := region.NewView[string](r)
	if err := v.Set(ctx, "k", "old"); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Hour)
	if err := r.Invalidate(ctx, region.Soft); err != nil {
		t.Fatal(err)
	}
	clk.advance(30 * time.Second) // expired 30s ago, by the invalidation
	failing := func(context.Context) (string, error) { return "", errUpstream }
	if got, err := v.GetOrCreate(ctx, "k", failing); err != nil || got != "old" {
		t.Errorf("30s after a soft invalidation: %q, %v; want the old value", got, err)
	}
	clk.advance(time.Minute)
	if _, err := v.GetOrCreate(ctx, "k", failing); !errors.Is(err, errUpstream) {
		t.Errorf("90s after a soft invalidation: %v; want the error", err)
	}
}

var errNoSuchUser = errors.New("no such user")

func TestNegativeCaching(t *testing.T) {
	for name, newBackend := range backendsForBatches() {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			clk := newClock()
			r := newRegion(t, newBackend(), region.WithExpiration(time.Hour), clk.option(),
				region.WithNegativeCaching(errNoSuchUser, time.Minute))
			v := region.NewView[string](r)
			var calls atomic.Int32
			missing := func(context.Context) (string, error) {
				calls.Add(1)
				return "", fmt.Errorf("user 7: %w", errNoSuchUser)
			}
			if _, err := v.GetOrCreate(ctx, "u7", missing); !errors.Is(err, errNoSuchUser) {
				t.Fatalf("first call: %v, want the creator's error", err)
			}
			clk.advance(time.Minute - time.Nanosecond)
			_, err := v.GetOrCreate(ctx, "u7", missing)
			if !errors.Is(err, errNoSuchUser) || calls.Load() != 1 {
				t.Fatalf("within the negative TTL: %v after %d creator calls; want the cached error and 1 call", err, calls.Load())
			}
			if got, ok, err := v.Get(ctx, "u7"); ok || err != nil || got != "" {
				t.Errorf("Get of a cached not-found = %q, %v, %v; want no value and no error", got, ok, err)
			}
			clk.advance(time.Nanosecond) // at the bound: expired
			if _, err := v.GetOrCreate(ctx, "u7", missing); !errors.Is(err, errNoSuchUser) || calls.Load() != 2 {
				t.Errorf("after the negative TTL: %v, %d calls; want the creator called again", err, calls.Load())
			}
			// Set replaces a cached not-found.
			if err := v.Set(ctx, "u7", "found at last"); err != nil {
				t.Fatal(err)
			}
			if got, err := v.GetOrCreate(ctx, "u7", missing); err != nil || got != "found at last" {
				t.Errorf("after Set: %q, %v", got, err)
			}
			// Other errors are not cached.
			boom := errors.New("boom")
			other := func(context.Context) (string, error) { calls.Add(1); return "", boom }
			before := calls.Load()
			for range 2 {
				if _, err := v.GetOrCreate(ctx, "u8", other); !errors.Is(err, boom) {
					t.Fatal(err)
				}
			}
			if calls.Load()-before != 2 {
				t.Errorf("another error was cached")
			}
			// A batch creator that leaves a key out caches it as not found.
			var u users
			partial := func(ctx context.Context, keys []string) (map[string]string, error) {
				m, _ := u.create(ctx, keys)
				delete(m, "ghost")
				return m, nil
			}
			got, err := v.GetOrCreateMulti(ctx, []string{"a", "ghost"}, partial)
			if err != nil || len(got) != 1 {
				t.Fatalf("batch: %v, %v", got, err)
			}
			got, err = v.GetOrCreateMulti(ctx, []string{"a", "ghost", "b"}, partial)
			if err != nil || len(got) != 2 || len(u.asked) != 2 || len(u.asked[1]) != 1 || u.asked[1][0] != "b" {
				t.Errorf("second batch: %v, %v, asked %v; want ghost neither returned nor asked for", got, err, u.asked)
			}
			if _, err := v.GetOrCreate(ctx, "ghost", missing); !errors.Is(err, errNoSuchUser) {
				t.Errorf("single call on a key a batch cached as not found: %v", err)
			}
		})
	}
}

func TestNegativeCachingOffAndPerCall(t *testing.T) {
	ctx := t.Context()
	r := newRegion(t, nil)
	var calls atomic.Int32
	missing := func(context.Context) (string, error) { calls.Add(1); return "", errNoSuchUser }
	plain := region.NewView[string](r)
	for range 3 {
		_, _ = plain.GetOrCreate(ctx, "k", missing)
	}
	if calls.Load() != 3 {
		t.Errorf("without negative caching: %d calls, want 3", calls.Load())
	}
	cached := region.NewView[string](r, region.WithNegativeCaching(errNoSuchUser, time.Hour))
	calls.Store(0)
	for range 3 {
		if _, err := cached.GetOrCreate(ctx, "k2", missing); !errors.Is(err, errNoSuchUser) {
			t.Fatal(err)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("with a view's negative caching: %d calls, want 1", calls.Load())
	}
	// A view without negative caching reads a cached not-found as absent.
	calls.Store(0)
	_, _ = plain.GetOrCreate(ctx, "k2", missing)
	if calls.Load() != 1 {
		t.Errorf("a view without negative caching did not create: %d calls", calls.Load())
	}
}

// ttlRecorder is a memory-less backend that records the TTL of every Set.
type ttlRecorder struct {
	backends.Backend
	mu   sync.Mutex
	ttls []time.Duration
}

func (r *ttlRecorder) Set(ctx context.Context, k string, v []byte, ttl time.Duration) error {
	r.mu.Lock()
	r.ttls = append(r.ttls, ttl)
	r.mu.Unlock()
	return r.Backend.Set(ctx, k, v, ttl)
}

func TestJitter(t *testing.T) {
	const n = 1000
	for _, fraction := range []float64{0, 0.2} {
		t.Run(fmt.Sprint(fraction), func(t *testing.T) {
			ctx := t.Context()
			clk := newClock()
			rec := &ttlRecorder{Backend: basicOnly{newBatchBackend(newShared())}}
			opts := []region.Option{region.WithExpiration(10 * time.Minute), region.WithStorageTTL(time.Hour), clk.option()}
			if fraction > 0 {
				opts = append(opts, region.WithJitter(fraction))
			}
			r := newRegion(t, rec, opts...)
			v := region.NewView[int](r)
			for i := range n {
				if err := v.Set(ctx, fmt.Sprint(i), i); err != nil {
					t.Fatal(err)
				}
			}
			fresh := func(after time.Duration) int {
				clk.advance(after)
				defer clk.advance(-after)
				c := 0
				for i := range n {
					if _, ok, _ := v.Get(ctx, fmt.Sprint(i)); ok {
						c++
					}
				}
				return c
			}
			low := time.Duration(float64(10*time.Minute) * (1 - fraction))
			if c := fresh(low - time.Millisecond); c != n {
				t.Errorf("at %v, %d of %d fresh; want all", low-time.Millisecond, c, n)
			}
			// (Entries written at one clock reading are created 1ns apart: stamps are strictly
			// increasing.)
			if c := fresh(10*time.Minute + n); c != 0 {
				t.Errorf("at 10m, %d fresh; want none", c)
			}
			if fraction > 0 {
				// Halfway through the spread, about half are still fresh.
				if c := fresh((low + 10*time.Minute) / 2); c < n/3 || c > 2*n/3 {
					t.Errorf("halfway through the spread, %d of %d fresh; want about half", c, n)
				}
			}
			lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
			for _, ttl := range rec.ttls {
				lo, hi = min(lo, ttl), max(hi, ttl)
			}
			maxTTL := time.Duration(float64(time.Hour) * (1 + fraction))
			if lo < time.Hour || hi > maxTTL || (fraction > 0) != (hi > lo) {
				t.Errorf("storage TTLs in [%v, %v]; want within [1h, %v], spread only with jitter", lo, hi, maxTTL)
			}
		})
	}
}

func TestFreshnessOptionsValidated(t *testing.T) {
	for name, opt := range map[string]region.Option{
		"early negative": region.WithEarlyRefresh(-1),
		"early NaN":      region.WithEarlyRefresh(math.NaN()),
		"early Inf":      region.WithEarlyRefresh(math.Inf(1)),
		"stale negative": region.WithStaleIfError(-time.Second),
		"negative nil":   region.WithNegativeCaching(nil, time.Second),
		"negative ttl 0": region.WithNegativeCaching(errNoSuchUser, 0),
		"jitter 1":       region.WithJitter(1),
		"jitter -0.1":    region.WithJitter(-0.1),
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("region.New accepted it")
				}
			}()
			region.New("x", opt)
		})
	}
}

// TestExpiryCountsFromWhenStored: a value's expiration counts from when its creator returned, as
// dogpile.cache stamps it, so a creation longer than the expiration still stores a value that
// lives a full expiration: the next call is a hit, not a regeneration. On the memory backend (Go
// values) and through the entry envelope (memory.WithCopy).
func TestExpiryCountsFromWhenStored(t *testing.T) {
	for name, copyValues := range map[string]bool{"values": false, "envelope": true} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var opts []memory.Option
				if copyValues {
					opts = append(opts, memory.WithCopy())
				}
				r := newRegion(t, memory.New(opts...), region.WithExpiration(time.Second))
				v := region.NewView[int](r)
				var n atomic.Int32
				create := func(context.Context) (int, error) {
					time.Sleep(1500 * time.Millisecond) // longer than the expiration
					return int(n.Add(1)), nil
				}
				ctx := t.Context()
				call := func(when string, want int32) {
					t.Helper()
					got, err := v.GetOrCreate(ctx, "k", create)
					if err != nil || int32(got) != want || n.Load() != want {
						t.Fatalf("%s: got (%d, %v) after %d creations, want value %d from %d", when, got, err, n.Load(), want, want)
					}
				}
				call("cold", 1)
				call("just after a 1.5s creation under a 1s expiration", 1)
				time.Sleep(900 * time.Millisecond)
				call("0.9s after it was stored", 1)
				time.Sleep(200 * time.Millisecond)
				call("1.1s after it was stored", 2) // expired: regenerated (synchronously, by its only caller)
			})
		})
	}
}

// TestRegenerationRateUnderLoad: 100 readers of one key, a 200ms expiration and a 50ms creator.
// Each value lives 200ms from when it was stored, so the key is regenerated once every 250ms
// (expiration plus creation), as a cache with plain expiry does, not once every 200ms.
func TestRegenerationRateUnderLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := hotLoad{exp: 200 * time.Millisecond, creation: 50 * time.Millisecond,
			span: 10 * time.Second, every: 5 * time.Millisecond}
		n, _ := h.run(t)
		want := int64(h.span / (h.exp + h.creation)) // 40; 50 if freshness counted from the start
		t.Logf("%d regenerations in %v: one every %v", n, h.span, h.span/time.Duration(max(n, 1)))
		if n < want-1 || n > want+1 {
			t.Errorf("%d regenerations in %v, want %d (one per expiration + creation)", n, h.span, want)
		}
	})
}

// A failed early refresh (XFetch) of a value that is still fresh serves the fresh value without
// error, even with stale-if-error off: an early refresh is an optimisation, and its failure never
// turns a hit into an error.
func TestFailedEarlyRefreshServesFreshValue(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	// beta huge: every read of a value with a known delta, in the last fifth of its expiration,
	// is due for an early refresh.
	r := newRegion(t, nil, region.WithExpiration(time.Hour), region.WithEarlyRefresh(1e12), clk.option())
	v := region.NewView[string](r)
	if _, err := v.GetOrCreate(ctx, "k", func(context.Context) (string, error) {
		clk.advance(time.Second) // the creation takes 1s: delta = 1s
		return "v", nil
	}); err != nil {
		t.Fatal(err)
	}
	clk.advance(50 * time.Minute) // 10 minutes from expiry: fresh
	got, err := v.GetOrCreate(ctx, "k", func(context.Context) (string, error) { return "", errUpstream })
	if err != nil || got != "v" {
		t.Errorf("fresh value, failed early refresh: got %q, %v; want the fresh value %q and no error", got, err, "v")
	}
	// The same in a batch.
	m, err := v.GetOrCreateMulti(ctx, []string{"k"}, func(context.Context, []string) (map[string]string, error) {
		return nil, errUpstream
	})
	if err != nil || m["k"] != "v" {
		t.Errorf("batch: fresh value, failed early refresh: got %v, %v; want the fresh value", m, err)
	}
}

// Stale-if-error never serves a value that a hard invalidation made absent while its regeneration
// ran: entries created before a hard invalidation are absent, never served.
func TestStaleIfErrorSkipsHardInvalidatedValue(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	r := newRegion(t, nil, region.WithExpiration(time.Minute), region.WithStaleIfError(time.Hour), clk.option())
	v := region.NewView[string](r)
	if err := v.Set(ctx, "k", "old"); err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Minute) // expired a minute ago: within the stale-if-error bound
	got, err := v.GetOrCreate(ctx, "k", func(ctx context.Context) (string, error) {
		// The data behind "old" is gone: the operator invalidates hard while we regenerate.
		if err := r.Invalidate(ctx, region.Hard); err != nil {
			t.Error(err)
		}
		return "", errUpstream
	})
	if !errors.Is(err, errUpstream) {
		t.Errorf("after a hard invalidation during the failed regeneration: got %q, %v; want errUpstream, not the invalidated value", got, err)
	}
	// The next read agrees that the value is absent.
	if _, ok, _ := v.Get(ctx, "k", region.WithIgnoreExpiration()); ok {
		t.Errorf("Get sees the hard-invalidated value")
	}
}

// Stale-if-error never serves a value deleted while its regeneration ran.
func TestStaleIfErrorSkipsDeletedValue(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	r := newRegion(t, nil, region.WithExpiration(time.Minute), region.WithStaleIfError(time.Hour), clk.option())
	v := region.NewView[string](r)
	if err := v.Set(ctx, "k", "old"); err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Minute)
	got, err := v.GetOrCreate(ctx, "k", func(ctx context.Context) (string, error) {
		if err := v.Delete(ctx, "k"); err != nil {
			t.Error(err)
		}
		return "", errUpstream
	})
	if !errors.Is(err, errUpstream) {
		t.Errorf("after a Delete during the failed regeneration: got %q, %v; want errUpstream", got, err)
	}
}

// An expiration of centuries (say time.Duration(math.MaxInt64), "as good as never") does not
// overflow the expiry time: a fresh value read early is not refreshed.
func TestEarlyRefreshWithLongExpiration(t *testing.T) {
	ctx := t.Context()
	r := newRegion(t, nil, region.WithExpiration(time.Duration(1<<63-1)), region.WithEarlyRefresh(1))
	v := region.NewView[string](r)
	var calls int
	create := func(context.Context) (string, error) {
		calls++
		time.Sleep(time.Millisecond) // a delta to record
		return "v", nil
	}
	for range 5 {
		if _, err := v.GetOrCreate(ctx, "k", create); err != nil {
			t.Fatal(err)
		}
	}
	if s := v.Stats(); calls != 1 || s.EarlyRefreshes != 0 {
		t.Errorf("a value that expires in centuries: %d creations, %d early refreshes; want 1 and 0", calls, s.EarlyRefreshes)
	}
}

// An early refresh never starts before a value has lived four fifths of its expiration, however
// large beta: a value lives at least 80% of it.
func TestEarlyRefreshNeverBeforeTheLastFifth(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	refreshed := make(chan struct{})
	r := newRegion(t, nil, region.WithExpiration(time.Minute), region.WithEarlyRefresh(1e12), clk.option())
	v := region.NewView[int](r)
	var calls atomic.Int32
	create := func(context.Context) (int, error) {
		n := calls.Add(1)
		if n == 1 {
			clk.advance(time.Second) // delta: 1s
		} else {
			close(refreshed)
		}
		return int(n), nil
	}
	if _, err := v.GetOrCreate(ctx, "k", create); err != nil {
		t.Fatal(err)
	}
	clk.advance(48*time.Second - time.Nanosecond) // stored 1s ago: 48s is four fifths of a minute
	for range 1000 {
		if got, err := v.GetOrCreate(ctx, "k", create); err != nil || got != 1 {
			t.Fatalf("before the last fifth: got %d, %v; want the value 1", got, err)
		}
	}
	if s := v.Stats(); s.EarlyRefreshes != 0 {
		t.Fatalf("%d early refreshes before the value lived four fifths of its expiration, want 0", s.EarlyRefreshes)
	}
	clk.advance(time.Nanosecond)
	if got, err := v.GetOrCreate(ctx, "k", create); err != nil || got != 1 {
		t.Fatalf("in the last fifth: got %d, %v; want the value 1, served at once", got, err)
	}
	if s := v.Stats(); s.EarlyRefreshes != 1 {
		t.Fatalf("%d early refreshes in the last fifth with a huge beta, want 1", s.EarlyRefreshes)
	}
	<-refreshed
}

// Nobody waits for an early refresh: the caller whose read starts it and every caller while it
// runs get the current value at once, with background workers or without, and the key is
// regenerated once.
func TestEarlyRefreshMakesNobodyWait(t *testing.T) {
	for name, opts := range map[string][]region.Option{
		"without workers": nil,
		"with workers":    {region.WithBackgroundRefresh(1)},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				release := make(chan struct{})
				r := newRegion(t, nil, append(opts, region.WithExpiration(time.Minute), region.WithEarlyRefresh(1e12))...)
				v := region.NewView[int](r)
				var calls atomic.Int32
				create := func(context.Context) (int, error) {
					n := calls.Add(1)
					if n == 1 {
						time.Sleep(time.Second) // delta: 1s
					} else {
						<-release // the refresh is in progress until the test says
					}
					return int(n), nil
				}
				if _, err := v.GetOrCreate(ctx, "k", create); err != nil {
					t.Fatal(err)
				}
				time.Sleep(50 * time.Second) // in the last fifth
				// Were a caller to wait for the blocked refresh, the bubble would deadlock.
				var wg sync.WaitGroup
				for range 10 {
					wg.Go(func() {
						start := time.Now()
						got, err := v.GetOrCreate(ctx, "k", create)
						if err != nil || got != 1 || time.Since(start) != 0 {
							t.Errorf("during an early refresh: got %d, %v after %v; want the current value 1 at once", got, err, time.Since(start))
						}
					})
				}
				wg.Wait()
				synctest.Wait()
				if n := calls.Load(); n != 2 {
					t.Errorf("%d creations, want 2: one early refresh for the ten callers", n)
				}
				close(release)
				synctest.Wait()
				if got, _ := v.GetOrCreate(ctx, "k", create); got != 2 {
					t.Errorf("after the early refresh got %d, want its value 2", got)
				}
				if s := v.Stats(); s.Waits != 0 {
					t.Errorf("%d calls waited, want 0", s.Waits)
				}
			})
		})
	}
}

// Close cancels an early refresh that runs on a goroutine of its own (a region without background
// workers) and waits for it: nothing is left running.
func TestCloseStopsEarlyRefresh(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	started, ended := make(chan struct{}), make(chan error, 1)
	r := newRegion(t, nil, region.WithExpiration(time.Minute), region.WithEarlyRefresh(1e12), clk.option())
	v := region.NewView[int](r)
	if _, err := v.GetOrCreate(ctx, "k", func(context.Context) (int, error) {
		clk.advance(time.Second)
		return 1, nil
	}); err != nil {
		t.Fatal(err)
	}
	clk.advance(50 * time.Second)
	if got, err := v.GetOrCreate(ctx, "k", func(ctx context.Context) (int, error) {
		close(started)
		<-ctx.Done()
		ended <- ctx.Err()
		return 0, ctx.Err()
	}); err != nil || got != 1 {
		t.Fatalf("got %d, %v; want the current value 1", got, err)
	}
	<-started
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the refresh's context ended with %v, want context.Canceled", err)
		}
	default:
		t.Error("Close returned while the early refresh still ran")
	}
}

// hotLoad is a hot key under load: 100 goroutines read it once every `every` of the bubble's
// virtual time for span, with an expiration exp and a creator that takes creation.
type hotLoad struct {
	exp, creation, span, every time.Duration
}

// earlyLoad is the hot key of the early-refresh tests: a read every millisecond for 1.5s, a
// 200ms expiration, a 10ms creator.
var earlyLoad = hotLoad{exp: 200 * time.Millisecond, creation: 10 * time.Millisecond,
	span: 1500 * time.Millisecond, every: time.Millisecond}

// run returns how many times the creator ran (after the first creation) and how many calls
// waited (took any virtual time).
func (h hotLoad) run(t *testing.T, opts ...region.Option) (loads, waited int64) {
	r := newRegion(t, memory.New(), append([]region.Option{region.WithExpiration(h.exp)}, opts...)...)
	v := region.NewView[int](r)
	var n, w atomic.Int64
	create := func(context.Context) (int, error) {
		time.Sleep(h.creation)
		return int(n.Add(1)), nil
	}
	ctx := t.Context()
	if _, err := v.GetOrCreate(ctx, "hot", create); err != nil {
		t.Fatal(err)
	}
	n.Store(0)
	end := time.Now().Add(h.span)
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			for time.Now().Before(end) {
				start := time.Now()
				if _, err := v.GetOrCreate(ctx, "hot", create); err != nil {
					t.Error(err)
					return
				}
				if time.Since(start) > 0 {
					w.Add(1)
				}
				time.Sleep(h.every)
			}
		})
	}
	wg.Wait()
	synctest.Wait() // the last early refresh
	return n.Load(), w.Load()
}

// On a hot key, early refresh (beta 1) costs at most 1.5 times the regenerations of plain expiry,
// and no caller waits: the key is regenerated before it expires.
func TestEarlyRefreshOnAHotKeyCostsFewLoads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		plain, plainWaited := earlyLoad.run(t)
		early, earlyWaited := earlyLoad.run(t, region.WithEarlyRefresh(1))
		t.Logf("1.5s, 100 readers: plain expiry %d loads, %d waiters; early refresh %d loads, %d waiters", plain, plainWaited, early, earlyWaited)
		if float64(early) > 1.5*float64(plain) {
			t.Errorf("early refresh: %d loads, more than 1.5 times plain expiry's %d", early, plain)
		}
		if earlyWaited != 0 {
			t.Errorf("early refresh: %d calls waited, want 0", earlyWaited)
		}
	})
}
