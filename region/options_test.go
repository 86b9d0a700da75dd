package region_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
)

// level is one place an Option may be given: get builds a region, a view or handle, and returns
// a get-or-create of an int under one key, with opt given at that level alone.
type level struct {
	name string
	make func(t *testing.T, clk *clock, base []region.Option, opt region.Option, create func(context.Context) (int, error)) (get func(context.Context) (int, error), view *region.View[int])
}

var levels = []level{
	{"region", func(t *testing.T, clk *clock, base []region.Option, opt region.Option, create func(context.Context) (int, error)) (func(context.Context) (int, error), *region.View[int]) {
		r := levelRegion(t, clk, append(base, opt)...)
		v := region.NewView[int](r)
		return func(ctx context.Context) (int, error) { return v.GetOrCreate(ctx, "k", create) }, v
	}},
	{"view", func(t *testing.T, clk *clock, base []region.Option, opt region.Option, create func(context.Context) (int, error)) (func(context.Context) (int, error), *region.View[int]) {
		r := levelRegion(t, clk, base...)
		v := region.NewView[int](r, opt)
		return func(ctx context.Context) (int, error) { return v.GetOrCreate(ctx, "k", create) }, v
	}},
	{"handle", func(t *testing.T, clk *clock, base []region.Option, opt region.Option, create func(context.Context) (int, error)) (func(context.Context) (int, error), *region.View[int]) {
		r := levelRegion(t, clk, base...)
		h := memo.Func0(r, create, opt, memo.WithNamespace("k"))
		return h.Call, region.NewView[int](r)
	}},
	{"handle call", func(t *testing.T, clk *clock, base []region.Option, opt region.Option, create func(context.Context) (int, error)) (func(context.Context) (int, error), *region.View[int]) {
		r := levelRegion(t, clk, base...)
		h := memo.Func0(r, create, memo.WithNamespace("k")).With(opt)
		return h.Call, region.NewView[int](r)
	}},
	{"call", func(t *testing.T, clk *clock, base []region.Option, opt region.Option, create func(context.Context) (int, error)) (func(context.Context) (int, error), *region.View[int]) {
		r := levelRegion(t, clk, base...)
		v := region.NewView[int](r)
		return func(ctx context.Context) (int, error) { return v.GetOrCreate(ctx, "k", create, opt) }, v
	}},
}

