package region_test

// Regression tests from the first review of the region: each comment says what used to go wrong.

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dogpile-go/dogpile/region"
)

// A View[int] caller that joins a creation started by a View[string] on the same key gets
// (0, nil): an in-band zero value, no error, no report, and its own creator never runs.
func TestCallersOfAnotherTypeDoNotJoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegion(t, nil)
		g := newGate("text")
		go func() { _, _ = region.NewView[string](r).GetOrCreate(t.Context(), "k", g.create) }()
		synctest.Wait()
		done := make(chan struct{})
		var n int
		var err error
		var ran atomic.Bool
		go func() {
			defer close(done)
			n, err = region.NewView[int](r).GetOrCreate(t.Context(), "k", func(context.Context) (int, error) {
				ran.Store(true)
				return 42, nil
			})
		}()
		synctest.Wait()
		close(g.open)
		<-done
		if err == nil && !ran.Load() {
			t.Fatalf("View[int] joined a View[string] creation and got (%d, nil) without its creator running", n)
		}
	})
}

// ShouldCache with an interface type V never sees a nil result: v.(V) fails on a nil interface,
// so the predicate is skipped and the nil is cached.
func TestShouldCacheSeesNilInterface(t *testing.T) {
	ctx := context.Background()
	r := newRegion(t, nil)
	var consulted atomic.Bool
	v := region.NewView[fmt.Stringer](r, region.ShouldCache(func(s fmt.Stringer) bool {
		consulted.Store(true)
		return s != nil
	}))
	calls := 0
	create := func(context.Context) (fmt.Stringer, error) { calls++; return nil, nil }
	_, _ = v.GetOrCreate(ctx, "k", create)
	_, _ = v.GetOrCreate(ctx, "k", create)
	if calls != 2 || !consulted.Load() {
		t.Fatalf("nil result: predicate consulted=%v, creator ran %d times; want consulted and 2 runs (not cached)", consulted.Load(), calls)
	}
}

// An invalidation in the same clock reading as the write it should cover does not cover it:
// fresh uses created < softAt and usable created >= hardAt. Existing tests sleep 1ms to hide it.
func TestInvalidateCoversWriteInSameTick(t *testing.T) {
	for name, mode := range map[string]region.Invalidation{"hard": region.Hard, "soft": region.Soft} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRegion(t, nil)
				v := region.NewView[string](r)
				_ = v.Set(t.Context(), "k", "old")
				_ = r.Invalidate(t.Context(), mode) // no time.Sleep: same instant
				if s, ok, _ := v.Get(t.Context(), "k"); ok {
					t.Errorf("Get after Invalidate = (%q, true), want a miss", s)
				}
			})
		})
	}
}

// A background refresh that fails (error or panic) is reported nowhere: not to the error
// handler, not to the logger. The caller got the stale value, and nobody else waits.
func TestBackgroundRefreshFailureIsReported(t *testing.T) {
	for name, create := range map[string]func(context.Context) (string, error){
		"error": func(context.Context) (string, error) { return "", errors.New("db down") },
		"panic": func(context.Context) (string, error) { panic("bug") },
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var reports atomic.Int32
				r := newRegion(t, nil, region.WithExpiration(time.Minute), region.WithBackgroundRefresh(1),
					region.WithErrorHandler(func(context.Context, error) { reports.Add(1) }))
				v := region.NewView[string](r)
				_ = v.Set(t.Context(), "k", "old")
				time.Sleep(2 * time.Minute)
				if s, err := v.GetOrCreate(t.Context(), "k", create); s != "old" || err != nil {
					t.Fatalf("got (%q, %v)", s, err)
				}
				synctest.Wait()
				if reports.Load() == 0 {
					t.Fatal("the failed background refresh was not reported")
				}
			})
		})
	}
}

