package memo_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dogpile-go/dogpile/backends/memcached"
	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/internal/counting"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/keys"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type user struct {
	ID   int64
	Name string
}

func newRegion(t testing.TB, opts ...region.Option) *region.Region {
	t.Helper()
	r := region.New("memo-test", append([]region.Option{region.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err := r.Configure(memory.New()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// loads counts calls of loadUser, a package-level function so its default namespace is stable.
var loads atomic.Int32

func loadUser(_ context.Context, id int64) (*user, error) {
	loads.Add(1)
	return &user{ID: id, Name: fmt.Sprintf("user-%d", id)}, nil
}

func TestStampedeOnColdKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegion(t, region.WithExpiration(time.Minute))
		release := make(chan struct{})
		var calls atomic.Int32
		slow := memo.Func(r, func(ctx context.Context, id int64) (*user, error) {
			calls.Add(1)
			<-release
			return &user{ID: id}, nil
		}, memo.WithNamespace("slow"))
		const n = 1000
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				u, err := slow.Call(t.Context(), 7)
				if err != nil || u.ID != 7 {
					t.Errorf("Call = (%v, %v)", u, err)
				}
			})
		}
		synctest.Wait() // all 1,000 callers are waiting on one creation
		close(release)
		wg.Wait()
		if c := calls.Load(); c != 1 {
			t.Fatalf("function ran %d times for %d concurrent callers, want 1", c, n)
		}
	})
}

func TestExpiredServesOldValueWhileOneRegenerates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegion(t, region.WithExpiration(time.Minute))
		var version atomic.Int32
		gate := make(chan struct{})
		f := memo.Func(r, func(ctx context.Context, id int64) (string, error) {
			if v := version.Add(1); v > 1 {
				<-gate
			}
			return fmt.Sprintf("v%d", version.Load()), nil
		}, memo.WithNamespace("versions"))
		ctx := t.Context()
		if s, _ := f.Call(ctx, 1); s != "v1" {
			t.Fatalf("first call = %q", s)
		}
		time.Sleep(2 * time.Minute)
		winner := make(chan string)
		go func() {
			s, _ := f.Call(ctx, 1)
			winner <- s
		}()
		synctest.Wait() // the winner is regenerating, blocked on gate
		var wg sync.WaitGroup
		var old atomic.Int32
		for range 100 {
			wg.Go(func() {
				if s, err := f.Call(ctx, 1); err == nil && s == "v1" {
					old.Add(1)
				}
			})
		}
		wg.Wait() // returns although the regeneration is still blocked: nobody waited
		if old.Load() != 100 {
			t.Fatalf("%d of 100 callers got the old value, want all", old.Load())
		}
		close(gate)
		if s := <-winner; s != "v2" {
			t.Fatalf("winner = %q, want v2", s)
		}
		if version.Load() != 2 {
			t.Fatalf("function ran %d times, want 2", version.Load())
		}
	})
}

func TestCreatorPanicReachesWaitersAndNothingLeaks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegion(t)
		release := make(chan struct{})
		var calls atomic.Int32
		f := memo.Func(r, func(ctx context.Context, id int) (int, error) {
			if calls.Add(1) == 1 {
				<-release
				panic("database driver bug")
			}
			return id, nil
		}, memo.WithNamespace("panicky"))
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				var pe *region.PanicError
				if _, err := f.Call(t.Context(), 1); !errors.As(err, &pe) || pe.Value != "database driver bug" {
					t.Errorf("got %v, want a PanicError", err)
				}
			})
		}
		synctest.Wait()
		close(release)
		wg.Wait()
		if n, err := f.Call(t.Context(), 1); err != nil || n != 1 {
			t.Fatalf("after the panic Call = (%d, %v), want a new creation", n, err)
		}
	})
}

func TestCancelledCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegion(t)
		release := make(chan struct{})
		f := memo.Func(r, func(ctx context.Context, id int) (int, error) {
			<-release
			return id * 10, nil
		}, memo.WithNamespace("cancel"))
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error)
		go func() {
			_, err := f.Call(ctx, 1)
			errc <- err
		}()
		got := make(chan int)
		go func() {
			n, _ := f.Call(t.Context(), 1)
			got <- n
		}()
		synctest.Wait()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled caller = %v", err)
		}
		close(release)
		if n := <-got; n != 10 {
			t.Fatalf("other caller = %d", n)
		}
	})
}

func TestHandleMethods(t *testing.T) {
	ctx := context.Background()
	r := newRegion(t)
	loads.Store(0)
	h := memo.Func(r, loadUser)

	key, err := h.Key(42)
	if err != nil {
		t.Fatal(err)
	}
	if want := "github.com/dogpile-go/dogpile/memo_test.loadUser|i64:42"; key != want {
		t.Fatalf("Key = %q, want %q (the function's qualified name and the argument)", key, want)
	}
	if _, ok, _ := h.Cached(ctx, 42); ok {
		t.Fatal("Cached found a value before any call")
	}
	if loads.Load() != 0 {
		t.Fatal("Cached called the function")
	}
	u, err := h.Call(ctx, 42)
	if err != nil || u.Name != "user-42" {
		t.Fatalf("Call = (%v, %v)", u, err)
	}
	if u2, _ := h.Call(ctx, 42); u2 != u || loads.Load() != 1 {
		t.Fatalf("second Call did not hit: %d loads", loads.Load())
	}
	if c, ok, _ := h.Cached(ctx, 42); !ok || c != u {
		t.Fatal("Cached missed after Call")
	}
	if err := h.Set(ctx, 42, &user{ID: 42, Name: "set"}); err != nil {
		t.Fatal(err)
	}
	if c, _ := h.Call(ctx, 42); c.Name != "set" || loads.Load() != 1 {
		t.Fatalf("after Set Call = %v with %d loads", c, loads.Load())
	}
	if c, err := h.Refresh(ctx, 42); err != nil || c.Name != "user-42" || loads.Load() != 2 {
		t.Fatalf("Refresh = (%v, %v) with %d loads", c, err, loads.Load())
	}
	if err := h.Invalidate(ctx, 42); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := h.Cached(ctx, 42); ok {
		t.Fatal("Cached found a value after Invalidate")
	}
	if _, err := h.Uncached(ctx, 42); err != nil || loads.Load() != 3 {
		t.Fatal("Uncached did not call the function")
	}
	if _, ok, _ := h.Cached(ctx, 42); ok {
		t.Fatal("Uncached stored a value")
	}
	if _, _ = h.Call(ctx, 42); loads.Load() != 4 {
		t.Fatal("Call after Invalidate did not call the function")
	}
}

