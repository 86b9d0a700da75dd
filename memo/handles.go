package memo

import (
	"context"

	"github.com/dogpile-go/dogpile/keys"
	"github.com/dogpile-go/dogpile/region"
)

// Handle0 is a cached function of no arguments (besides its context); see Func0.
type Handle0[V any] struct {
	c   *core[struct{}, V]
	key string
	err error
}

// Func0 wraps fn, a function of no arguments, with the cache region r; opts are the function's
// settings (see Func). It panics if r or fn is nil or the namespace is invalid, and with the
// option's error if an option is invalid: handles are built once, in code, so these are
// programmer errors caught as the program starts.
func Func0[V any](r *region.Region, fn func(context.Context) (V, error), opts ...region.Option) *Handle0[V] {
	call := func(ctx context.Context, _ struct{}) (V, error) { return fn(ctx) }
	h := &Handle0[V]{c: newCore(r, newConfig(r, fn, opts), call)}
	if h.c.gen != nil {
		h.key, h.err = h.c.generated()
	} else {
		h.key = h.c.prefix
	}
	h.c.keyOf = func(struct{}) (string, error) { return h.key, h.err }
	return h
}

// Call returns fn's result from the cache, calling fn under the dogpile lock when the value is
// absent or expired (see region.View.GetOrCreate). A hit costs one backend read and, on the
// memory backend, no allocation.
func (h *Handle0[V]) Call(ctx context.Context) (V, error) {
	if h.err != nil {
		var zero V
		return zero, h.err
	}
	return h.c.call(ctx, h.key, struct{}{})
}

// With returns a handle for calls with opts (see region.Option): a per-request expiration,
// WithBypass for a request that must not be served from the cache, a creation timeout. The
// options apply to Call, Refresh and Cached of the handle it returns, after those h has; h is
// not changed. An option that is not a setting of calls makes those calls return its error.
// With allocates: keep the handle when the options are fixed, make one per request when not.
func (h *Handle0[V]) With(opts ...region.Option) *Handle0[V] {
	return &Handle0[V]{c: h.c.with(opts), key: h.key, err: h.err}
}

// Invalidate deletes the cached value, so that the next Call creates it again.
func (h *Handle0[V]) Invalidate(ctx context.Context) error { return h.c.invalidate(ctx, struct{}{}) }

// Refresh calls fn and caches its result, whatever is cached now, and returns it.
func (h *Handle0[V]) Refresh(ctx context.Context) (V, error) {
	return h.c.refresh(ctx, struct{}{})
}

// Set caches v as fn's result, as created now.
func (h *Handle0[V]) Set(ctx context.Context, v V) error { return h.c.set(ctx, struct{}{}, v) }

// Cached returns the fresh cached value, if there is one; it never calls fn.
func (h *Handle0[V]) Cached(ctx context.Context) (V, bool, error) {
	return h.c.cached(ctx, struct{}{})
}

// Uncached calls fn directly, bypassing the cache.
func (h *Handle0[V]) Uncached(ctx context.Context) (V, error) { return h.c.fn(ctx, struct{}{}) }

// Key returns the cache key (before the region's mangler) of fn's value.
func (h *Handle0[V]) Key() (string, error) { return h.key, h.err }

// Handle is a cached function of one argument; see Func.
type Handle[A, V any] struct {
	c   *core[A, V]
	enc *keys.Encoder[A] // nil with a custom key generator
}

// Func wraps fn, a function of one argument, with the cache region r:
//
//	var userByID = memo.Func(cache, loadUser) // loadUser(ctx, id int64) (*User, error)
//	u, err := userByID.Call(ctx, 42)
//
// Keys are the namespace (fn's qualified name unless WithNamespace says otherwise) and the
// argument, encoded so that different arguments never share a key (see package keys).
//
// opts are the function's settings: the region's policy settings (region.WithExpiration,
// region.WithStaleIfError, region.WithShouldCache...; see region.Option), which override the
// region's for this function, and memo's WithNamespace and WithKeyGenerator.
//
// Func panics if r or fn is nil, the namespace is invalid, or A is a type keys cannot encode (a
// map, a func, a channel) and no WithKeyGenerator is given, and with the option's error (wrapping
// region.ErrInvalidOption) if an option is invalid or not a setting of functions (a codec, a
// bypass): these are programmer errors, caught as the program starts.
func Func[A, V any](r *region.Region, fn func(context.Context, A) (V, error), opts ...region.Option) *Handle[A, V] {
	c := newConfig(r, fn, opts)
	h := &Handle[A, V]{enc: encoder[A](c)}
	h.c = newCore(r, c, fn)
	h.c.keyOf = h.Key
	return h
}

