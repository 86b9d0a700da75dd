package memory

import (
	"testing"
	"time"
	"unsafe"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/maypok86/otter/v2"
)

// TestEntrySize pins the size of what otter copies out on every hit (see entry).
func TestEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(entry{}); n != 32 {
		t.Errorf("entry is %d bytes, want 32", n)
	}
}

func TestEntryPacking(t *testing.T) {
	ctx := t.Context()
	b := New()
	defer b.Close()
	for _, tc := range []struct {
		delta, want time.Duration
	}{
		{0, 0},
		{1, time.Microsecond}, // rounded up: a known delta stays known
		{250 * time.Millisecond, 250 * time.Millisecond},
		{1500 * time.Microsecond, 1500 * time.Microsecond},
		{100 * time.Hour, 4294967295 * time.Microsecond}, // at most about 71 minutes
	} {
		if err := b.SetValue(ctx, "k", backends.Item{Value: 1, Created: 42, Delta: int64(tc.delta)}, time.Hour); err != nil {
			t.Fatal(err)
		}
		it, err := b.GetValue(ctx, "k")
		if err != nil || it.Value != 1 || it.Created != 42 || time.Duration(it.Delta) != tc.want {
			t.Errorf("Delta %v stored and read as %v (item %+v, %v), want %v", tc.delta, time.Duration(it.Delta), it, err, tc.want)
		}
	}
	for _, tc := range []struct {
		ttl, want time.Duration
	}{
		{noExpiry, noExpiry},
		{1, 2 * ttlUnit}, // rounded up, and a clock step more: kept at least as long as asked
		{time.Second, time.Second + ttlUnit},
		{time.Second + 1, time.Second + 2*ttlUnit},
		{20 * 365 * 24 * time.Hour, noExpiry}, // beyond 13 years: never
	} {
		e := newEntry(nil, 0, 0, tc.ttl)
		if got := entryTTL(otterEntry(e)); got != tc.want {
			t.Errorf("TTL %v kept as %v, want %v", tc.ttl, got, tc.want)
		}
	}
}

func otterEntry(e entry) otter.Entry[string, entry] {
	return otter.Entry[string, entry]{Key: "k", Value: e}
}
