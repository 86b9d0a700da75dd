// Package wrap wraps a backend to observe or disturb its calls (dogpile.cache's ProxyBackend),
// keeping what the wrapped backend can do: its multi-key operations, its distributed lock, its
// conditional stores, its batch limit, its Go value storage and its Close.
//
// A wrapper is a Hook around each call, as net/http middleware is a Handler around a request:
//
//	b := wrap.New(redis.New(client), func(ctx context.Context, c *wrap.Call, next func(context.Context) error) error {
//		start := time.Now()
//		err := next(ctx)
//		latency.WithLabelValues(c.Op.String()).Observe(time.Since(start).Seconds())
//		return err
//	})
//	cache.Configure(b)
//
// Two hooks ship with the package: Log, which logs every call through log/slog at debug level,
// and Faults, which injects errors and latency for tests. Wrappers stack:
// wrap.New(wrap.New(b, faults.Hook), wrap.Log(logger)) logs the injected failures too.
//
// # Capabilities
//
// A region discovers a backend's optional capabilities with backends.As, which stops at the
// first link of the Unwrap chain that has one. A wrapper that lacked a capability would let the
// region reach past it (the hook would not see those calls); a wrapper that claimed one the
// backend lacks could change what the region does: a region that finds a backends.Locker
// believes its locks exclude other processes. New therefore returns a wrapper that has exactly
// the capabilities that matter to a region, see New for the list: the distributed lock and the
// conditional stores only when the backend has them, and, for the others, an implementation that
// does what a region does without them (a loop of single-key calls, no batch limit, no value
// storage, nothing to close).
//
// The memory backend keeps Go values (backends.ValueStore) and a region then reads and writes
// through GetValue and SetValue, never Get and Set: the wrapper forwards those too, so a hook
// sees OpGetValue and OpSetValue there. A capability this package does not know (one added to
// package backends later) is not hidden either: backends.As reaches past the wrapper to b, and
// the hook does not see its calls.
//
// A Hook sees descriptions of calls (operation, keys, TTL, sizes, hits) and never the values,
// so a wrapper built on this package cannot change or leak what is cached. A wrapper that
// transforms values (compression, encryption) implements backends.Backend and backends.Wrapper
// itself, and the capabilities it can forward honestly.
package wrap
