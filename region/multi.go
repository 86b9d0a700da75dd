package region

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/internal/dogpile"
)

// ErrNoValue is the error of a single-key call (GetOrCreate, a memo Call) that waited for a key a
// batch was creating (GetOrCreateMulti, memo.Multi) when the batch's creator returned no value for
// that key. Batch callers see such a key absent from their result instead.
var ErrNoValue = dogpile.ErrNoValue

// The multi-key operations take a list of keys in which duplicates count once and the empty key
// is an error (ErrInvalidKey, nothing done). They read and write with one backend round trip for
// all keys where the backend has multi-key operations (backends.MultiGetter, MultiSetter,
// MultiDeleter, MultiLocker); a backend that caps the keys of one call (backends.BatchLimiter)
// gets several calls of at most that many keys, one after another. Other backends get one call
// per key.

// GetMulti returns the fresh values of keys, by key; keys that are absent or expired are absent
// from the map (with WithIgnoreExpiration, expired values are returned too). It never creates. No
// keys, no I/O.
func (v *View[V]) GetMulti(ctx context.Context, keys []string, opts ...Option) (map[string]V, error) {
	p, err := v.policy(opts)
	if err != nil {
		return nil, v.r.misuse(OpGetMulti, "", err)
	}
	bk, b, err := v.r.batchKeys(keys)
	if err != nil {
		return nil, v.r.misuse(OpGetMulti, "", err)
	}
	if len(bk.keys) == 0 {
		return map[string]V{}, nil
	}
	es, err := v.loadMulti(ctx, b, bk.keys, true, batchScope{OpGetMulti, bk.users})
	if err != nil {
		return nil, err
	}
	out := make(map[string]V, len(bk.keys))
	for i, u := range bk.users {
		if e := es[i]; e.found && !e.neg && (p.ignoreExp || v.r.fresh(e.created, e.delta, expiration(v.r, p, e.val))) {
			out[u] = e.val
		}
	}
	return out, nil
}

// SetMulti stores every value of items as created now, as Set does for one key: creations of
// those keys in progress will not store over them. Values that fail to encode or are too large
// for the backend are not stored; the others are. It reports and returns every error, joined.
func (v *View[V]) SetMulti(ctx context.Context, items map[string]V) error {
	if len(items) == 0 {
		if v.r.bound.Load() == nil {
			return v.r.misuse(OpSetMulti, "", v.r.unusable())
		}
		return nil
	}
	users := make([]string, 0, len(items))
	for k := range items {
		users = append(users, k)
	}
	bk, b, err := v.r.batchKeys(users)
	if err != nil {
		return v.r.misuse(OpSetMulti, "", err)
	}
	vals := make([]V, len(bk.users))
	for i, u := range bk.users {
		vals[i] = items[u]
		v.r.engine.Forget(bk.keys[i])
	}
	if err := v.storeMulti(ctx, b, bk.keys, vals, v.r.stamp(), 0, false, batchScope{OpSetMulti, bk.users}); err != nil {
		v.report(ctx, err)
		return err
	}
	return nil
}

// DeleteMulti removes keys; see Region.DeleteMulti.
func (v *View[V]) DeleteMulti(ctx context.Context, keys []string) error {
	return v.r.DeleteMulti(ctx, keys)
}

