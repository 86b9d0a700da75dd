package main

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStampede runs the README's first command with a smaller load and checks what it reports:
// one run on the cold key, one regeneration after expiry, and every caller but the regenerating
// one (none with background refresh) served the old value. It checks results, not timings: the
// 300ms function only has to outlast the start of 200 goroutines.
func TestStampede(t *testing.T) {
	for _, background := range []bool{false, true} {
		var out strings.Builder
		res, err := run(&out, config{callers: 200, slow: 300 * time.Millisecond, expiry: 300 * time.Millisecond, background: background})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("background=%v:\n%s", background, out.String())
		if res.coldRuns != 1 || res.expiredRuns != 1 {
			t.Fatalf("function ran %d times cold and %d after expiry, want 1 and 1", res.coldRuns, res.expiredRuns)
		}
		if want := map[bool]int{false: 199, true: 200}[background]; res.servedOld != want {
			t.Fatalf("%d of 200 callers were served the old value, want %d", res.servedOld, want)
		}
		if !strings.Contains(out.String(), "the function ran 1 time(s)") {
			t.Fatalf("output lacks the cold-key count:\n%s", out.String())
		}
	}
	if _, err := run(&strings.Builder{}, config{}); err == nil {
		t.Fatal("run accepted a zero config")
	}
}