// Delete (memo's Invalidate, "after a write") does not reach a creation in flight: a caller that
// arrives after Delete joins the creation that began before it, gets its value, and that value
// is stored afterwards, so the data read before the write stays cached.
func TestDeleteDuringCreationIsNotOverwritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegion(t, nil)
		v := region.NewView[string](r)
		g := newGate("read-before-write")
		go func() { _, _ = v.GetOrCreate(t.Context(), "k", g.create) }()
		synctest.Wait()
		time.Sleep(time.Millisecond)
		_ = v.Delete(t.Context(), "k") // the application wrote the row and invalidates
		after := make(chan string)
		go func() {
			s, _ := v.GetOrCreate(t.Context(), "k", func(context.Context) (string, error) { return "read-after-write", nil })
			after <- s
		}()
		synctest.Wait()
		close(g.open)
		if s := <-after; s != "read-after-write" {
			t.Errorf("a call made after Delete got %q", s)
		}
		if s, ok, _ := v.Get(t.Context(), "k"); ok && s == "read-before-write" {
			t.Errorf("after Delete the cache holds %q", s)
		}
	})
}

// Same with a hard invalidation: the value is (correctly) not stored, but callers that arrive
// after Invalidate returned still get it.
func TestHardInvalidationDetachesCreations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegion(t, nil)
		v := region.NewView[string](r)
		g := newGate("read-before-invalidation")
		go func() { _, _ = v.GetOrCreate(t.Context(), "k", g.create) }()
		synctest.Wait()
		time.Sleep(time.Millisecond)
		_ = r.Invalidate(t.Context(), region.Hard)
		after := make(chan string)
		go func() {
			s, _ := v.GetOrCreate(t.Context(), "k", func(context.Context) (string, error) { return "new", nil })
			after <- s
		}()
		synctest.Wait()
		close(g.open)
		if s := <-after; s != "new" {
			t.Errorf("a call made after Invalidate(Hard) got %q", s)
		}
	})
}

// A negative expiration, from a per-call option or a computed ExpirationFunc ("time until the
// next deploy", gone negative), means "never expires", the opposite of what the caller meant;
// region.WithExpiration(-1) panics instead.
func TestNegativeExpirationMeansExpired(t *testing.T) {
	ctx := context.Background()
	for name, opt := range map[string]region.CallOption{
		"Expiration(-1s)":     region.Expiration(-time.Second),
		"ExpirationFunc(-1s)": region.ExpirationFunc(func() time.Duration { return -time.Second }),
	} {
		t.Run(name, func(t *testing.T) {
			c := newClock()
			r := newRegion(t, nil, c.option(), region.WithExpiration(time.Minute))
			v := region.NewView[string](r, opt)
			cr := &counter{}
			_, _ = v.GetOrCreate(ctx, "k", cr.create)
			c.advance(24 * time.Hour)
			if s, _ := v.GetOrCreate(ctx, "k", cr.create); s == "v1" {
				t.Fatalf("with %s a value is still fresh a day later", name)
			}
		})
	}
}

// Close makes every caller still waiting for a creation fail with context.Canceled, although
// its own context is live: callers that treat Canceled as "my client went away" drop it silently.
func TestCloseGivesWaitersErrClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegion(t, nil)
		v := region.NewView[string](r)
		g := newGate("never")
		errc := make(chan error)
		go func() {
			_, err := v.GetOrCreate(t.Context(), "k", g.create)
			errc <- err
		}()
		synctest.Wait()
		_ = r.Close()
		if err := <-errc; !errors.Is(err, region.ErrClosed) {
			t.Fatalf("waiter with a live context got %v on Close, want ErrClosed", err)
		}
	})
}

// A nil stored by a View of an interface type is a hit, with the zero value, for a View of any
// other type: load returns found before the type check.
func TestNilInterfaceEntryIsAMissForOtherTypes(t *testing.T) {
	ctx := context.Background()
	r := newRegion(t, nil)
	_ = region.NewView[error](r).Set(ctx, "k", nil)
	if s, ok, err := region.NewView[string](r).Get(ctx, "k"); ok {
		t.Errorf("View[string].Get of a nil stored by View[error] = (%q, %v, %v), want a miss", s, ok, err)
	}
}

// Set used to be overwritten by a creation of the key that was already in progress.
func TestSetDuringCreationIsNotOverwritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegion(t, nil)
		v := region.NewView[string](r)
		g := newGate("computed-before-the-set")
		go func() { _, _ = v.GetOrCreate(t.Context(), "k", g.create) }()
		synctest.Wait()
		if err := v.Set(context.Background(), "k", "set"); err != nil {
			t.Fatal(err)
		}
		close(g.open)
		synctest.Wait()
		if s, _, _ := v.Get(t.Context(), "k"); s != "set" {
			t.Fatalf("Get = %q: a creation that began before Set stored over it", s)
		}
	})
}
