package region_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/file"
	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/keys"
	"github.com/dogpile-go/dogpile/region"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newRegion returns a region on a fresh memory backend, closed when the test ends.
func newRegion(t *testing.T, b backends.Backend, opts ...region.Option) *region.Region {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	r := region.New(t.Name(), append([]region.Option{region.WithLogger(quiet)}, opts...)...)
	if b == nil {
		b = memory.New()
	}
	if err := r.Configure(b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// newRedisClient returns a client of the Redis at addr (a testserver's), closed when tb ends.
func newRedisClient(tb testing.TB, addr string) *goredis.Client {
	tb.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// counter is a creator that counts its calls and returns "v<n>".
type counter struct{ n atomic.Int32 }

func (c *counter) create(context.Context) (string, error) {
	return fmt.Sprintf("v%d", c.n.Add(1)), nil
}

// gate is a creator that blocks until the test opens it, counting its calls.
type gate struct {
	open  chan struct{}
	calls atomic.Int32
	val   string
}

func newGate(val string) *gate { return &gate{open: make(chan struct{}), val: val} }

func (g *gate) create(ctx context.Context) (string, error) {
	g.calls.Add(1)
	select {
	case <-g.open:
		return g.val, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	r := region.New("lazy")
	v := region.NewView[string](r)
	if _, err := v.GetOrCreate(ctx, "k", (&counter{}).create); !errors.Is(err, region.ErrNotConfigured) {
		t.Fatalf("GetOrCreate before Configure: %v, want ErrNotConfigured", err)
	}
	if _, _, err := v.Get(ctx, "k"); !errors.Is(err, region.ErrNotConfigured) {
		t.Fatalf("Get before Configure: %v, want ErrNotConfigured", err)
	}
	if err := v.Set(ctx, "k", "x"); !errors.Is(err, region.ErrNotConfigured) {
		t.Fatalf("Set before Configure: %v, want ErrNotConfigured", err)
	}
	if err := r.Delete(ctx, "k"); !errors.Is(err, region.ErrNotConfigured) {
		t.Fatalf("Delete before Configure: %v, want ErrNotConfigured", err)
	}
	if r.Configured() || r.Backend() != nil {
		t.Fatal("unconfigured region reports a backend")
	}
	if err := r.Configure(nil); err == nil {
		t.Fatal("Configure(nil) succeeded")
	}
	b := memory.New()
	if err := r.Configure(b); err != nil {
		t.Fatal(err)
	}
	refused := memory.New() // a refused backend stays its caller's to close
	defer refused.Close()
	if err := r.Configure(refused); !errors.Is(err, region.ErrAlreadyConfigured) {
		t.Fatalf("second Configure: %v, want ErrAlreadyConfigured", err)
	}
	if r.Backend() != b || r.Name() != "lazy" {
		t.Fatal("Backend or Name wrong after Configure")
	}
	if got, err := v.GetOrCreate(ctx, "k", (&counter{}).create); err != nil || got != "v1" {
		t.Fatalf("GetOrCreate: (%q, %v)", got, err)
	}
	if _, err := v.GetOrCreate(ctx, "", (&counter{}).create); !errors.Is(err, region.ErrInvalidKey) {
		t.Fatalf("empty key: %v, want ErrInvalidKey", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := v.GetOrCreate(ctx, "k", (&counter{}).create); !errors.Is(err, region.ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
	if err := r.Configure(refused); !errors.Is(err, region.ErrClosed) {
		t.Fatalf("Configure after Close: %v, want ErrClosed", err)
	}
}

func TestNewPanicsOnInvalidOptions(t *testing.T) {
	for name, opts := range map[string][]region.Option{
		"nil expiration func":      {region.WithExpirationFunc(nil)},
		"call setting":             {region.WithBypass()},
		"negative storage ttl":     {region.WithStorageTTL(-1)},
		"storage ttl < expiration": {region.WithExpiration(time.Hour), region.WithStorageTTL(time.Minute)},
		"zero lock timeout":        {region.WithLockTimeout(0)},
		"nil codec":                {region.WithCodec(nil)},
		"no workers":               {region.WithBackgroundRefresh(0)},
		"unknown policy":           {region.WithFailurePolicy(7)},
		"nil logger":               {region.WithLogger(nil)},
		"nil clock":                {region.WithClock(nil)},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				err, _ := recover().(error)
				if !errors.Is(err, region.ErrInvalidOption) {
					t.Fatalf("New panicked with %v, want an error wrapping ErrInvalidOption", err)
				}
			}()
			region.New("bad", opts...)
		})
	}
	// Valid together: a storage TTL longer than the expiration.
	region.New("good", region.WithExpiration(time.Minute), region.WithStorageTTL(time.Hour))
}

func TestNewViewPanicsOnShouldCacheOfAnotherType(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewView[int] with a ShouldCache for string did not panic")
		}
	}()
	region.NewView[int](region.New("x"), region.WithShouldCache(func(string) bool { return true }))
}

// clock is a settable time source for WithClock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) option() region.Option   { return region.WithClock(c.now) }

func TestExpirationLevels(t *testing.T) {
	ctx := context.Background()
	var dynamic atomic.Int64
	dynamic.Store(int64(3 * time.Second))
	tests := []struct {
		name      string
		region    []region.Option
		view      []region.Option
		call      []region.Option
		freshFor  time.Duration // 0: never expires
		checkNext time.Duration // the clock step after which it is still fresh
	}{
		{name: "region default never expires", freshFor: 0},
		{name: "region", region: []region.Option{region.WithExpiration(time.Minute)}, freshFor: time.Minute},
		{name: "region func", region: []region.Option{region.WithExpirationFunc(func() time.Duration { return time.Duration(dynamic.Load()) })}, freshFor: 3 * time.Second},
		{name: "view overrides region", region: []region.Option{region.WithExpiration(time.Minute)}, view: []region.Option{region.WithExpiration(10 * time.Second)}, freshFor: 10 * time.Second},
		{name: "call overrides view", view: []region.Option{region.WithExpiration(10 * time.Second)}, call: []region.Option{region.WithExpiration(time.Hour)}, freshFor: time.Hour},
		{name: "call never overrides region", region: []region.Option{region.WithExpiration(time.Second)}, call: []region.Option{region.WithExpiration(0)}, freshFor: 0},
		{name: "view func", view: []region.Option{region.WithExpirationFunc(func() time.Duration { return 5 * time.Second })}, freshFor: 5 * time.Second},
		{name: "call overrides view func", view: []region.Option{region.WithExpirationFunc(func() time.Duration { return 5 * time.Second })}, call: []region.Option{region.WithExpiration(time.Minute)}, freshFor: time.Minute},
		{name: "call overrides region func", region: []region.Option{region.WithExpirationFunc(func() time.Duration { return time.Second })}, call: []region.Option{region.WithExpiration(time.Minute)}, freshFor: time.Minute},
		{name: "view overrides region func", region: []region.Option{region.WithExpirationFunc(func() time.Duration { return time.Second })}, view: []region.Option{region.WithExpiration(time.Minute)}, freshFor: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			r := newRegion(t, nil, append(tt.region, c.option())...)
			v := region.NewView[string](r, tt.view...)
			cr := &counter{}
			get := func() string {
				t.Helper()
				s, err := v.GetOrCreate(ctx, "k", cr.create, tt.call...)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			if get() != "v1" {
				t.Fatal("first call did not create")
			}
			if tt.freshFor == 0 {
				c.advance(100 * 365 * 24 * time.Hour)
				if got := get(); got != "v1" {
					t.Fatalf("after a century got %q, want v1 (never expires)", got)
				}
				return
			}
			c.advance(tt.freshFor - time.Nanosecond)
			if got := get(); got != "v1" {
				t.Fatalf("just before expiry got %q, want v1", got)
			}
			c.advance(time.Nanosecond)
			if got := get(); got != "v2" {
				t.Fatalf("at expiry got %q, want v2 (regenerated)", got)
			}
		})
	}
}

func TestGetSetDelete(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []string{"values", "bytes"} {
		t.Run(mode, func(t *testing.T) {
			var opts []memory.Option
			if mode == "bytes" {
				opts = append(opts, memory.WithCopy())
			}
			b := memory.New(opts...)
			c := newClock()
			r := newRegion(t, b, c.option(), region.WithExpiration(time.Minute))
			type user struct {
				ID   int64
				Tags []string
			}
			v := region.NewView[*user](r)
			if _, ok, err := v.Get(ctx, "u1"); ok || err != nil {
				t.Fatalf("Get of absent key: ok=%v err=%v", ok, err)
			}
			in := &user{ID: 1, Tags: []string{"a"}}
			if err := v.Set(ctx, "u1", in); err != nil {
				t.Fatal(err)
			}
			got, ok, err := v.Get(ctx, "u1")
			if !ok || err != nil || got.ID != 1 || len(got.Tags) != 1 {
				t.Fatalf("Get after Set: (%+v, %v, %v)", got, ok, err)
			}
			got.Tags[0] = "mutated"
			again, _, _ := v.Get(ctx, "u1")
			if shared := again.Tags[0] == "mutated"; shared != (mode == "values") {
				t.Fatalf("mutation visible to the next Get: %v; want %v in %s mode", shared, mode == "values", mode)
			}
			c.advance(2 * time.Minute)
			if _, ok, _ := v.Get(ctx, "u1"); ok {
				t.Fatal("Get returned an expired value")
			}
			if stale, ok, _ := v.Get(ctx, "u1", region.WithIgnoreExpiration()); !ok || stale.ID != 1 {
				t.Fatal("Get with IgnoreExpiration did not return the expired value")
			}
			if err := v.Delete(ctx, "u1"); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := v.Get(ctx, "u1", region.WithIgnoreExpiration()); ok {
				t.Fatal("Get found a deleted key")
			}
			if err := r.Delete(ctx, "u1"); err != nil {
				t.Fatalf("Delete of an absent key: %v", err)
			}
		})
	}
}

func TestColdKeyCreatedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegion(t, nil, region.WithExpiration(time.Minute))
		v := region.NewView[string](r)
		g := newGate("v")
		const n = 1000
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if s, err := v.GetOrCreate(t.Context(), "cold", g.create); err != nil || s != "v" {
					t.Errorf("got (%q, %v)", s, err)
				}
			})
		}
		synctest.Wait()
		close(g.open)
		wg.Wait()
		if c := g.calls.Load(); c != 1 {
			t.Fatalf("creator ran %d times for %d callers, want 1", c, n)
		}
	})
}

