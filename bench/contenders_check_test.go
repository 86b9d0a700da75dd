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
			cfg := config{src: new(source), capacity: hitCapacity, expire: time.Minute, hitPath: true, oneKey: true}
			c := ct.new(t, cfg)
			ctx := context.Background()
			for range 2 {
				u, err := c.get(ctx, hitID)
				check(t, u, err, hitID)
			}
			if n := cfg.src.calls.Load(); n != 1 {
				t.Errorf("two reads of one key ran the loader %d times, want 1", n)
			}
		})
	}
}

// TestPeekers checks what the benchmarks of reads without a loader take for granted of every
// peeker: a key it was given is a hit that returns the value, a key it was not is a miss.
func TestPeekers(t *testing.T) {
	for _, pk := range peekers {
		t.Run(pk.name, func(t *testing.T) {
			p := pk.new(t, hitConfig)
			ctx := context.Background()
			if err := p.set(ctx, hitID, &user{ID: hitID}); err != nil {
				t.Fatal(err)
			}
			u, ok, err := p.peek(ctx, hitID)
			if err != nil || !ok || u == nil || u.ID != hitID {
				t.Errorf("a read of the key set: got %+v, %v, %v, want the user %d", u, ok, err, hitID)
			}
			if u, ok, err := p.peek(ctx, hitID+1); err != nil || ok {
				t.Errorf("a read of a key never set: got %+v, %v, %v, want a miss", u, ok, err)
			}
		})
	}
}
