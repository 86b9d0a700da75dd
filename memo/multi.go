package memo

import (
	"context"
	"fmt"

	"github.com/dogpile-go/dogpile/keys"
	"github.com/dogpile-go/dogpile/region"
)

// MultiHandle is a cached batch function: one that loads many records by id in one call; see
// Multi.
type MultiHandle[K comparable, V any] struct {
	view   *region.View[V]
	fn     func(context.Context, []K) (map[K]V, error)
	ns     string
	prefix string
	gen    keys.Generator
	enc    *keys.Encoder[K] // nil with a custom key generator
	opts   []region.Option  // With's
}

// Multi wraps fn, a function that loads many values by id in one call (one query, one RPC), with
// the cache region r:
//
//	// usersByID(ctx, ids) runs SELECT ... WHERE id = ANY($1) and returns the users it found.
//	var users = memo.Multi(cache, usersByID)
//	m, err := users.Call(ctx, []int64{1, 2, 3})
//
// Each id is cached under its own key, the namespace and the id, encoded as Func encodes its
// argument: a Func and a Multi given the same namespace (WithNamespace) and the same id type share
// their entries, so a value loaded one at a time serves batches and the other way round. Call
// passes fn only the ids that are not cached (see region.View.GetOrCreateMulti).
//
// Multi panics if r or fn is nil, the namespace is invalid, or K is a type keys cannot encode and
// no WithKeyGenerator is given, as Func does. A custom key generator must give different ids
// different keys.
func Multi[K comparable, V any](r *region.Region, fn func(ctx context.Context, ids []K) (map[K]V, error), opts ...region.Option) *MultiHandle[K, V] {
	c := newConfig(r, fn, opts)
	enc := encoder[K](c)
	return &MultiHandle[K, V]{
		view:   region.NewView[V](r, c.view...),
		fn:     fn,
		ns:     c.namespace,
		prefix: c.namespace + string(keys.Sep),
		gen:    c.gen,
		enc:    enc,
	}
}

// Call returns the values of ids from the cache, calling fn under the dogpile lock of each id
// with the ids that are absent or expired (each once, in the order of ids): once, except in the
// cases region.View.GetOrCreateMulti lists. The map has an entry for every id that has a value:
// an id fn left out of its result is absent from the map and is not an error, so a missing
// record is told apart from a failed call; it is not cached unless WithNegativeCaching says so.
// Duplicate ids count once; no ids, no I/O.
//
// On Redis a call whose ids are all cached costs one MGET; one that loads some costs one more
// MGET, a pipeline of SETs, and a pipeline each to take and release their locks. On memcached
// the reads are one gets per server, but each id loaded costs its own set, lock and unlock.
func (h *MultiHandle[K, V]) Call(ctx context.Context, ids []K) (map[K]V, error) {
	ks, byKey, err := h.keys(ids)
	if err != nil {
		return nil, err
	}
	m, err := h.view.GetOrCreateMulti(ctx, ks, func(ctx context.Context, missing []string) (map[string]V, error) {
		return h.load(ctx, missing, byKey)
	}, h.opts...)
	if err != nil {
		return nil, err
	}
	return byID(m, byKey), nil
}

// With returns a handle for calls with opts: see Handle0.With.
func (h *MultiHandle[K, V]) With(opts ...region.Option) *MultiHandle[K, V] {
	c := *h
	c.opts = with(h.opts, opts)
	return &c
}

// Invalidate deletes the cached values of ids, so that the next Call loads them again.
func (h *MultiHandle[K, V]) Invalidate(ctx context.Context, ids ...K) error {
	ks, _, err := h.keys(ids)
	if err != nil {
		return err
	}
	return h.view.DeleteMulti(ctx, ks)
}

// Refresh calls fn with ids and caches what it returns, whatever is cached now, and returns it.
func (h *MultiHandle[K, V]) Refresh(ctx context.Context, ids []K) (map[K]V, error) {
	ks, byKey, err := h.keys(ids)
	if err != nil {
		return nil, err
	}
	m, err := h.view.RefreshMulti(ctx, ks, func(ctx context.Context, ks []string) (map[string]V, error) {
		return h.load(ctx, ks, byKey)
	}, h.opts...)
	if err != nil {
		return nil, err
	}
	return byID(m, byKey), nil
}

// Set caches every value of values as fn's result for its id, as created now.
func (h *MultiHandle[K, V]) Set(ctx context.Context, values map[K]V) error {
	items := make(map[string]V, len(values))
	for id, v := range values {
		k, err := h.Key(id)
		if err != nil {
			return err
		}
		items[k] = v
	}
	return h.view.SetMulti(ctx, items)
}

// Cached returns the fresh cached values of ids; ids without one are absent from the map. It
// never calls fn.
func (h *MultiHandle[K, V]) Cached(ctx context.Context, ids []K) (map[K]V, error) {
	ks, byKey, err := h.keys(ids)
	if err != nil {
		return nil, err
	}
	m, err := h.view.GetMulti(ctx, ks, h.opts...)
	if err != nil {
		return nil, err
	}
	return byID(m, byKey), nil
}

// Uncached calls fn directly, bypassing the cache.
func (h *MultiHandle[K, V]) Uncached(ctx context.Context, ids []K) (map[K]V, error) {
	return h.fn(ctx, ids)
}

// Key returns the cache key (before the region's mangler) of id's value.
func (h *MultiHandle[K, V]) Key(id K) (string, error) {
	if h.gen != nil {
		k, err := h.gen(h.ns, id)
		if err != nil {
			return "", fmt.Errorf("memo: %s: key: %w", h.ns, err)
		}
		return k, nil
	}
	var buf keyBuf
	b, err := h.enc.Append(append(buf[:0], h.prefix...), id)
	if err != nil {
		return "", fmt.Errorf("memo: %s: key: %w", h.ns, err)
	}
	return string(b), nil
}

// keys returns the key of every id, and the id of every key.
func (h *MultiHandle[K, V]) keys(ids []K) ([]string, map[string]K, error) {
	ks := make([]string, len(ids))
	byKey := make(map[string]K, len(ids))
	for i, id := range ids {
		k, err := h.Key(id)
		if err != nil {
			return nil, nil, err
		}
		ks[i] = k
		byKey[k] = id
	}
	return ks, byKey, nil
}

// load calls fn for the ids of ks and returns its values by key.
func (h *MultiHandle[K, V]) load(ctx context.Context, ks []string, byKey map[string]K) (map[string]V, error) {
	ids := make([]K, len(ks))
	for j, k := range ks {
		ids[j] = byKey[k]
	}
	got, err := h.fn(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]V, len(got))
	for j, id := range ids {
		if v, ok := got[id]; ok {
			out[ks[j]] = v
		}
	}
	return out, nil
}

func byID[K comparable, V any](m map[string]V, byKey map[string]K) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[byKey[k]] = v
	}
	return out
}

// Stats returns the counts of the function's calls (see region.Stats): each id of a batch counts
// as a read, each call of fn as a creation. The region's ViewStats and PublishExpvar show them
// by namespace (see WithNamespace).
func (h *MultiHandle[K, V]) Stats() region.Stats { return h.view.Stats() }