// TestInvalidation checks the difference between the two modes: after Soft, callers are served
// the old value while one regenerates; after Hard, they wait for the new one.
func TestInvalidation(t *testing.T) {
	for _, mode := range []region.Invalidation{region.Soft, region.Hard} {
		t.Run(map[region.Invalidation]string{region.Soft: "soft", region.Hard: "hard"}[mode], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRegion(t, nil)
				v := region.NewView[string](r)
				ctx := t.Context()
				if err := v.Set(ctx, "k", "old"); err != nil {
					t.Fatal(err)
				}
				// No time passes (synctest): the invalidation still covers the write before it.
				if err := r.Invalidate(ctx, mode); err != nil {
					t.Fatal(err)
				}
				if _, ok, _ := v.Get(ctx, "k"); ok {
					t.Fatal("Get returned an invalidated value as fresh")
				}
				_, staleOK, _ := v.Get(ctx, "k", region.WithIgnoreExpiration())
				if staleOK != (mode == region.Soft) {
					t.Fatalf("Get(IgnoreExpiration) after invalidation found=%v, want %v", staleOK, mode == region.Soft)
				}

				g := newGate("new")
				results := make(chan string, 11)
				for range 11 {
					go func() {
						s, err := v.GetOrCreate(ctx, "k", g.create)
						if err != nil {
							t.Error(err)
						}
						results <- s
					}()
				}
				synctest.Wait() // one caller is in the creator; the others returned or wait
				if mode == region.Soft {
					for range 10 {
						if s := <-results; s != "old" {
							t.Fatalf("after a soft invalidation a caller got %q, want old while one regenerates", s)
						}
					}
					if len(results) != 0 {
						t.Fatal("the regenerating caller returned before its creator")
					}
				} else if len(results) != 0 {
					t.Fatalf("after a hard invalidation %d callers returned before the creation", len(results))
				}
				close(g.open)
				want := map[region.Invalidation]int{region.Soft: 1, region.Hard: 11}[mode]
				for range want {
					if s := <-results; s != "new" {
						t.Fatalf("got %q, want new", s)
					}
				}
				if g.calls.Load() != 1 {
					t.Fatalf("creator ran %d times, want 1", g.calls.Load())
				}
				// Values created after the invalidation are fresh.
				if s, ok, _ := v.Get(ctx, "k"); !ok || s != "new" {
					t.Fatalf("after regeneration Get = (%q, %v)", s, ok)
				}
			})
		})
	}
	for _, mode := range []region.Invalidation{0, 9} {
		if err := region.New("x").Invalidate(context.Background(), mode); err == nil {
			t.Fatalf("Invalidate accepted mode %d", mode)
		}
	}
}

