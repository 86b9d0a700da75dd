package region_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/backends/wrap"
	"github.com/dogpile-go/dogpile/region"
)

// An early refresh (XFetch) of a value that is still fresh fails the caller when the creator
// fails and stale-if-error is off: the caller gets an error although a fresh value is cached. An
// early refresh is an optimisation; its failure must not turn a hit into an error.
func TestReview2EarlyRefreshFailureFailsCallerWithFreshValue(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	// beta huge: every read of a value with a known delta is due for an early refresh.
	r := newRegion(t, nil, region.WithExpiration(time.Hour), region.WithEarlyRefresh(1e12), clk.option())
	v := region.NewView[string](r)
	if _, err := v.GetOrCreate(ctx, "k", func(context.Context) (string, error) {
		clk.advance(time.Second) // the creation takes 1s: delta = 1s
		return "v", nil
	}); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Minute) // 59 minutes from expiry: fresh
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

// Stale-if-error serves a value that a hard invalidation made absent while its regeneration ran:
// hard invalidation says entries created before it are absent, never served.
func TestReview2StaleIfErrorServesHardInvalidatedValue(t *testing.T) {
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
	if _, ok, _ := v.Get(ctx, "k", region.IgnoreExpiration()); ok {
		t.Errorf("Get sees the hard-invalidated value")
	}
}

// Stats says Hits, NegativeHits, Misses and Expired add up to the reads made through
// GetOrCreate and GetOrCreateMulti. A read that fails under FailClosed is in none of them.
// (Before e0140d2 the doc left NegativeHits out, and negative hits broke the sum too.)
func TestReview2StatsReadsDoNotAddUp(t *testing.T) {
	ctx := t.Context()
	faults := wrap.NewFaults(1)
	r := newRegion(t, wrap.New(memory.New(), faults.Hook), region.WithFailurePolicy(region.FailClosed),
		region.WithNegativeCaching(errNoSuchUser, time.Minute))
	v := region.NewView[string](r)
	missing := func(context.Context) (string, error) { return "", errNoSuchUser }
	reads := 0
	for range 3 { // a miss, then two negative hits
		reads++
		if _, err := v.GetOrCreate(ctx, "u", missing); !errors.Is(err, errNoSuchUser) {
			t.Fatal(err)
		}
	}
	if err := faults.Set(wrap.Fault{Rate: 1}, wrap.OpGetValue); err != nil {
		t.Fatal(err)
	}
	reads++
	if _, err := v.GetOrCreate(ctx, "u", missing); err == nil {
		t.Fatal("a failed read under FailClosed: no error")
	}
	reads++
	if _, err := v.GetOrCreateMulti(ctx, []string{"u"}, func(context.Context, []string) (map[string]string, error) { return nil, nil }); err == nil {
		t.Fatal("a failed batch read under FailClosed: no error")
	}
	s := v.Stats()
	if sum := s.Hits + s.NegativeHits + s.Misses + s.Expired; sum != uint64(reads) {
		t.Errorf("hits %d + negative hits %d + misses %d + expired %d = %d, want the %d reads",
			s.Hits, s.NegativeHits, s.Misses, s.Expired, sum, reads)
	}
}

// With background refresh and a distributed lock held by another process, one read of an expired
// key counts Stale twice: once when the call is answered old and once when the background
// regeneration finds the lock held. Stale is documented as a subset of Expired.
func TestReview2StaleCountedTwiceInBackground(t *testing.T) {
	for _, batch := range []bool{false, true} {
		name := "single"
		if batch {
			name = "batch"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				b := newBatchBackend(newShared())
				r := newRegion(t, b, region.WithExpiration(time.Minute), region.WithBackgroundRefresh(1))
				v := region.NewView[string](r)
				if err := v.Set(ctx, "k", "old"); err != nil {
					t.Fatal(err)
				}
				time.Sleep(2 * time.Minute)
				_, other := b.lock([]string{"k"}) // another process regenerates k
				defer other.Unlock(ctx)
				create := func(context.Context) (string, error) { return "new", nil }
				if batch {
					m, err := v.GetOrCreateMulti(ctx, []string{"k"}, func(context.Context, []string) (map[string]string, error) {
						return map[string]string{"k": "new"}, nil
					})
					if err != nil || m["k"] != "old" {
						t.Fatalf("got %v, %v", m, err)
					}
				} else if got, err := v.GetOrCreate(ctx, "k", create); err != nil || got != "old" {
					t.Fatalf("got %q, %v", got, err)
				}
				synctest.Wait() // the background regeneration, which finds the lock held
				s := v.Stats()
				if s.Expired != 1 || s.Stale != 1 {
					t.Errorf("one read of an expired key: Expired %d, Stale %d; want 1 and 1 (Stale is a subset of Expired)", s.Expired, s.Stale)
				}
			})
		})
	}
}

