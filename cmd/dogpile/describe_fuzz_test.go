package main

import (
	"errors"
	"io"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
)

// describeBound is the most showing an entry of n bytes may allocate, both ways get shows it
// (text and -json) together. The dearest input we know is a list of numbers nested
// maxIndentDepth deep: indenting grows it about 17-fold, and json.Indent's appending (a slice
// that grows by a quarter at a time) then the copy into the buffer allocate about 6 times that:
// 105 times the entry's size, measured. Deeper JSON is shown as stored, not indented: indenting
// it would cost the square of its size (a 16 KiB entry of nested arrays allocated 1 GiB). The
// constant covers the fixed cost of a small entry (the header's fields, fmt's and json's buffers).
func describeBound(n int) uint64 { return 128*uint64(n) + 8<<10 }

// show does what get does with raw, the bytes read under a key, in both its outputs, to io.Discard.
func show(raw []byte, now time.Time) {
	c := &cli{stdout: io.Discard, stderr: io.Discard, now: func() time.Time { return now }}
	res, e, err := describeEntry(raw, now)
	if err != nil {
		c.printMalformed(res, raw)
		res.PayloadBase64 = raw
		c.writeJSON(res)
		return
	}
	c.printEntry(res, e)
	c.writeJSON(res)
}

// showAlloc returns the bytes show(raw, now) allocates: the least of three runs, so that an
// allocation of the fuzzing engine's in the same moment is not counted.
func showAlloc(raw []byte, now time.Time) uint64 {
	best := uint64(math.MaxUint64)
	var before, after runtime.MemStats
	for range 3 {
		runtime.ReadMemStats(&before)
		show(raw, now)
		runtime.ReadMemStats(&after)
		best = min(best, after.TotalAlloc-before.TotalAlloc)
	}
	return best
}

// nestedJSON returns JSON documents of about n bytes nested as deep as they go: the dearest to
// pretty-print, as each level indents every line inside it.
func nestedJSON(n int) []string {
	rep := func(s string, total int) string { return strings.Repeat(s, max(total/len(s), 1)) }
	return []string{
		rep("[", n/2) + rep("]", n/2),
		rep("[", n/4) + strings.TrimSuffix(rep("0,", n/2), ",") + rep("]", n/4),
		rep(`{"a":`, n*5/6) + "0" + rep("}", n/6),
		rep("[[],", n/2) + "0" + rep("]", n/8),
		// As deep as get indents, then as many lines as fit: the most indenting there is.
		rep("[", maxIndentDepth) + strings.TrimSuffix(rep("0,", n), ",") + rep("]", maxIndentDepth),
		rep(`{"":`, maxIndentDepth) + "[" + strings.TrimSuffix(rep("[],", n), ",") + "]" + rep("}", maxIndentDepth),
	}
}

// Showing a JSON payload, however it nests, allocates at most describeBound.
func TestDescribeEntryAllocationIsBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, size := range []int{64, 1024, 16 << 10} {
		for _, doc := range nestedJSON(size) {
			raw := backends.EncodeEntry(backends.Entry{Created: now.UnixNano(), Payload: []byte(doc)})
			got := showAlloc(raw, now)
			if testing.Verbose() {
				t.Logf("%-12.12s %6d bytes: %9d allocated, %7.1f×", doc, len(raw), got, float64(got)/float64(len(raw)))
			}
			if bound := describeBound(len(raw)); got > bound {
				t.Errorf("showing %.12s... (%d bytes) allocated %d bytes, more than %d", doc, len(raw), got, bound)
			}
		}
	}
}

// Showing any bytes as an entry, text and -json: no panic, allocation within describeBound, and
// what it shows agrees with the bytes.
func FuzzDescribeEntry(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte, nowNanos int64) {
		now := time.Unix(0, nowNanos)
		if got, bound := showAlloc(raw, now), describeBound(len(raw)); got > bound {
			t.Fatalf("showing %d bytes allocated %d bytes, more than the bound %d", len(raw), got, bound)
		}
		res, e, err := describeEntry(raw, now)
		if err != nil {
			if !errors.Is(err, backends.ErrMalformed) || res.Malformed == "" {
				t.Fatalf("describeEntry error %v (Malformed %q): want one wrapping ErrMalformed, said in Malformed", err, res.Malformed)
			}
			return
		}
		if res.Size != len(raw) || res.PayloadSize != len(e.Payload) || res.Flags != raw[3] || res.Version != int(raw[2]) {
			t.Fatalf("describeEntry of % x = %+v: size, payload size, flags or version disagree with the bytes", raw, res)
		}
		if res.SignedBy != "" && raw[3]&backends.FlagSigned == 0 {
			t.Fatalf("an unsigned entry shows a signer %q", res.SignedBy)
		}
	})
}