// DeleteMulti removes keys from the backend, as Delete does for one key. Absent keys are not an
// error. Backend errors are returned whatever the failure policy.
func (r *Region) DeleteMulti(ctx context.Context, keys []string) error {
	bk, b, err := r.batchKeys(keys)
	if err != nil {
		return r.misuse(OpDeleteMulti, "", err)
	}
	if len(bk.keys) == 0 {
		return nil
	}
	s := batchScope{OpDeleteMulti, bk.users}
	for _, k := range bk.keys {
		r.engine.Forget(k)
	}
	defer func() {
		for _, k := range bk.keys {
			r.reads.forget(k) // later reads must not join one that began before the deletion
		}
	}()
	defer b.local.evict(ctx, r, b, s.all(), bk.keys...)
	if b.condSet != nil {
		// Tombstones, as Delete writes, in one write where the backend can.
		encoded := make([][]byte, len(bk.keys))
		for i, k := range bk.keys {
			encoded[i] = r.tombstone(k)
		}
		if _, err := r.writeMulti(ctx, b, bk.keys, encoded, r.cfg.tombstoneTTL(), false, s); err != nil {
			r.report(ctx, err)
			return err
		}
		return nil
	}
	if b.multiDel == nil {
		for i, k := range bk.keys {
			err := errSkipped
			if t := r.allow(); t != skip {
				err = b.backend.Delete(ctx, k)
				r.settle(ctx, t, err)
			}
			if err != nil {
				err := r.backendFailed(s.at(i), KindWrite, err)
				r.report(ctx, err)
				return err
			}
		}
		return nil
	}
	return chunks(len(bk.keys), b.maxBatch, func(lo, hi int) error {
		err := errSkipped
		if t := r.allow(); t != skip {
			err = b.multiDel.DeleteMulti(ctx, bk.keys[lo:hi])
			r.settle(ctx, t, err)
		}
		if err != nil {
			err := r.backendFailed(s.span(lo, hi), KindWrite, err)
			r.report(ctx, err)
			return err
		}
		return nil
	})
}

// GetOrCreateMulti returns the values of keys, creating the ones that are absent or expired with
// create, which is given exactly those keys (each once, in the order of keys) and returns their
// values by key. A key create leaves out of its map is absent from the result and not an error;
// it is not cached, unless negative caching is on (WithNegativeCaching), which caches it as "not
// found". Values for keys create was not asked for are ignored.
//
// create is called once for the call's keys, one goroutine at a time. It is called again, later,
// only for keys whose locks other processes held and then released without storing a value, and,
// under WithBackgroundRefresh, after the call has returned for a call whose keys were all expired
// (served old at once, regenerated in the background).
//
// Every key keeps the dogpile lock of GetOrCreate: a key that another caller is creating (a
// single-key call or another batch, in this process or, through the backend's lock, in another)
// is waited for, not created again; an expired key whose regeneration another caller has taken is
// served its old value at once; this call's own expired keys are regenerated with its absent ones.
// Locks are tried without waiting, in key order, and released before the call waits for any other
// holder, so overlapping batches can never deadlock, whatever their order.
//
// On a backend with multi-key operations a call whose keys are all fresh costs one read round
// trip (per chunk of the backend's MaxBatch); one that creates some costs one more read (under the
// locks), one write (two with "not found" entries to write), and on a backend with a distributed
// lock one round trip each to take and release the locks (backends.MultiLocker; one per key
// without it). What one backend call costs is the backend's: memcached's SetMulti, for instance,
// is a set per key. create's error, or its panic (as *PanicError), ends the call and reaches every
// caller waiting for the same keys; nothing it made is cached.
func (v *View[V]) GetOrCreateMulti(ctx context.Context, keys []string, create func(ctx context.Context, missing []string) (map[string]V, error), opts ...Option) (map[string]V, error) {
	if create == nil {
		return nil, v.nilCreator(OpGetOrCreateMulti, "")
	}
	p, err := v.policy(opts)
	if err != nil {
		return nil, v.r.misuse(OpGetOrCreateMulti, "", err)
	}
	bk, b, err := v.r.batchKeys(keys)
	if err != nil {
		return nil, v.r.misuse(OpGetOrCreateMulti, "", err)
	}
	if len(bk.keys) == 0 {
		return map[string]V{}, nil
	}
	if p.bypass {
		v.c.misses.Add(uint64(len(bk.keys)))
		return v.refreshMulti(ctx, b, bk, p, create)
	}
	es, err := v.loadMulti(ctx, b, bk.keys, true, batchScope{OpGetOrCreateMulti, bk.users})
	if err != nil {
		v.c.misses.Add(uint64(len(bk.keys)))
		return nil, err
	}
	out := make(map[string]V, len(bk.keys))
	var wants []dogpile.Want
	for i, u := range bk.users {
		e := es[i]
		switch {
		case !e.found:
			v.c.misses.Add(1)
		case e.neg:
			if v.r.negFresh(e.created, e.delta, negTTL[V](v.r, p), p) {
				v.c.negHits.Add(1)
				continue // a cached "not found": absent, and not created again
			}
			v.c.misses.Add(1)
			e = loaded[V]{} // expired: absent
		case !v.r.fresh(e.created, e.delta, expiration(v.r, p, e.val)):
			v.c.expired.Add(1)
		case v.r.early(e.created, e.delta, expiration(v.r, p, e.val), p):
			v.c.expired.Add(1)
			v.c.early.Add(1)
		default:
			v.c.hits.add()
			out[u] = e.val
			continue
		}
		wants = append(wants, dogpile.Want{Index: i, Cur: dogpile.Entry{Value: e.val, Created: e.created, Delta: e.delta}, Have: e.found})
	}
	if len(wants) == 0 {
		return out, nil
	}
	o := &batchOp[V]{v: v, b: b, p: p, bk: bk, create: create}
	res, err := v.r.engine.ResolveBatch(ctx, o, wants)
	if err != nil {
		if errors.Is(err, dogpile.ErrClosed) || ctx.Err() != nil || isReported(err) {
			return nil, v.r.outcome(ctx, OpGetOrCreateMulti, "", err)
		}
		vals, ok := v.insteadMulti(ctx, b, bk, wants, p, err)
		if !ok {
			return nil, v.r.outcome(ctx, OpGetOrCreateMulti, "", err)
		}
		for j, w := range wants {
			out[bk.users[w.Index]] = vals[j]
		}
		return out, nil
	}
	for j, w := range wants {
		if !res[j].OK {
			continue
		}
		if _, neg := res[j].Value.(negative); neg {
			continue
		}
		val, _ := res[j].Value.(V) // nil only for a nil interface V
		out[bk.users[w.Index]] = val
	}
	return out, nil
}

