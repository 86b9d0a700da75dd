package memory_test

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/backendtest"
	"github.com/dogpile-go/dogpile/backends/memory"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []memory.Option
	}{
		{"default", nil},
		{"bounded", []memory.Option{memory.WithMaxEntries(10_000)}},
		{"copy", []memory.Option{memory.WithCopy()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backendtest.Run(t, func(t *testing.T) backends.Backend {
				return memory.New(tc.opts...)
			})
		})
	}
}

func TestGetValueDoesNotAllocate(t *testing.T) {
	ctx := t.Context()
	b := memory.New(memory.WithMaxEntries(1000))
	t.Cleanup(func() { _ = b.Close() })
	if err := b.SetValue(ctx, "k", backends.Item{Value: &struct{ N int }{1}, Created: 1}, 0); err != nil {
		t.Fatal(err)
	}
	var err error
	if n := testing.AllocsPerRun(1000, func() { _, err = b.GetValue(ctx, "k") }); n != 0 {
		t.Errorf("GetValue hit allocates %v times, want 0", n)
	}
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = b.GetValue(ctx, "absent") }); n != 0 {
		t.Errorf("GetValue miss allocates %v times, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = b.Get(ctx, "absent") }); n != 0 {
		t.Errorf("Get miss allocates %v times, want 0", n)
	}
}

func TestValuesAreShared(t *testing.T) {
	ctx := t.Context()
	b := memory.New()
	t.Cleanup(func() { _ = b.Close() })
	if !b.StoresValues() {
		t.Fatal("StoresValues() = false without WithCopy")
	}
	v := &struct{ N int }{1}
	if err := b.SetValue(ctx, "k", backends.Item{Value: v}, 0); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetValue(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if got.Value != any(v) {
		t.Errorf("GetValue returned %p, want the pointer stored, %p", got.Value, v)
	}
}

func TestCopyIsolatesMutations(t *testing.T) {
	ctx := t.Context()
	b := memory.New(memory.WithCopy())
	t.Cleanup(func() { _ = b.Close() })
	if b.StoresValues() {
		t.Fatal("StoresValues() = true WithCopy; want false so that the region encodes values")
	}
	value := []byte("original")
	if err := b.Set(ctx, "k", value, 0); err != nil {
		t.Fatal(err)
	}
	copy(value, "MUTATED!")
	got, err := b.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "original" {
		t.Fatalf("Get = %q after the caller changed the slice it passed to Set", got)
	}
	copy(got, "MUTATED!")
	again, _ := b.Get(ctx, "k")
	if string(again) != "original" {
		t.Fatalf("Get = %q after the caller changed the slice an earlier Get returned", again)
	}
	m, _ := b.GetMulti(ctx, []string{"k"})
	copy(m["k"], "MUTATED!")
	if again, _ := b.Get(ctx, "k"); string(again) != "original" {
		t.Fatalf("Get = %q after the caller changed the slice GetMulti returned", again)
	}
}

func TestEmptyValueIsNotNil(t *testing.T) {
	ctx := t.Context()
	b := memory.New()
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Set(ctx, "k", nil, 0); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, "k")
	if err != nil || got == nil {
		t.Fatalf("Get of an empty value = %#v, %v; want a non-nil empty slice and no error", got, err)
	}
}

func TestBytesAndValuesDoNotMix(t *testing.T) {
	ctx := t.Context()
	b := memory.New()
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Set(ctx, "raw", []byte("bytes"), 0); err != nil {
		t.Fatal(err)
	}
	if err := b.SetValue(ctx, "value", backends.Item{Value: 1}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetValue(ctx, "raw"); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("GetValue on a key set by Set: error %v, want ErrNotFound", err)
	}
	if _, err := b.Get(ctx, "value"); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Get on a key set by SetValue: error %v, want ErrNotFound", err)
	}
	if m, _ := b.GetMulti(ctx, []string{"raw", "value"}); len(m) != 1 || m["raw"] == nil {
		t.Errorf("GetMulti = %q, want only the bytes entry", m)
	}
	// The last write decides what the key holds.
	if err := b.Set(ctx, "value", []byte("now bytes"), 0); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "value"); err != nil || string(got) != "now bytes" {
		t.Errorf("Get after Set over a value = %q, %v", got, err)
	}
}

