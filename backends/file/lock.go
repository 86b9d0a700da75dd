package file

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/dogpile-go/dogpile/backends"
)

// lockStripes is the number of lock files keys share (dir/locks/0.lock to 65535.lock, created as
// they are first used). Two keys on one stripe exclude each other: with 65536 stripes, two keys
// locked at the same moment share one with probability 1/65536, which costs the second a wait
// for a value, not a wrong result.
const lockStripes = 65536

// TryLock tries once, without waiting, to take the lock named key: it opens the key's stripe file
// under dir/locks (creating it), checks that it is a regular file, and takes an exclusive flock
// on it with LOCK_NB. It returns (lock, true, nil) when taken, (nil, false, nil) when another
// holder (another backend or process, or another TryLock of this backend) has the stripe, and an
// error for a timeout <= 0, a done ctx, or a failed open. A link in the stripe file's place is not
// followed, and it or anything else but a regular file there is an error wrapping
// backends.ErrMalformed. Cost: a SHA-256, an open, an fstat and a flock; the lock keeps its file
// open.
//
// The lock frees itself after timeout (a timer closes its file), and at once if the holding
// process dies, since the kernel releases a flock with the last descriptor of its file.
func (b *Backend) TryLock(ctx context.Context, key string, timeout time.Duration) (backends.Lock, bool, error) {
	if err := b.check(ctx, "trylock", key); err != nil {
		return nil, false, err
	}
	if timeout <= 0 {
		return nil, false, fmt.Errorf("file: trylock %q: timeout %v: must be positive", key, timeout)
	}
	name := lockName(key)
	if !b.useFDs() {
		return nil, false, errClosed
	}
	f, err := openRegular(b.lockFD, name, filepath.Join(b.lockDir, name))
	b.fdMu.RUnlock()
	if err != nil {
		return nil, false, fmt.Errorf("file: trylock %q: %w", key, err)
	}
	taken, err := tryFlock(f)
	if err != nil || !taken {
		_ = f.Close()
		if err != nil {
			return nil, false, fmt.Errorf("file: trylock %q: %w", key, err)
		}
		return nil, false, nil
	}
	l := &lock{f: f}
	l.timer = time.AfterFunc(timeout, l.release)
	return l, true, nil
}

// lockName returns the name, under locks/, of the stripe file of the lock named key.
func lockName(key string) string {
	sum := sha256.Sum256([]byte(key))
	n := binary.BigEndian.Uint32(sum[:4]) % lockStripes
	return strconv.FormatUint(uint64(n), 10) + ".lock"
}

// lock is a lock taken by TryLock: an open stripe file holding an flock.
type lock struct {
	f     *os.File
	timer *time.Timer
	once  sync.Once // closes f once, whether Unlock or the timer comes first
}

// release closes the lock's file, which drops the flock. It runs once: the *os.File is never
// closed twice, so a descriptor number the kernel has since given to another open file (a later
// holder's) is never closed by a stale holder.
func (l *lock) release() {
	l.once.Do(func() { _ = l.f.Close() })
}

// Unlock releases the lock if this holder still holds it: it stops the timer and closes the
// lock's file. After the timeout has freed the lock it does nothing, and cannot touch a later
// holder's lock, which holds a file of its own. It may be called more than once, and never fails.
func (l *lock) Unlock(context.Context) error {
	l.timer.Stop()
	l.release()
	return nil
}
