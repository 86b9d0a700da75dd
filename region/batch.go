package region

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dogpile-go/dogpile/backends"
)

// batchKeys is the distinct keys of a multi-key call: users[i] is the caller's key, keys[i] its
// mangled form.
type batchKeys struct {
	users, keys []string
}

// batchKeys checks keys and drops duplicates, keeping the first occurrence's place.
func (r *Region) batchKeys(keys []string) (batchKeys, *bound, error) {
	var bk batchKeys
	b := r.bound.Load()
	if b == nil {
		return bk, nil, r.unusable()
	}
	seen := make(map[string]struct{}, len(keys))
	bk.users = make([]string, 0, len(keys))
	for i, k := range keys {
		if k == "" {
			return batchKeys{}, nil, fmt.Errorf("empty key at index %d: %w", i, ErrInvalidKey)
		}
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		bk.users = append(bk.users, k)
	}
	bk.keys = make([]string, len(bk.users))
	for i, u := range bk.users {
		bk.keys[i] = r.mangle(u)
	}
	return bk, b, nil
}

// chunks calls f for [0, n) in consecutive ranges of at most size (no limit if size <= 0), and
// stops at its first error.
func chunks(n, size int, f func(lo, hi int) error) error {
	if size <= 0 {
		size = n
	}
	for lo := 0; lo < n; lo += size {
		if err := f(lo, min(lo+size, n)); err != nil {
			return err
		}
	}
	return nil
}

func pick(s []string, idx []int) []string {
	out := make([]string, len(idx))
	for j, i := range idx {
		out[j] = s[i]
	}
	return out
}

// loadMulti is load for many keys: one round trip per chunk on a MultiGetter, one Get per key
// otherwise. Under FailOpen a failed read makes its keys misses. shared lets keys join the reads
// of other callers in flight (load), as the first read of a call may; the reads that must see
// every write completed before them (under the distributed locks) pass false (loadNow). s names
// the keys in errors.
func (v *View[V]) loadMulti(ctx context.Context, b *bound, keys []string, shared bool, s batchScope) ([]loaded[V], error) {
	es := make([]loaded[V], len(keys))
	if b.values != nil || b.multiGet == nil {
		load := v.load
		if !shared {
			load = v.loadNow
		}
		for i, k := range keys {
			sc := s.at(i)
			e, err := load(ctx, b, k, &sc)
			if err != nil {
				return nil, err
			}
			es[i] = e
		}
		return es, nil
	}
	err := chunks(len(keys), b.maxBatch, func(lo, hi int) error {
		if !shared {
			m, err := v.r.getMulti(ctx, b, keys[lo:hi])
			return v.decodeMulti(ctx, es, keys, lo, hi, m, err, s)
		}
		// Keys another caller of this process is reading already are taken from its read; the
		// others are read here, and single-key callers that come meanwhile take them from this.
		var mine []string
		var rds []*read
		joined := map[int]*read{}
		for i := lo; i < hi; i++ {
			rd, leader := v.r.reads.join(keys[i], false)
			if !leader {
				joined[i] = rd
				continue
			}
			mine, rds = append(mine, keys[i]), append(rds, rd)
		}
		var m map[string][]byte
		var err error
		if len(mine) > 0 {
			m, err = v.r.getMulti(ctx, b, mine)
			for j, k := range mine {
				raw, ok := m[k]
				switch {
				case ok:
					v.r.reads.finish(k, rds[j], raw, nil)
				case err != nil:
					v.r.reads.finish(k, rds[j], nil, err)
				default:
					v.r.reads.finish(k, rds[j], nil, backends.ErrNotFound)
				}
			}
		}
		for i, rd := range joined {
			select {
			case <-rd.done:
			case <-ctx.Done():
				return v.r.fail(s.op, KindContext, "", ctx.Err())
			}
			switch {
			case rd.err == nil:
				if m == nil {
					m = map[string][]byte{}
				}
				m[keys[i]] = rd.raw
			case errors.Is(rd.err, backends.ErrNotFound):
			default:
				// That read failed (or ended on its caller's deadline): read the key again.
				raw, gerr := b.backend.Get(ctx, keys[i])
				switch {
				case gerr == nil:
					if m == nil {
						m = map[string][]byte{}
					}
					m[keys[i]] = raw
				case !errors.Is(gerr, backends.ErrNotFound):
					err = errors.Join(err, gerr)
				}
			}
		}
		return v.decodeMulti(ctx, es, keys, lo, hi, m, err, s)
	})
	if err != nil {
		return nil, err
	}
	return es, nil
}

// getMulti is b's GetMulti of keys, skipped (errSkipped) while the circuit breaker is open.
func (r *Region) getMulti(ctx context.Context, b *bound, keys []string) (map[string][]byte, error) {
	t := r.allow()
	if t == skip {
		return nil, errSkipped
	}
	m, err := b.multiGet.GetMulti(ctx, keys)
	r.settle(ctx, t, err)
	return m, err
}

// decodeMulti decodes into es[lo:hi] the entries of keys[lo:hi] found in m, what a read of those
// keys returned with err. Under FailOpen what could be read is used (a pool with one server down
// still answers for the others) and the rest are misses. s names the keys in errors.
func (v *View[V]) decodeMulti(ctx context.Context, es []loaded[V], keys []string, lo, hi int, m map[string][]byte, err error, s batchScope) error {
	if err != nil {
		if err := v.failed(ctx, v.r.backendFailed(s.span(lo, hi), KindRead, err)); err != nil {
			return err
		}
	}
	for i := lo; i < hi; i++ {
		if raw, ok := m[keys[i]]; ok {
			sc := s.at(i)
			es[i] = v.decodeEntry(ctx, keys[i], raw, &sc)
		}
	}
	return nil
}

