package null_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/null"
)

func TestStoresNothing(t *testing.T) {
	ctx := t.Context()
	b := null.New()
	value := backends.EncodeEntry(backends.Entry{Payload: []byte("v")})
	if err := b.Set(ctx, "k", value, 0); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if err := b.Set(ctx, "k", value, time.Hour); err != nil {
		t.Fatalf("Set with ttl: %v", err)
	}
	got, err := b.Get(ctx, "k")
	if !errors.Is(err, backends.ErrNotFound) || got != nil {
		t.Fatalf("Get after Set = %q, %v; want nil and an error wrapping ErrNotFound", got, err)
	}
	if err := b.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := b.SetMulti(ctx, map[string][]byte{"a": value, "b": value}, 0); err != nil {
		t.Fatalf("SetMulti: %v", err)
	}
	for _, keys := range [][]string{nil, {}, {"a", "b", "a"}} {
		m, err := b.GetMulti(ctx, keys)
		if err != nil || m == nil || len(m) != 0 {
			t.Fatalf("GetMulti(%q) = %v, %v; want an empty map and no error", keys, m, err)
		}
	}
	if err := b.DeleteMulti(ctx, []string{"a", "b"}); err != nil {
		t.Fatalf("DeleteMulti: %v", err)
	}
	var zero null.Backend
	if _, err := zero.Get(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("zero Backend Get error = %v; want ErrNotFound", err)
	}
}

func TestGetDoesNotAllocate(t *testing.T) {
	ctx := t.Context()
	b := null.New()
	if n := testing.AllocsPerRun(100, func() { _, _ = b.Get(ctx, "k") }); n != 0 {
		t.Errorf("Get allocates %v times, want 0", n)
	}
}

func TestOpen(t *testing.T) {
	for _, u := range []string{"null://", "null:", "null:///"} {
		b, err := backends.Open(u)
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		if _, ok := b.(*null.Backend); !ok {
			t.Fatalf("Open(%q) = %T, want *null.Backend", u, b)
		}
	}
	for _, tc := range []struct{ url, want string }{
		{"null://?max_entries=1", `unknown parameter "max_entries"`},
		{"null://host", "no host or path"},
		{"null:///path", "no host or path"},
	} {
		_, err := backends.Open(tc.url)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q) error = %v; want one saying %q", tc.url, err, tc.want)
		}
	}
}

// TestOpenDirectly: null.Open is the registered opener, usable without the registry.
func TestOpenDirectly(t *testing.T) {
	for raw, ok := range map[string]bool{"null://": true, "null://?x=1": false, "null://?%zz": false} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := null.Open(u); (err == nil) != ok {
			t.Errorf("Open(%q): %v; want ok=%v", raw, err, ok)
		}
	}
}
