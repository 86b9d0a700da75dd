package wrap_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/backendtest"
	"github.com/dogpile-go/dogpile/backends/file"
	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/backends/wrap"
	"github.com/dogpile-go/dogpile/region"
	"github.com/google/go-cmp/cmp"
)

// bare hides every capability of the backend it embeds: only Get, Set and Delete are left, and
// no Unwrap, so that backends.As cannot reach past it.
type bare struct{ backends.Backend }

// newFile returns a file backend in a directory of t's own.
func newFile(t *testing.T) *file.Backend {
	t.Helper()
	b, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	discard := slog.New(slog.DiscardHandler)
	debug := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	hooks := []struct {
		name string
		hook func() wrap.Hook
	}{
		{"nil", func() wrap.Hook { return nil }},
		{"recorder", func() wrap.Hook { return new(recorder).hook }},
		{"Log", func() wrap.Hook { return wrap.Log(debug) }},
		{"LogDisabled", func() wrap.Hook { return wrap.Log(discard) }},
		{"Faults", func() wrap.Hook { return wrap.NewFaults(1).Hook }},
	}
	inners := []struct {
		name string
		new  func(t *testing.T) backends.Backend
	}{
		// No Locker; a ValueStore and every multi-key operation.
		{"memory", func(*testing.T) backends.Backend { return memory.New() }},
		// A Locker without MultiLocker.
		{"file", func(t *testing.T) backends.Backend { return newFile(t) }},
		// Nothing but the three required methods: the wrapper's multi-key fallbacks.
		{"bare", func(*testing.T) backends.Backend { return bare{memory.New()} }},
	}
	for _, in := range inners {
		for _, h := range hooks {
			t.Run(in.name+"/"+h.name, func(t *testing.T) {
				if testing.Short() && h.name != "Log" && h.name != "Faults" {
					t.Skip("short: only the shipped wrappers")
				}
				backendtest.Run(t, func(t *testing.T) backends.Backend {
					inner := in.new(t)
					if b, ok := inner.(bare); ok {
						// bare hides Close: close what it embeds at the end.
						t.Cleanup(func() { _ = b.Backend.(io.Closer).Close() })
					}
					return wrap.New(inner, h.hook())
				})
			})
		}
	}
}

// caps lists the capabilities backends.As finds on b, and the link of the chain it finds them on.
func caps(b backends.Backend) map[string]string {
	m := map[string]string{}
	link := func(found any) string {
		if _, ok := found.(backends.Wrapper); ok {
			return "wrapper"
		}
		return "inner"
	}
	if v, ok := backends.As[backends.MultiGetter](b); ok {
		m["MultiGetter"] = link(v)
	}
	if v, ok := backends.As[backends.MultiSetter](b); ok {
		m["MultiSetter"] = link(v)
	}
	if v, ok := backends.As[backends.MultiDeleter](b); ok {
		m["MultiDeleter"] = link(v)
	}
	if v, ok := backends.As[backends.Locker](b); ok {
		m["Locker"] = link(v)
	}
	if v, ok := backends.As[backends.MultiLocker](b); ok {
		m["MultiLocker"] = link(v)
	}
	if v, ok := backends.As[backends.ConditionalSetter](b); ok {
		m["ConditionalSetter"] = link(v)
	}
	if v, ok := backends.As[backends.ConditionalMultiSetter](b); ok {
		m["ConditionalMultiSetter"] = link(v)
	}
	if v, ok := backends.As[backends.BatchLimiter](b); ok {
		m["BatchLimiter"] = link(v)
	}
	if v, ok := backends.As[backends.ValueStore](b); ok && v.StoresValues() {
		m["StoresValues"] = link(v)
	}
	if v, ok := backends.As[io.Closer](b); ok {
		m["Closer"] = link(v)
	}
	return m
}

