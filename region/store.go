package region

import (
	"context"
	"fmt"
	"time"

	"github.com/dogpile-go/dogpile/backends"
)

// store writes val under k as created at created, in delta nanoseconds. Errors are returned as
// Errors of the call s, not reported. cond stores conditionally (a creation's value): where the
// backend can, an entry newer than created that the key holds is left as it is.
func (v *View[V]) store(ctx context.Context, b *bound, k string, val V, created, delta int64, cond bool, s scope) error {
	ttl := v.r.storageTTL()
	if b.values != nil {
		if err := b.values.SetValue(ctx, k, backends.Item{Value: val, Created: created, Delta: delta}, ttl); err != nil {
			return v.r.backendFailed(s, KindWrite, err)
		}
		return nil
	}
	payload, err := v.r.cfg.codec.Marshal(val)
	if err != nil {
		return v.r.failAt(s, KindEncode, fmt.Errorf("%T: %w", val, err))
	}
	raw := v.r.seal(k, backends.Entry{Created: created, Delta: delta, Payload: payload})
	since := b.local.epoch(k) // before the write: a write landing after ours is seen
	stored, err := v.r.write(ctx, b, k, raw, ttl, cond)
	if err != nil {
		if err != errSkipped { // it may have been applied (a timeout): drop the old value everywhere
			b.local.evict(ctx, v.r, b, s, k)
			since = b.local.epoch(k)
		}
		if cond && (err == errSkipped || reach(ctx, err) == reachedNot) {
			// A creation the backend is down for: this process keeps it, for the local tier's
			// max age, rather than run the creator on every call (see WithLocalCache).
			b.local.write(ctx, k, since, func() backends.Item {
				e := loaded[V]{val: val, created: created, delta: delta, found: true}
				return e.localItem()
			})
		}
		return v.r.backendFailed(s, KindWrite, err)
	}
	if !stored { // a newer write holds the key: this process must not serve the older value
		b.local.drop(ctx, k)
		return nil
	}
	b.local.write(ctx, k, since, func() backends.Item {
		e := loaded[V]{val: val, created: created, delta: delta, found: true}
		return e.localItem()
	})
	b.local.announce(ctx, v.r, b, s, k)
	return nil
}

// storeNegatives writes a cached "not found" under each of keys, kept by the backend for the
// negative TTL: one write for all of them where the backend can.
//
// They come from creations, so they are stored conditionally (see store). s names the keys in
// errors.
func (v *View[V]) storeNegatives(ctx context.Context, b *bound, keys []string, created, delta int64, p *policy, s batchScope) error {
	ttl := v.r.stretched(negTTL[V](v.r, p))
	if b.values != nil {
		var errs []error
		for i, k := range keys {
			if err := b.values.SetValue(ctx, k, backends.Item{Value: negativeMark{}, Created: created, Delta: delta}, ttl); err != nil {
				errs = append(errs, v.r.backendFailed(s.at(i), KindWrite, err))
			}
		}
		return v.r.batchError(s.all(), errs...)
	}
	encoded := make([][]byte, len(keys))
	for i, k := range keys {
		encoded[i] = v.r.seal(k, backends.Entry{Created: created, Delta: delta, Flags: backends.FlagNegative})
	}
	since := b.local.epochs(keys)
	refused, err := v.r.writeMulti(ctx, b, keys, encoded, ttl, true, s)
	b.local.writeEach(ctx, keys, since, func(i int) (backends.Item, bool) {
		if err != nil || refused != nil && refused[i] {
			return backends.Item{}, false
		}
		e := loaded[V]{created: created, delta: delta, found: true, neg: true}
		return e.localItem(), true
	})
	b.local.announce(ctx, v.r, b, s.all(), keys...)
	return err
}

// write stores raw under k: conditionally (cond, a creation's value) where the backend can, so
// that a newer entry held is not overwritten. stored is false when the backend refused it.
// Reads of k that come after it do not join a read started before it.
// While the circuit breaker is open it fails with errSkipped and does no I/O.
func (r *Region) write(ctx context.Context, b *bound, k string, raw []byte, ttl time.Duration, cond bool) (stored bool, err error) {
	defer r.reads.forget(k)
	t := r.allow()
	if t == skip {
		return false, errSkipped
	}
	if cond && b.condSet != nil {
		stored, err = b.condSet.SetIfNotNewer(ctx, k, raw, ttl)
	} else {
		stored, err = true, b.backend.Set(ctx, k, raw, ttl)
	}
	r.settle(ctx, t, err)
	return stored, err
}

// tombstone returns the entry a deletion of k leaves on a backend that stores conditionally:
// newer than every creation begun before it.
func (r *Region) tombstone(k string) []byte {
	return r.seal(k, backends.Entry{Created: r.stamp(), Flags: backends.FlagDeleted})
}
