package region_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/backends/wrap"
	"github.com/dogpile-go/dogpile/keys"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
)

// handled keeps what a region's error handler is given.
type handled struct {
	mu   sync.Mutex
	errs []error
}

func (h *handled) option() region.Option {
	return region.WithErrorHandler(func(_ context.Context, err error) {
		h.mu.Lock()
		h.errs = append(h.errs, err)
		h.mu.Unlock()
	})
}

func (h *handled) take() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	errs := h.errs
	h.errs = nil
	return errs
}

// wantError checks that err is a *region.Error with op, kind, key and region name, and that
// errors.Is still finds cause in it (when cause is not nil).
func wantError(t *testing.T, err error, op region.Op, kind region.Kind, key, name string, cause error) *region.Error {
	t.Helper()
	e, ok := err.(*region.Error)
	if !ok {
		t.Fatalf("error %v (%T); want a *region.Error", err, err)
	}
	var as *region.Error
	if !errors.As(err, &as) || as != e {
		t.Fatalf("errors.As did not find the *region.Error %v", err)
	}
	if e.Op != op || e.Kind != kind || e.Key != key || e.Region != name {
		t.Errorf("error {Op: %q, Kind: %q, Key: %q, Region: %q}; want {%q, %q, %q, %q}: %v",
			e.Op, e.Kind, e.Key, e.Region, op, kind, key, name, err)
	}
	if cause != nil && !errors.Is(err, cause) {
		t.Errorf("errors.Is(%v, %v) = false; want the cause found", err, cause)
	}
	return e
}