func TestInvalidationDuringCreationApplies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegion(t, nil)
		v := region.NewView[string](r)
		g := newGate("read-before-invalidation")
		done := make(chan string)
		go func() {
			s, _ := v.GetOrCreate(t.Context(), "k", g.create)
			done <- s
		}()
		synctest.Wait()
		_ = r.Invalidate(t.Context(), region.Hard) // the data the creator read may be out of date
		close(g.open)
		<-done
		if _, ok, _ := v.Get(t.Context(), "k", region.WithIgnoreExpiration()); ok {
			t.Fatal("a value whose creation began before a hard invalidation survived it")
		}
	})
}

func TestShouldCache(t *testing.T) {
	ctx := context.Background()
	notEmpty := func(s string) bool { return s != "" }
	tests := []struct {
		name   string
		region []region.Option
		view   []region.Option
		call   []region.Option
		value  string
		stored bool
	}{
		{name: "default stores", value: "x", stored: true},
		{name: "region says no", region: []region.Option{region.WithShouldCache(func(any) bool { return false })}, value: "x"},
		{name: "view says no", view: []region.Option{region.WithShouldCache(notEmpty)}, value: ""},
		{name: "view says yes", view: []region.Option{region.WithShouldCache(notEmpty)}, value: "x", stored: true},
		{name: "call says no", call: []region.Option{region.WithShouldCache(func(string) bool { return false })}, value: "x"},
		{name: "view yes call no", view: []region.Option{region.WithShouldCache(notEmpty)}, call: []region.Option{region.WithShouldCache(func(string) bool { return false })}, value: "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRegion(t, nil, tt.region...)
			v := region.NewView[string](r, tt.view...)
			calls := 0
			create := func(context.Context) (string, error) { calls++; return tt.value, nil }
			for range 2 {
				if s, err := v.GetOrCreate(ctx, "k", create, tt.call...); err != nil || s != tt.value {
					t.Fatalf("GetOrCreate = (%q, %v), want (%q, nil)", s, err, tt.value)
				}
			}
			_, found, _ := v.Get(ctx, "k")
			if found != tt.stored {
				t.Fatalf("stored = %v, want %v", found, tt.stored)
			}
			if want := map[bool]int{true: 1, false: 2}[tt.stored]; calls != want {
				t.Fatalf("creator ran %d times in 2 calls, want %d", calls, want)
			}
		})
	}
}

func TestCreatorErrorAndPanic(t *testing.T) {
	boom := errors.New("boom")
	for name, fail := range map[string]func() (string, error){
		"error": func() (string, error) { return "", boom },
		"panic": func() (string, error) { panic(boom) },
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRegion(t, nil)
				v := region.NewView[string](r)
				release := make(chan struct{})
				var calls atomic.Int32
				create := func(context.Context) (string, error) {
					calls.Add(1)
					<-release
					return fail()
				}
				var wg sync.WaitGroup
				for range 20 {
					wg.Go(func() {
						_, err := v.GetOrCreate(t.Context(), "k", create)
						if !errors.Is(err, boom) {
							t.Errorf("waiter got %v, want boom", err)
						}
						var pe *region.PanicError
						if isPanic := errors.As(err, &pe); isPanic != (name == "panic") {
							t.Errorf("PanicError = %v for a creator %s", isPanic, name)
						}
					})
				}
				synctest.Wait()
				close(release)
				wg.Wait()
				if calls.Load() != 1 {
					t.Fatalf("creator ran %d times, want 1", calls.Load())
				}
				if _, ok, _ := v.Get(t.Context(), "k"); ok {
					t.Fatal("a failed creation stored a value")
				}
				if s, err := v.GetOrCreate(t.Context(), "k", (&counter{}).create); err != nil || s != "v1" {
					t.Fatalf("the next call got (%q, %v), want a new creation", s, err)
				}
			})
		})
	}
}