// TestTTL checks storage TTLs on a fake clock: inside the synctest bubble time.Sleep only moves
// the clock that otter reads.
func TestTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		b := memory.New()
		defer b.Close() // before the bubble ends, or its clean-up goroutine would never see a tick
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(b.Set(ctx, "raw", []byte("r"), time.Second))
		must(b.SetValue(ctx, "value", backends.Item{Value: 1}, time.Second))
		must(b.SetMulti(ctx, map[string][]byte{"multi": []byte("m")}, time.Second))
		must(b.Set(ctx, "kept", []byte("k"), 0))
		must(b.SetValue(ctx, "negative", backends.Item{Value: 2}, -time.Second))
		must(b.Set(ctx, "rewritten", []byte("old"), time.Second))
		must(b.Set(ctx, "rewritten", []byte("new"), 0))

		// TTLs are timed by a clock that reads the time every 100ms: an entry goes within a
		// clock step or two of its TTL, not at the nanosecond.
		const slack = 200 * time.Millisecond
		time.Sleep(time.Second - slack)
		for _, k := range []string{"raw", "multi", "kept", "rewritten"} {
			if _, err := b.Get(ctx, k); err != nil {
				t.Errorf("Get(%q) before its TTL: %v", k, err)
			}
		}
		if _, err := b.GetValue(ctx, "value"); err != nil {
			t.Errorf("GetValue before its TTL: %v", err)
		}

		time.Sleep(2 * slack)
		for _, k := range []string{"raw", "multi"} {
			if _, err := b.Get(ctx, k); !errors.Is(err, backends.ErrNotFound) {
				t.Errorf("Get(%q) after its TTL: %v, want ErrNotFound", k, err)
			}
		}
		if _, err := b.GetValue(ctx, "value"); !errors.Is(err, backends.ErrNotFound) {
			t.Errorf("GetValue after its TTL: %v, want ErrNotFound", err)
		}

		time.Sleep(time.Hour) // each second of it runs a tick of the clean-up goroutine: keep it short
		for _, k := range []string{"kept", "rewritten"} {
			if _, err := b.Get(ctx, k); err != nil {
				t.Errorf("Get(%q) set with ttl=0, an hour later: %v", k, err)
			}
		}
		if _, err := b.GetValue(ctx, "negative"); err != nil {
			t.Errorf("GetValue of an entry set with a negative ttl, an hour later: %v", err)
		}
	})
}

func TestCloseIsIdempotent(t *testing.T) {
	b := memory.New()
	for range 3 {
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	// Still usable after Close.
	ctx := t.Context()
	if err := b.Set(ctx, "k", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get after Close = %q, %v", got, err)
	}
}

func TestCloseStopsGoroutines(t *testing.T) {
	before := goleak.IgnoreCurrent()
	b := memory.New(memory.WithMaxEntries(100))
	ctx := t.Context()
	for i := range 1000 {
		_ = b.Set(ctx, strings.Repeat("k", i%50+1), []byte("v"), time.Minute)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, before)
}

func TestNewPanicsOnNegativeMax(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), "WithMaxEntries(-1)") {
			t.Fatalf("New(WithMaxEntries(-1)) recovered %v; want a panic naming the option", r)
		}
	}()
	memory.New(memory.WithMaxEntries(-1))
}

func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		url          string
		storesValues bool
	}{
		{"memory://", true},
		{"memory:", true},
		{"memory:///", true},
		{"memory://?max_entries=1000", true},
		{"memory://?max_entries=0&copy=false", true},
		{"memory://?copy=true", false},
		{"MEMORY://?copy=1", false},
	} {
		b, err := backends.Open(tc.url)
		if err != nil {
			t.Fatalf("Open(%q): %v", tc.url, err)
		}
		m, ok := b.(*memory.Backend)
		if !ok {
			t.Fatalf("Open(%q) = %T, want *memory.Backend", tc.url, b)
		}
		if m.StoresValues() != tc.storesValues {
			t.Errorf("Open(%q).StoresValues() = %v, want %v", tc.url, m.StoresValues(), tc.storesValues)
		}
		_ = m.Close()
	}
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"memory://?max_entrie=10", `unknown parameter "max_entrie"`},
		{"memory://?max_entries=-1", "max_entries"},
		{"memory://?max_entries=ten", "max_entries"},
		{"memory://?max_entries=1&max_entries=2", "given 2 times"},
		{"memory://?copy=yes", "copy"},
		{"memory://localhost", "query parameters only"},
		{"memory://user:secret@/", "query parameters only"},
		{"memory:///some/path", "query parameters only"},
		{"memory://?a=%zz", "query"},
	} {
		b, err := backends.Open(tc.url)
		if err == nil {
			t.Errorf("Open(%q) = %T, nil; want an error", tc.url, b)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q) error %q does not say %q", tc.url, err, tc.want)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q) error %q shows the password", tc.url, err)
		}
	}
}

func TestMultiEmpty(t *testing.T) {
	ctx := t.Context()
	b := memory.New()
	t.Cleanup(func() { _ = b.Close() })
	m, err := b.GetMulti(ctx, nil)
	if err != nil || m == nil || len(m) != 0 {
		t.Fatalf("GetMulti(nil) = %#v, %v; want a non-nil empty map", m, err)
	}
}

// An entry is kept at least its TTL ("Rounded up"), also when it is written between two ticks of
// the coarse clock: a region whose storage TTL exceeds its expiration by less than a tick does not
// lose values while they are still fresh.
func TestEntryKeptAtLeastItsTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		b := memory.New()
		defer b.Close()
		time.Sleep(50 * time.Millisecond) // between two ticks of the backend's clock
		if err := b.SetValue(ctx, "k", backends.Item{Value: 1}, 200*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(190 * time.Millisecond) // 10ms before the TTL
		if _, err := b.GetValue(ctx, "k"); err != nil {
			t.Errorf("190ms after a write with a 200ms TTL: %v; want the entry kept at least its TTL", err)
		}
	})
}
