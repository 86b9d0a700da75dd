package bench

import (
	"context"
	"testing"
	"time"
)

// TestContenders checks what the benchmarks take for granted of every contender: it returns the
// loaded value, a second read is a hit, and concurrent callers of a cold key share one load
// where the cache coalesces.
func TestContenders(t *testing.T) {
	for _, ct := range contenders {
		t.Run(ct.name, func(t *testing.T) {
			cfg := config{src: new(source), capacity: hitCapacity, expire: time.Minute}
			c := ct.new(t, cfg)
			ctx := context.Background()
			for range 2 {
				u, err := c.get(ctx, 7)
				check(t, u, err, 7)
			}
			if n := cfg.src.calls.Load(); n != 1 {
				t.Errorf("two reads of one key ran the loader %d times, want 1", n)
			}
		})
	}
}
