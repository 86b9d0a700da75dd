package config_test

import (
	"math"
	"runtime"
	"testing"

	"github.com/dogpile-go/dogpile/config"
)

// parseBytesBound is how many bytes one Parse may allocate for an input of n bytes: the YAML
// parser's nodes and the lines of keys grow with the input, and aliases may not multiply them
// beyond the parser's budget.
func parseBytesBound(n int) uint64 { return 4<<20 + 8<<10*uint64(n) }

// parseAllocated returns the bytes one Parse of data allocates: the least of three runs, so that
// another goroutine's allocations in the same moment are not counted.
func parseAllocated(data []byte) uint64 {
	best := uint64(math.MaxUint64)
	var before, after runtime.MemStats
	for range 3 {
		runtime.ReadMemStats(&before)
		_, _ = config.Parse(data)
		runtime.ReadMemStats(&after)
		best = min(best, after.TotalAlloc-before.TotalAlloc)
	}
	return best
}

// Parse, on any bytes: no panic, and allocation bounded by the input's size, aliases or not.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"regions:\n  users:\n    backend: memory://\n    expiration: 10m\n    arguments: {max_entries: 10, copy: true}\n",
		`{"regions": {"users": {"backend": "memory://", "jitter": 0.1}}}`,
		"regions:\n  a: &a {backend: memory://}\n  b: {<<: *a, expiration: 1m}\n  c: *a\n",
		"profiles:\n  staging:\n    regions:\n      users: {background_refresh: 2}\n",
		"regions:\n  r1: &m1 {<<: [&m0 {backend: x}, *m0, *m0]}\n  r2: {<<: [*m1, *m1, *m1]}\n",
		"regions: [\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if n, bound := parseAllocated(data), parseBytesBound(len(data)); n > bound {
			t.Fatalf("Parse of %d bytes allocated %d bytes, want at most %d", len(data), n, bound)
		}
	})
}