func TestCancelledCallerReturnsWhileCreationCompletes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegion(t, nil)
		v := region.NewView[string](r)
		g := newGate("v")
		ctx, cancel := context.WithCancel(t.Context())
		impatient := make(chan error)
		go func() {
			_, err := v.GetOrCreate(ctx, "k", g.create)
			impatient <- err
		}()
		patient := make(chan string)
		go func() {
			s, _ := v.GetOrCreate(t.Context(), "k", g.create)
			patient <- s
		}()
		synctest.Wait()
		cancel()
		if err := <-impatient; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled caller got %v, want context.Canceled", err)
		}
		close(g.open)
		if s := <-patient; s != "v" {
			t.Fatalf("patient caller got %q", s)
		}
		if s, ok, _ := v.Get(t.Context(), "k"); !ok || s != "v" {
			t.Fatal("the creation was not stored")
		}
		if g.calls.Load() != 1 {
			t.Fatalf("creator ran %d times, want 1", g.calls.Load())
		}
	})
}

func TestBackgroundRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegion(t, nil, region.WithExpiration(time.Minute), region.WithBackgroundRefresh(2))
		v := region.NewView[string](r)
		ctx := t.Context()
		if err := v.Set(ctx, "k", "old"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Minute)
		g := newGate("new")
		// Every caller, the winner too, gets the old value at once.
		for range 10 {
			if s, err := v.GetOrCreate(ctx, "k", g.create); err != nil || s != "old" {
				t.Fatalf("got (%q, %v), want (old, nil) while refreshing in the background", s, err)
			}
		}
		synctest.Wait()
		if g.calls.Load() != 1 {
			t.Fatalf("background creator started %d times, want 1", g.calls.Load())
		}
		close(g.open)
		synctest.Wait()
		if s, ok, _ := v.Get(ctx, "k"); !ok || s != "new" {
			t.Fatalf("after the refresh Get = (%q, %v), want new", s, ok)
		}
	})
}

func TestCloseStopsBackgroundRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := region.New("bg", region.WithExpiration(time.Minute), region.WithBackgroundRefresh(1))
		if err := r.Configure(memory.New()); err != nil {
			t.Fatal(err)
		}
		v := region.NewView[string](r)
		_ = v.Set(t.Context(), "k", "old")
		time.Sleep(2 * time.Minute)
		g := newGate("never")
		if s, _ := v.GetOrCreate(t.Context(), "k", g.create); s != "old" {
			t.Fatalf("got %q", s)
		}
		synctest.Wait()
		if err := r.Close(); err != nil { // cancels the refresh's context and waits for it
			t.Fatal(err)
		}
		if g.calls.Load() != 1 {
			t.Fatal("refresh never started")
		}
	})
}

// faulty wraps a backend and fails every operation while down is set.
type faulty struct {
	backends.Backend
	down atomic.Bool
}

var errDown = errors.New("connection refused")

func (f *faulty) Get(ctx context.Context, k string) ([]byte, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Backend.Get(ctx, k)
}

func (f *faulty) Set(ctx context.Context, k string, v []byte, ttl time.Duration) error {
	if f.down.Load() {
		return errDown
	}
	return f.Backend.Set(ctx, k, v, ttl)
}

func (f *faulty) Delete(ctx context.Context, k string) error {
	if f.down.Load() {
		return errDown
	}
	return f.Backend.Delete(ctx, k)
}

func (f *faulty) Unwrap() backends.Backend { return f.Backend }

func TestFailurePolicy(t *testing.T) {
	ctx := context.Background()
	for _, policy := range []region.FailurePolicy{region.FailOpen, region.FailClosed} {
		t.Run(map[region.FailurePolicy]string{region.FailOpen: "open", region.FailClosed: "closed"}[policy], func(t *testing.T) {
			f := &faulty{Backend: memory.New(memory.WithCopy())}
			var reported []error
			var mu sync.Mutex
			r := newRegion(t, f, region.WithFailurePolicy(policy), region.WithErrorHandler(func(_ context.Context, err error) {
				mu.Lock()
				reported = append(reported, err)
				mu.Unlock()
			}))
			v := region.NewView[string](r)
			f.down.Store(true)
			cr := &counter{}
			s, err := v.GetOrCreate(ctx, "k", cr.create)
			if policy == region.FailOpen {
				if err != nil || s != "v1" {
					t.Fatalf("fail-open GetOrCreate with the backend down = (%q, %v), want the creator's value", s, err)
				}
				if len(reported) < 2 { // the failed read and the failed write
					t.Fatalf("reported %d errors, want the read and the write", len(reported))
				}
			} else if !errors.Is(err, errDown) {
				t.Fatalf("fail-closed GetOrCreate = (%q, %v), want the backend's error", s, err)
			}
			for _, err := range reported {
				if !errors.Is(err, errDown) {
					t.Fatalf("reported %v, which does not wrap the backend error", err)
				}
			}
			if err := r.Delete(ctx, "k"); !errors.Is(err, errDown) {
				t.Fatalf("Delete with the backend down = %v, want its error under any policy", err)
			}
			// The backend comes back: caching resumes.
			f.down.Store(false)
			if s, err := v.GetOrCreate(ctx, "k", cr.create); err != nil {
				t.Fatal(err)
			} else if s2, _ := v.GetOrCreate(ctx, "k", cr.create); s2 != s {
				t.Fatalf("after recovery the value was not cached: %q then %q", s, s2)
			}
		})
	}
}