func TestCapabilities(t *testing.T) {
	all := map[string]string{ // what every wrapper has, answered by the wrapper
		"MultiGetter": "wrapper", "MultiSetter": "wrapper", "MultiDeleter": "wrapper",
		"BatchLimiter": "wrapper", "Closer": "wrapper",
	}
	with := func(extra ...string) map[string]string {
		m := map[string]string{}
		for k, v := range all {
			m[k] = v
		}
		for _, k := range extra {
			m[k] = "wrapper"
		}
		return m
	}
	mem := memory.New()
	defer mem.Close()
	memCopy := memory.New(memory.WithCopy())
	defer memCopy.Close()
	fb := newFile(t)
	defer fb.Close()
	tests := []struct {
		name  string
		inner backends.Backend
		want  map[string]string
	}{
		{"memory", mem, with("StoresValues")},
		{"memory.WithCopy", memCopy, with()},
		{"file", fb, with("Locker", "ConditionalSetter", "ConditionalMultiSetter")},
		{"bare", bare{mem}, with()},
		// Wrappers stack: the outer one finds the inner one's capabilities.
		{"wrapped file", wrap.New(fb, nil), with("Locker", "ConditionalSetter", "ConditionalMultiSetter")},
		// A conditional store without a lock.
		{"unlocked file", unlocked{fb}, with("ConditionalSetter", "ConditionalMultiSetter")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := wrap.New(tc.inner, nil)
			if diff := cmp.Diff(tc.want, caps(w)); diff != "" {
				t.Errorf("capabilities of the wrapper (-want +got):\n%s", diff)
			}
			if got := w.(backends.Wrapper).Unwrap(); got != tc.inner {
				t.Errorf("Unwrap() = %v; want the wrapped backend", got)
			}
			if bl, _ := backends.As[backends.BatchLimiter](w); bl.MaxBatch() != 0 {
				t.Errorf("MaxBatch() = %d; want 0 (none of these backends has a limit)", bl.MaxBatch())
			}
		})
	}
}

