package memcached

import (
	"context"
	"fmt"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/dogpile-go/dogpile/backends"
)

var _ backends.ConditionalSetter = (*Backend)(nil)

// maxConditionalTries bounds the rounds of SetIfNotNewer: each round that loses a race (another
// write between its gets and its cas or add) starts again with a new gets. A round is lost only
// to a write that succeeded, so a key written by a handful of processes at once settles in a
// few rounds; the bound is there for a key that is written without pause.
const maxConditionalTries = 32

// errNotEntry is the error of a conditional store given a value that is not an entry: without a
// created-at there is nothing to compare, and storing it unconditionally would defeat the check.
var errNotEntry = fmt.Errorf("%w: the value is not an entry, so it has no created-at to compare", backends.ErrMalformed)

// SetIfNotNewer stores value, an entry (backends.EncodeEntry), under key with Set's ttl rule,
// unless key holds an entry whose created-at is later than value's; stored reports whether it
// did. It reads the held item and its CAS id with gets, then writes with cas (add when the key is
// absent), which memcached refuses if the item changed, or appeared, since the gets: two round
// trips, atomic against every other write of the key, in any process. A round that loses such a
// race starts again, up to 32 rounds; a key written that often in between is an error. Held bytes
// that are not an entry are overwritten. A value too large for the item size limit is an error
// wrapping backends.ErrTooLarge, and a value that is not an entry one wrapping
// backends.ErrMalformed; nothing is sent for either.
//
// ctx is checked before each round trip; gomemcache takes no context (see the package
// documentation).
func (b *Backend) SetIfNotNewer(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	const op = "setifnotnewer"
	created, ok := backends.EntryCreated(value)
	if !ok {
		return false, fmt.Errorf("memcached: %s %q: %w", op, key, errNotEntry)
	}
	mk := b.key(key)
	if err := b.checkSize(op, key, mk, value); err != nil {
		return false, err
	}
	exp := b.expiry(ttl)
	for range maxConditionalTries {
		if err := ctxError(ctx, op, key); err != nil {
			return false, err
		}
		it, err := b.get(ctx, mk)
		switch {
		case err == memcache.ErrCacheMiss:
			err = b.add(ctx, &memcache.Item{Key: mk, Value: value, Expiration: exp})
			if err == memcache.ErrNotStored {
				continue // written since the gets
			}
		case err != nil:
			return false, fmt.Errorf("memcached: %s %q: %w", op, key, err)
		default:
			if held, ok := backends.EntryCreated(it.Value); ok && held > created {
				return false, nil
			}
			if err := ctxError(ctx, op, key); err != nil {
				return false, err
			}
			it.Value, it.Flags, it.Expiration = value, 0, exp
			err = b.compareAndSwap(ctx, it)
			if err == memcache.ErrCASConflict || err == memcache.ErrCacheMiss || err == memcache.ErrNotStored {
				continue // written, deleted or evicted since the gets
			}
		}
		if err != nil {
			return false, setError(op, key, len(value), err)
		}
		return true, nil
	}
	return false, fmt.Errorf("memcached: %s %q: %w", op, key, errContended)
}

// errContended is the error of a SetIfNotNewer whose every round lost a race with another write.
var errContended = fmt.Errorf("the key was written by others between each of %d reads and the write that followed", maxConditionalTries)