// Call returns fn(ctx, a) from the cache, calling fn under the dogpile lock when the value is
// absent or expired (see region.View.GetOrCreate). A hit costs one backend read and, on the
// memory backend, no allocation when keys encodes a without allocating (basic kinds, time.Time,
// and structs and arrays of them: see keys.EncoderFor): the key is built on the stack.
func (h *Handle[A, V]) Call(ctx context.Context, a A) (V, error) {
	var buf keyBuf
	k, err := h.lend(&buf, a)
	if err != nil {
		var zero V
		return zero, err
	}
	return h.c.call(ctx, k, a)
}

// With returns a handle for calls with opts: see Handle0.With.
//
//	u, err := userByID.With(region.WithExpiration(time.Minute)).Call(ctx, 42)
func (h *Handle[A, V]) With(opts ...region.Option) *Handle[A, V] {
	return &Handle[A, V]{c: h.c.with(opts), enc: h.enc}
}

// Invalidate deletes the cached value for a, so that the next Call creates it again.
func (h *Handle[A, V]) Invalidate(ctx context.Context, a A) error { return h.c.invalidate(ctx, a) }

// Refresh calls fn(ctx, a) and caches its result, whatever is cached now, and returns it.
func (h *Handle[A, V]) Refresh(ctx context.Context, a A) (V, error) {
	return h.c.refresh(ctx, a)
}

// Set caches v as the result for a, as created now.
func (h *Handle[A, V]) Set(ctx context.Context, a A, v V) error { return h.c.set(ctx, a, v) }

// Cached returns the fresh cached value for a, if there is one; it never calls fn.
func (h *Handle[A, V]) Cached(ctx context.Context, a A) (V, bool, error) {
	return h.c.cached(ctx, a)
}

// Uncached calls fn(ctx, a) directly, bypassing the cache.
func (h *Handle[A, V]) Uncached(ctx context.Context, a A) (V, error) { return h.c.fn(ctx, a) }

// Key returns the cache key (before the region's mangler) for a.
func (h *Handle[A, V]) Key(a A) (string, error) {
	if h.c.gen != nil {
		return h.c.generated(a)
	}
	var buf keyBuf
	return own(h.lend(&buf, a))
}

// lend returns the key for a, built in buf unless a custom generator builds it.
func (h *Handle[A, V]) lend(buf *keyBuf, a A) (string, error) {
	if h.c.gen != nil {
		return h.c.generated(a)
	}
	b, err := h.enc.Append(append(buf[:0], h.c.prefix...), a)
	if err != nil {
		return "", h.c.keyErr(err)
	}
	return lent(b), nil
}

type args2[A, B any] struct {
	a A
	b B
}

// Handle2 is a cached function of two arguments; see Func2.
type Handle2[A, B, V any] struct {
	c  *core[args2[A, B], V]
	ea *keys.Encoder[A] // nil with a custom key generator, as eb
	eb *keys.Encoder[B]
}

// Func2 wraps fn, a function of two arguments, with the cache region r; see Func.
func Func2[A, B, V any](r *region.Region, fn func(context.Context, A, B) (V, error), opts ...region.Option) *Handle2[A, B, V] {
	call := func(ctx context.Context, p args2[A, B]) (V, error) { return fn(ctx, p.a, p.b) }
	c := newConfig(r, fn, opts)
	h := &Handle2[A, B, V]{ea: encoder[A](c), eb: encoder[B](c)}
	h.c = newCore(r, c, call)
	h.c.keyOf = func(p args2[A, B]) (string, error) { return h.Key(p.a, p.b) }
	return h
}

