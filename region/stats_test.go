package region_test

import (
	"context"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/backends/wrap"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
)

// TestStatsAddUp runs a concurrent workload with a known mix of hits, misses, waits and stale
// reads, on two views of one region, and checks every count, per view and for the region.
func TestStatsAddUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		r := newRegion(t, nil, region.WithExpiration(time.Minute))
		users := region.NewView[string](r)
		orders := region.NewView[int](r)
		value := func(context.Context) (string, error) { return "v", nil }

		// 10 warm keys, then 8 goroutines x 100 hits on them and 10 misses each on keys of
		// their own.
		for i := range 10 {
			if err := users.Set(ctx, fmt.Sprint("warm", i), "v"); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 100 {
					if _, err := users.GetOrCreate(ctx, fmt.Sprint("warm", i%10), value); err != nil {
						t.Error(err)
					}
				}
				for i := range 10 {
					if _, err := users.GetOrCreate(ctx, fmt.Sprint("cold", g, "-", i), value); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()

		// 50 callers on one cold key whose creation takes a second: 1 creates, 49 wait.
		slow := func(context.Context) (int, error) { time.Sleep(time.Second); return 1, nil }
		for range 50 {
			wg.Go(func() {
				if _, err := orders.GetOrCreate(ctx, "slow", slow); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()

		// The key expires; 100 callers: 1 regenerates (and waits for it), 99 get the old value.
		time.Sleep(2 * time.Minute)
		for range 100 {
			wg.Go(func() {
				if _, err := orders.GetOrCreate(ctx, "slow", slow); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()

		u, o := users.Stats(), orders.Stats()
		wantU := region.Stats{Hits: 800, Misses: 80, Creations: 80}
		wantO := region.Stats{Misses: 50, Waits: 49, WaitTime: 49 * time.Second, Creations: 2, CreationTime: 2 * time.Second,
			Expired: 100, Stale: 99}
		if u != wantU {
			t.Errorf("users: %+v\nwant %+v", u, wantU)
		}
		if o != wantO {
			t.Errorf("orders: %+v\nwant %+v", o, wantO)
		}
		all := r.Stats()
		if all.Hits != 800 || all.Misses != 130 || all.Creations != 82 || all.Stale != 99 || all.Waits != 49 {
			t.Errorf("region: %+v; want the sum of its views", all)
		}
	})
}

func TestStatsErrorsByKind(t *testing.T) {
	ctx := t.Context()
	b := newBatchBackend(newShared())
	r := newRegion(t, b)
	v := region.NewView[string](r)
	b.down.Store(true)
	if _, err := v.GetOrCreate(ctx, "k", func(context.Context) (string, error) { return "v", nil }); err != nil {
		t.Fatal(err) // fail open
	}
	b.down.Store(false)
	s := v.Stats()
	// The read, the lock (fail open: created without it, so no unlock), the read again, the write.
	if s.Errors.Read != 2 || s.Errors.Lock != 1 || s.Errors.Write != 1 {
		t.Errorf("errors %+v, want 2 reads, 1 lock call, 1 write", s.Errors)
	}
	if err := b.Set(ctx, "bad", []byte("not an entry"), 0); err != nil {
		t.Fatal(err)
	}
	_, _ = v.GetOrCreate(ctx, "bad", func(context.Context) (string, error) { return "v", nil })
	if s := v.Stats(); s.Errors.Malformed != 2 { // the read, and the read under the lock
		t.Errorf("malformed: %d, want 2", s.Errors.Malformed)
	}
	// Errors outside any view's calls are the region's.
	b.down.Store(true)
	_ = r.Delete(ctx, "k")
	if s := r.Stats(); s.Errors.Write != 2 {
		t.Errorf("region write errors: %d, want 2 (the view's and Delete's)", s.Errors.Write)
	}
}

func TestStatsSurviveCollectedViews(t *testing.T) {
	r := newRegion(t, nil)
	for range 10 {
		v := region.NewView[string](r) // made and dropped, as a careless program does
		_, _ = v.GetOrCreate(t.Context(), "k", func(context.Context) (string, error) { return "v", nil })
	}
	// Whether or not the views were collected yet, the region's totals hold.
	for range 3 {
		runtimeGC()
	}
	if s := r.Stats(); s.Hits+s.Misses != 10 {
		t.Errorf("region: %d hits + %d misses, want 10 reads", s.Hits, s.Misses)
	}
	if s := r.ViewStats()["string"]; s.Reads() != 10 {
		t.Errorf("views of strings: %d reads, want 10", s.Reads())
	}
}

// expvarRuns numbers the runs of TestPublishExpvar.
var expvarRuns atomic.Int64

// PublishExpvar shows times in seconds, the reads and the hit ratio, and the counts of each
// view under "functions", by name: a memo handle's namespace, a view's WithName, an unnamed
// view's value type.
func TestPublishExpvar(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		r := newRegion(t, nil)
		// expvar names are the process's for good: a name of its own for each run (-count).
		name := fmt.Sprintf("dogpile-test-%s-%d", t.Name(), expvarRuns.Add(1))
		if err := r.PublishExpvar(name); err != nil {
			t.Fatal(err)
		}
		// users.byID: a miss whose creation takes 250ms, then 3 hits.
		byID := memo.Func(r, func(context.Context, int) (string, error) {
			time.Sleep(250 * time.Millisecond)
			return "u", nil
		}, memo.WithNamespace("users.byID"))
		for range 4 {
			if _, err := byID.Call(ctx, 1); err != nil {
				t.Fatal(err)
			}
		}
		// orders: a miss whose creation takes a second.
		orders := region.NewView[int](r, region.WithName("orders"))
		if _, err := orders.GetOrCreate(ctx, "o", func(context.Context) (int, error) { time.Sleep(time.Second); return 1, nil }); err != nil {
			t.Fatal(err)
		}
		// An unnamed view of strings: a miss and a hit.
		plain := region.NewView[string](r)
		for range 2 {
			if _, err := plain.GetOrCreate(ctx, "p", func(context.Context) (string, error) { return "v", nil }); err != nil {
				t.Fatal(err)
			}
		}

		var got map[string]any
		if err := json.Unmarshal([]byte(expvar.Get(name).String()), &got); err != nil {
			t.Fatalf("expvar %s = %s: %v", name, expvar.Get(name).String(), err)
		}
		for _, c := range []struct {
			path []string
			want any
		}{
			{[]string{"reads"}, 7.0},
			{[]string{"hits"}, 4.0},
			{[]string{"hit_ratio"}, 4.0 / 7},
			{[]string{"creation_seconds"}, 1.25},
			{[]string{"wait_seconds"}, 0.0},
			{[]string{"background_refreshes", "scheduled"}, 0.0},
			{[]string{"errors", "read"}, 0.0},
			{[]string{"functions", "users.byID", "reads"}, 4.0},
			{[]string{"functions", "users.byID", "hit_ratio"}, 0.75},
			{[]string{"functions", "users.byID", "creation_seconds"}, 0.25},
			{[]string{"functions", "orders", "hit_ratio"}, 0.0},
			{[]string{"functions", "orders", "creation_seconds"}, 1.0},
			{[]string{"functions", "string", "hit_ratio"}, 0.5},
			{[]string{"CreationTime"}, nil},
		} {
			if g := lookupJSON(got, c.path...); g != c.want {
				t.Errorf("%s = %v, want %v", strings.Join(c.path, "."), g, c.want)
			}
		}
		if fs, _ := got["functions"].(map[string]any); len(fs) != 3 {
			t.Errorf("functions %v, want users.byID, orders and string", fs)
		}
		if err := r.PublishExpvar(name); err == nil {
			t.Error("publishing a name twice: no error")
		}
	})
}

// lookupJSON returns the value at path in a decoded JSON object, or nil.
func lookupJSON(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// HitRatio is Hits over every read, negative hits included; 0 without reads.
func TestHitRatio(t *testing.T) {
	for _, c := range []struct {
		s    region.Stats
		want float64
	}{
		{region.Stats{}, 0},
		{region.Stats{Hits: 3, Misses: 1}, 0.75},
		{region.Stats{Hits: 1, NegativeHits: 1, Misses: 1, Expired: 1}, 0.25},
		{region.Stats{NegativeHits: 2}, 0},
	} {
		if got := c.s.HitRatio(); got != c.want {
			t.Errorf("%+v: HitRatio %v, want %v", c.s, got, c.want)
		}
	}
}

// A background regeneration is counted by what became of it: scheduled (handed to a worker) and
// then run (the worker called the creator), or skipped (every worker busy). One that finds
// another process regenerating the key is scheduled, not run.
func TestBackgroundRefreshesScheduledRunSkipped(t *testing.T) {
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
				for _, k := range []string{"a", "b", "c"} {
					if err := v.Set(ctx, k, "old"); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(2 * time.Minute)
				get := func(key string, create func(context.Context) (string, error)) {
					t.Helper()
					var got string
					var err error
					if batch {
						var m map[string]string
						m, err = v.GetOrCreateMulti(ctx, []string{key}, func(ctx context.Context, _ []string) (map[string]string, error) {
							s, err := create(ctx)
							return map[string]string{key: s}, err
						})
						got = m[key]
					} else {
						got, err = v.GetOrCreate(ctx, key, create)
					}
					if err != nil || got != "old" {
						t.Fatalf("%s: got %q, %v; want the old value", key, got, err)
					}
					synctest.Wait() // the background worker, done or blocked
				}
				want := func(w region.BackgroundStats) {
					t.Helper()
					if s := v.Stats().Background; s != w {
						t.Errorf("background %+v, want %+v", s, w)
					}
				}
				create := func(context.Context) (string, error) { return "new", nil }

				// a: handed to the one worker, whose creator runs until released.
				release := make(chan struct{})
				get("a", func(context.Context) (string, error) { <-release; return "new", nil })
				want(region.BackgroundStats{Scheduled: 1, Run: 1})
				// b: the worker is busy. Skipped; b stays expired.
				get("b", create)
				want(region.BackgroundStats{Scheduled: 1, Run: 1, Skipped: 1})
				close(release)
				synctest.Wait()
				// c: another process holds its lock. Scheduled, but the creator does not run.
				_, other := b.lock([]string{"c"})
				defer other.Unlock(ctx)
				get("c", func(context.Context) (string, error) { t.Error("c regenerated under another's lock"); return "", nil })
				want(region.BackgroundStats{Scheduled: 2, Run: 1, Skipped: 1})
				// b again, the worker free: scheduled and run.
				get("b", create)
				want(region.BackgroundStats{Scheduled: 3, Run: 2, Skipped: 1})
				if s := r.Stats().Background; s != (region.BackgroundStats{Scheduled: 3, Run: 2, Skipped: 1}) {
					t.Errorf("region: background %+v, want the view's", s)
				}
			})
		})
	}
}