func levelRegion(t *testing.T, clk *clock, opts ...region.Option) *region.Region {
	t.Helper()
	r := region.New("levels", append([]region.Option{clk.option()}, opts...)...)
	if err := r.Configure(memory.New()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// creator counts its calls and returns what next says.
type creator struct {
	calls int
	next  func(call int) (int, error)
}

func (c *creator) create(context.Context) (int, error) {
	c.calls++
	return c.next(c.calls)
}

var errNotFound = errors.New("not found")

// TestEverySettingTakesEffectAtEveryLevel gives each policy setting at one level only (the
// region, a view, a memo handle, a handle's With, one call) and checks the behaviour it names.
func TestEverySettingTakesEffectAtEveryLevel(t *testing.T) {
	ctx := context.Background()
	settings := []struct {
		name  string
		opt   region.Option
		base  []region.Option // at the region, under every level
		check func(t *testing.T, clk *clock, get func(context.Context) (int, error), c *creator)
	}{
		{"WithExpiration", region.WithExpiration(time.Minute), nil, expiresAfter(time.Minute)},
		{"WithExpirationFunc", region.WithExpirationFunc(func() time.Duration { return time.Minute }), nil, expiresAfter(time.Minute)},
		{"WithExpirationFor", region.WithExpirationFor(func(v int, _ error) time.Duration { return time.Duration(v) * time.Second }), nil, expiresAfter(time.Minute)},
		{"WithStaleIfError", region.WithStaleIfError(time.Hour), []region.Option{region.WithExpiration(time.Minute)}, func(t *testing.T, clk *clock, get func(context.Context) (int, error), c *creator) {
			// The value expires after a minute; its regeneration fails and the stale value is
			// served instead.
			c.next = func(call int) (int, error) {
				if call == 1 {
					return 60, nil
				}
				return 0, errors.New("database down")
			}
			mustGet(t, ctx, get, 60)
			clk.advance(2 * time.Minute)
			mustGet(t, ctx, get, 60)
			if c.calls != 2 {
				t.Fatalf("%d creations, want 2 (the failed regeneration)", c.calls)
			}
		}},
		{"WithNegativeCaching", region.WithNegativeCaching(errNotFound, time.Minute), nil, func(t *testing.T, clk *clock, get func(context.Context) (int, error), c *creator) {
			c.next = func(int) (int, error) { return 0, errNotFound }
			for range 3 {
				if _, err := get(ctx); !errors.Is(err, errNotFound) {
					t.Fatalf("err = %v, want errNotFound", err)
				}
			}
			if c.calls != 1 {
				t.Fatalf("%d creations, want 1: the \"not found\" is cached", c.calls)
			}
			clk.advance(2 * time.Minute)
			get(ctx)
			if c.calls != 2 {
				t.Fatalf("%d creations after the negative ttl, want 2", c.calls)
			}
		}},
		{"WithShouldCache", region.WithShouldCache(func(v int) bool { return v != 0 }), nil, func(t *testing.T, clk *clock, get func(context.Context) (int, error), c *creator) {
			c.next = func(call int) (int, error) { return call - 1, nil } // 0 first: not cached
			mustGet(t, ctx, get, 0)
			mustGet(t, ctx, get, 1)
			mustGet(t, ctx, get, 1)
			if c.calls != 2 {
				t.Fatalf("%d creations, want 2: the 0 was not cached, the 1 was", c.calls)
			}
		}},
		{"WithEarlyRefresh", region.WithEarlyRefresh(1e9), []region.Option{region.WithExpiration(time.Hour)}, func(t *testing.T, clk *clock, get func(context.Context) (int, error), c *creator) {
			// A creation that takes a second, and a beta so large that a value in the last fifth
			// of its expiration is refreshed early: in the background, its reader served the
			// current value.
			refreshed := make(chan int, 1)
			c.next = func(call int) (int, error) {
				clk.advance(time.Second)
				if call == 2 {
					refreshed <- call
				}
				return call, nil
			}
			mustGet(t, ctx, get, 1)
			clk.advance(50 * time.Minute)
			mustGet(t, ctx, get, 1)
			select {
			case <-refreshed:
			case <-time.After(time.Minute): // a fail-safe, not a measure: the refresh starts at once
				t.Fatal("no early refresh")
			}
		}},
		{"WithCreationTimeout", region.WithCreationTimeout(time.Millisecond), nil, func(t *testing.T, clk *clock, get func(context.Context) (int, error), c *creator) {
			block := make(chan struct{})
			defer close(block)
			c.next = func(int) (int, error) { <-block; return 1, nil }
			if _, err := get(ctx); !errors.Is(err, region.ErrCreationTimeout) {
				t.Fatalf("err = %v, want ErrCreationTimeout", err)
			}
		}},
	}
	for _, s := range settings {
		for _, l := range levels {
			t.Run(s.name+"/"+l.name, func(t *testing.T) {
				clk, c := newClock(), &creator{next: func(call int) (int, error) { return 60, nil }}
				get, _ := l.make(t, clk, s.base, s.opt, c.create)
				s.check(t, clk, get, c)
			})
		}
	}
}

// expiresAfter checks that a value of 60 created now is fresh for d and expired after.
func expiresAfter(d time.Duration) func(t *testing.T, clk *clock, get func(context.Context) (int, error), c *creator) {
	return func(t *testing.T, clk *clock, get func(context.Context) (int, error), c *creator) {
		ctx := context.Background()
		c.next = func(call int) (int, error) { return 60, nil }
		get(ctx)
		clk.advance(d - time.Second)
		get(ctx)
		if c.calls != 1 {
			t.Fatalf("%d creations before the expiration, want 1", c.calls)
		}
		clk.advance(2 * time.Second)
		get(ctx)
		if c.calls != 2 {
			t.Fatalf("%d creations after the expiration, want 2", c.calls)
		}
	}
}

func mustGet(t *testing.T, ctx context.Context, get func(context.Context) (int, error), want int) {
	t.Helper()
	got, err := get(ctx)
	if err != nil || got != want {
		t.Fatalf("got %d, %v; want %d", got, err, want)
	}
}

// TestBadOptionGivesOneErrorAtEveryLevel gives each invalid option at every level: New, NewView
// and memo's constructors panic with its error, a call returns it (in a *region.Error of kind
// usage), and it is the same error value.
func TestBadOptionGivesOneErrorAtEveryLevel(t *testing.T) {
	bad := []region.Option{
		region.WithExpirationFunc(nil),
		region.WithExpirationFor[int](nil),
		region.WithEarlyRefresh(-1),
		region.WithStaleIfError(-time.Second),
		region.WithNegativeCaching(nil, time.Minute),
		region.WithNegativeCaching(errNotFound, 0),
		region.WithShouldCache[int](nil),
		region.WithCreationTimeout(-time.Second),
	}
	for _, opt := range bad {
		var first error
		for _, l := range levels {
			err := levelError(t, l, opt)
			if !errors.Is(err, region.ErrInvalidOption) {
				t.Fatalf("%s: %v, want an error wrapping ErrInvalidOption", l.name, err)
			}
			if first == nil {
				first = err // New panics with the option's own error
				continue
			}
			if !errors.Is(err, first) {
				t.Errorf("at %s: %q, which does not wrap the region's %q", l.name, err, first)
			}
			if l.name == "call" || l.name == "handle call" {
				var re *region.Error
				if !errors.As(err, &re) || re.Kind != region.KindUsage {
					t.Errorf("at %s: %v, want a *region.Error of kind usage", l.name, err)
				}
			}
		}
	}
}

// levelError is the error opt gives at level l: what the constructor panicked with, or what the
// call returned.
func levelError(t *testing.T, l level, opt region.Option) (err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			err, _ = p.(error)
			if err == nil {
				err = fmt.Errorf("panic with a non-error: %v", p)
			}
		}
	}()
	get, _ := l.make(t, newClock(), nil, opt, func(context.Context) (int, error) { return 1, nil })
	_, err = get(context.Background())
	return err
}