func TestMalformedAndMistypedEntriesAreMisses(t *testing.T) {
	ctx := context.Background()
	b := memory.New(memory.WithCopy())
	var reports atomic.Int32
	r := newRegion(t, b, region.WithErrorHandler(func(context.Context, error) { reports.Add(1) }))
	v := region.NewView[int](r)
	for name, raw := range map[string][]byte{
		"foreign bytes":   []byte("hello, not an envelope"),
		"truncated":       backends.EncodeEntry(backends.Entry{Created: time.Now().UnixNano(), Payload: []byte("12")})[:7],
		"payload garbage": backends.EncodeEntry(backends.Entry{Created: time.Now().UnixNano(), Payload: []byte("{not json")}),
		"wrong type":      backends.EncodeEntry(backends.Entry{Created: time.Now().UnixNano(), Payload: []byte(`"a string"`)}),
	} {
		t.Run(name, func(t *testing.T) {
			before := reports.Load()
			if err := b.Set(ctx, name, raw, 0); err != nil {
				t.Fatal(err)
			}
			got, err := v.GetOrCreate(ctx, name, func(context.Context) (int, error) { return 7, nil })
			if err != nil || got != 7 {
				t.Fatalf("GetOrCreate over a bad entry = (%d, %v), want a fresh creation", got, err)
			}
			if reports.Load() == before {
				t.Fatal("the bad entry was not reported")
			}
			if n, ok, _ := v.Get(ctx, name); !ok || n != 7 {
				t.Fatal("the bad entry was not replaced")
			}
		})
	}
	t.Run("value of another type", func(t *testing.T) {
		var mistyped atomic.Int32
		r := newRegion(t, nil, region.WithErrorHandler(func(context.Context, error) { mistyped.Add(1) }))
		_ = region.NewView[string](r).Set(ctx, "k", "text")
		n, err := region.NewView[int](r).GetOrCreate(ctx, "k", func(context.Context) (int, error) { return 3, nil })
		if err != nil || n != 3 {
			t.Fatalf("got (%d, %v), want a creation over the mistyped entry", n, err)
		}
		if mistyped.Load() == 0 {
			t.Fatal("the mistyped entry was not reported")
		}
	})
}

func TestKeyMangler(t *testing.T) {
	ctx := context.Background()
	b := memory.New()
	r := newRegion(t, b, region.WithKeyMangler(keys.Chain(keys.SHA1, keys.Prefix("app:"))))
	v := region.NewView[string](r)
	if err := v.Set(ctx, "user:1", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetValue(ctx, "app:"+keys.SHA1("user:1")); err != nil {
		t.Fatalf("value not under the mangled key: %v", err)
	}
	if s, ok, _ := v.Get(ctx, "user:1"); !ok || s != "x" {
		t.Fatal("Get through the mangler missed")
	}
}

func TestSHA1ManglerOnTheHitPathAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	b := memory.New()
	r := newRegion(t, b, region.WithKeyMangler(keys.SHA1), region.WithExpiration(time.Hour))
	v := region.NewView[*string](r)
	x := "x"
	create := func(context.Context) (*string, error) { return &x, nil }
	if _, err := v.GetOrCreate(ctx, "user:1", create); err != nil {
		t.Fatal(err)
	}
	if it, err := b.GetValue(ctx, keys.SHA1("user:1")); err != nil || it.Value != &x {
		t.Fatalf("value not under the mangled key: %v, %v", it, err)
	}
	if got, ok, err := v.Get(ctx, "user:1"); err != nil || !ok || got != &x {
		t.Fatalf("Get through the mangler = %v, %v, %v", got, ok, err)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = v.GetOrCreate(ctx, "user:1", create) }); n != 0 {
		t.Errorf("a GetOrCreate hit through keys.SHA1 allocates %v times, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _, _ = v.Get(ctx, "user:1") }); n != 0 {
		t.Errorf("a Get hit through keys.SHA1 allocates %v times, want 0", n)
	}
}

// locking wraps a backend with a Locker whose lock table the test can see and hold.
type locking struct {
	backends.Backend
	mu      sync.Mutex
	held    map[string]bool
	taken   atomic.Int32
	release atomic.Int32
}

type lockHandle struct {
	l   *locking
	key string
}

func (h lockHandle) Unlock(context.Context) error {
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	delete(h.l.held, h.key)
	h.l.release.Add(1)
	return nil
}