// ConfigureWith writes the region's settings (r.cfg) while Invalidate, which works on an
// unconfigured region, reads them (its stamp reads the clock setting), and while CheckConfig
// (which package config calls without the region's lock) copies them: data races.
func TestReview2ConfigureWithRaces(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(r *region.Region)
	}{
		{"Invalidate", func(r *region.Region) { _ = r.Invalidate(context.Background(), region.Soft) }},
		{"CheckConfig", func(r *region.Region) { _ = r.CheckConfig(region.WithExpiration(time.Minute)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := region.New(t.Name())
			defer r.Close()
			var wg sync.WaitGroup
			start := make(chan struct{})
			wg.Go(func() {
				<-start
				for range 1000 {
					tc.call(r)
				}
			})
			close(start)
			if err := r.ConfigureWith(memory.New(), region.WithExpiration(time.Minute)); err != nil {
				t.Error(err)
			}
			wg.Wait()
		})
	}
}

// The same for a Delete while the regeneration runs: the caller is served the value it deleted.
func TestReview2StaleIfErrorServesDeletedValue(t *testing.T) {
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

// Under FailClosed, one failed write of a regeneration is reported twice, to the error handler
// and in the Errors counts: once by StoreFailed (as a write error) and once more as the
// regeneration's error (as a creator error), by the background refresh's OnError or by
// stale-if-error.
func TestReview2OneStoreFailureReportedTwice(t *testing.T) {
	for _, mode := range []string{"background", "stale-if-error"} {
		t.Run(mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				faults := wrap.NewFaults(1)
				var mu sync.Mutex
				var reported []error
				opts := []region.Option{region.WithExpiration(time.Minute), region.WithFailurePolicy(region.FailClosed),
					region.WithErrorHandler(func(_ context.Context, err error) {
						mu.Lock()
						reported = append(reported, err)
						mu.Unlock()
					})}
				if mode == "background" {
					opts = append(opts, region.WithBackgroundRefresh(1))
				} else {
					opts = append(opts, region.WithStaleIfError(time.Hour))
				}
				r := newRegion(t, wrap.New(memory.New(), faults.Hook), opts...)
				v := region.NewView[string](r)
				if err := v.Set(ctx, "k", "old"); err != nil {
					t.Fatal(err)
				}
				time.Sleep(2 * time.Minute)
				if err := faults.Set(wrap.Fault{FailNext: 1}, wrap.OpSetValue); err != nil {
					t.Fatal(err)
				}
				got, err := v.GetOrCreate(ctx, "k", func(context.Context) (string, error) { return "new", nil })
				if mode == "background" && (err != nil || got != "old") {
					t.Fatalf("got %q, %v; want the old value", got, err)
				}
				// Stale-if-error covers creator errors only: under FailClosed the failed write is
				// the caller's error, not hidden by the old value.
				if mode == "stale-if-error" && (err == nil || got != "") {
					t.Fatalf("got %q, %v; want the write's error (FailClosed)", got, err)
				}
				synctest.Wait()
				s := r.Stats().Errors
				mu.Lock()
				defer mu.Unlock()
				if len(reported) != 1 || s.Write+s.Creator != 1 {
					t.Errorf("one failed write: reported %d times (%v), counted write %d + creator %d; want once", len(reported), reported, s.Write, s.Creator)
				}
			})
		})
	}
}

