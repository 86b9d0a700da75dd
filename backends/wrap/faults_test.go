package wrap_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/backends/wrap"
	"github.com/dogpile-go/dogpile/region"
)

// stub is a backend that holds nothing and counts the calls that reach it; it starts no
// goroutine, so it can live in a synctest bubble.
type stub struct{ calls atomic.Int32 }

func (s *stub) Get(context.Context, string) ([]byte, error) {
	s.calls.Add(1)
	return nil, backends.ErrNotFound
}

func (s *stub) Set(context.Context, string, []byte, time.Duration) error {
	s.calls.Add(1)
	return nil
}

func (s *stub) Delete(context.Context, string) error {
	s.calls.Add(1)
	return nil
}

func mustSet(t *testing.T, f *wrap.Faults, fault wrap.Fault, ops ...wrap.Op) {
	t.Helper()
	if err := f.Set(fault, ops...); err != nil {
		t.Fatal(err)
	}
}

func TestFaultsFailNext(t *testing.T) {
	ctx := t.Context()
	s := new(stub)
	f := wrap.NewFaults(1)
	w := wrap.New(s, f.Hook)
	mustSet(t, f, wrap.Fault{FailNext: 2}, wrap.OpSet, wrap.OpDelete)
	for i, want := range []bool{true, true, false, false} {
		err := w.Set(ctx, "k", []byte("v"), 0)
		if failed := errors.Is(err, wrap.ErrInjected); failed != want || (!want && err != nil) {
			t.Errorf("Set #%d: %v; want failed=%v", i, err, want)
		}
	}
	// Each operation has its own count.
	if err := w.Delete(ctx, "k"); !errors.Is(err, wrap.ErrInjected) {
		t.Errorf("Delete after Set used up its faults: %v; want injected", err)
	}
	// Get has no fault.
	if _, err := w.Get(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Get: %v; want a miss", err)
	}
	if got := s.calls.Load(); got != 3 {
		t.Errorf("%d calls reached the backend; want 3 (2 Set, 1 Get): failed calls must not", got)
	}
	if got, want := f.Injected(wrap.OpSet), 2; got != want {
		t.Errorf("Injected(OpSet) = %d; want %d", got, want)
	}
	if got, want := f.Injected(0), 3; got != want {
		t.Errorf("Injected(0) = %d; want %d", got, want)
	}
}

// pattern returns which of n Gets through a Faults seeded with seed, at rate, failed.
func pattern(t *testing.T, seed uint64, rate float64, n int) []bool {
	t.Helper()
	f := wrap.NewFaults(seed)
	mustSet(t, f, wrap.Fault{Rate: rate, Jitter: time.Microsecond}, wrap.OpGet)
	w := wrap.New(new(stub), f.Hook)
	out := make([]bool, n)
	for i := range out {
		_, err := w.Get(t.Context(), "k")
		out[i] = errors.Is(err, wrap.ErrInjected)
	}
	return out
}

func TestFaultsRateIsSeeded(t *testing.T) {
	const n = 400
	a, b := pattern(t, 7, 0.25, n), pattern(t, 7, 0.25, n)
	failed := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("two runs with seed 7 differ at call %d", i)
		}
		if a[i] {
			failed++
		}
	}
	if failed < n/8 || failed > n*3/8 {
		t.Errorf("%d of %d calls failed at rate 0.25", failed, n)
	}
	c := pattern(t, 8, 0.25, n)
	same := true
	for i := range a {
		same = same && a[i] == c[i]
	}
	if same {
		t.Error("seeds 7 and 8 give the same faults")
	}
	for _, rate := range []float64{0, 1} {
		for i, failed := range pattern(t, 1, rate, 50) {
			if failed != (rate == 1) {
				t.Fatalf("rate %v: call %d failed=%v", rate, i, failed)
			}
		}
	}
}

func TestFaultsOwnError(t *testing.T) {
	errDown := errors.New("connection refused")
	f := wrap.NewFaults(1)
	mustSet(t, f, wrap.Fault{Rate: 1, Err: errDown})
	_, err := wrap.New(new(stub), f.Hook).Get(t.Context(), "k")
	if !errors.Is(err, errDown) || !errors.Is(err, wrap.ErrInjected) {
		t.Errorf("Get: %v; want an error that is both the Fault's Err and ErrInjected", err)
	}
	f.Clear()
	if _, err := wrap.New(new(stub), f.Hook).Get(t.Context(), "k"); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Get after Clear: %v; want a miss", err)
	}
}

func TestFaultsInvalid(t *testing.T) {
	f := wrap.NewFaults(1)
	for _, tc := range []struct {
		fault wrap.Fault
		ops   []wrap.Op
	}{
		{wrap.Fault{Rate: -0.1}, nil},
		{wrap.Fault{Rate: 1.5}, nil},
		{wrap.Fault{FailNext: -1}, nil},
		{wrap.Fault{Latency: -time.Second}, nil},
		{wrap.Fault{Jitter: -time.Second}, nil},
		{wrap.Fault{Rate: 1}, []wrap.Op{0}},
		{wrap.Fault{Rate: 1}, []wrap.Op{wrap.OpGet, 200}},
	} {
		if err := f.Set(tc.fault, tc.ops...); err == nil {
			t.Errorf("Set(%+v, %v) = nil; want an error", tc.fault, tc.ops)
		}
	}
	// Nothing was set by the failed calls.
	if _, err := wrap.New(new(stub), f.Hook).Get(t.Context(), "k"); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Get: %v; want a miss", err)
	}
}

func TestFaultsLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := new(stub)
		f := wrap.NewFaults(1)
		w := wrap.New(s, f.Hook)
		mustSet(t, f, wrap.Fault{Latency: 50 * time.Millisecond}, wrap.OpGet)
		mustSet(t, f, wrap.Fault{Latency: 50 * time.Millisecond, Jitter: 10 * time.Millisecond}, wrap.OpSet)
		mustSet(t, f, wrap.Fault{Latency: time.Hour}, wrap.OpDelete)

		start := time.Now()
		if _, err := w.Get(t.Context(), "k"); !errors.Is(err, backends.ErrNotFound) {
			t.Fatalf("Get: %v", err)
		}
		if d := time.Since(start); d != 50*time.Millisecond {
			t.Errorf("Get took %v; want 50ms", d)
		}
		start = time.Now()
		if err := w.Set(t.Context(), "k", nil, 0); err != nil {
			t.Fatalf("Set: %v", err)
		}
		if d := time.Since(start); d < 50*time.Millisecond || d >= 60*time.Millisecond {
			t.Errorf("Set took %v; want [50ms, 60ms)", d)
		}

		// A caller whose context ends stops waiting and never reaches the backend.
		before := s.calls.Load()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		defer cancel()
		start = time.Now()
		if err := w.Delete(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Delete with a 10ms deadline and 1h of latency: %v; want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d != 10*time.Millisecond {
			t.Errorf("Delete returned after %v; want 10ms", d)
		}
		if s.calls.Load() != before {
			t.Error("a call whose context ended while it waited reached the backend")
		}
	})
}

// failingRegion returns a region with policy over memory wrapped by a Faults that fails every
// call, and the Faults.
func failingRegion(t *testing.T, policy region.FailurePolicy) (*region.View[string], *wrap.Faults) {
	t.Helper()
	f := wrap.NewFaults(1)
	mustSet(t, f, wrap.Fault{Rate: 1})
	r := region.New("faulty", region.WithFailurePolicy(policy), region.WithLogger(slog.New(slog.DiscardHandler)))
	if err := r.Configure(wrap.New(memory.New(), f.Hook)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return region.NewView[string](r), f
}

func TestRegionFailOpen(t *testing.T) {
	v, f := failingRegion(t, region.FailOpen)
	created := 0
	create := func(context.Context) (string, error) { created++; return "created", nil }
	for i := range 3 {
		got, err := v.GetOrCreate(t.Context(), "k", create)
		if err != nil || got != "created" {
			t.Fatalf("GetOrCreate #%d = %q, %v; want the created value and no error", i, got, err)
		}
	}
	// Every read failed, so every call created, and nothing was stored.
	if created != 3 {
		t.Errorf("the creator ran %d times; want 3", created)
	}
	if f.Injected(wrap.OpGetValue) < 3 || f.Injected(wrap.OpSetValue) < 3 {
		t.Errorf("faults injected: %d reads, %d writes; want at least 3 of each", f.Injected(wrap.OpGetValue), f.Injected(wrap.OpSetValue))
	}
	m, err := v.GetOrCreateMulti(t.Context(), []string{"a", "b"}, func(_ context.Context, keys []string) (map[string]string, error) {
		out := map[string]string{}
		for _, k := range keys {
			out[k] = "created " + k
		}
		return out, nil
	})
	if err != nil || m["a"] != "created a" || m["b"] != "created b" {
		t.Errorf("GetOrCreateMulti = %v, %v; want the created values and no error", m, err)
	}

	// Once the cache is back, values are stored and served.
	f.Clear()
	if _, err := v.GetOrCreate(t.Context(), "k", create); err != nil {
		t.Fatal(err)
	}
	if got, err := v.GetOrCreate(t.Context(), "k", create); err != nil || got != "created" || created != 4 {
		t.Errorf("GetOrCreate after Clear = %q, %v with %d creations; want the stored value, 4 creations", got, err, created)
	}
}

func TestRegionFailClosed(t *testing.T) {
	v, _ := failingRegion(t, region.FailClosed)
	_, err := v.GetOrCreate(t.Context(), "k", func(context.Context) (string, error) { return "created", nil })
	if !errors.Is(err, wrap.ErrInjected) {
		t.Errorf("GetOrCreate: %v; want the injected error", err)
	}
	_, err = v.GetOrCreateMulti(t.Context(), []string{"a", "b"}, func(context.Context, []string) (map[string]string, error) {
		return map[string]string{"a": "a", "b": "b"}, nil
	})
	if !errors.Is(err, wrap.ErrInjected) {
		t.Errorf("GetOrCreateMulti: %v; want the injected error", err)
	}
}

// A call whose context ends during the injected latency wait returns ctx.Err() without consuming a
// FailNext count or counting an injection: the next call still fails as the test meant.
func TestCancelledWaitKeepsFailNext(t *testing.T) {
	f := wrap.NewFaults(1)
	b := wrap.New(newFile(t), f.Hook)
	if err := f.Set(wrap.Fault{FailNext: 1, Latency: 200 * time.Millisecond}, wrap.OpSet); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	err := b.Set(ctx, "k", []byte("v"), time.Minute)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Set with a short deadline = %v", err)
	}
	n := f.Injected(wrap.OpSet)
	err = b.Set(t.Context(), "k", []byte("v"), time.Minute)
	if n != 0 || !errors.Is(err, wrap.ErrInjected) {
		t.Errorf("a call that ended on its context counted as %d injected failure(s); the next call, the one FailNext: 1 should fail, got %v", n, err)
	}
}