func TestArities(t *testing.T) {
	ctx := context.Background()
	r := newRegion(t)
	var calls atomic.Int32

	h0 := memo.Func0(r, func(context.Context) (string, error) { calls.Add(1); return "zero", nil }, memo.WithNamespace("f0"))
	h2 := memo.Func2(r, func(_ context.Context, a string, b int) (string, error) {
		calls.Add(1)
		return fmt.Sprint(a, b), nil
	}, memo.WithNamespace("f2"))
	h3 := memo.Func3(r, func(_ context.Context, a string, b int, c bool) (string, error) {
		calls.Add(1)
		return fmt.Sprint(a, b, c), nil
	}, memo.WithNamespace("f3"))

	type handle struct {
		call, refresh, uncached func() (string, error)
		set                     func(string) error
		cached                  func() (string, bool, error)
		invalidate              func() error
		key                     func() (string, error)
		want, wantKey           string
	}
	handles := map[string]handle{
		"Func0": {
			call: func() (string, error) { return h0.Call(ctx) }, refresh: func() (string, error) { return h0.Refresh(ctx) },
			uncached: func() (string, error) { return h0.Uncached(ctx) }, set: func(s string) error { return h0.Set(ctx, s) },
			cached: func() (string, bool, error) { return h0.Cached(ctx) }, invalidate: func() error { return h0.Invalidate(ctx) },
			key: h0.Key, want: "zero", wantKey: "f0|",
		},
		"Func2": {
			call: func() (string, error) { return h2.Call(ctx, "a b", 1) }, refresh: func() (string, error) { return h2.Refresh(ctx, "a b", 1) },
			uncached: func() (string, error) { return h2.Uncached(ctx, "a b", 1) }, set: func(s string) error { return h2.Set(ctx, "a b", 1, s) },
			cached: func() (string, bool, error) { return h2.Cached(ctx, "a b", 1) }, invalidate: func() error { return h2.Invalidate(ctx, "a b", 1) },
			key: func() (string, error) { return h2.Key("a b", 1) }, want: "a b1", wantKey: "f2|s3:a b,i:1",
		},
		"Func3": {
			call: func() (string, error) { return h3.Call(ctx, "a", 1, true) }, refresh: func() (string, error) { return h3.Refresh(ctx, "a", 1, true) },
			uncached: func() (string, error) { return h3.Uncached(ctx, "a", 1, true) }, set: func(s string) error { return h3.Set(ctx, "a", 1, true, s) },
			cached: func() (string, bool, error) { return h3.Cached(ctx, "a", 1, true) }, invalidate: func() error { return h3.Invalidate(ctx, "a", 1, true) },
			key: func() (string, error) { return h3.Key("a", 1, true) }, want: "a1 true", wantKey: "f3|s1:a,i:1,b1",
		},
	}
	for name, h := range handles {
		t.Run(name, func(t *testing.T) {
			calls.Store(0)
			if k, err := h.key(); err != nil || k != h.wantKey {
				t.Fatalf("Key = (%q, %v), want %q", k, err, h.wantKey)
			}
			for range 3 {
				if s, err := h.call(); err != nil || s != h.want {
					t.Fatalf("Call = (%q, %v), want %q", s, err, h.want)
				}
			}
			if calls.Load() != 1 {
				t.Fatalf("3 Calls ran the function %d times, want 1", calls.Load())
			}
			if err := h.set("other"); err != nil {
				t.Fatal(err)
			}
			if s, ok, _ := h.cached(); !ok || s != "other" {
				t.Fatalf("Cached after Set = (%q, %v)", s, ok)
			}
			if s, _ := h.refresh(); s != h.want {
				t.Fatalf("Refresh = %q", s)
			}
			if err := h.invalidate(); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := h.cached(); ok {
				t.Fatal("Cached after Invalidate found a value")
			}
			if s, _ := h.uncached(); s != h.want || calls.Load() != 3 {
				t.Fatalf("Uncached = %q after %d calls", s, calls.Load())
			}
		})
	}
}

// TestKeysMatchDefaultGenerator pins that the handles' fast key path makes the same keys as
// keys.Default, which documents the format.
func TestKeysMatchDefaultGenerator(t *testing.T) {
	r := newRegion(t)
	type point struct{ X, Y int }
	when := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	check := func(t *testing.T, got string, err error, args ...any) {
		t.Helper()
		want, werr := keys.Default("ns", args...)
		if err != nil || werr != nil || got != want {
			t.Fatalf("handle key (%q, %v), keys.Default (%q, %v)", got, err, want, werr)
		}
	}
	h1 := memo.Func(r, func(context.Context, point) (int, error) { return 0, nil }, memo.WithNamespace("ns"))
	k, err := h1.Key(point{1, 2})
	check(t, k, err, point{1, 2})
	h2 := memo.Func2(r, func(context.Context, time.Time, []string) (int, error) { return 0, nil }, memo.WithNamespace("ns"))
	k, err = h2.Key(when, []string{"a", "b"})
	check(t, k, err, when, []string{"a", "b"})
	h3 := memo.Func3(r, func(context.Context, uint8, float64, []byte) (int, error) { return 0, nil }, memo.WithNamespace("ns"))
	k, err = h3.Key(3, 1.5, []byte("x,y"))
	check(t, k, err, uint8(3), 1.5, []byte("x,y"))
	long := strings.Repeat("x", 500) // longer than the stack buffer
	h4 := memo.Func(r, func(context.Context, string) (int, error) { return 0, nil }, memo.WithNamespace("ns"))
	k, err = h4.Key(long)
	check(t, k, err, long)
}