// Call returns fn(ctx, a, b) from the cache; see Handle.Call.
func (h *Handle2[A, B, V]) Call(ctx context.Context, a A, b B) (V, error) {
	var buf keyBuf
	k, err := h.lend(&buf, a, b)
	if err != nil {
		var zero V
		return zero, err
	}
	return h.c.call(ctx, k, args2[A, B]{a, b})
}

// With returns a handle for calls with opts: see Handle0.With.
func (h *Handle2[A, B, V]) With(opts ...region.Option) *Handle2[A, B, V] {
	return &Handle2[A, B, V]{c: h.c.with(opts), ea: h.ea, eb: h.eb}
}

// Invalidate deletes the cached value for (a, b).
func (h *Handle2[A, B, V]) Invalidate(ctx context.Context, a A, b B) error {
	return h.c.invalidate(ctx, args2[A, B]{a, b})
}

// Refresh calls fn(ctx, a, b) and caches its result, whatever is cached now, and returns it.
func (h *Handle2[A, B, V]) Refresh(ctx context.Context, a A, b B) (V, error) {
	return h.c.refresh(ctx, args2[A, B]{a, b})
}

// Set caches v as the result for (a, b), as created now.
func (h *Handle2[A, B, V]) Set(ctx context.Context, a A, b B, v V) error {
	return h.c.set(ctx, args2[A, B]{a, b}, v)
}

// Cached returns the fresh cached value for (a, b), if there is one; it never calls fn.
func (h *Handle2[A, B, V]) Cached(ctx context.Context, a A, b B) (V, bool, error) {
	return h.c.cached(ctx, args2[A, B]{a, b})
}

// Uncached calls fn(ctx, a, b) directly, bypassing the cache.
func (h *Handle2[A, B, V]) Uncached(ctx context.Context, a A, b B) (V, error) {
	return h.c.fn(ctx, args2[A, B]{a, b})
}

// Key returns the cache key (before the region's mangler) for (a, b).
func (h *Handle2[A, B, V]) Key(a A, b B) (string, error) {
	if h.c.gen != nil {
		return h.c.generated(a, b)
	}
	var buf keyBuf
	return own(h.lend(&buf, a, b))
}

// lend returns the key for (a, b), built in buf unless a custom generator builds it.
func (h *Handle2[A, B, V]) lend(buf *keyBuf, a A, b B) (string, error) {
	if h.c.gen != nil {
		return h.c.generated(a, b)
	}
	k, err := h.ea.Append(append(buf[:0], h.c.prefix...), a)
	if err == nil {
		k, err = h.eb.Append(append(k, ','), b)
	}
	if err != nil {
		return "", h.c.keyErr(err)
	}
	return lent(k), nil
}

type args3[A, B, C any] struct {
	a A
	b B
	c C
}

// Handle3 is a cached function of three arguments; see Func3.
type Handle3[A, B, C, V any] struct {
	c  *core[args3[A, B, C], V]
	ea *keys.Encoder[A] // nil with a custom key generator, as eb and ec
	eb *keys.Encoder[B]
	ec *keys.Encoder[C]
}

// Func3 wraps fn, a function of three arguments, with the cache region r; see Func.
func Func3[A, B, C, V any](r *region.Region, fn func(context.Context, A, B, C) (V, error), opts ...region.Option) *Handle3[A, B, C, V] {
	call := func(ctx context.Context, p args3[A, B, C]) (V, error) { return fn(ctx, p.a, p.b, p.c) }
	c := newConfig(r, fn, opts)
	h := &Handle3[A, B, C, V]{ea: encoder[A](c), eb: encoder[B](c), ec: encoder[C](c)}
	h.c = newCore(r, c, call)
	h.c.keyOf = func(p args3[A, B, C]) (string, error) { return h.Key(p.a, p.b, p.c) }
	return h
}