func (l *locking) TryLock(_ context.Context, key string, timeout time.Duration) (backends.Lock, bool, error) {
	if timeout != 7*time.Second {
		return nil, false, fmt.Errorf("lock timeout %v, want the region's 7s", timeout)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[key] {
		return nil, false, nil
	}
	l.held[key] = true
	l.taken.Add(1)
	return lockHandle{l, key}, true, nil
}

func (l *locking) Unwrap() backends.Backend { return l.Backend }

func TestDistributedLockIsTakenAndReleased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The locker sits under a wrapper, as a logging wrapper would put it: the region finds
		// it through Unwrap.
		l := &locking{Backend: memory.New(), held: map[string]bool{}}
		r := newRegion(t, &faulty{Backend: l}, region.WithLockTimeout(7*time.Second), region.WithExpiration(time.Minute))
		v := region.NewView[string](r)
		ctx := t.Context()
		if s, err := v.GetOrCreate(ctx, "k", (&counter{}).create); err != nil || s != "v1" {
			t.Fatalf("cold: (%q, %v)", s, err)
		}
		if l.taken.Load() != 1 || l.release.Load() != 1 {
			t.Fatalf("lock taken %d, released %d times; want 1 and 1", l.taken.Load(), l.release.Load())
		}
		// Another process holds the lock of the expired key: the old value is served, no creation.
		time.Sleep(2 * time.Minute)
		l.mu.Lock()
		l.held["k"] = true
		l.mu.Unlock()
		cr := &counter{}
		if s, err := v.GetOrCreate(ctx, "k", cr.create); err != nil || s != "v1" || cr.n.Load() != 0 {
			t.Fatalf("expired with the lock held elsewhere: (%q, %v) after %d creations, want (v1, nil) after 0", s, err, cr.n.Load())
		}
	})
}

func TestCodecs(t *testing.T) {
	ctx := context.Background()
	type rec struct {
		N int
		S string
	}
	for name, codec := range map[string]region.Codec{"json": region.JSON, "gob": region.Gob} {
		t.Run(name, func(t *testing.T) {
			r := newRegion(t, memory.New(memory.WithCopy()), region.WithCodec(codec))
			v := region.NewView[rec](r)
			if err := v.Set(ctx, "k", rec{N: 4, S: "x"}); err != nil {
				t.Fatal(err)
			}
			if got, ok, err := v.Get(ctx, "k"); !ok || err != nil || got != (rec{4, "x"}) {
				t.Fatalf("round trip = (%+v, %v, %v)", got, ok, err)
			}
		})
	}
	t.Run("raw", func(t *testing.T) {
		r := newRegion(t, memory.New(memory.WithCopy()), region.WithCodec(region.Raw))
		if err := region.NewView[[]byte](r).Set(ctx, "b", []byte{0, 1, 2}); err != nil {
			t.Fatal(err)
		}
		if got, ok, _ := region.NewView[[]byte](r).Get(ctx, "b"); !ok || string(got) != "\x00\x01\x02" {
			t.Fatalf("raw bytes round trip = %q", got)
		}
		if err := region.NewView[string](r).Set(ctx, "s", "text"); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := region.NewView[string](r).Get(ctx, "s"); got != "text" {
			t.Fatalf("raw string round trip = %q", got)
		}
		if err := region.NewView[int](r).Set(ctx, "i", 1); err == nil {
			t.Fatal("Raw encoded an int")
		}
	})
}

func TestRefresh(t *testing.T) {
	ctx := context.Background()
	r := newRegion(t, nil)
	v := region.NewView[string](r)
	cr := &counter{}
	_, _ = v.GetOrCreate(ctx, "k", cr.create)
	if s, err := v.Refresh(ctx, "k", cr.create); err != nil || s != "v2" {
		t.Fatalf("Refresh = (%q, %v), want v2", s, err)
	}
	if s, _, _ := v.Get(ctx, "k"); s != "v2" {
		t.Fatalf("after Refresh Get = %q, want v2", s)
	}
	boom := errors.New("boom")
	if _, err := v.Refresh(ctx, "k", func(context.Context) (string, error) { return "", boom }); !errors.Is(err, boom) {
		t.Fatalf("Refresh with a failing creator = %v", err)
	}
	if s, _, _ := v.Get(ctx, "k"); s != "v2" {
		t.Fatal("a failed Refresh changed the cached value")
	}
}

func TestHitAllocatesNothing(t *testing.T) {
	r := newRegion(t, nil, region.WithExpiration(time.Hour))
	v := region.NewView[*struct{ N int }](r)
	ctx := context.Background()
	create := func(context.Context) (*struct{ N int }, error) { return &struct{ N int }{1}, nil }
	if _, err := v.GetOrCreate(ctx, "k", create); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = v.GetOrCreate(ctx, "k", create) }); n != 0 {
		t.Fatalf("a GetOrCreate hit allocates %v times, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _, _ = v.Get(ctx, "k") }); n != 0 {
		t.Fatalf("a Get hit allocates %v times, want 0", n)
	}
}

// A caller served the old value of an expired key while another regenerates it allocates
// nothing: the herd on an expired key costs what hits cost.
func TestStaleServedAllocatesNothing(t *testing.T) {
	clk := newClock()
	r := newRegion(t, nil, region.WithExpiration(time.Minute), region.WithBackgroundRefresh(1), clk.option())
	v := region.NewView[*struct{ N int }](r)
	ctx := context.Background()
	release := make(chan struct{})
	defer close(release)
	create := func(context.Context) (*struct{ N int }, error) { return &struct{ N int }{1}, nil }
	blocked := func(context.Context) (*struct{ N int }, error) { <-release; return &struct{ N int }{2}, nil }
	if _, err := v.GetOrCreate(ctx, "k", create); err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Minute)
	if _, err := v.GetOrCreate(ctx, "k", blocked); err != nil { // regenerates in the background
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = v.GetOrCreate(ctx, "k", create) }); n != 0 {
		t.Fatalf("a GetOrCreate served the old value allocates %v times, want 0", n)
	}
	if s := v.Stats(); s.Stale < 1000 {
		t.Fatalf("%d calls served stale, want every one of the 1000", s.Stale)
	}
}