func runtimeGC() { runtime.GC() }

// Hits, NegativeHits, Misses and Expired add up to the reads made through GetOrCreate and
// GetOrCreateMulti, including negative hits and reads that fail under FailClosed.
func TestStatsReadsAddUp(t *testing.T) {
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
// key counts Stale once, although both the call and the background regeneration see it old: Stale
// is a subset of Expired.
func TestStaleCountedOnceInBackground(t *testing.T) {
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

// Under FailClosed, one failed write of a regeneration is reported once, to the error handler and
// in the Errors counts, as a write error; the background refresh's OnError and stale-if-error do
// not report it again as a creator error.
func TestStoreFailureReportedOnce(t *testing.T) {
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

// A failed early refresh counts as a creator error in Stats, never as a write error.
func TestFailedEarlyRefreshCountedAsCreatorError(t *testing.T) {
	ctx := t.Context()
	clk := newClock()
	reported := make(chan error, 1)
	r := newRegion(t, nil, region.WithExpiration(time.Hour), region.WithEarlyRefresh(1e12), clk.option(),
		region.WithErrorHandler(func(_ context.Context, err error) { reported <- err }))
	v := region.NewView[string](r)
	if _, err := v.GetOrCreate(ctx, "k", func(context.Context) (string, error) {
		clk.advance(time.Second)
		return "v", nil
	}); err != nil {
		t.Fatal(err)
	}
	clk.advance(50 * time.Minute) // in the last fifth of the expiration
	if got, err := v.GetOrCreate(ctx, "k", func(context.Context) (string, error) { return "", errUpstream }); err != nil || got != "v" {
		t.Fatalf("got %q, %v", got, err)
	}
	<-reported // the refresh runs in the background
	if e := v.Stats().Errors; e.Write != 0 || e.Creator != 1 {
		t.Errorf("a failed early refresh counted as %+v; want one creator error, no write error", e)
	}
}
