package httpcache

import (
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func sampleEntry() *entry {
	return &entry{kind: kindResponse, status: 200, stored: time.Unix(0, 1700000000123456789),
		ttl: time.Minute, id: 42, vary: []string{"Accept-Encoding"}, tags: []string{"a", "b"},
		header: http.Header{"Content-Type": {"text/html"}, "X-Two": {"1", "2"}},
		body:   []byte("<html>hello</html>")}
}

func TestEntryRoundTrip(t *testing.T) {
	e := sampleEntry()
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got entry
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e, &got, cmp.AllowUnexported(entry{})); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	j, _ := e.MarshalJSON()
	t.Logf("encoded: binary %d bytes, JSON %d bytes, body %d bytes", len(b), len(j), len(e.body))
	for i := range len(b) { // every truncation is an error
		if err := new(entry).UnmarshalBinary(b[:i]); err == nil {
			t.Fatalf("truncated to %d bytes: no error", i)
		}
	}
}

// FuzzEntry decodes any bytes without panicking, and within a bound of allocations: 16 times
// the input and 4 KiB.
func FuzzEntry(f *testing.F) {
	b, _ := sampleEntry().MarshalBinary()
	f.Add(b)
	f.Add([]byte{})
	f.Add(append(entryMagic[:], 1, 0, 200))
	f.Fuzz(func(t *testing.T, data []byte) {
		// The least of five measures: the fuzzing engine allocates on goroutines of its own.
		least := ^uint64(0)
		var e entry
		var err error
		for range 5 {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err = e.UnmarshalBinary(data)
			runtime.ReadMemStats(&after)
			least = min(least, after.TotalAlloc-before.TotalAlloc)
		}
		if least > uint64(16*len(data)+4096) {
			t.Errorf("%d bytes allocated %d", len(data), least)
		}
		if err != nil {
			return
		}
		again, _ := e.MarshalBinary()
		var e2 entry
		if err := e2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
	})
}
