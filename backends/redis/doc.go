// Package redis is a backend on Redis through github.com/redis/go-redis/v9: one Redis (or a
// Sentinel-managed one, or a Cluster) shared by every process of a fleet, with a distributed
// dogpile lock so that a cold or expired key is regenerated once for the whole fleet.
//
//	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
//	b := redis.New(client, redis.WithPrefix("myapp:"))
//	if err := cache.Configure(b); err != nil { ... } // cache is a *region.Region
//
// New takes a goredis.UniversalClient, so a single-node *goredis.Client, a Sentinel
// (goredis.NewFailoverClient), a *goredis.ClusterClient, a *goredis.Ring, or whatever
// goredis.NewUniversalClient returns all work. The caller owns the client: New does no I/O, and
// Close leaves the client open unless the backend was created WithCloseClient.
//
// Values are stored byte for byte under the region's (mangled) key, prefixed by WithPrefix, as
// Redis strings; a hit costs one GET, a miss the same GET answered with nil.
//
// # Multi-key operations
//
// GetMulti is one MGET, SetMulti one pipeline of SET commands, DeleteMulti one DEL: one round
// trip each. In Cluster mode, where one command may only name keys of one hash slot, the keys
// are grouped by slot and the per-slot commands go in one pipeline, which go-redis sends to
// every node concurrently: one round trip per node. A prefix with a hash tag, like "{myapp}:",
// puts every key in one slot (one node), which makes multi-key commands single again at the cost
// of spreading no load. On a Ring, where the client shards keys itself, every key gets a
// command of its own in one pipeline.
//
// # The lock
//
// TryLock takes the lock named key with
//
//	SET <prefix><key>:lock <random 128-bit token, hex> NX PX <timeout in ms>
//
// and Unlock releases it with a Lua script that deletes the lock key only if it still holds the
// holder's token. A holder whose lock timed out, and was then taken by another, can therefore
// never release the other's lock; its Unlock is a no-op. The timeout frees the lock of a holder
// that crashed. WithLockWatchdog makes a held lock extend itself (with a compare-and-PEXPIRE
// script) every third of its timeout until Unlock, for creators that may outlive the timeout.
//
// In Cluster mode the lock key hashes to its own slot, unless the key has a hash tag: that is of
// no consequence, since the lock is a single-key SET NX.
//
// # TTLs
//
// Two different times meet here. The region's expiration decides when a value is stale; the
// region keeps it in the envelope and Redis never sees it. The storage TTL is how long Redis keeps
// the value (PX on the SET), which the region passes to Set (region.WithStorageTTL) and which
// should be longer than the expiration, so that stale values stay available to serve while one
// caller regenerates them. When the region passes no storage TTL (0), the backend uses
// WithDefaultTTL, and without that keeps values until they are deleted or evicted by Redis's
// maxmemory policy. TTLs are rounded up to whole milliseconds.
//
// # Failures
//
// Locks live beside the values under the same prefix, as prefix + "\x00lock\x00" + key, so that
// no data key of a region can be a lock's name.
//
// A miss is an error wrapping backends.ErrNotFound; anything else (Redis down, a timeout, ctx
// done) is wrapped with the operation and key and is never a miss, so that the region's failure
// policy decides. The backend does not retry: how soon a call to an unreachable Redis fails is
// the client's DialTimeout, ReadTimeout, MaxRetries and DialerRetries (go-redis defaults to 3
// retries, and 5 dial attempts, per command). A cache that should fail fast sets them low.
//
// # URLs
//
// Importing the package registers it under the names "redis" and "rediss" (TLS) for
// backends.Open:
//
//	redis://[user:password@]host[:port][/db]?prefix=myapp:&default_ttl=24h&dial_timeout=1s
//
// The backend's own parameters are prefix and default_ttl (a time.ParseDuration string), and
// dialer_retries and dialer_retry_timeout, which go-redis's URLs lack and which a cache that must
// fail fast needs (dialer_retries=1 dials once per command). Everything else is go-redis's
// goredis.ParseURL: the database number in the path, dial_timeout,
// read_timeout, write_timeout, pool_size, max_retries, protocol, skip_verify (rediss only) and the
// rest of its snake_case options. Any other parameter is an error naming it. Open builds a
// single-node client and owns it (Close closes it); for Cluster or Sentinel, build the client and
// call New.
package redis
