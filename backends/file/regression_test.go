package file_test

import (
	"errors"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/file"
)

// TestBoundAcrossBackends: four backends (standing in for four processes) on one directory with
// WithMaxEntries(100), each writing 100 distinct keys. Each one's totals see only its own writes,
// so none used to cross the bound and no pass ran: the directory ended at 4x. A pass now also runs
// after a tenth of a bound of a process's own writes, so N writers overshoot by N tenths at most.
func TestBoundAcrossBackends(t *testing.T) {
	const bound = 100
	dir := t.TempDir()
	var bs []*file.Backend
	for range 4 {
		bs = append(bs, newBackend(t, dir, file.WithMaxEntries(bound), file.WithFsync(false)))
	}
	for i := range bound {
		for j, b := range bs {
			if err := b.Set(t.Context(), fmt.Sprint("p", j, "-", i), []byte("v"), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, n := dirTotals(t, dir); n > bound+4*bound/10 {
		t.Errorf("%d entries on disk with WithMaxEntries(%d) shared by 4 backends; want at most %d", n, bound, bound+4*bound/10)
	}
}

// TestHugeTTLNeverExpires: a ttl past the year 2262 used to overflow UnixNano, so the entry was
// written already expired and the next Get was a miss. It now means never, as on memcached.
func TestHugeTTLNeverExpires(t *testing.T) {
	b := newBackend(t, t.TempDir())
	for _, ttl := range []time.Duration{math.MaxInt64, 250 * 365 * 24 * time.Hour} {
		if err := b.Set(t.Context(), "k", []byte("v"), ttl); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Get(t.Context(), "k"); errors.Is(err, backends.ErrNotFound) {
			t.Errorf("Set with ttl %v, then Get: a miss", ttl)
		}
	}
}

// TestEvictionRemovesOldestFirst pins the eviction order: the entries written longest ago go
// first. (Reversing the order used to pass every test: the bound tests only counted entries.)
func TestEvictionRemovesOldestFirst(t *testing.T) {
	dir := t.TempDir()
	unbounded := newBackend(t, dir, file.WithFsync(false))
	base := time.Now().Add(-time.Hour)
	for i := range 20 {
		key := fmt.Sprint("key-", i)
		if err := unbounded.Set(t.Context(), key, []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
		// Written i minutes after the first, whatever the file system's timestamp resolution.
		mtime := base.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(entryPath(dir, key), mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	// A bounded backend on the directory runs a pass at New: 20 entries, bound 10, down to 9.
	bounded := newBackend(t, dir, file.WithMaxEntries(10))
	for i := range 20 {
		_, err := bounded.Get(t.Context(), fmt.Sprint("key-", i))
		if kept := err == nil; kept != (i >= 11) {
			t.Errorf("key-%d (the %dth oldest) kept = %v (%v); want the 9 newest kept, the 11 oldest evicted", i, i+1, kept, err)
		}
	}
}
