package wrap_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/file"
	"github.com/dogpile-go/dogpile/backends/wrap"
	"github.com/google/go-cmp/cmp"
)

// unlocked is a file backend with its conditional store and nothing else: no Locker, no
// multi-key operations, no Unwrap.
type unlocked struct{ fb *file.Backend }

func (u unlocked) Get(ctx context.Context, key string) ([]byte, error) { return u.fb.Get(ctx, key) }
func (u unlocked) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return u.fb.Set(ctx, key, value, ttl)
}
func (u unlocked) Delete(ctx context.Context, key string) error { return u.fb.Delete(ctx, key) }
func (u unlocked) SetIfNotNewer(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	return u.fb.SetIfNotNewer(ctx, key, value, ttl)
}

func stamped(created int64) []byte {
	return backends.EncodeEntry(backends.Entry{Created: created, Payload: []byte("v")})
}

// TestConditionalCallsSeen: conditional stores reach the hook, with what they refused; over a
// backend without ConditionalMultiSetter a batch is one OpSetIfNotNewer per item, in key order.
func TestConditionalCallsSeen(t *testing.T) {
	ctx := t.Context()
	fb := newFile(t)
	defer fb.Close()
	for _, tc := range []struct {
		name  string
		inner backends.Backend
	}{
		{"file", fb},
		{"unlocked", unlocked{fb}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := new(recorder)
			w := wrap.New(tc.inner, rec.hook)
			cs, ok := backends.As[backends.ConditionalSetter](w)
			if !ok || cs != w.(backends.ConditionalSetter) {
				t.Fatal("As[ConditionalSetter] did not stop at the wrapper")
			}
			cms, _ := backends.As[backends.ConditionalMultiSetter](w)
			a, b := tc.name+"a", tc.name+"b"
			older, newer := stamped(1), stamped(2)
			if stored, err := cs.SetIfNotNewer(ctx, a, newer, time.Minute); err != nil || !stored {
				t.Fatalf("SetIfNotNewer over nothing = %v, %v", stored, err)
			}
			if stored, err := cs.SetIfNotNewer(ctx, a, older, 0); err != nil || stored {
				t.Fatalf("SetIfNotNewer under a newer entry = %v, %v; want refused", stored, err)
			}
			refused, err := cms.SetMultiIfNotNewer(ctx, map[string][]byte{b: newer, a: older}, time.Hour)
			if err != nil || !slices.Equal(refused, []string{a}) {
				t.Fatalf("SetMultiIfNotNewer = %q, %v; want [%s] refused", refused, err, a)
			}
			if refused, err := cms.SetMultiIfNotNewer(ctx, nil, 0); err != nil || refused != nil {
				t.Fatalf("SetMultiIfNotNewer(nil) = %q, %v", refused, err)
			}
			n := len(newer)
			want := []wrap.Call{
				{Op: wrap.OpSetIfNotNewer, Key: a, TTL: time.Minute, Bytes: n},
				{Op: wrap.OpSetIfNotNewer, Key: a, Bytes: n, Refused: 1},
				{Op: wrap.OpSetIfNotNewer, Key: a, TTL: time.Hour, Bytes: n, Refused: 1},
				{Op: wrap.OpSetIfNotNewer, Key: b, TTL: time.Hour, Bytes: n},
			}
			if diff := cmp.Diff(want, rec.take()); diff != "" {
				t.Errorf("calls seen (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFaultsFailConditionalStores: Faults fails conditional stores like other writes, before
// they reach the backend, and the batch fallback fails item by item.
func TestFaultsFailConditionalStores(t *testing.T) {
	ctx := t.Context()
	fb := newFile(t)
	defer fb.Close()
	f := wrap.NewFaults(1)
	w := wrap.New(fb, f.Hook)
	cs, _ := backends.As[backends.ConditionalSetter](w)
	cms, _ := backends.As[backends.ConditionalMultiSetter](w)
	mustSet(t, f, wrap.Fault{FailNext: 2}, wrap.OpSetIfNotNewer)
	if stored, err := cs.SetIfNotNewer(ctx, "k", stamped(1), 0); stored || !errors.Is(err, wrap.ErrInjected) {
		t.Fatalf("SetIfNotNewer with a fault = %v, %v; want injected", stored, err)
	}
	if _, err := fb.Get(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("the failed store reached the backend: Get = %v", err)
	}
	refused, err := cms.SetMultiIfNotNewer(ctx, map[string][]byte{"a": stamped(1), "b": stamped(1)}, 0)
	if len(refused) != 0 || !errors.Is(err, wrap.ErrInjected) {
		t.Fatalf("SetMultiIfNotNewer with one fault left = %q, %v; want injected", refused, err)
	}
	if _, err := fb.Get(ctx, "a"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("the failed item reached the backend: Get(a) = %v", err)
	}
	if _, err := fb.Get(ctx, "b"); err != nil {
		t.Fatalf("the item after the failed one: Get(b) = %v; want stored", err)
	}
	if got := f.Injected(wrap.OpSetIfNotNewer); got != 2 {
		t.Errorf("Injected(OpSetIfNotNewer) = %d; want 2", got)
	}
}
