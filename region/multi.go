package region

import (
	"context"
	"errors"

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
		e, early := es[i], false
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
			early = true
		default:
			v.c.hits.add()
			out[u] = e.val
			continue
		}
		wants = append(wants, dogpile.Want{Index: i, Cur: dogpile.Entry{Value: e.val, Created: e.created, Delta: e.delta}, Have: e.found, Early: early})
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
