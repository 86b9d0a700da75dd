package file_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/file"
)

func stamped(created int64) []byte {
	return backends.EncodeEntry(backends.Entry{Created: created, Payload: []byte("v")})
}

// TestSetIfNotNewerAtomicAcrossBackends: two backends on one directory, as two processes would
// have: one writes with Set entries ever newer, the other stores conditionally entries older than
// the Set in progress. The backends share no semaphore, so only the stripe's flock keeps a
// conditional store's read and write together; a Set that returned must stay held.
func TestSetIfNotNewerAtomicAcrossBackends(t *testing.T) {
	dir := t.TempDir()
	setter, err := file.New(dir, file.WithFsync(false))
	if err != nil {
		t.Fatal(err)
	}
	defer setter.Close()
	ctx := t.Context()
	const key, rounds, writers = "k", 200, 4
	base := time.Now().UnixNano()
	var current atomic.Int64
	current.Store(base)
	if err := setter.Set(ctx, key, stamped(base), 0); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for range writers {
		// Closed by newBackend's cleanup, after the deferred cancel and wait: a writer must not
		// meet a closed backend while its context is live.
		other := newBackend(t, dir, file.WithFsync(false))
		wg.Go(func() {
			for wctx.Err() == nil {
				_, err := other.SetIfNotNewer(wctx, key, stamped(current.Load()-1), 0)
				if err != nil && wctx.Err() == nil {
					t.Errorf("SetIfNotNewer: %v", err)
					return
				}
			}
		})
	}
	for i := 1; i <= rounds && !t.Failed(); i++ {
		c := base + int64(i)*1000
		current.Store(c)
		if err := setter.Set(ctx, key, stamped(c), 0); err != nil {
			t.Fatal(err)
		}
		v, err := setter.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := backends.EntryCreated(v); got != c {
			t.Fatalf("round %d: after a Set of an entry created at %d, the key holds one created at %d", i, c, got)
		}
	}
}

// TestSetIfNotNewerWhileLocked: a region stores what it created while it holds the key's
// TryLock; the writes' stripe lock is another, so neither waits for the other.
func TestSetIfNotNewerWhileLocked(t *testing.T) {
	b, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	lock, ok, err := b.TryLock(ctx, "k", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	defer lock.Unlock(ctx)
	if stored, err := b.SetIfNotNewer(ctx, "k", stamped(2), 0); err != nil || !stored {
		t.Fatalf("SetIfNotNewer under the key's TryLock = %v, %v; want stored", stored, err)
	}
	if err := b.Set(ctx, "k", stamped(3), 0); err != nil {
		t.Fatalf("Set under the key's TryLock: %v", err)
	}
}

// TestSetIfNotNewerRefusesNonEntries: a value that is not an entry has no created-at to compare;
// storing it would defeat the check, so it is an error and nothing is written.
func TestSetIfNotNewerRefusesNonEntries(t *testing.T) {
	b, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := t.Context()
	stored, err := b.SetIfNotNewer(ctx, "k", []byte("not an entry"), 0)
	if stored || !errors.Is(err, backends.ErrMalformed) {
		t.Fatalf("SetIfNotNewer(not an entry) = %v, %v; want an error wrapping backends.ErrMalformed", stored, err)
	}
	if _, err := b.Get(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Get after a refused value: %v; want a miss", err)
	}
}

// TestSetIfNotNewerExpiredCountsAsAbsent: an entry past its storage TTL is absent, however new.
func TestSetIfNotNewerExpiredCountsAsAbsent(t *testing.T) {
	b, err := file.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := t.Context()
	if err := b.Set(ctx, "k", stamped(time.Now().Add(time.Hour).UnixNano()), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if stored, err := b.SetIfNotNewer(ctx, "k", stamped(1), 0); err != nil || !stored {
		t.Fatalf("SetIfNotNewer over an expired newer entry = %v, %v; want stored (expired counts as absent)", stored, err)
	}
}