// TestFailedCallsReturnRegionErrors: every way a call can fail returns a *region.Error naming the
// call's operation, what failed, the key as the caller gave it (the region mangles keys here) and
// the region, and errors.Is finds the cause through it.
func TestFailedCallsReturnRegionErrors(t *testing.T) {
	mangle := region.WithKeyMangler(keys.Prefix("app:"))
	closed := func(t *testing.T) *region.Region {
		r := newRegion(t, nil)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		name  string
		call  func(t *testing.T) (*region.Region, error)
		op    region.Op
		kind  region.Kind
		key   string
		cause error
	}{
		{"backend read fails, closed policy", func(t *testing.T) (*region.Region, error) {
			faults := wrap.NewFaults(1)
			r := newRegion(t, wrap.New(memory.New(), faults.Hook), mangle, region.WithFailurePolicy(region.FailClosed))
			if err := faults.Set(wrap.Fault{Rate: 1}, wrap.OpGetValue); err != nil {
				t.Fatal(err)
			}
			_, err := region.NewView[string](r).GetOrCreate(t.Context(), "user:1", (&counter{}).create)
			return r, err
		}, region.OpGetOrCreate, region.KindRead, "user:1", wrap.ErrInjected},
		{"backend lock fails, closed policy", func(t *testing.T) (*region.Region, error) {
			b := memory.New()
			t.Cleanup(func() { b.Close() })
			r := newRegion(t, lockFails{b}, mangle, region.WithFailurePolicy(region.FailClosed))
			_, err := region.NewView[string](r).GetOrCreate(t.Context(), "user:1", (&counter{}).create)
			return r, err
		}, region.OpGetOrCreate, region.KindLock, "user:1", errDown},
		{"backend write fails", func(t *testing.T) (*region.Region, error) {
			faults := wrap.NewFaults(1)
			r := newRegion(t, wrap.New(memory.New(), faults.Hook), mangle)
			if err := faults.Set(wrap.Fault{Rate: 1}, wrap.OpSetValue); err != nil {
				t.Fatal(err)
			}
			return r, region.NewView[string](r).Set(t.Context(), "user:1", "x")
		}, region.OpSet, region.KindWrite, "user:1", wrap.ErrInjected},
		{"backend delete fails", func(t *testing.T) (*region.Region, error) {
			f := &faulty{Backend: memory.New(memory.WithCopy())}
			r := newRegion(t, f, mangle)
			f.down.Store(true)
			return r, region.NewView[string](r).Delete(t.Context(), "user:1")
		}, region.OpDelete, region.KindWrite, "user:1", errDown},
		{"value does not encode", func(t *testing.T) (*region.Region, error) {
			r := newRegion(t, memory.New(memory.WithCopy()), mangle)
			return r, region.NewView[float64](r).Set(t.Context(), "user:1", math.Inf(1))
		}, region.OpSet, region.KindEncode, "user:1", nil},
		{"creator fails", func(t *testing.T) (*region.Region, error) {
			r := newRegion(t, nil, mangle)
			_, err := region.NewView[string](r).GetOrCreate(t.Context(), "user:1", func(context.Context) (string, error) {
				return "", sql.ErrNoRows
			})
			return r, err
		}, region.OpGetOrCreate, region.KindCreator, "user:1", sql.ErrNoRows},
		{"creator fails on a byte backend", func(t *testing.T) (*region.Region, error) {
			r := newRegion(t, memory.New(memory.WithCopy()), mangle)
			_, err := region.NewView[string](r).GetOrCreate(t.Context(), "user:1", func(context.Context) (string, error) {
				return "", sql.ErrNoRows
			})
			return r, err
		}, region.OpGetOrCreate, region.KindCreator, "user:1", sql.ErrNoRows},
		{"cached not found", func(t *testing.T) (*region.Region, error) {
			r := newRegion(t, nil, mangle, region.WithNegativeCaching(sql.ErrNoRows, time.Minute))
			v := region.NewView[string](r)
			missing := func(context.Context) (string, error) { return "", sql.ErrNoRows }
			_, _ = v.GetOrCreate(t.Context(), "user:1", missing)
			_, err := v.GetOrCreate(t.Context(), "user:1", missing) // the negative hit
			return r, err
		}, region.OpGetOrCreate, region.KindCreator, "user:1", sql.ErrNoRows},
		{"refresh's creator fails", func(t *testing.T) (*region.Region, error) {
			r := newRegion(t, nil, mangle)
			_, err := region.NewView[string](r).Refresh(t.Context(), "user:1", func(context.Context) (string, error) {
				return "", sql.ErrNoRows
			})
			return r, err
		}, region.OpRefresh, region.KindCreator, "user:1", sql.ErrNoRows},
		{"batch creator fails", func(t *testing.T) (*region.Region, error) {
			r := newRegion(t, nil, mangle)
			_, err := region.NewView[string](r).GetOrCreateMulti(t.Context(), []string{"user:1", "user:2"},
				func(context.Context, []string) (map[string]string, error) { return nil, sql.ErrNoRows })
			return r, err
		}, region.OpGetOrCreateMulti, region.KindCreator, "", sql.ErrNoRows},
		{"not configured", func(t *testing.T) (*region.Region, error) {
			r := region.New(t.Name())
			_, _, err := region.NewView[string](r).Get(t.Context(), "user:1")
			return r, err
		}, region.OpGet, region.KindUsage, "user:1", region.ErrNotConfigured},
		{"already configured", func(t *testing.T) (*region.Region, error) {
			r, b := newRegion(t, nil), memory.New()
			t.Cleanup(func() { b.Close() }) // refused: still the caller's
			return r, r.Configure(b)
		}, region.OpConfigure, region.KindUsage, "", region.ErrAlreadyConfigured},
		{"closed", func(t *testing.T) (*region.Region, error) {
			r := closed(t)
			_, err := region.NewView[string](r).GetOrCreate(t.Context(), "user:1", (&counter{}).create)
			return r, err
		}, region.OpGetOrCreate, region.KindClosed, "user:1", region.ErrClosed},
		{"batch on a closed region", func(t *testing.T) (*region.Region, error) {
			r := closed(t)
			return r, region.NewView[string](r).SetMulti(t.Context(), map[string]string{"user:1": "x"})
		}, region.OpSetMulti, region.KindClosed, "", region.ErrClosed},
		{"empty key", func(t *testing.T) (*region.Region, error) {
			r := newRegion(t, nil)
			return r, r.Delete(t.Context(), "")
		}, region.OpDelete, region.KindUsage, "", region.ErrInvalidKey},
		{"nil creator", func(t *testing.T) (*region.Region, error) {
			r := newRegion(t, nil)
			_, err := region.NewView[string](r).GetOrCreate(t.Context(), "user:1", nil)
			return r, err
		}, region.OpGetOrCreate, region.KindUsage, "user:1", nil},
		{"unknown invalidation", func(t *testing.T) (*region.Region, error) {
			r := newRegion(t, nil)
			return r, r.Invalidate(t.Context(), region.Invalidation(9))
		}, region.OpInvalidate, region.KindUsage, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.call(t)
			wantError(t, err, tc.op, tc.kind, tc.key, r.Name(), tc.cause)
		})
	}
}