func TestConstructionPanics(t *testing.T) {
	r := newRegion(t)
	fn := func(context.Context, int) (int, error) { return 0, nil }
	for name, build := range map[string]func(){
		"nil region":        func() { memo.Func(nil, fn) },
		"nil function":      func() { memo.Func[int, int](r, nil) },
		"namespace with |":  func() { memo.Func(r, fn, memo.WithNamespace("a|b")) },
		"empty namespace":   func() { memo.Func(r, fn, memo.WithNamespace("")) },
		"map argument":      func() { memo.Func(r, func(context.Context, map[string]int) (int, error) { return 0, nil }) },
		"func argument (2)": func() { memo.Func2(r, func(context.Context, int, func()) (int, error) { return 0, nil }) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			build()
		})
	}
}

func TestCustomKeyGenerator(t *testing.T) {
	ctx := context.Background()
	r := newRegion(t)
	gen := func(ns string, args ...any) (string, error) {
		m := args[0].(map[string]int)
		return fmt.Sprintf("%s:%d", ns, len(m)), nil
	}
	// A map argument is allowed with a generator that knows how to key it.
	h := memo.Func(r, func(_ context.Context, m map[string]int) (int, error) { return len(m), nil },
		memo.WithNamespace("count"), memo.WithKeyGenerator(gen))
	if k, err := h.Key(map[string]int{"a": 1}); err != nil || k != "count:1" {
		t.Fatalf("Key = (%q, %v)", k, err)
	}
	if n, err := h.Call(ctx, map[string]int{"a": 1, "b": 2}); err != nil || n != 2 {
		t.Fatalf("Call = (%d, %v)", n, err)
	}
	failing := memo.Func(r, func(context.Context, int) (int, error) { return 0, nil },
		memo.WithNamespace("failing"), memo.WithKeyGenerator(func(string, ...any) (string, error) { return "", errors.New("no key") }))
	if _, err := failing.Call(ctx, 1); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Fatalf("Call with a failing generator = %v", err)
	}
}

func TestAnyArgumentOfUnsupportedType(t *testing.T) {
	r := newRegion(t)
	h := memo.Func(r, func(context.Context, any) (int, error) { return 1, nil }, memo.WithNamespace("any"))
	if _, err := h.Call(context.Background(), make(chan int)); !errors.Is(err, keys.ErrUnsupported) {
		t.Fatalf("Call with a channel = %v, want keys.ErrUnsupported", err)
	}
}

func TestFunctionOptions(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var offset atomic.Int64
	r := newRegion(t, region.WithExpiration(time.Hour), region.WithClock(func() time.Time {
		return now.Add(time.Duration(offset.Load()))
	}))
	var calls atomic.Int32
	short := memo.Func(r, func(_ context.Context, id int) ([]int, error) {
		calls.Add(1)
		if id < 0 {
			return nil, nil
		}
		return []int{id}, nil
	}, memo.WithNamespace("short"), region.WithExpiration(time.Second),
		region.WithShouldCache(func(v []int) bool { return len(v) > 0 }))
	_, _ = short.Call(ctx, 1)
	offset.Store(int64(2 * time.Second))
	_, _ = short.Call(ctx, 1)
	if calls.Load() != 2 {
		t.Fatalf("function expiration (1s) not applied over the region's (1h): %d calls", calls.Load())
	}
	_, _ = short.Call(ctx, -1)
	_, _ = short.Call(ctx, -1)
	if calls.Load() != 4 {
		t.Fatalf("an empty result was cached despite WithShouldCache: %d calls", calls.Load())
	}
	dyn := memo.Func(r, func(context.Context, int) (int, error) { calls.Add(1); return 0, nil },
		memo.WithNamespace("dyn"), region.WithExpirationFunc(func() time.Duration { return 10 * time.Second }))
	calls.Store(0)
	_, _ = dyn.Call(ctx, 1)
	offset.Add(int64(5 * time.Second))
	_, _ = dyn.Call(ctx, 1)
	offset.Add(int64(6 * time.Second))
	_, _ = dyn.Call(ctx, 1)
	if calls.Load() != 2 {
		t.Fatalf("WithExpirationFunc: %d calls, want 2", calls.Load())
	}
}