// storeMulti is store for many keys, all created at created in delta: one round trip per chunk
// on a MultiSetter, one Set per key otherwise. A value that fails to encode, or that the backend
// refuses as too large, is left out and the others are stored. Every error is returned (as one
// Error of the call s, see batchError), not reported.
//
// cond stores conditionally (the values of a creation): where the backend can, a key that holds
// an entry newer than created is left as it is.
func (v *View[V]) storeMulti(ctx context.Context, b *bound, keys []string, vals []V, created, delta int64, cond bool, s batchScope) error {
	if len(keys) == 0 {
		return nil
	}
	if b.values != nil {
		var errs []error
		for i, k := range keys {
			if err := v.store(ctx, b, k, vals[i], created, delta, cond, s.at(i)); err != nil {
				errs = append(errs, err)
			}
		}
		return v.r.batchError(s.all(), errs...)
	}
	var errs []error
	encoded := make([][]byte, len(keys))
	for i, val := range vals {
		payload, err := v.r.cfg.codec.Marshal(val)
		if err != nil {
			errs = append(errs, v.r.failAt(s.at(i), KindEncode, fmt.Errorf("%T: %w", val, err)))
			continue
		}
		encoded[i] = v.r.seal(keys[i], backends.Entry{Created: created, Delta: delta, Payload: payload})
	}
	since := b.local.epochs(keys)
	refused, werr := v.r.writeMulti(ctx, b, keys, encoded, v.r.storageTTL(), cond, s)
	if werr != nil {
		errs = append(errs, werr)
	}
	b.local.writeEach(ctx, keys, since, func(i int) (backends.Item, bool) {
		if werr != nil || encoded[i] == nil || refused != nil && refused[i] {
			return backends.Item{}, false // not known to be stored: the backend decides
		}
		e := loaded[V]{val: vals[i], created: created, delta: delta, found: true}
		return e.localItem(), true
	})
	b.local.announce(ctx, v.r, b, s.all(), keys...)
	return v.r.batchError(s.all(), errs...)
}

// writeMulti writes encoded entries (nil ones are skipped) with ttl: one SetMulti per chunk on a
// MultiSetter, one Set per key otherwise. It goes on after a failed Set or chunk, and returns
// every error, as one Error of the call s (see batchError). A chunk's values too large for the
// backend are skipped by the backend, which stores the others (the MultiSetter contract).
//
// cond writes conditionally where the backend can (one SetMultiIfNotNewer per chunk, or one
// SetIfNotNewer per key): refused[i] then reports that keys[i] held a newer entry and was left as
// it is. refused is nil when nothing was refused.
func (r *Region) writeMulti(ctx context.Context, b *bound, keys []string, encoded [][]byte, ttl time.Duration, cond bool, s batchScope) (refused []bool, err error) {
	defer func() {
		for _, k := range keys {
			r.reads.forget(k) // later reads must not join one that began before the write
		}
	}()
	var errs []error
	refuse := func(i int) {
		if refused == nil {
			refused = make([]bool, len(keys))
		}
		refused[i] = true
	}
	cond = cond && b.condSet != nil
	if cond && b.condMulti != nil && len(keys) > 1 {
		_ = chunks(len(keys), b.maxBatch, func(lo, hi int) error {
			items := make(map[string][]byte, hi-lo)
			for i := lo; i < hi; i++ {
				if encoded[i] != nil {
					items[keys[i]] = encoded[i]
				}
			}
			if len(items) == 0 {
				return nil
			}
			var ks []string
			err := errSkipped
			if t := r.allow(); t != skip {
				ks, err = b.condMulti.SetMultiIfNotNewer(ctx, items, ttl)
				r.settle(ctx, t, err)
			}
			if err != nil {
				errs = append(errs, r.backendFailed(s.span(lo, hi), KindWrite, err))
			}
			if len(ks) > 0 {
				no := make(map[string]bool, len(ks))
				for _, k := range ks {
					no[k] = true
				}
				for i := lo; i < hi; i++ {
					if no[keys[i]] {
						refuse(i)
					}
				}
			}
			return nil
		})
		return refused, r.batchError(s.all(), errs...)
	}
	if cond || b.multiSet == nil || len(keys) == 1 {
		for i, k := range keys {
			if encoded[i] == nil {
				continue
			}
			stored, err := r.write(ctx, b, k, encoded[i], ttl, cond)
			if err != nil {
				errs = append(errs, r.backendFailed(s.at(i), KindWrite, err))
			} else if !stored {
				refuse(i)
			}
		}
		return refused, r.batchError(s.all(), errs...)
	}
	_ = chunks(len(keys), b.maxBatch, func(lo, hi int) error {
		items := make(map[string][]byte, hi-lo)
		for i := lo; i < hi; i++ {
			if encoded[i] != nil {
				items[keys[i]] = encoded[i]
			}
		}
		if len(items) == 0 {
			return nil
		}
		err := errSkipped
		if t := r.allow(); t != skip {
			err = b.multiSet.SetMulti(ctx, items, ttl)
			r.settle(ctx, t, err)
		}
		if err != nil {
			errs = append(errs, r.backendFailed(s.span(lo, hi), KindWrite, err))
		}
		return nil
	})
	return nil, r.batchError(s.all(), errs...)
}