// insteadMulti is instead for a batch: the values of wants read now, if every one of them may be
// served in place of the failed creation (fresh, or the one found and allowed by stale-if-error).
func (v *View[V]) insteadMulti(ctx context.Context, b *bound, bk batchKeys, wants []dogpile.Want, p *policy, err error) ([]V, bool) {
	keys := pick(bk.keys, wantIndexes(wants))
	users := pick(bk.users, wantIndexes(wants))
	es, rerr := v.loadMulti(ctx, b, keys, false, batchScope{OpGetOrCreateMulti, users})
	if rerr != nil {
		return nil, false
	}
	vals, stale := make([]V, len(wants)), 0
	for j, w := range wants {
		e := es[j]
		switch {
		case !e.found || e.neg:
			return nil, false
		case v.r.fresh(e.created, e.delta, expiration(v.r, p, e.val)):
		case w.Have && e.created == w.Cur.Created && v.r.staleUsable(e.created, e.delta, expiration(v.r, p, e.val), p):
			stale++
		default:
			return nil, false
		}
		vals[j] = e.val
	}
	what := "early refresh failed, served the fresh values"
	if stale > 0 {
		what = "regeneration failed, served the stale values"
		v.c.staleOnError.Add(uint64(stale))
	}
	v.report(ctx, v.r.fail(OpGetOrCreateMulti, KindCreator, "", served(what, err)))
	return vals, true
}

func wantIndexes(wants []dogpile.Want) []int {
	idx := make([]int, len(wants))
	for j, w := range wants {
		idx[j] = w.Index
	}
	return idx
}

// RefreshMulti calls create with keys (each once) and stores what it returns for them (subject
// to the should-cache predicates), whatever is cached now, and returns it; as Refresh, it takes
// no lock. Keys create leaves out are left as they are.
func (v *View[V]) RefreshMulti(ctx context.Context, keys []string, create func(ctx context.Context, keys []string) (map[string]V, error), opts ...Option) (map[string]V, error) {
	if create == nil {
		return nil, v.nilCreator(OpRefreshMulti, "")
	}
	p, err := v.policy(opts)
	if err != nil {
		return nil, v.r.misuse(OpRefreshMulti, "", err)
	}
	bk, b, err := v.r.batchKeys(keys)
	if err != nil {
		return nil, v.r.misuse(OpRefreshMulti, "", err)
	}
	if len(bk.keys) == 0 {
		return map[string]V{}, nil
	}
	return v.refreshMulti(ctx, b, bk, p, create)
}