// writeFails is a byte backend whose reads work and whose writes fail.
type writeFails struct{ backends.Backend }

func (writeFails) Set(context.Context, string, []byte, time.Duration) error { return errDown }

func TestFailClosedWrites(t *testing.T) {
	ctx := context.Background()
	for _, policy := range []region.FailurePolicy{region.FailOpen, region.FailClosed} {
		b := memory.New(memory.WithCopy())
		r := newRegion(t, writeFails{b}, region.WithFailurePolicy(policy))
		t.Cleanup(func() { b.Close() })
		v := region.NewView[string](r)
		create := (&counter{}).create
		for name, call := range map[string]func() (string, error){
			"GetOrCreate": func() (string, error) { return v.GetOrCreate(ctx, "k", create) },
			"Refresh":     func() (string, error) { return v.Refresh(ctx, "k", create) },
		} {
			s, err := call()
			if policy == region.FailClosed && !errors.Is(err, errDown) {
				t.Fatalf("fail-closed %s with a failing write = (%q, %v), want the write error", name, s, err)
			}
			if policy == region.FailOpen && (err != nil || s == "") {
				t.Fatalf("fail-open %s with a failing write = (%q, %v), want the created value", name, s, err)
			}
		}
	}
}

func TestFailClosedReadDoesNotCreate(t *testing.T) {
	f := &faulty{Backend: memory.New(memory.WithCopy())}
	r := newRegion(t, f, region.WithFailurePolicy(region.FailClosed))
	f.down.Store(true)
	cr := &counter{}
	if _, err := region.NewView[string](r).GetOrCreate(context.Background(), "k", cr.create); !errors.Is(err, errDown) {
		t.Fatalf("got %v, want the read error", err)
	}
	if cr.n.Load() != 0 {
		t.Fatal("the creator ran although the read failed under FailClosed")
	}
}

// lockFails is a backend whose distributed lock is down.
type lockFails struct{ backends.Backend }

func (lockFails) TryLock(context.Context, string, time.Duration) (backends.Lock, bool, error) {
	return nil, false, errDown
}

func TestLockErrorPolicy(t *testing.T) {
	ctx := context.Background()
	for _, policy := range []region.FailurePolicy{region.FailOpen, region.FailClosed} {
		b := memory.New()
		t.Cleanup(func() { b.Close() })
		var reports atomic.Int32
		r := newRegion(t, lockFails{b}, region.WithFailurePolicy(policy),
			region.WithErrorHandler(func(context.Context, error) { reports.Add(1) }))
		s, err := region.NewView[string](r).GetOrCreate(ctx, "k", (&counter{}).create)
		if policy == region.FailOpen && (err != nil || s != "v1") {
			t.Fatalf("fail-open with the lock down = (%q, %v), want a creation without the lock", s, err)
		}
		if policy == region.FailClosed && !errors.Is(err, errDown) {
			t.Fatalf("fail-closed with the lock down = (%q, %v), want the lock error", s, err)
		}
		if reports.Load() == 0 {
			t.Fatal("the lock error was not reported")
		}
	}
}

func TestHardInvalidationOnByteBackend(t *testing.T) {
	ctx := context.Background()
	r := newRegion(t, memory.New(memory.WithCopy()))
	v := region.NewView[string](r)
	_ = v.Set(ctx, "k", "old")
	_ = r.Invalidate(ctx, region.Hard)
	if _, ok, _ := v.Get(ctx, "k", region.WithIgnoreExpiration()); ok {
		t.Fatal("a hard-invalidated entry read from bytes was found")
	}
}

// TestCreationTimeout: a creator that never returns holds its key only for the creation timeout
// (by default, on a backend with a distributed lock, the lock timeout): its callers then get
// ErrCreationTimeout, and the next call creates again.
func TestCreationTimeout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		backend func(t *testing.T) backends.Backend
		opts    []region.Option
		want    time.Duration
	}{
		{"set", func(*testing.T) backends.Backend { return memory.New() },
			[]region.Option{region.WithCreationTimeout(2 * time.Second)}, 2 * time.Second},
		{"the lock timeout by default, with a distributed lock", func(t *testing.T) backends.Backend {
			b, err := file.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return b
		}, []region.Option{region.WithLockTimeout(5 * time.Second)}, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.backend(t)
			synctest.Test(t, func(t *testing.T) {
				r := newRegion(t, b, tc.opts...)
				v := region.NewView[string](r)
				stuck := make(chan struct{})
				defer close(stuck)
				start := time.Now()
				_, err := v.GetOrCreate(context.Background(), "k", func(context.Context) (string, error) { <-stuck; return "late", nil })
				if !errors.Is(err, region.ErrCreationTimeout) {
					t.Fatalf("got %v, want ErrCreationTimeout", err)
				}
				if d := time.Since(start); d != tc.want {
					t.Errorf("returned after %v, want %v", d, tc.want)
				}
				got, err := v.GetOrCreate(context.Background(), "k", func(context.Context) (string, error) { return "next", nil })
				if err != nil || got != "next" {
					t.Errorf("the next call: (%q, %v), want (next, nil)", got, err)
				}
			})
		})
	}
	if err := region.New("x").ConfigureWith(memory.New(), region.WithCreationTimeout(-time.Second)); err == nil {
		t.Error("a negative creation timeout was accepted")
	}
}

