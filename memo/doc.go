// Package memo caches functions. Wrap a function once and call the handle as you called the
// function; the handle answers from a region, under the dogpile lock:
//
//	var cache = region.New("default", region.WithExpiration(10*time.Minute))
//
//	var userByID = memo.Func(cache, loadUser) // loadUser(ctx, id int64) (*User, error)
//
//	func handler(ctx context.Context, id int64) {
//		u, err := userByID.Call(ctx, id)  // cached; loadUser runs once per expiry, not once per caller
//		_ = userByID.Invalidate(ctx, id)  // after a write to the user
//	}
//
// Func0, Func, Func2 and Func3 wrap functions of zero to three arguments after the context. Each
// handle has Call, Invalidate, Refresh, Set, Cached (a peek that never calls the function),
// Uncached and Key. Handles are typed: no type assertions at call sites.
//
// A handle takes the region's settings (region.Option) for its function, the same options a
// region and a view take: region.WithExpiration, region.WithStaleIfError,
// region.WithShouldCache... and memo's own WithNamespace and WithKeyGenerator. A handle's With
// returns it for calls with options of their own, keeping the function's signature for Call:
//
//	var userByID = memo.Func(cache, loadUser, region.WithNegativeCaching(ErrNoUser, time.Minute))
//	u, err := userByID.With(region.WithBypass()).Call(ctx, id) // read through: Cache-Control: no-cache
//
// Keys are the function's namespace (its qualified name, such as
// "github.com/acme/app/users.loadUser", unless WithNamespace sets one) and its arguments, encoded
// by package keys so that different arguments never share a key. Set a namespace for closures,
// whose names are not stable, and wherever several binaries share a backend.
//
// A hit through a one-argument handle on the memory backend costs one allocation (the key
// string) and one map read; see BenchmarkMemoHit.
package memo
