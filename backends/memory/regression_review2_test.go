package memory_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memory"
)

// newEntry says "Rounded up: the backend keeps an entry at least its TTL", but the TTL is timed
// from the coarse clock's last tick, up to a step (100ms) before the write: an entry written
// between ticks goes up to 100ms before its TTL. A region whose storage TTL exceeds its
// expiration by less than that loses values while they are still fresh.
func TestReview2EntryKeptAtLeastItsTTL(t *testing.T) {
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