func TestCallsSeen(t *testing.T) {
	ctx := t.Context()
	mem := memory.New(memory.WithCopy()) // the byte methods
	defer mem.Close()
	for _, tc := range []struct {
		name  string
		inner backends.Backend
		// want are the operations the hook sees for: Set, Get, Get (miss), SetMulti of 2,
		// GetMulti of 3 (one absent), DeleteMulti of 2, Delete.
		want []string
	}{
		{"multi", mem, []string{"set", "get", "get", "setmulti", "getmulti", "deletemulti", "delete"}},
		{"bare", bare{mem}, []string{"set", "get", "get", "set", "set", "get", "get", "get", "delete", "delete", "delete"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := new(recorder)
			w := wrap.New(tc.inner, rec.hook)
			v := backends.EncodeEntry(backends.Entry{Payload: []byte("v")})
			if err := w.Set(ctx, "a", v, time.Minute); err != nil {
				t.Fatal(err)
			}
			if got, err := w.Get(ctx, "a"); err != nil || string(got) != string(v) {
				t.Fatalf("Get(a) = %q, %v", got, err)
			}
			if _, err := w.Get(ctx, "absent"); !errors.Is(err, backends.ErrNotFound) {
				t.Fatalf("Get(absent): %v; want a miss", err)
			}
			if err := w.(backends.MultiSetter).SetMulti(ctx, map[string][]byte{"c": v, "b": v}, time.Hour); err != nil {
				t.Fatal(err)
			}
			m, err := w.(backends.MultiGetter).GetMulti(ctx, []string{"a", "absent", "b"})
			if err != nil || len(m) != 2 {
				t.Fatalf("GetMulti = %d values, %v; want 2", len(m), err)
			}
			if err := w.(backends.MultiDeleter).DeleteMulti(ctx, []string{"b", "c"}); err != nil {
				t.Fatal(err)
			}
			if err := w.Delete(ctx, "a"); err != nil {
				t.Fatal(err)
			}
			// Empty batches do no I/O and do not reach the hook.
			_, _ = w.(backends.MultiGetter).GetMulti(ctx, nil)
			_ = w.(backends.MultiSetter).SetMulti(ctx, nil, 0)
			_ = w.(backends.MultiDeleter).DeleteMulti(ctx, nil)

			calls := rec.take()
			if diff := cmp.Diff(tc.want, ops(calls)); diff != "" {
				t.Fatalf("operations seen (-want +got):\n%s", diff)
			}
			if tc.name != "multi" {
				return
			}
			want := []wrap.Call{
				{Op: wrap.OpSet, Key: "a", TTL: time.Minute, Bytes: len(v)},
				{Op: wrap.OpGet, Key: "a", Bytes: len(v), Hits: 1},
				{Op: wrap.OpGet, Key: "absent"},
				{Op: wrap.OpSetMulti, Keys: []string{"b", "c"}, TTL: time.Hour, Bytes: 2 * len(v)},
				{Op: wrap.OpGetMulti, Keys: []string{"a", "absent", "b"}, Bytes: 2 * len(v), Hits: 2},
				{Op: wrap.OpDeleteMulti, Keys: []string{"b", "c"}},
				{Op: wrap.OpDelete, Key: "a"},
			}
			if diff := cmp.Diff(want, calls); diff != "" {
				t.Errorf("calls seen (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValueStoreCallsSeen(t *testing.T) {
	ctx := t.Context()
	mem := memory.New()
	defer mem.Close()
	rec := new(recorder)
	vs, _ := backends.As[backends.ValueStore](wrap.New(mem, rec.hook))
	if err := vs.SetValue(ctx, "k", backends.Item{Value: 42}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if it, err := vs.GetValue(ctx, "k"); err != nil || it.Value != 42 {
		t.Fatalf("GetValue = %+v, %v", it, err)
	}
	want := []wrap.Call{
		{Op: wrap.OpSetValue, Key: "k", TTL: time.Minute},
		{Op: wrap.OpGetValue, Key: "k", Hits: 1},
	}
	if diff := cmp.Diff(want, rec.take()); diff != "" {
		t.Errorf("calls seen (-want +got):\n%s", diff)
	}

	// Over a backend that keeps no values, the methods exist but say so.
	w := wrap.New(bare{mem}, rec.hook).(backends.ValueStore)
	if w.StoresValues() {
		t.Error("StoresValues() over a backend without a ValueStore = true")
	}
	if _, err := w.GetValue(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("GetValue over a backend without a ValueStore: %v; want a miss", err)
	}
	if err := w.SetValue(ctx, "k", backends.Item{}, 0); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SetValue over a backend without a ValueStore: %v; want errors.ErrUnsupported", err)
	}
	if calls := rec.take(); len(calls) != 0 {
		t.Errorf("the hook saw %v; want nothing", ops(calls))
	}
}

// skip is a hook that never calls next.
func skip(context.Context, *wrap.Call, func(context.Context) error) error { return nil }

// swallow is a hook that calls next and hides its error.
func swallow(ctx context.Context, _ *wrap.Call, next func(context.Context) error) error {
	_ = next(ctx)
	return nil
}

func TestHookThatSkipsNext(t *testing.T) {
	ctx := t.Context()
	mem := memory.New(memory.WithCopy())
	defer mem.Close()
	v := backends.EncodeEntry(backends.Entry{Payload: []byte("v")})
	if err := mem.Set(ctx, "k", v, 0); err != nil {
		t.Fatal(err)
	}
	for name, hook := range map[string]wrap.Hook{"skip": skip, "swallow": swallow} {
		t.Run(name, func(t *testing.T) {
			w := wrap.New(mem, hook)
			got, err := w.Get(ctx, "absent")
			if !errors.Is(err, backends.ErrNotFound) || got != nil {
				t.Errorf("Get(absent) = %q, %v; want a miss, never nil, nil", got, err)
			}
			m, err := w.(backends.MultiGetter).GetMulti(ctx, []string{"absent"})
			if err != nil || m == nil || len(m) != 0 {
				t.Errorf("GetMulti(absent) = %v, %v; want an empty map", m, err)
			}
			if _, err := w.(backends.ValueStore).GetValue(ctx, "absent"); !errors.Is(err, backends.ErrNotFound) {
				t.Errorf("GetValue(absent): %v; want a miss", err)
			}
		})
	}
	// skip: a present key reads as a miss, since the backend was never asked.
	if _, err := wrap.New(mem, skip).Get(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Get(k) through a hook that skips next: %v; want a miss", err)
	}
}

func TestNextTwice(t *testing.T) {
	mem := memory.New(memory.WithCopy())
	defer mem.Close()
	var second error
	w := wrap.New(mem, func(ctx context.Context, _ *wrap.Call, next func(context.Context) error) error {
		err := next(ctx)
		second = next(ctx)
		return err
	})
	if err := w.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if second == nil {
		t.Error("a second call of next succeeded; want an error")
	}
}

// TestLockRefusedAfterNext checks that a lock the backend gave, but the hook then failed, is
// released, not left held until its timeout.
func TestLockRefusedAfterNext(t *testing.T) {
	ctx := t.Context()
	fb := newFile(t)
	defer fb.Close()
	errRefused := errors.New("refused")
	w := wrap.New(fb, func(ctx context.Context, _ *wrap.Call, next func(context.Context) error) error {
		if err := next(ctx); err != nil {
			return err
		}
		return errRefused
	})
	l, ok, err := w.(backends.Locker).TryLock(ctx, "k", time.Minute)
	if !errors.Is(err, errRefused) || ok || l != nil {
		t.Fatalf("TryLock = %v, %v, %v; want nil, false, the hook's error", l, ok, err)
	}
	l, ok, err = fb.TryLock(ctx, "k", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock on the backend after the wrapper refused its lock = %v, %v; want it free", ok, err)
	}
	_ = l.Unlock(ctx)
}

func TestLockCallsSeen(t *testing.T) {
	ctx := t.Context()
	fb := newFile(t)
	defer fb.Close()
	rec := new(recorder)
	w := wrap.New(fb, rec.hook)
	l, ok, err := w.(backends.Locker).TryLock(ctx, "k", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	if _, ok, _ := w.(backends.Locker).TryLock(ctx, "k", time.Minute); ok {
		t.Fatal("TryLock of a held lock succeeded")
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	want := []wrap.Call{
		{Op: wrap.OpTryLock, Key: "k", TTL: time.Minute, Taken: 1},
		{Op: wrap.OpTryLock, Key: "k", TTL: time.Minute},
		{Op: wrap.OpUnlock, Key: "k"},
	}
	if diff := cmp.Diff(want, rec.take()); diff != "" {
		t.Errorf("calls seen (-want +got):\n%s", diff)
	}
	if _, ok := w.(backends.MultiLocker); ok {
		t.Error("the wrapper of a backend without MultiLocker is a MultiLocker")
	}
}

// closer is a backend without capabilities but Close, which it counts.
type closer struct {
	bare
	closed int
}

func (c *closer) Close() error { c.closed++; return nil }

func TestCloseForwarded(t *testing.T) {
	mem := memory.New()
	defer mem.Close()
	c := &closer{bare: bare{mem}}
	w := wrap.New(wrap.New(c, nil), nil) // through two wrappers
	if err := w.(io.Closer).Close(); err != nil || c.closed != 1 {
		t.Fatalf("Close() = %v and closed the backend %d times; want nil and once", err, c.closed)
	}
	// Over a backend that cannot close, Close does nothing.
	if err := wrap.New(bare{mem}, nil).(io.Closer).Close(); err != nil {
		t.Errorf("Close over a backend without Close: %v", err)
	}
}

func TestNewNilBackend(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New(nil, nil) did not panic")
		}
	}()
	wrap.New(nil, nil)
}

// TestRegionOverLockerWithoutMultiLocker checks that a region over a wrapped backend that has a
// Locker but no MultiLocker (files) locks a batch one key at a time through the wrapper, as it
// would over the backend itself.
func TestRegionOverLockerWithoutMultiLocker(t *testing.T) {
	rec := new(recorder)
	r := region.New("files", region.WithLogger(slog.New(slog.DiscardHandler)))
	if err := r.Configure(wrap.New(newFile(t), rec.hook)); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	v := region.NewView[string](r)
	m, err := v.GetOrCreateMulti(t.Context(), []string{"a", "b"}, func(_ context.Context, keys []string) (map[string]string, error) {
		return map[string]string{"a": "A", "b": "B"}, nil
	})
	if err != nil || m["a"] != "A" || m["b"] != "B" {
		t.Fatalf("GetOrCreateMulti = %v, %v", m, err)
	}
	locks := 0
	for _, c := range rec.take() {
		switch c.Op {
		case wrap.OpTryLock:
			locks++
		case wrap.OpTryLockMulti:
			t.Errorf("the hook saw a trylockmulti over a backend without MultiLocker")
		}
	}
	if locks != 2 {
		t.Errorf("the hook saw %d trylock calls; want one per key, 2", locks)
	}
}

// A lock that next takes after a per-call timeout hook has returned its own error is released:
// TryLock reported failure, so the key does not stay locked for the whole lock timeout.
func TestLateNextReleasesItsLock(t *testing.T) {
	fb := newFile(t)
	errSlow := errors.New("backend too slow")
	gate := make(chan struct{})
	done := make(chan error, 1)
	hook := func(ctx context.Context, c *wrap.Call, next func(context.Context) error) error {
		if c.Op != wrap.OpTryLock {
			return next(ctx)
		}
		go func() { <-gate; done <- next(context.WithoutCancel(ctx)) }()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Millisecond): // the hook's own deadline
			return errSlow
		}
	}
	w, ok := backends.As[backends.Locker](wrap.New(fb, hook))
	if !ok {
		t.Fatal("the wrapper of a file backend has no Locker")
	}
	ctx := t.Context()
	l, ok, err := w.TryLock(ctx, "k", time.Minute)
	if !errors.Is(err, errSlow) || ok || l != nil {
		t.Fatalf("TryLock through the timeout hook = %v, %v, %v; want errSlow", l, ok, err)
	}
	close(gate)
	// The fix: a next that starts after the hook returned is refused and reaches no backend.
	if err := <-done; err == nil {
		t.Fatalf("the late next succeeded; want it refused, the call being over")
	}
	l2, ok, err := fb.TryLock(ctx, "k", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Errorf("TryLock failed with errSlow, yet its key stays locked: the lock the late next took is held by nobody until its timeout")
	} else {
		_ = l2.Unlock(ctx)
	}
}