// TestWaitingCallsReturnRegionErrors: a creator's panic and timeout, and the end of the caller's
// context while it waits, are *region.Errors too, and errors.Is and errors.As still reach
// *PanicError, ErrCreationTimeout and ctx.Err().
func TestWaitingCallsReturnRegionErrors(t *testing.T) {
	t.Run("panic", func(t *testing.T) {
		r := newRegion(t, nil)
		_, err := region.NewView[string](r).GetOrCreate(t.Context(), "k", func(context.Context) (string, error) {
			panic(sql.ErrConnDone)
		})
		wantError(t, err, region.OpGetOrCreate, region.KindCreator, "k", r.Name(), sql.ErrConnDone)
		var pe *region.PanicError
		if !errors.As(err, &pe) || pe.Value != sql.ErrConnDone {
			t.Errorf("errors.As(%v, *PanicError) did not find the panic", err)
		}
	})
	t.Run("creation timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRegion(t, nil, region.WithCreationTimeout(time.Second))
			_, err := region.NewView[string](r).GetOrCreate(t.Context(), "k", func(ctx context.Context) (string, error) {
				<-ctx.Done()
				return "", ctx.Err()
			})
			wantError(t, err, region.OpGetOrCreate, region.KindCreator, "k", r.Name(), region.ErrCreationTimeout)
		})
	})
	t.Run("caller's context ends", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRegion(t, nil)
			v := region.NewView[string](r)
			g := newGate("v")
			go func() { _, _ = v.GetOrCreate(t.Context(), "k", g.create) }()
			synctest.Wait() // the creation is in progress
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error)
			go func() {
				_, err := v.GetOrCreate(ctx, "k", g.create)
				done <- err
			}()
			synctest.Wait()
			cancel()
			wantError(t, <-done, region.OpGetOrCreate, region.KindContext, "k", r.Name(), context.Canceled)
			close(g.open)
			synctest.Wait()
		})
	})
}

// TestSucceededCallsReturnNil: a call that succeeds returns a nil error interface, not a nil
// *region.Error.
func TestSucceededCallsReturnNil(t *testing.T) {
	ctx := t.Context()
	r := newRegion(t, memory.New(memory.WithCopy()))
	v := region.NewView[string](r)
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %#v; want nil", what, err)
		}
	}
	check("Set", v.Set(ctx, "k", "x"))
	_, _, err := v.Get(ctx, "k")
	check("Get", err)
	_, err = v.GetOrCreate(ctx, "k", (&counter{}).create)
	check("GetOrCreate", err)
	_, err = v.Refresh(ctx, "k", (&counter{}).create)
	check("Refresh", err)
	check("SetMulti", v.SetMulti(ctx, map[string]string{"a": "1", "b": "2"}))
	_, err = v.GetMulti(ctx, []string{"a", "b"})
	check("GetMulti", err)
	_, err = v.GetOrCreateMulti(ctx, []string{"a", "c"}, func(_ context.Context, ks []string) (map[string]string, error) {
		return map[string]string{"c": "3"}, nil
	})
	check("GetOrCreateMulti", err)
	check("DeleteMulti", v.DeleteMulti(ctx, []string{"a", "b"}))
	check("Delete", v.Delete(ctx, "k"))
	check("Invalidate", r.Invalidate(ctx, region.Soft))
	check("Close", r.Close())
}

