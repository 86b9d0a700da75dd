package memcached

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/dogpile-go/dogpile/backends"
)

// TryLock tries once, without waiting, to take the lock named key, with
//
//	add <prefix>lock:<hex SHA-1 of key><40 letters a or b> 0 <expiry> 32
//	<token>
//
// where the token is 16 random bytes in hex and the expiry is the timeout in whole seconds,
// rounded up, plus one (memcached's clock ticks once a second; see the package documentation):
// the lock frees itself at least timeout and at most about timeout+2s after it was taken. timeout
// must be positive. It returns (lock, true, nil) when taken, (nil, false, nil) when another holder
// has the lock, and an error wrapping ctx.Err() without any I/O when ctx is already done. One
// round trip when the lock is free; two when it is held (see below).
//
// An error may leave the lock taken (the add reached memcached, its reply did not come back, or
// ctx ended while the add was under way); it then frees itself after timeout.
func (b *Backend) TryLock(ctx context.Context, key string, timeout time.Duration) (backends.Lock, bool, error) {
	if err := ctxError(ctx, "trylock", key); err != nil {
		return nil, false, err
	}
	if timeout <= 0 {
		return nil, false, fmt.Errorf("memcached: trylock %q: timeout %v: must be positive", key, timeout)
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (it crashes the program instead)
	l := &lock{b: b, name: key, key: b.lockKey(key), token: hex.EncodeToString(raw[:])}
	err := b.add(ctx, &memcache.Item{Key: l.key, Value: []byte(l.token), Expiration: expiration(timeout, time.Now())})
	switch err {
	case nil:
		return l, true, nil
	case memcache.ErrNotStored:
		// Held, perhaps by us: the add may have been sent again after a connection died with its
		// reply (b.add retries on dead connections), and then finds our own first add. Reading
		// the token tells; otherwise this process would wait out its own lock's timeout.
		it, err := b.get(ctx, l.key)
		switch {
		case err == nil && string(it.Value) == l.token:
			return l, true, nil
		case err == nil, err == memcache.ErrCacheMiss: // another's, or expired since
			return nil, false, nil
		}
		// Unknown: the lock may be ours, so say so rather than report it held by another.
		return nil, false, fmt.Errorf("memcached: trylock %q: reading the lock: %w", key, err)
	}
	return nil, false, fmt.Errorf("memcached: trylock %q: %w", key, err)
}

// lock is a lock taken by TryLock.
type lock struct {
	b     *Backend
	name  string // the key TryLock was given, for errors
	key   string // the lock's memcached key
	token string // this holder's random token, the lock item's value while it holds the lock
}

// Unlock releases the lock if it still holds this holder's token, with a compare-and-delete in two
// round trips: gets reads the lock item and its CAS id; if the item holds the token, a cas with
// that id and a negative expiry replaces it with an item that has already expired, which memcached
// treats as deleted (the next add of the lock succeeds). The cas fails if the item changed or
// vanished after the gets, so a holder whose lock expired, and was then taken by another, can
// never release the other's lock: its Unlock finds another token, or a changed CAS id, and leaves
// the lock alone. That is not an error. Unlock may be called more than once.
func (l *lock) Unlock(ctx context.Context) error {
	if err := ctxError(ctx, "unlock", l.name); err != nil {
		return err
	}
	it, err := l.b.get(ctx, l.key)
	if err == memcache.ErrCacheMiss {
		return nil // expired, or released already
	}
	if err != nil {
		return fmt.Errorf("memcached: unlock %q: %w", l.name, err)
	}
	if string(it.Value) != l.token {
		return nil // another holder's
	}
	it.Value = nil
	it.Expiration = -1 // already expired: a compare-and-delete
	switch err := l.b.compareAndSwap(ctx, it); err {
	case nil, memcache.ErrCASConflict, memcache.ErrNotStored, memcache.ErrCacheMiss:
		// Released, or changed or gone since the gets: either way no longer ours.
		return nil
	default:
		return fmt.Errorf("memcached: unlock %q: %w", l.name, err)
	}
}