// refreshMulti is RefreshMulti once the call is checked.
func (v *View[V]) refreshMulti(ctx context.Context, b *bound, bk batchKeys, p *policy, create func(ctx context.Context, keys []string) (map[string]V, error)) (map[string]V, error) {
	for _, k := range bk.keys {
		v.r.engine.Forget(k)
	}
	start := v.r.stamp()
	m, err := create(ctx, bk.users)
	if err != nil {
		return nil, v.r.fail(OpRefreshMulti, KindCreator, "", err)
	}
	out := make(map[string]V, len(m))
	var ks, us []string
	var vs []V
	for i, u := range bk.users {
		val, ok := m[u]
		if !ok {
			continue
		}
		out[u] = val
		if v.r.shouldCache(val, p) {
			ks, vs, us = append(ks, bk.keys[i]), append(vs, val), append(us, u)
		}
	}
	if err := v.storeMulti(ctx, b, ks, vs, start, v.r.now()-start, false, batchScope{OpRefreshMulti, us}); err != nil {
		v.report(ctx, err)
		if v.r.cfg.failClosed {
			return nil, err
		}
	}
	return out, nil
}

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

// tryLockMulti tries the distributed locks of keys without waiting: one round trip per chunk on
// a MultiLocker, one TryLock per key otherwise. Without a distributed lock every key is taken.
// Under FailOpen a failed attempt counts as taken, as for one key: the caller gets a value and
// this process still creates the key once. s names the keys in errors.
func (v *View[V]) tryLockMulti(ctx context.Context, b *bound, keys []string, s batchScope) ([]bool, func(), error) {
	taken := make([]bool, len(keys))
	if b.locker == nil {
		for i := range taken {
			taken[i] = true
		}
		return taken, func() {}, nil
	}
	var held []backends.Lock
	unlock := func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.r.cfg.lockTimeout)
		defer cancel()
		for _, l := range held {
			if err := l.Unlock(uctx); err != nil {
				v.report(ctx, v.r.backendFailed(s.all(), KindLock, err))
			}
		}
	}
	err := chunks(len(keys), b.maxBatch, func(lo, hi int) error {
		if b.multiLock != nil {
			var t []bool
			var release backends.Lock
			err := errSkipped
			if tk := v.r.allow(); tk != skip {
				t, release, err = b.multiLock.TryLockMulti(ctx, keys[lo:hi], v.r.cfg.lockTimeout)
				v.r.settle(ctx, tk, err)
			}
			if err != nil {
				if err := v.failed(ctx, v.r.backendFailed(s.span(lo, hi), KindLock, err)); err != nil {
					return err
				}
				for i := lo; i < hi; i++ {
					taken[i] = true
				}
				return nil
			}
			copy(taken[lo:hi], t)
			held = append(held, release)
			return nil
		}
		for i := lo; i < hi; i++ {
			var l backends.Lock
			ok, err := false, errSkipped
			if t := v.r.allow(); t != skip {
				l, ok, err = b.locker.TryLock(ctx, keys[i], v.r.cfg.lockTimeout)
				v.r.settle(ctx, t, err)
			}
			if err != nil {
				if err := v.failed(ctx, v.r.backendFailed(s.at(i), KindLock, err)); err != nil {
					return err
				}
				ok = true
			}
			taken[i] = ok
			if l != nil {
				held = append(held, l)
			}
		}
		return nil
	})
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return taken, unlock, nil
}

// batchOp is one GetOrCreateMulti as the engine sees it.
type batchOp[V any] struct {
	v      *View[V]
	b      *bound
	p      *policy
	bk     batchKeys
	create func(context.Context, []string) (map[string]V, error)
}