// TestNoCreationTimeoutByDefaultWithoutADistributedLock: on the memory backend a creation is not
// bounded unless a timeout is set: it runs on its caller's goroutine, as a plain call would, and
// a creator slower than the default lock timeout still gives its value to its caller and to the
// callers that joined it.
func TestNoCreationTimeoutByDefaultWithoutADistributedLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegion(t, memory.New())
		v := region.NewView[string](r)
		slow := 2 * region.DefaultLockTimeout
		joined := make(chan string, 1)
		got, err := v.GetOrCreate(context.Background(), "k", func(context.Context) (string, error) {
			go func() {
				got, err := v.GetOrCreate(context.Background(), "k", func(context.Context) (string, error) { return "second", nil })
				joined <- fmt.Sprintf("%s %v", got, err)
			}()
			time.Sleep(slow)
			return "slow", nil
		})
		if err != nil || got != "slow" {
			t.Fatalf("got (%q, %v), want (slow, nil)", got, err)
		}
		if got := <-joined; got != "slow <nil>" {
			t.Errorf("the caller that joined got %s, want slow <nil>", got)
		}
	})
}

// TestCreationTimeoutReleasesTheFleetLockOnRedis: a process whose creator hangs (it ignores its
// context) while the lock watchdog keeps its Redis lock alive holds the key for the whole fleet
// only for the creation timeout: then the lock is released and another process creates the key at
// once.
func TestCreationTimeoutReleasesTheFleetLockOnRedis(t *testing.T) {
	srv := testserver.StartRedis(t)
	open := func() *region.View[string] {
		r := region.New("hung", region.WithCreationTimeout(500*time.Millisecond),
			region.WithLockTimeout(time.Minute), region.WithLogger(slog.New(slog.DiscardHandler)))
		if err := r.Configure(redis.New(newRedisClient(t, srv.Addr), redis.WithLockWatchdog())); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return region.NewView[string](r)
	}
	hung, other := open(), open()
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) }) // before the regions close: Close waits for the creator
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, err := hung.GetOrCreate(context.Background(), "k", func(context.Context) (string, error) {
			close(started)
			<-stuck
			return "late", nil
		})
		errc <- err
	}()
	<-started
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	got, err := other.GetOrCreate(ctx, "k", func(context.Context) (string, error) { return "fresh", nil })
	if err != nil || got != "fresh" {
		t.Fatalf("the other process: (%q, %v) after %v, want (fresh, nil)", got, err, time.Since(start))
	}
	t.Logf("the other process created the key %v after the hung one took the lock (creation timeout 500ms, lock timeout 1m, watchdog on)", time.Since(start))
	if err := <-errc; !errors.Is(err, region.ErrCreationTimeout) {
		t.Errorf("the hung process's caller: %v, want ErrCreationTimeout", err)
	}
}

// TestCloseStopsTheLocalCache: Close closes the local cache given to WithLocalCache, so that
// no goroutine of the region's is left behind.
func TestCloseStopsTheLocalCache(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	r := region.New("l1", region.WithLocalCache(memory.New(), time.Minute))
	if err := r.Configure(newBatchBackend(newShared())); err != nil {
		t.Fatal(err)
	}
	v := region.NewView[string](r)
	if _, err := v.GetOrCreate(t.Context(), "k", func(context.Context) (string, error) { return "v", nil }); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// A View[int] caller never joins a creation started by a View[string] on the same key: it runs its
// own creator and never gets an in-band zero value.
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

// ShouldCache with an interface type V sees a nil result too, and decides whether the nil is
// cached.
func TestShouldCacheSeesNilInterface(t *testing.T) {
	ctx := context.Background()
	r := newRegion(t, nil)
	var consulted atomic.Bool
	v := region.NewView[fmt.Stringer](r, region.WithShouldCache(func(s fmt.Stringer) bool {
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

// An invalidation covers a write made in the same clock reading, without any sleep between them.
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

// A background refresh that fails (error or panic) is reported to the error handler and the logger,
// although the caller got the stale value and nobody waits for it.
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

// Delete reaches a creation in flight: a caller that arrives after Delete does not join the
// creation that began before it, and that creation's value, read before the write, is not stored.
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

// A hard invalidation detaches the creations in flight: their values are not stored, and callers
// that arrive after Invalidate returned do not get them.
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

// A negative expiration, from a per-call option or a computed ExpirationFunc ("time until the next
// deploy", gone negative), means "already expired", never "never expires";
// region.WithExpiration(-1) panics at construction.
func TestNegativeExpirationMeansExpired(t *testing.T) {
	ctx := context.Background()
	for name, opt := range map[string]region.Option{
		"Expiration(-1s)":     region.WithExpiration(-time.Second),
		"ExpirationFunc(-1s)": region.WithExpirationFunc(func() time.Duration { return -time.Second }),
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

// Close makes every caller still waiting for a creation fail with ErrClosed, not context.Canceled,
// so callers that treat Canceled as "my client went away" do not drop it silently.
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

// A nil stored by a View of an interface type is a miss for a View of any other type: the type
// check comes before the entry counts as found.
func TestNilInterfaceEntryIsAMissForOtherTypes(t *testing.T) {
	ctx := context.Background()
	r := newRegion(t, nil)
	_ = region.NewView[error](r).Set(ctx, "k", nil)
	if s, ok, err := region.NewView[string](r).Get(ctx, "k"); ok {
		t.Errorf("View[string].Get of a nil stored by View[error] = (%q, %v, %v), want a miss", s, ok, err)
	}
}

// A Set is never overwritten by a creation of the key that was already in progress.
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

// Close, which waits for the creations in progress, completes when a creator invalidates the region
// (on Close's cancellation, say): Invalidate on a closed region does not wait for Close.
func TestCloseWithInvalidatingCreator(t *testing.T) {
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