// ConfigureURL re-encodes the query with url.URL.Query, which silently drops pairs it cannot
// parse (a ';', a bad %-escape) instead of reporting them: the backend never sees them, and a
// prefix or a bound the operator wrote is lost without an error. backends.Open alone rejects the
// same URL.
func TestReview2ConfigureURLDropsMalformedQuery(t *testing.T) {
	for _, raw := range []string{
		"memory://?max_entries=10;copy=true",
		"memory://?max_entries=%zz",
	} {
		r := region.New("u")
		err := r.ConfigureURL(raw)
		_ = r.Close()
		if err == nil {
			t.Errorf("ConfigureURL(%q): no error; the malformed parameter was dropped silently", raw)
		}
	}
}

// early computes created + expiration in int64: an expiration of about 250 years or more (say
// time.Duration(math.MaxInt64), "as good as never") overflows to a negative expiry, and every
// read of a fresh value then triggers an early refresh.
func TestReview2EarlyRefreshOverflowWithLongExpiration(t *testing.T) {
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

// e0140d2 made Invalidate on an unconfigured region take configMu. After Close the region is
// unconfigured too, and Close holds configMu while it waits for the creations in progress: a
// creator that invalidates the region (on Close's cancellation, say) blocks on configMu, and
// Close waits for it forever.
func TestReview2CloseDeadlocksWithInvalidatingCreator(t *testing.T) {
	r := region.New(t.Name())
	if err := r.Configure(memory.New()); err != nil {
		t.Fatal(err)
	}
	v := region.NewView[string](r)
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go v.GetOrCreate(ctx, "k", func(ctx context.Context) (string, error) {
		close(started)
		<-ctx.Done() // Close cancels the creation
		_ = r.Invalidate(context.Background(), region.Hard)
		return "", ctx.Err()
	})
	<-started
	closed := make(chan struct{})
	go func() { _ = r.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return: deadlocked with a creator calling Invalidate")
	}
}

// e0140d2 reports a failed early refresh under the operation "early refresh", which countError
// does not know: the creator's error is counted in Errors.Write, as if a backend write failed.
func TestReview2FailedEarlyRefreshCountedAsWriteError(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	r := newRegion(t, nil, region.WithExpiration(time.Hour), region.WithEarlyRefresh(1e12), clk.option())
	v := region.NewView[string](r)
	if _, err := v.GetOrCreate(ctx, "k", func(context.Context) (string, error) {
		clk.advance(time.Second)
		return "v", nil
	}); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Minute)
	if got, err := v.GetOrCreate(ctx, "k", func(context.Context) (string, error) { return "", errUpstream }); err != nil || got != "v" {
		t.Fatalf("got %q, %v", got, err)
	}
	if e := v.Stats().Errors; e.Write != 0 || e.Creator != 1 {
		t.Errorf("a failed early refresh counted as %+v; want one creator error, no write error", e)
	}
}

// Version 1 kept unknown flag bits ("kept, not rejected"; testdata/entry-v1-flags.golden has
// 0xa5). Version 2 gives bit 0 a meaning, FlagNegative, and decodeEntry applies it to version 1
// entries too: a version 1 value whose flags byte has bit 0 set reads as a cached "not found"
// and its payload is ignored.
func TestReview2V1FlagsReadAsNegative(t *testing.T) {
	ctx := t.Context()
	b := newBatchBackend(newShared())
	r := newRegion(t, b, region.WithExpiration(time.Hour))
	v := region.NewView[string](r)
	raw := encodeV1(time.Now().UnixNano(), `"v1 value"`)
	raw[3] = 0xa5
	if err := b.Set(ctx, "k", raw, 0); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := v.Get(ctx, "k"); !ok || err != nil || got != "v1 value" {
		t.Errorf("a version 1 entry with flags 0xa5: Get = %q, %v, %v; want its value", got, ok, err)
	}
}
