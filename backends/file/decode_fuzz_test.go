package file

import (
	"bytes"
	"math"
	"runtime"
	"testing"
	"time"
	"unsafe"
)

// decodeAllocs is how many allocations one decode may make: none. It checks a file the backend
// read into a buffer of its own and returns a slice of that buffer.
const decodeAllocs = 0

// decodeMallocs returns how many allocations decode(buf, key, now) makes: the least of five runs,
// so that an allocation of another goroutine's (the fuzzing engine's, a test's left running) in
// the same moment is not counted.
func decodeMallocs(buf []byte, key string, now time.Time) uint64 {
	best := uint64(math.MaxUint64)
	var before, after runtime.MemStats
	for range 5 {
		runtime.ReadMemStats(&before)
		_, _ = decode(buf, key, now)
		runtime.ReadMemStats(&after)
		best = min(best, after.Mallocs-before.Mallocs)
	}
	return best
}

// entryFile returns the bytes of the entry file set writes for key, value and expiry exp.
func entryFile(key string, value []byte, exp int64) []byte {
	return append(encodeHeader(key, value, exp, len(value)), value...)
}

// within reports whether sub lies inside buf's memory (from buf's start to the end of its capacity).
func within(sub, buf []byte) bool {
	if len(sub) == 0 {
		return true
	}
	if cap(buf) == 0 {
		return false
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	return p >= lo && p+uintptr(len(sub)) <= lo+uintptr(len(buf))
}

// The entry file decoder, on any bytes, key and time: no panic, no allocation, and a value that is
// a slice of the file's own bytes; and every file set writes decodes back to its value.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, buf []byte, key string, nowNanos int64) {
		at := time.Unix(0, nowNanos)
		if n := decodeMallocs(buf, key, at); n > decodeAllocs {
			t.Fatalf("decode of %d bytes allocated %v times, want at most %d", len(buf), n, decodeAllocs)
		}
		if v, ok := decode(buf, key, at); ok {
			if !within(v, buf) {
				t.Fatalf("decode returned a value outside the file's bytes: a copy, not a slice")
			}
			if cap(v) != len(v) {
				t.Fatalf("decode returned a value with capacity %d past its length %d: an append would write into the buffer", cap(v), len(v))
			}
		}

		// Round trip: what set writes for (key, buf), unexpiring or expiring after now, decodes
		// back to buf.
		exps := []int64{0}
		if nowNanos < math.MaxInt64 {
			exps = append(exps, nowNanos+1)
		}
		for _, exp := range exps {
			file := entryFile(key, buf, exp)
			got, ok := decode(file, key, at)
			if !ok || !bytes.Equal(got, buf) {
				t.Fatalf("decode(encode(%q, % x, exp %d)) at %d = % x, %v; want the value back", key, buf, exp, nowNanos, got, ok)
			}
			if exp != 0 {
				if _, ok := decode(file, key, time.Unix(0, exp)); ok {
					t.Fatalf("an entry that expires at %d decoded at that time", exp)
				}
			}
		}
	})
}
