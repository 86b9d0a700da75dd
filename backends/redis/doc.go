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
// # Conditional stores
//
// The backend is a backends.ConditionalSetter and a backends.ConditionalMultiSetter: a region
// stores what a creation made only if the key does not hold a newer entry (a Set, a deletion's
// tombstone or a Refresh made, in any process, after the creation began). SetIfNotNewer is one
// Lua script (EVALSHA, EVAL once on a server that has not seen it) that reads the key's first 20
// bytes (GETRANGE: the entry's header, not its value), compares the entries' created-at byte by
// byte, and SETs with the ttl rule of Set, all in one step on the server: one round trip. Bytes
// that are not an entry, or another Redis type (a list), are replaced, as SET replaces them.
// SetMultiIfNotNewer runs the script once a key in one pipeline: one round trip, one per node on
// a Cluster or Ring.
//
// # The lock
//
// TryLock takes the lock named key with a script that runs
//
//	SET <prefix>\x00lock\x00<key> <random 128-bit token, hex> NX PX <timeout in ms>
//
// (and answers "taken" too when the lock already holds the token, for go-redis's retry of a
// command whose reply was lost), and Unlock releases it with a Lua script that deletes the lock key only if it still holds the
// holder's token. A holder whose lock timed out, and was then taken by another, can therefore
// never release the other's lock; its Unlock is a no-op. The timeout frees the lock of a holder
// that crashed. WithLockWatchdog makes a held lock extend itself (with a compare-and-PEXPIRE
// script) every third of its timeout until Unlock, for creators that may outlive the timeout.
//
// In Cluster mode a key's lock lives in the hash slot of the key, so on the master that holds
// the value, and the two move together in a failover or a resharding: the lock key starts with
// the key's own hash tag when it has one (a prefix such as "{app}:" gives every key one), and
// otherwise carries the data key as its tag, <prefix>\x00lock\x00{<prefix><key>}<key>. Two rare
// forms keep the plain name, in another slot (still exclusive): a prefix that holds a '{' but no
// hash tag of its own, and a key without a hash tag that holds a '}'.
//
// # Failover: what the lock does and does not guarantee
//
// The lock is a single-instance lock: it lives on the master that holds its key (the Sentinel
// master, or the Cluster master of its slot), and nothing else. Redis replicates to replicas
// asynchronously, and a failover promotes a replica. So, across a failover:
//
//   - A lock whose SET reached the replica before the master died is on the promoted replica,
//     with the same expiry (Redis 7 replicates expiries as absolute times): nobody else can take it
//     until it expires, and its holder's Unlock, and its watchdog, work on the new master.
//     TestSentinelFailover checks this, having waited for the replica (WAIT) before the kill.
//   - A lock whose SET had not reached the replica when the master died is lost: another caller
//     can take it on the new master while the first holder still creates. The key is then
//     created twice; of the two values, the one whose creation began later is kept (the stores
//     are conditional: see Conditional stores), whatever order they land in. For a cache that
//     costs one extra creation, never a wrong value; it is not mutual exclusion, and code that
//     needs that must not use this lock. The window is the replication lag, sub-millisecond on
//     a healthy link; nothing bounds it.
//   - While the master is down and before a replica takes over (the Sentinel's
//     down-after-milliseconds or the Cluster's cluster-node-timeout, then an election), TryLock
//     and every other command on its keys fail. A region under FailOpen counts a lock it could
//     not try as taken: every process creates the value, once per process (calls within a
//     process still coalesce), and cannot store it.
//   - A master cut off from the others by a network partition, rather than dead, takes locks
//     that are lost when it rejoins as a replica; Redis's min-replicas-to-write narrows that.
//   - A write (a Set, a deletion's tombstone) acknowledged by a master that dies before its
//     replica received it is lost with it, like any write Redis has not replicated: a creation
//     older than that write may then store its value on the new master. WAIT after the write
//     narrows this for callers that need it.
//
// Within those limits, what a fleet on one Redis can rely on: one creation of a cold key and one
// regeneration of an expired one at a time, fleet-wide; a write made in any process wins over a
// creation in progress elsewhere; every call ends by its deadline; a creation holds its key (and
// its lock, watchdog or not) only for the region's creation timeout.
//
// The backend does not implement Redlock (a majority of independent masters), and makes no
// claim beyond the above. A failover costs at worst one extra creation a key per process.
//
// # Cluster and Sentinel in operation
//
// The tests run a six-node Cluster (three masters, three replicas) and a Sentinel setup (a
// master, a replica, three sentinels) on loopback, and kill a master with SIGKILL under load.
// With cluster-node-timeout 1000 and down-after-milliseconds 1000, callers saw errors for about
// 3 seconds on the Cluster and 2 to 3 on Sentinel; no call outlived its context's deadline. On a
// Cluster with cluster-require-full-coverage yes (Redis's default) every slot refuses commands
// from the moment the master is marked failed until its replica takes over, not only the dead
// master's slots.
//
// go-redis's ClusterClient learns where slots moved from MOVED answers, and otherwise reloads
// the slot map every ClusterOptions.ClusterStateReloadInterval, a minute by default. A master
// that died and was not started again answers nothing, so with the default the client goes on
// dialing the dead master for the slots its replica took over, for up to that minute (the tests
// saw it still failing 30 seconds after the kill). Set ClusterStateReloadInterval to a few
// seconds; a Cluster client that Open builds from a URL has DefaultClusterStateReloadInterval.
// A Sentinel FailoverClient follows the sentinels' +switch-master at once.
//
// On a Cluster, GetMulti returns the values of the nodes that answered together with the error
// of one that did not, so a region under FailOpen still hits on the live masters' keys.
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
// Locks live beside the values under the same prefix, as prefix + "\x00lock\x00" + key (on a
// Cluster with the key's hash tag after the mark; see The lock), so that no data key of a region
// can be a lock's name.
//
// A miss is an error wrapping backends.ErrNotFound; anything else (Redis down, a timeout, ctx
// done) is wrapped with the operation and key and is never a miss, so that the region's failure
// policy decides. The backend does not retry: how soon a call to an unreachable Redis fails is
// the client's DialTimeout, ReadTimeout, MaxRetries and DialerRetries (go-redis defaults to 3
// retries, and 5 dial attempts, per command). A cache that should fail fast sets them low.
//
// Every call ends by its context's deadline, also on a server that accepts connections and never
// answers (stopped, swapping, behind a dead proxy), provided the client was built with
// ContextTimeoutEnabled: true, which Open sets and a client built by hand needs as well. Without
// it go-redis takes its connections' deadlines from ReadTimeout and WriteTimeout only, and never
// from the context: against a stopped Redis a call with a 200ms deadline returned after 5s (the
// default ReadTimeout). With it the same call returns after its 200ms; pipelines (GetMulti,
// SetMulti, TryLockMulti), the lock scripts, Publish and Subscribe alike. A call without a
// deadline is bounded by those timeouts and retries only, with or without the setting: a GET
// took 10s (a read that times out is tried again), a SET 5s.
//
// # go-redis's own log lines
//
// The backend logs nothing; the region reports failures through slog. go-redis, though, logs
// through a logger of its own, global to the process, that prints to stderr: during an outage a
// line such as "redis: ... pool.go:762: redis: connection pool: failed to dial after 5 attempts:
// dial tcp ...: connection refused" for every connection it fails to open. SlogLogger routes
// those lines into a slog.Logger, as warnings whose source is the go-redis code that logged them
// (pool.go, for a failed dial); a logger on slog.DiscardHandler, or Disable in
// github.com/redis/go-redis/v9/logging, silences them. Set it once, as the program
// starts, before any client exists (go-redis reads the variable without a lock):
//
//	goredis.SetLogger(redis.SlogLogger(logger.With("component", "go-redis")))
//
// # URLs
//
// Importing the package registers it for backends.Open (and so for config documents, the
// DOGPILE_<REGION>_BACKEND variable and region.ConfigureURL) under six names: redis, or rediss
// for TLS, alone for one server, followed by +cluster for a Redis Cluster, and by +sentinel for a
// master that Sentinel monitors. What follows the scheme is go-redis's own URL of that form
// (goredis.ParseURL, goredis.ParseClusterURL, goredis.ParseFailoverURL): drop "+cluster" or
// "+sentinel" and go-redis reads it.
//
//	redis://[user:password@]host[:port][/db]?prefix=myapp:&default_ttl=24h&dial_timeout=1s
//	redis+cluster://[user:password@]host[:port]?addr=host2:port&addr=host3:port&prefix={myapp}:
//	redis+sentinel://[:sentinel-password@]host[:port][/db]?master_name=mymaster&addr=host2:port&password=p
//
// A Cluster URL names seed nodes, the host and each addr; the client learns the others from
// them. The user information authenticates to every node. A Cluster has database 0 only, so the
// path is empty or /0. On rediss+cluster, go-redis checks every node's certificate against the
// URL's host name (one tls.Config for all nodes), so the nodes' certificates must hold that name.
// The backend is backends.Partitioned, as New makes it for any ClusterClient.
//
// A Sentinel URL names sentinels, the host and each addr, and the master by master_name, the
// name the sentinels monitor it under; the client asks them for the master, and follows it
// through failovers. The user information authenticates to the sentinels, and the username and
// password parameters to the master. The port defaults to 6379, as everywhere in go-redis, not to
// Sentinel's 26379: write it. The client talks to the master only: replica_only,
// route_by_latency and route_randomly, which go-redis's URL allows, are errors here.
//
// The scheme, rather than a parameter, says what the URL names because the three are different
// clients with different parameters (go-redis rejects addr on one server, master_name on a
// Cluster), and a reader of the URL should see it first. redis+sentinel:// is what other
// libraries use for Sentinel (Python's redis-sentinel-url, RedisVL, Prefect; Lettuce writes
// redis-sentinel://), though their grammar puts the sentinels in the host, comma-separated, and the
// master's name in the path: here it is go-redis's.
//
// The backend's own parameters, on every form, are prefix and default_ttl (a time.ParseDuration
// string), and dialer_retries and dialer_retry_timeout, which a cache that must fail fast needs
// (dialer_retries=1 dials once per command). On a Cluster cluster_state_reload_interval sets how
// often the client reloads the slot map, DefaultClusterStateReloadInterval by default (see
// Cluster and Sentinel in operation), and on rediss+cluster skip_verify works as on the other
// forms. Everything else is go-redis's: the database number in the path, dial_timeout,
// read_timeout, write_timeout, pool_size, max_retries, protocol, skip_verify (rediss only),
// read_only and route_by_latency (Cluster) and the rest of its snake_case options. Any other
// parameter is an error naming it. Open owns the client it builds (Close closes it), and sets
// ContextTimeoutEnabled on it. A Ring has no URL form, as in go-redis: build it and call New.
// backends.Redact hides the user information and the password parameter of every form.
package redis
