package file

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/dogpile-go/dogpile/backends"
)

var _ backends.ConditionalSetter = (*Backend)(nil)

// Writes of entries are serialised per stripe, so that SetIfNotNewer's read and write are one
// step against every other write of the key: writeStripes lock files (dir/locks/w0.lock to
// w4095.lock, created as they are first used), apart from TryLock's stripes, since a region
// stores a value while it holds the key's TryLock. Two keys on one stripe wait for each other's
// write, never for a creation.
const writeStripes = 4096

// writeSlots is the number of in-process semaphores in front of the stripes (stripe modulo
// writeSlots): one goroutine of a process at a time takes a stripe's flock, and waits for the
// others on a channel, which a context can interrupt, rather than in flock.
const writeSlots = 256

// Bounds of the wait between two tries of a stripe's flock held by another process.
const (
	minFlockWait = 100 * time.Microsecond
	maxFlockWait = 5 * time.Millisecond
)

// errNotEntry is the error of a conditional store given a value that is not an entry: without a
// created-at there is nothing to compare, and storing it unconditionally would defeat the check.
var errNotEntry = fmt.Errorf("%w: the value is not an entry, so it has no created-at to compare", backends.ErrMalformed)

// SetIfNotNewer stores value, an entry (backends.EncodeEntry), under key with Set's ttl rule,
// unless key holds an entry whose created-at is later than value's; stored reports whether it
// did. Under the key's write stripe lock, which every Set and SetMulti of this directory takes
// too, in any process, it reads the entry file (whole, to check its checksum: a file that is
// expired, damaged or holds another key counts as absent, and is removed) and, unless the entry
// in it is newer, writes the new one as Set does (temporary file, fsync, rename): atomic
// against every other write of the key. Cost: Set's syscalls, plus the read of the held file and
// an open, flock and close of the stripe's lock file. Held bytes that are not an entry are
// overwritten. A value that is not an entry is an error wrapping backends.ErrMalformed, and
// nothing is written.
func (b *Backend) SetIfNotNewer(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := b.check(ctx, "setifnotnewer", key); err != nil {
		return false, err
	}
	if err := b.checkSize("setifnotnewer", key, value); err != nil {
		return false, err
	}
	created, ok := backends.EntryCreated(value)
	if !ok {
		return false, fmt.Errorf("file: setifnotnewer %q: %w", key, errNotEntry)
	}
	unlock, err := b.lockWrite(ctx, key)
	if err != nil {
		return false, fmt.Errorf("file: setifnotnewer %q: %w", key, err)
	}
	now := time.Now()
	held, err := b.get(key, now)
	switch {
	case err == errNotFound, errors.Is(err, backends.ErrNotFound), errors.Is(err, backends.ErrMalformed):
		// Absent, or not an entry (a file too large, a link, a FIFO): the rename replaces it.
	case err != nil:
		unlock()
		return false, fmt.Errorf("file: setifnotnewer %q: %w", key, err)
	default:
		if c, ok := backends.EntryCreated(held); ok && c > created {
			unlock()
			return false, nil
		}
	}
	err = b.set(key, value, b.expiresAt(ttl, now))
	unlock()
	if err != nil {
		return false, fmt.Errorf("file: setifnotnewer %q: %w", key, err)
	}
	b.wrote(1, int64(len(key)+len(value))) // may run an eviction pass: not under the lock
	return true, nil
}

// lockWrite takes the write stripe lock of key and returns its release: first the stripe's
// in-process semaphore, then an exclusive flock on the stripe's lock file, tried without waiting
// and again after a growing pause while another process holds it. It gives up, with ctx's
// error, when ctx ends first.
func (b *Backend) lockWrite(ctx context.Context, key string) (unlock func(), err error) {
	sum := sha256.Sum256([]byte(key))
	stripe := binary.BigEndian.Uint32(sum[4:8]) % writeStripes
	sem := b.writers[stripe%writeSlots]
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	name := "w" + strconv.FormatUint(uint64(stripe), 10) + ".lock"
	if !b.useFDs() {
		<-sem
		return nil, errClosed
	}
	f, err := openRegular(b.lockFD, name, filepath.Join(b.lockDir, name))
	b.fdMu.RUnlock()
	if err != nil {
		<-sem
		return nil, err
	}
	fail := func(err error) (func(), error) {
		_ = f.Close()
		<-sem
		return nil, err
	}
	for wait := minFlockWait; ; wait = min(2*wait, maxFlockWait) {
		taken, err := tryFlock(f)
		if err != nil {
			return fail(err)
		}
		if taken {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fail(ctx.Err())
		}
	}
	return func() {
		_ = f.Close() // drops the flock
		<-sem
	}, nil
}