// TestOptionAtAWrongLevelIsAnError gives settings where they make no sense: a region's setting
// to a view or a call, a call's to a region or a view, a handle's to a region or a call.
func TestOptionAtAWrongLevelIsAnError(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	r := levelRegion(t, clk)
	v := region.NewView[int](r)
	create := func(context.Context) (int, error) { return 1, nil }
	wantInvalid := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, region.ErrInvalidOption) {
			t.Errorf("%s: %v, want an error wrapping ErrInvalidOption", what, err)
		}
	}
	for _, opt := range []region.Option{region.WithCodec(region.Gob), memo.WithNamespace("ns")} {
		_, err := v.GetOrCreate(ctx, "k", create, opt)
		wantInvalid("call", err)
		wantInvalid("view", levelPanic(func() { region.NewView[int](r, opt) }))
	}
	wantInvalid("region given a call's", levelPanic(func() { region.New("x", region.WithBypass()) }))
	wantInvalid("view given a call's", levelPanic(func() { region.NewView[int](r, region.WithBypass()) }))
	wantInvalid("region given a handle's", levelPanic(func() { region.New("x", memo.WithKeyGenerator(nil)) }))
	wantInvalid("region given a view's name", levelPanic(func() { region.New("x", region.WithName("n")) }))
	_, err := v.GetOrCreate(ctx, "k", create, region.WithName("n"))
	wantInvalid("call given a view's name", err)
	wantInvalid("an empty name", levelPanic(func() { region.NewView[int](r, region.WithName("")) }))
	_, err = memo.Func0(r, create, memo.WithNamespace("n")).With(memo.WithNamespace("m")).Call(ctx)
	wantInvalid("handle call given a handle's", err)
	_, err = v.GetOrCreate(ctx, "k", create, region.WithShouldCache(func(string) bool { return true }))
	wantInvalid("call given a predicate of another type", err)
}

func levelPanic(f func()) (err error) {
	defer func() { err, _ = recover().(error) }()
	f()
	return nil
}