// CreationTimeout is op's CreationTimeout for a batch.
func (o *batchOp[V]) CreationTimeout() (time.Duration, bool) { return o.p.creation, o.p.creationSet }

func (o *batchOp[V]) Key(i int) string { return o.bk.keys[i] }
func (o *batchOp[V]) Kind() any        { return o.v.typ }

func (o *batchOp[V]) Load(ctx context.Context, idx []int) ([]dogpile.Entry, []bool, error) {
	ks := pick(o.bk.keys, idx)
	ls, err := o.v.loadMulti(ctx, o.b, ks, false, o.scope().pick(idx))
	if err != nil {
		return nil, nil, err
	}
	es, found := make([]dogpile.Entry, len(idx)), make([]bool, len(idx))
	for j, l := range ls {
		es[j], found[j], _ = o.v.entry(l, o.p)
	}
	return es, found, nil
}

func (o *batchOp[V]) Fresh(e dogpile.Entry) bool { return o.v.freshEntry(e, o.p) }

func (o *batchOp[V]) Create(ctx context.Context, idx []int) (dogpile.Made, error) {
	missing := pick(o.bk.users, idx)
	// As for one key: values count as created when their creation began.
	started := o.v.r.stamp()
	start, returned := time.Now(), false
	defer func() {
		if !returned { // a panic or runtime.Goexit, passing through to the engine
			o.v.c.created(time.Since(start), errPanicked)
		}
	}()
	m, err := o.create(ctx, missing)
	returned = true
	o.v.c.created(time.Since(start), err)
	if err != nil {
		return dogpile.Made{}, err
	}
	made := dogpile.Made{Vals: make([]any, len(idx)), OK: make([]bool, len(idx)), Created: started, Delta: o.v.r.now() - started}
	neg := o.v.r.negTarget(o.p) != nil
	for j, u := range missing {
		if val, ok := m[u]; ok {
			made.Vals[j], made.OK[j] = val, true
		} else if neg {
			// Left out, with negative caching on: cached as "not found".
			made.Vals[j], made.OK[j] = negative{o.v.r.notFound(o.p)}, true
		}
	}
	return made, nil
}

func (o *batchOp[V]) Store(ctx context.Context, idx []int, vals []any, made dogpile.Made) error {
	ks, vs := make([]string, 0, len(idx)), make([]V, 0, len(idx))
	var negs []string
	var us, negUsers []string // the callers' forms of ks and negs, for errors
	for j, i := range idx {
		if _, neg := vals[j].(negative); neg {
			negs, negUsers = append(negs, o.bk.keys[i]), append(negUsers, o.bk.users[i])
			continue
		}
		val, _ := vals[j].(V)
		if o.v.r.shouldCache(val, o.p) {
			ks, vs, us = append(ks, o.bk.keys[i]), append(vs, val), append(us, o.bk.users[i])
		}
	}
	err := o.v.storeMulti(ctx, o.b, ks, vs, made.Created, made.Delta, true, batchScope{OpGetOrCreateMulti, us})
	if len(negs) > 0 {
		// One more write for all of them: they have a TTL of their own.
		err = o.v.r.batchError(scope{op: OpGetOrCreateMulti}, err,
			o.v.storeNegatives(ctx, o.b, negs, made.Created, made.Delta, o.p, batchScope{OpGetOrCreateMulti, negUsers}))
	}
	return err
}

func (o *batchOp[V]) StoreFailed(ctx context.Context, err error) error {
	return o.v.failed(ctx, o.v.r.errorOf(OpGetOrCreateMulti, KindWrite, "", err))
}

func (o *batchOp[V]) Observe(e dogpile.Event, n int, d time.Duration) { o.v.c.observe(e, n, d) }

func (o *batchOp[V]) TryLock(ctx context.Context, idx []int) ([]bool, func(), error) {
	return o.v.tryLockMulti(ctx, o.b, pick(o.bk.keys, idx), o.scope().pick(idx))
}

func pick(s []string, idx []int) []string {
	out := make([]string, len(idx))
	for j, i := range idx {
		out[j] = s[i]
	}
	return out
}