func TestHitAllocatesNothingForKeysBuiltFromBasicArguments(t *testing.T) {
	r := newRegion(t, region.WithExpiration(time.Hour))
	ctx := context.Background()
	h := memo.Func(r, loadUser)
	hs := memo.Func(r, func(_ context.Context, s string) (int, error) { return len(s), nil }, memo.WithNamespace("str"))
	h2 := memo.Func2(r, func(_ context.Context, a int64, b bool) (int64, error) { return a, nil }, memo.WithNamespace("two"))
	h3 := memo.Func3(r, func(_ context.Context, a uint8, b float64, c string) (int, error) { return 1, nil }, memo.WithNamespace("three"))
	h0 := memo.Func0(r, func(context.Context) (int, error) { return 1, nil }, memo.WithNamespace("zero"))
	type point struct {
		X, Y int
		Tag  string
	}
	hp := memo.Func(r, func(_ context.Context, p point) (int, error) { return p.X + p.Y, nil }, memo.WithNamespace("point"))
	calls := map[string]func(){
		"Func[int64]":  func() { _, _ = h.Call(ctx, 42) },
		"Func[string]": func() { _, _ = hs.Call(ctx, "a string argument") },
		"Func2":        func() { _, _ = h2.Call(ctx, 7, true) },
		"Func3":        func() { _, _ = h3.Call(ctx, 3, 1.5, "c") },
		"Func0":        func() { _, _ = h0.Call(ctx) },
		"Func[point]":  func() { _, _ = hp.Call(ctx, point{X: 3, Y: 4, Tag: "a tag"}) },
	}
	for name, call := range calls {
		call() // the miss that caches the value
		if n := testing.AllocsPerRun(1000, call); n != 0 {
			t.Errorf("a %s hit allocates %v times, want 0", name, n)
		}
	}
}

func TestKeysOfCallsOutliveTheirStackBuffer(t *testing.T) {
	// Calls build their keys on the stack; the region copies the ones it keeps. Keys stored by
	// misses, and the keys of errors, must still read as they were once the calls return.
	r := newRegion(t, region.WithExpiration(time.Hour))
	ctx := context.Background()
	h := memo.Func(r, func(_ context.Context, id int64) (int64, error) { return id * 10, nil }, memo.WithNamespace("ids"))
	for id := range int64(100) {
		if v, err := h.Call(ctx, id); err != nil || v != id*10 {
			t.Fatalf("Call(%d) = %v, %v", id, v, err)
		}
	}
	v := region.NewView[int64](r)
	for id := range int64(100) {
		k, _ := h.Key(id)
		if got, ok, err := v.Get(ctx, k); err != nil || !ok || got != id*10 {
			t.Fatalf("Get(%q) = %v, %v, %v: the entry is not under its key", k, got, ok, err)
		}
	}
	failing := memo.Func(r, func(context.Context, int64) (int, error) { return 0, errors.New("boom") }, memo.WithNamespace("failing"))
	var errs []error
	for id := range int64(3) {
		_, err := failing.Call(ctx, id)
		errs = append(errs, err)
	}
	for id, err := range errs {
		var re *region.Error
		if want, _ := failing.Key(int64(id)); !errors.As(err, &re) || re.Key != want {
			t.Fatalf("error of call %d: %v, key %q, want %q", id, err, re.Key, want)
		}
	}
}

// fetch is generic in its result only, like a typed "load row as T" helper.
func fetch[T any](_ context.Context, id int64) (T, error) {
	var zero T
	return zero, nil
}

