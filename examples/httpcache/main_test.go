package main

import (
	"io"
	"testing"
	"time"
)

func TestHandlerRunsOnceColdAndOnceExpired(t *testing.T) {
	out, err := run(io.Discard, config{clients: 200, slow: 100 * time.Millisecond, maxAge: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if out.coldRuns != 1 || out.expiredRuns != 1 {
		t.Errorf("handler runs: cold %d, expired %d; want 1 and 1", out.coldRuns, out.expiredRuns)
	}
	// Requests that arrive once the response is stored are hits: how many do depends on the
	// machine's speed, so only the sums and the one regeneration are checked.
	if c := out.xcache[0]; c["MISS"] < 1 || c["MISS"]+c["HIT"] != 200 {
		t.Errorf("X-Cache, cold: %v; want MISS and HIT only, 200 in all", c)
	}
	if c := out.xcache[1]; c["MISS"] != 1 || c["MISS"]+c["STALE"]+c["HIT"] != 200 {
		t.Errorf("X-Cache, expired: %v; want one MISS (the regeneration), the rest STALE or HIT", c)
	}
}