// TestBypassRunsTheCreatorAndStores: a call with WithBypass does not read what is cached; it
// creates, stores, and the next plain call gets the new value.
func TestBypassRunsTheCreatorAndStores(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	r := levelRegion(t, clk)
	c := &creator{next: func(call int) (int, error) { return call, nil }}
	h := memo.Func0(r, c.create, memo.WithNamespace("bypass"))
	mustGet(t, ctx, h.Call, 1)
	mustGet(t, ctx, h.With(region.WithBypass()).Call, 2)
	mustGet(t, ctx, h.Call, 2)
	v := region.NewView[int](r)
	got, err := v.GetOrCreate(ctx, "k", c.create, region.WithBypass())
	if err != nil || got != 3 {
		t.Fatalf("view bypass: %d, %v", got, err)
	}
	m := memo.Multi(r, func(_ context.Context, ids []int) (map[int]int, error) {
		c.calls++
		out := map[int]int{}
		for _, id := range ids {
			out[id] = c.calls
		}
		return out, nil
	}, memo.WithNamespace("multi"))
	m.Call(ctx, []int{1})
	got2, err := m.With(region.WithBypass()).Call(ctx, []int{1})
	if err != nil || got2[1] != c.calls {
		t.Fatalf("multi bypass: %v, %v; want the value of creation %d", got2, err, c.calls)
	}
}

// TestIgnoreExpirationAtViewAndCall: Get returns an expired value when the view or the call says
// so.
func TestIgnoreExpirationAtViewAndCall(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	r := levelRegion(t, clk, region.WithExpiration(time.Minute))
	plain := region.NewView[int](r)
	lenient := region.NewView[int](r, region.WithIgnoreExpiration())
	if err := plain.Set(ctx, "k", 7); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Hour)
	if _, ok, _ := plain.Get(ctx, "k"); ok {
		t.Fatal("plain Get returned an expired value")
	}
	if v, ok, _ := plain.Get(ctx, "k", region.WithIgnoreExpiration()); !ok || v != 7 {
		t.Fatalf("call: %d, %v", v, ok)
	}
	if v, ok, _ := lenient.Get(ctx, "k"); !ok || v != 7 {
		t.Fatalf("view: %d, %v", v, ok)
	}
}

// TestExpirationForSeesTheValueAndNotFound: the expiration chosen per value is read from the
// value, and a cached "not found" gets what the function says for the negative-caching error.
func TestExpirationForSeesTheValueAndNotFound(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	r := levelRegion(t, clk, region.WithNegativeCaching(errNotFound, time.Hour))
	v := region.NewView[[]string](r, region.WithExpirationFor(func(v []string, neg error) time.Duration {
		switch {
		case neg != nil:
			return time.Second
		case len(v) == 0:
			return 10 * time.Second // empty results are retried soon
		}
		return time.Hour
	}))
	calls := map[string]int{}
	get := func(key string, val []string, err error) {
		v.GetOrCreate(ctx, key, func(context.Context) ([]string, error) { calls[key]++; return val, err })
	}
	get("full", []string{"a"}, nil)
	get("empty", []string{}, nil)
	get("missing", nil, errNotFound)
	clk.advance(30 * time.Second)
	get("full", []string{"a"}, nil)
	get("empty", []string{}, nil)
	get("missing", nil, errNotFound)
	want := map[string]int{"full": 1, "empty": 2, "missing": 2}
	for k, n := range want {
		if calls[k] != n {
			t.Errorf("%s: %d creations, want %d", k, calls[k], n)
		}
	}
}

// TestPrecedenceCallOverHandleOverViewOverRegion: the most specific level that sets a setting
// decides.
func TestPrecedenceCallOverHandleOverViewOverRegion(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	r := levelRegion(t, clk, region.WithExpiration(time.Second))
	c := &creator{next: func(call int) (int, error) { return call, nil }}
	h := memo.Func0(r, c.create, memo.WithNamespace("p"), region.WithExpiration(time.Minute))
	call := h.With(region.WithExpiration(time.Hour))
	mustGet(t, ctx, call.Call, 1)
	clk.advance(30 * time.Minute)
	mustGet(t, ctx, call.Call, 1) // the call's hour, not the handle's minute
	mustGet(t, ctx, h.Call, 2)    // the handle's minute, not the region's second
}

// TestCreationTimeoutOfABatchCall: a batch call's own creation timeout bounds its creator.
func TestCreationTimeoutOfABatchCall(t *testing.T) {
	r := levelRegion(t, newClock())
	v := region.NewView[int](r)
	block := make(chan struct{})
	defer close(block)
	_, err := v.GetOrCreateMulti(context.Background(), []string{"a", "b"}, func(context.Context, []string) (map[string]int, error) {
		<-block
		return nil, nil
	}, region.WithCreationTimeout(time.Millisecond))
	if !errors.Is(err, region.ErrCreationTimeout) {
		t.Fatalf("err = %v, want ErrCreationTimeout", err)
	}
}