// Call returns fn(ctx, a, b, c) from the cache; see Handle.Call.
func (h *Handle3[A, B, C, V]) Call(ctx context.Context, a A, b B, c C) (V, error) {
	var buf keyBuf
	k, err := h.lend(&buf, a, b, c)
	if err != nil {
		var zero V
		return zero, err
	}
	return h.c.call(ctx, k, args3[A, B, C]{a, b, c})
}

// With returns a handle for calls with opts: see Handle0.With.
func (h *Handle3[A, B, C, V]) With(opts ...region.Option) *Handle3[A, B, C, V] {
	return &Handle3[A, B, C, V]{c: h.c.with(opts), ea: h.ea, eb: h.eb, ec: h.ec}
}

// Invalidate deletes the cached value for (a, b, c).
func (h *Handle3[A, B, C, V]) Invalidate(ctx context.Context, a A, b B, c C) error {
	return h.c.invalidate(ctx, args3[A, B, C]{a, b, c})
}

// Refresh calls fn(ctx, a, b, c) and caches its result, whatever is cached now, and returns it.
func (h *Handle3[A, B, C, V]) Refresh(ctx context.Context, a A, b B, c C) (V, error) {
	return h.c.refresh(ctx, args3[A, B, C]{a, b, c})
}

// Set caches v as the result for (a, b, c), as created now.
func (h *Handle3[A, B, C, V]) Set(ctx context.Context, a A, b B, c C, v V) error {
	return h.c.set(ctx, args3[A, B, C]{a, b, c}, v)
}

// Cached returns the fresh cached value for (a, b, c), if there is one; it never calls fn.
func (h *Handle3[A, B, C, V]) Cached(ctx context.Context, a A, b B, c C) (V, bool, error) {
	return h.c.cached(ctx, args3[A, B, C]{a, b, c})
}

// Uncached calls fn(ctx, a, b, c) directly, bypassing the cache.
func (h *Handle3[A, B, C, V]) Uncached(ctx context.Context, a A, b B, c C) (V, error) {
	return h.c.fn(ctx, args3[A, B, C]{a, b, c})
}

// Key returns the cache key (before the region's mangler) for (a, b, c).
func (h *Handle3[A, B, C, V]) Key(a A, b B, c C) (string, error) {
	if h.c.gen != nil {
		return h.c.generated(a, b, c)
	}
	var buf keyBuf
	return own(h.lend(&buf, a, b, c))
}

// lend returns the key for (a, b, c), built in buf unless a custom generator builds it.
func (h *Handle3[A, B, C, V]) lend(buf *keyBuf, a A, b B, c C) (string, error) {
	if h.c.gen != nil {
		return h.c.generated(a, b, c)
	}
	k, err := h.ea.Append(append(buf[:0], h.c.prefix...), a)
	if err == nil {
		k, err = h.eb.Append(append(k, ','), b)
	}
	if err == nil {
		k, err = h.ec.Append(append(k, ','), c)
	}
	if err != nil {
		return "", h.c.keyErr(err)
	}
	return lent(k), nil
}

// Stats returns the counts of the function's calls: hits, misses, creations, waits... (see
// region.Stats). The region's Stats add up every function's; its ViewStats and PublishExpvar
// show them by namespace (see WithNamespace).
func (h *Handle0[V]) Stats() region.Stats { return h.c.view.Stats() }

// Stats returns the counts of the function's calls: hits, misses, creations, waits... (see
// region.Stats). The region's Stats add up every function's; its ViewStats and PublishExpvar
// show them by namespace (see WithNamespace).
func (h *Handle[A, V]) Stats() region.Stats { return h.c.view.Stats() }

// Stats returns the counts of the function's calls: hits, misses, creations, waits... (see
// region.Stats). The region's Stats add up every function's; its ViewStats and PublishExpvar
// show them by namespace (see WithNamespace).
func (h *Handle2[A, B, V]) Stats() region.Stats { return h.c.view.Stats() }

// Stats returns the counts of the function's calls: hits, misses, creations, waits... (see
// region.Stats). The region's Stats add up every function's; its ViewStats and PublishExpvar
// show them by namespace (see WithNamespace).
func (h *Handle3[A, B, C, V]) Stats() region.Stats { return h.c.view.Stats() }
