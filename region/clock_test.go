package region

import (
	"testing"
	"testing/synctest"
	"time"
)

// waitCoarse polls until the coarse clock runs (want) or not, for up to five seconds.
func waitCoarse(t *testing.T, want bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if want {
			coarse.read()
		}
		if coarse.running.Load() == want && (coarse.now.Load() != 0) == want {
			return
		}
	}
	t.Fatalf("the coarse clock's running = %v, want %v", coarse.running.Load(), want)
}

func TestCoarseClockLagsAndNeverLeads(t *testing.T) {
	waitCoarse(t, true)
	for range 1000 {
		c := coarse.read()
		if now := time.Now().UnixNano(); c == 0 || c > now {
			t.Fatalf("coarse clock read %d at %d: it must lag the time, not lead it", c, now)
		}
	}
}

func TestCoarseClockStopsOnceNotRead(t *testing.T) {
	waitCoarse(t, true)
	waitCoarse(t, false) // nobody reads it: its goroutine ends
	waitCoarse(t, true)  // and a read starts it again
}

func TestCoarseClockNeverStartsInASynctestBubble(t *testing.T) {
	waitCoarse(t, false)
	synctest.Test(t, func(t *testing.T) {
		if c := coarse.read(); c != 0 {
			t.Fatalf("read in a bubble = %d, want 0 (the precise clock answers)", c)
		}
		if coarse.running.Load() {
			t.Fatal("a read in a synctest bubble started the coarse clock")
		}
	})
}

func TestFreshnessNearTheExpiryAsksThePreciseClock(t *testing.T) {
	r := New("near", WithExpiration(time.Hour))
	waitCoarse(t, true)
	now := time.Now().UnixNano()
	// Stored 59m59.99s ago: fresh for 10 ms more, which the coarse clock cannot confirm.
	created := now - int64(time.Hour) + int64(10*time.Millisecond)
	if !r.fresh(created, 0, time.Hour) {
		t.Fatal("a value 10 ms before its expiry is not fresh")
	}
	if r.fresh(now-int64(time.Hour)-int64(time.Millisecond), 0, time.Hour) {
		t.Fatal("a value 1 ms past its expiry is fresh")
	}
	if !r.fresh(now, 0, time.Hour) {
		t.Fatal("a value stored now is not fresh")
	}
}

// BenchmarkClockRead compares what the hit path pays for the time: the coarse clock's atomic
// load against the precise clock (time.Since of a monotonic base, what Region.now reads).
func BenchmarkClockRead(b *testing.B) {
	var sink int64
	b.Run("clock=coarse", func(b *testing.B) {
		for b.Loop() {
			sink += coarse.read()
		}
	})
	b.Run("clock=precise", func(b *testing.B) {
		base := time.Now()
		for b.Loop() {
			sink += int64(time.Since(base))
		}
	})
	_ = sink
}
