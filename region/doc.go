// Package region is the cache: a Region is a named, configured cache (a backend, an expiration,
// a key mangler, a codec), and a View reads and writes it for one value type under the dogpile
// lock.
//
//	var cache = region.New("users", region.WithExpiration(10*time.Minute))
//	var users = region.NewView[*User](cache)
//
//	func main() {
//		if err := cache.Configure(memory.New()); err != nil { ... }
//		u, err := users.GetOrCreate(ctx, "user:42", func(ctx context.Context) (*User, error) {
//			return db.LoadUser(ctx, 42)
//		})
//	}
//
// Most programs reach a region through package memo, which wraps functions and builds keys from
// their arguments; a View is for code that manages its own keys.
//
// # The dogpile lock
//
// GetOrCreate returns a fresh value at the cost of one backend read, with no lock. When the value
// is expired, one caller regenerates it while every other caller gets the old value at once; when
// it is absent, the callers in this process wait for one creation, and where the backend has a
// distributed lock (backends.Locker) so do callers in other processes. A creator's error or panic
// reaches every caller waiting for it, and nothing is cached (but see WithNegativeCaching). A caller whose context ends returns
// ctx.Err() without cancelling the creation the others wait for.
//
// # Batches
//
// GetOrCreateMulti reads many keys in one backend round trip and calls its creator once, with
// exactly the keys that are absent or expired; each key keeps the dogpile lock above, whether
// the other caller on it is a single-key call or another batch, in this process or another.
// GetMulti, SetMulti, DeleteMulti and RefreshMulti are the other operations on many keys; memo.Multi
// wraps a batch loader with them.
//
// # Expiration and invalidation
//
// Expiration belongs to the region (WithExpiration, WithExpirationFunc, WithExpirationFor), and
// a view, a memo handle or a single call may override it with the same options. The backend
// keeps entries longer (WithStorageTTL) so that expired values can still be served. Invalidate
// makes every entry created before it absent (Hard) or expired (Soft) without touching the
// backend.
//
// # Settings
//
// Every setting is an Option made by one constructor, accepted at each level where it makes
// sense: the region (New), a view (NewView) or memo handle, one call. The most specific level
// that sets a setting decides; a bad value is the same error (ErrInvalidOption) at every level.
// See Option.
//
// # Freshness policies
//
// Four options make expiry gentler, per region, view, handle or call (WithJitter: per region):
// WithEarlyRefresh regenerates a value before it expires, with a probability that grows as expiry
// nears and with how long its creation took (XFetch); WithStaleIfError serves an expired value,
// and reports the error, when its regeneration fails; WithNegativeCaching caches "not found"
// for a short time; WithJitter spreads the expirations of entries written together.
//
// # Failures
//
// By default a cache that is down does not take the application down (FailOpen): a failed read
// is a miss, a failed write is reported and the creator's value is still returned. Malformed or
// mistyped entries are misses. Everything is reported through log/slog (WithLogger) and an
// optional hook (WithErrorHandler).
//
// Every error a call returns, and every error the hook is given, is a *Error: the operation
// (Op), what failed (Kind: read, write, lock, malformed, encode, creator, context, closed,
// usage), the key as the caller gave it, the region's name and the cause, which errors.Is and
// errors.As see through (the creator's own error, ErrNotConfigured, *PanicError, ...). A report's
// log record carries the same as the attributes "region", "op", "kind", "key" and "error". The
// region adds "region" itself: do not add it to the logger given to WithLogger, or records
// carry it twice.
package region