// memo.Func refuses the default namespace for a generic function, and asks for one:
// runtime.FuncForPC names every instantiation "pkg.fetch[...]", so two instantiations whose type
// parameter is not in the arguments would share every key.
func TestGenericFunctionsNeedANamespace(t *testing.T) {
	r := newRegion(t)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("memo.Func of a generic function without a namespace did not panic")
			}
		}()
		memo.Func(r, fetch[string])
	}()
	hs := memo.Func(r, fetch[string], memo.WithNamespace("fetch-string"))
	hi := memo.Func(r, fetch[int], memo.WithNamespace("fetch-int"))
	ks, _ := hs.Key(1)
	ki, _ := hi.Key(1)
	if ks == ki {
		t.Errorf("fetch[string] and fetch[int] share the key %q", ks)
	}
}

// newUser is a loader for the round-trip tests: it makes the user at once and counts nothing.
func newUser(_ context.Context, id int64) (*user, error) {
	return &user{ID: id, Name: fmt.Sprintf("user-%d", id)}, nil
}

// TestFuncHitCostsOneRoundTripOnRedis pins what a memo call costs on Redis: a hit is one GET and
// nothing else; a cold miss is GET, the lock script, a second GET under it, SET, and the unlock
// script (each script an EVALSHA, and an EVAL once when the server does not have it cached yet).
func TestFuncHitCostsOneRoundTripOnRedis(t *testing.T) {
	client, c := counting.RedisClient(t, testserver.StartRedis(t).Addr)
	r := region.New("roundtrips", region.WithExpiration(time.Hour))
	if err := r.Configure(redis.New(client)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	c.Take() // Configure's: the subscription to the region's channel (lock releases)
	h := memo.Func(r, newUser, memo.WithNamespace("users"))
	ctx := context.Background()
	if _, err := h.Call(ctx, 7); err != nil {
		t.Fatal(err)
	}
	cold, pipes := c.Take()
	t.Logf("cold miss: %v", cold)
	want := []string{"get/2", "evalsha/6", "get/2", "evalsha/6", "evalsha/5"} // read, lock, read, conditional store, unlock
	// A script's first use on a server adds an EVAL after its EVALSHA.
	cold = slices.DeleteFunc(cold, func(c string) bool { return strings.HasPrefix(c, "eval/") })
	if len(pipes) != 0 || !slices.Equal(cold, want) {
		t.Fatalf("cold miss sent %v and pipelines %v; want %v", cold, pipes, want)
	}
	for range 3 {
		if _, err := h.Call(ctx, 7); err != nil {
			t.Fatal(err)
		}
	}
	hits, pipes := c.Take()
	if len(pipes) != 0 || len(hits) != 3 || hits[0] != "get/2" || hits[1] != "get/2" || hits[2] != "get/2" {
		t.Fatalf("3 hits sent %v and pipelines %v; want exactly one GET each", hits, pipes)
	}
}

// TestFuncHitCostsOneRoundTripOnMemcached pins what a memo call costs on memcached: a hit is one
// gets and nothing else; a cold miss is gets, the lock (add), a second gets under it, set, and the
// unlock (gets, cas).
func TestFuncHitCostsOneRoundTripOnMemcached(t *testing.T) {
	client, rec := counting.MemcachedClient(t, testserver.StartMemcached(t).Addr)
	r := region.New("roundtrips", region.WithExpiration(time.Hour))
	if err := r.Configure(memcached.New(client)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	h := memo.Func(r, newUser, memo.WithNamespace("users"))
	ctx := context.Background()
	if _, err := h.Call(ctx, 7); err != nil {
		t.Fatal(err)
	}
	var cold []string
	for _, tr := range rec.Take() {
		cold = append(cold, tr.Cmd)
	}
	t.Logf("cold miss: %v", cold)
	// read, lock, read, conditional store (gets, then add on an absent key), unlock (gets, cas)
	if want := []string{"gets", "add", "gets", "gets", "add", "gets", "cas"}; !slices.Equal(cold, want) {
		t.Fatalf("cold miss sent %v; want %v", cold, want)
	}
	for range 3 {
		if _, err := h.Call(ctx, 7); err != nil {
			t.Fatal(err)
		}
	}
	if hits := rec.Take(); len(hits) != 3 || counting.Count(hits, "gets") != 3 {
		t.Fatalf("3 hits sent %v; want exactly one gets each", hits)
	}
}