// TestReportedErrorsCarryOpKindKeyAndRegion: the error handler is given a *region.Error, and the
// log record of a report has its fields as the attributes region, op, kind, key and error (the
// cause); under FailClosed the handler is given the very error the call returns.
func TestReportedErrorsCarryOpKindKeyAndRegion(t *testing.T) {
	ctx := t.Context()
	t.Run("malformed entry", func(t *testing.T) {
		b := memory.New(memory.WithCopy())
		var h handled
		logs := &records{}
		r := region.New(t.Name(), region.WithKeyMangler(keys.Prefix("app:")), h.option(), region.WithLogger(slog.New(logs)))
		if err := r.Configure(b); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		if err := b.Set(ctx, "app:user:1", []byte("not an entry"), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := region.NewView[string](r).GetOrCreate(ctx, "user:1", (&counter{}).create); err != nil {
			t.Fatal(err) // a malformed entry is a miss
		}
		errs := h.take()
		if len(errs) == 0 {
			t.Fatal("the malformed entry was not reported")
		}
		for _, err := range errs {
			wantError(t, err, region.OpGetOrCreate, region.KindMalformed, "user:1", r.Name(), backends.ErrMalformed)
		}
		recs := logs.take()
		if len(recs) != 1 { // the second read's report is within the rate limit's interval
			t.Fatalf("%d log records; want 1", len(recs))
		}
		for name, want := range map[string]string{
			"region": r.Name(), "op": "get_or_create", "kind": "malformed", "key": "user:1",
		} {
			if v, ok := attr(recs[0], name); !ok || v.String() != want {
				t.Errorf("log attribute %s = %v (present: %v); want %q", name, v, ok, want)
			}
		}
		if v, ok := attr(recs[0], "error"); !ok || !errors.Is(v.Any().(error), backends.ErrMalformed) {
			t.Errorf("log attribute error = %v; want the cause", v)
		}
	})
	t.Run("read fails, closed policy", func(t *testing.T) {
		faults := wrap.NewFaults(1)
		var h handled
		r := newRegion(t, wrap.New(memory.New(), faults.Hook), h.option(), region.WithFailurePolicy(region.FailClosed))
		if err := faults.Set(wrap.Fault{Rate: 1}, wrap.OpGetValue); err != nil {
			t.Fatal(err)
		}
		_, err := region.NewView[string](r).GetOrCreate(ctx, "user:1", (&counter{}).create)
		e := wantError(t, err, region.OpGetOrCreate, region.KindRead, "user:1", r.Name(), wrap.ErrInjected)
		if errs := h.take(); len(errs) != 1 || errs[0] != error(e) {
			t.Errorf("the handler was given %v; want the error returned, once", errs)
		}
	})
	t.Run("failed regeneration served stale", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var h handled
			r := newRegion(t, nil, h.option(), region.WithExpiration(time.Minute), region.WithStaleIfError(time.Hour))
			v := region.NewView[string](r)
			if err := v.Set(t.Context(), "user:1", "old"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Minute)
			got, err := v.GetOrCreate(t.Context(), "user:1", func(context.Context) (string, error) { return "", sql.ErrConnDone })
			if got != "old" || err != nil {
				t.Fatalf("got (%q, %v); want the stale value", got, err)
			}
			errs := h.take()
			if len(errs) != 1 {
				t.Fatalf("reported %v; want the creator's error", errs)
			}
			wantError(t, errs[0], region.OpGetOrCreate, region.KindCreator, "user:1", r.Name(), sql.ErrConnDone)
		})
	})
	t.Run("background refresh fails", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var h handled
			r := newRegion(t, nil, h.option(), region.WithExpiration(time.Minute), region.WithBackgroundRefresh(1))
			v := region.NewView[string](r)
			if err := v.Set(t.Context(), "user:1", "old"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Minute)
			if _, err := v.GetOrCreate(t.Context(), "user:1", func(context.Context) (string, error) { return "", sql.ErrConnDone }); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			errs := h.take()
			if len(errs) != 1 {
				t.Fatalf("reported %v; want the creator's error", errs)
			}
			wantError(t, errs[0], region.OpGetOrCreate, region.KindCreator, "user:1", r.Name(), sql.ErrConnDone)
		})
	})
}

// TestBatchErrorsNameTheirKey: an error that concerns one key of a batch names that key, as the
// caller gave it; an error of the batch as a whole, or of several of its keys, names none, and
// holds the errors of the keys it joins.
func TestBatchErrorsNameTheirKey(t *testing.T) {
	ctx := t.Context()
	var h handled
	b := memory.New(memory.WithCopy())
	r := newRegion(t, b, region.WithKeyMangler(keys.Prefix("app:")), h.option())
	v := region.NewView[float64](r)

	err := v.SetMulti(ctx, map[string]float64{"a": 1, "b": math.Inf(1)})
	wantError(t, err, region.OpSetMulti, region.KindEncode, "b", r.Name(), nil)
	if errs := h.take(); len(errs) != 1 || errs[0] != err {
		t.Errorf("reported %v; want the error returned", errs)
	}

	err = v.SetMulti(ctx, map[string]float64{"a": 1, "b": math.Inf(1), "c": math.NaN()})
	e := wantError(t, err, region.OpSetMulti, region.KindEncode, "", r.Name(), nil)
	joined, ok := e.Err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("the batch's error holds %T; want the keys' errors joined", e.Err)
	}
	var named []string
	for _, err := range joined.Unwrap() {
		var ke *region.Error
		if errors.As(err, &ke) {
			named = append(named, ke.Key)
		}
	}
	slices.Sort(named)
	if !slices.Equal(named, []string{"b", "c"}) {
		t.Errorf("the batch's error joins errors of keys %q; want b and c", named)
	}

	// A malformed entry read in a batch is reported under its key.
	if err := b.Set(ctx, "app:d", []byte("not an entry"), 0); err != nil {
		t.Fatal(err)
	}
	h.take()
	if _, err := v.GetMulti(ctx, []string{"a", "d"}); err != nil {
		t.Fatal(err)
	}
	errs := h.take()
	if len(errs) != 1 {
		t.Fatalf("reported %v; want the malformed entry", errs)
	}
	wantError(t, errs[0], region.OpGetMulti, region.KindMalformed, "d", r.Name(), backends.ErrMalformed)
}

// TestInnerRegionErrorsAreNotWrappedAgain: a *region.Error that an inner call returns (a creator
// reading another region, Region.Delete under View.Delete, a view under a memo handle) is
// returned as it is.
func TestInnerRegionErrorsAreNotWrappedAgain(t *testing.T) {
	ctx := t.Context()
	outer, inner := newRegion(t, nil), region.New("inner") // inner is not configured
	_, err := region.NewView[string](outer).GetOrCreate(ctx, "k", func(ctx context.Context) (string, error) {
		_, _, err := region.NewView[string](inner).Get(ctx, "inner-key")
		return "", err
	})
	wantError(t, err, region.OpGet, region.KindUsage, "inner-key", "inner", region.ErrNotConfigured)

	f := &faulty{Backend: memory.New(memory.WithCopy())}
	r := newRegion(t, f)
	f.down.Store(true)
	e := wantError(t, region.NewView[string](r).Delete(ctx, "k"), region.OpDelete, region.KindWrite, "k", r.Name(), errDown)
	if _, ok := e.Err.(*region.Error); ok {
		t.Errorf("%v: a *region.Error wrapped in another", e)
	}

	h := memo.Func(newRegion(t, nil), func(context.Context, int) (string, error) { return "", sql.ErrNoRows },
		memo.WithNamespace("users"))
	k, err := h.Key(1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Call(ctx, 1)
	e = wantError(t, err, region.OpGetOrCreate, region.KindCreator, k, t.Name(), sql.ErrNoRows)
	if _, ok := e.Err.(*region.Error); ok {
		t.Errorf("%v: a *region.Error wrapped in another", e)
	}
}

// TestErrorMessageNamesRegionOpKeyKindAndCause: the message says where the error happened and
// why, and leaves out the key of a call without one.
func TestErrorMessageNamesRegionOpKeyKindAndCause(t *testing.T) {
	for _, tc := range []struct {
		e    *region.Error
		want string
	}{
		{&region.Error{Op: region.OpGetOrCreate, Kind: region.KindCreator, Key: "user:1", Region: "users", Err: sql.ErrNoRows},
			`region "users": get_or_create "user:1": creator: sql: no rows in result set`},
		{&region.Error{Op: region.OpInvalidate, Kind: region.KindWrite, Region: "users", Err: errDown},
			`region "users": invalidate: write: connection refused`},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q; want %q", got, tc.want)
		}
		if strings.Count(tc.e.Error(), "region ") != 1 {
			t.Errorf("%q names the region more than once", tc.e.Error())
		}
	}
}
