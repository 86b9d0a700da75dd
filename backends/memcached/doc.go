// Package memcached is a backend on memcached through github.com/bradfitz/gomemcache: one
// memcached, or a pool of them, shared by every process of a fleet, with a distributed dogpile
// lock so that a cold or expired key is regenerated once for the whole fleet.
//
//	client := memcache.New("10.0.0.1:11211", "10.0.0.2:11211")
//	b := memcached.New(client, memcached.WithPrefix("myapp:"))
//	if err := cache.Configure(b); err != nil { ... } // cache is a *region.Region
//
// New takes a *memcache.Client, which picks a server per key among those it was given. The caller
// owns the client: New does no I/O, and Close leaves the client alone. A hit costs one gets
// command, a miss the same command answered with nothing.
//
// gomemcache takes no context, so the backend bounds every call by the earlier of its context's
// end and the client's Timeout (500ms by default, for each dial, read and write): the client's
// call runs on a goroutine of its own, and the caller returns the context's error, wrapped with
// the operation and key, as soon as the context ends, also against a server that accepts
// connections and never answers (a stopped memcached: a Get with a 200ms deadline returned after
// 200ms, where the client alone waited its 500ms). The call its caller left goes on to its end,
// bounded by the client's Timeout, and may still take effect: a Set may store its value, a
// TryLock take the lock (which then frees itself after its timeout). A context already done
// costs no I/O; context.Background, which never ends, runs the call on the caller's goroutine.
// The goroutine and its channel cost about 4 allocations (216 bytes) a call.
//
// # Connections
//
// gomemcache dials a connection for every concurrent call that finds no idle one, and keeps
// only MaxIdleConns (2 by default) idle afterwards: 3,000 goroutines reading one key opened
// connections until memcached refused them ("Too many open connections", its -c limit), and
// those reads failed. The backend caps the calls in flight on each server at WithMaxConns
// (max_conns in URLs; DefaultMaxConns, 10 × GOMAXPROCS, without it), so that no server has more
// connections open than the cap, and keeps up to the cap idle (it sets the client's MaxIdleConns
// when it is 0), so that a steady load reuses them. A call waits for a free connection until its
// context ends. A call its caller left keeps its connection, and its place under the cap, until
// it ends. With the cap at 16, 3,000 goroutines × 10 reads of one key against a memcached
// started with -c 64 made 16 connections in all and every read hit; without it, 28,300 dials, of
// which 28,218 were refused, and as many reads failed.
//
// A backend from backends.Open knows the client's servers and caps each apart: a call waits only
// for connections to the server of its key, and GetMulti asks each server its keys map to under
// that server's cap, concurrently, so a server that is slow or hung holds up only its own keys.
// For a client passed to New the backend cannot see which server the client picks, so one cap
// counts the calls to all its servers: still no more connections than the cap to any server, but
// no more calls in flight in all either, and a GetMulti takes one place whatever servers it asks.
// The backend sends no command to every server (no flush).
//
// # Keys
//
// memcached refuses keys longer than 250 bytes or with spaces or control characters, and a
// region's keys may hold anything (memo keys hold string arguments as they are). So the backend
// sends a key as it is, after WithPrefix's prefix, when memcached can take it, and otherwise the
// prefix, "sha1:" and the 40 hex digits of the key's SHA-1: what keys.LengthConditional and
// keys.SHA1 would do, chosen per key. A key that itself starts with "sha1:" is hashed too, so
// distinct keys stay distinct. Nobody meets memcache.ErrMalformedKey. Keys seen in memcached
// (with memcached-tool or a stats dump) are therefore the region's keys, except the awkward ones.
//
// # Values
//
// Values are stored byte for byte, with flags 0. memcached refuses an item larger than its item
// size limit (-I, 1 MiB by default), which counts the key and 59 bytes of overhead besides the
// value. The backend checks the size before sending: a value that would not fit is an error
// wrapping backends.ErrTooLarge, naming the key and the size, and nothing is stored. A region
// reports it and still returns the created value. Tell the backend about a larger limit with
// WithMaxItemSize (memcached -I 2m: WithMaxItemSize(2<<20)); a server that refuses a value anyway
// also yields ErrTooLarge.
//
// # Multi-key operations
//
// GetMulti is gomemcache's GetMulti: one gets command per server naming all of that server's
// keys, sent to the servers concurrently, so one round trip per server. memcached's text protocol
// has no multi-key set or delete, and gomemcache does not pipeline, so SetMulti and DeleteMulti
// cost a round trip per key.
//
// # Conditional stores
//
// The backend is a backends.ConditionalSetter: a region stores what a creation made only if the
// key does not hold a newer entry (a Set, a deletion's tombstone or a Refresh made, in any
// process, after the creation began). SetIfNotNewer reads the item and its CAS id with gets and,
// unless the entry it holds has a later created-at, writes with cas (add when the key is
// absent), which memcached refuses if anything wrote the key in between: two round trips, and
// two more for each race lost, up to 32 rounds. Bytes that are not an entry are replaced. The
// backend is no ConditionalMultiSetter (memcached has no multi-key cas, and gomemcache does not
// pipeline): a region calls SetIfNotNewer once a key.
//
// # The lock
//
// TryLock takes the lock named key with
//
//	add <prefix>lock:<hex SHA-1 of key><40 letters a or b> 0 <expiry> 32
//	<random 128-bit token, hex>
//
// which only succeeds when no such item exists, and Unlock releases it with a compare-and-delete:
// gets returns the lock item and its CAS id, and, if the item holds the holder's token, a cas with
// that id and a negative expiry (memcached stores the item already expired) removes it. The cas
// fails if the item changed in between, so a holder whose lock timed out, and was then taken by
// another, never releases the other's lock; its Unlock is a no-op. The lock's key is the prefix,
// "lock:" and the hex SHA-1 of the key: it fits memcached's limits whatever the key, and no data
// key maps to it, since data keys starting with "lock:" are hashed (a suffix such as ":lock" would
// collide with data keys that end with it). It ends with 40 letters, each 'a' or 'b', chosen so
// that the lock key has the CRC-32 of the key the value is stored under: a client that picks a
// pool's server by the CRC-32 of the key (memcache.ServerList, and the clients backends.Open
// makes) puts a lock on the server of the value it guards, so a server that dies or restarts
// takes a key's value and its lock together. (A prefix longer than 165 bytes leaves no room for
// the letters: the lock then lives where its own key maps. A client with a selector of its own
// may put the two apart too.)
//
// # A pool with a server down
//
// The client picks a server per key (the CRC-32 of the key modulo the number of servers, as
// memcache.ServerList does) and does not move keys off a server that is down. So while one
// server of a pool is down its keys are misses and its writes fail; the other servers' keys
// still hit, single or in batches: GetMulti returns their values together with the dead
// server's error, and a region under FailOpen uses them (TestPoolScaleOut kills one of three
// servers with SIGKILL: the next batch of 300 keys answered at once, hit on the two live
// servers and created only the dead server's keys). A dead server's keys cannot be locked either,
// since their locks live there too: a FailOpen region creates them without the lock, once per
// process, and the keys of the live servers keep their locks. A server that comes back is empty:
// its keys are created once more, under their locks, and cached.
//
// The expiry frees the lock of a holder that crashed. memcached counts it in whole seconds (see
// TTLs): a lock taken with a timeout of 500ms frees itself between 1 and 2 seconds later, one of
// 30s between 30 and 31 seconds later. memcached cannot do better, and the lock cannot be
// extended while held: give the region a lock timeout longer than its slowest creation.
//
// # TTLs
//
// Two different times meet here. The region's expiration decides when a value is stale; the
// region keeps it in the envelope and memcached never sees it. The storage TTL is how long
// memcached keeps the value, which the region passes to Set (region.WithStorageTTL) and which
// should be longer than the expiration, so that stale values stay available to serve while one
// caller regenerates them. When the region passes no storage TTL (0), the backend uses
// WithDefaultTTL, and without that keeps values until memcached's LRU evicts them.
//
// memcached counts expiry in whole seconds on a clock that ticks once a second, so an item with
// an expiry of n seconds lives more than n-1 seconds and at most n (an expiry of 1 may end a
// millisecond after the set). The backend sends the TTL rounded up to whole seconds, plus one: an
// item lives at least its TTL and at most about two seconds more, and a TTL under a second never
// becomes 0, which memcached reads as "no expiry". memcached reads an expiry over 30 days as a Unix
// time; the backend sends longer TTLs as one, computed from the local clock, so users never meet
// the rule (the server's clock must agree with the local one to within the precision wanted).
//
// # Failures
//
// A miss is an error wrapping backends.ErrNotFound; anything else (memcached down, a timeout, ctx
// done) is wrapped with the operation and key and is never a miss, so that the region's failure
// policy decides. The backend retries only a call that failed on an idle connection the server
// had closed (after a memcached restart, or its idle timeout), which gomemcache then drops: the
// call goes on with another connection, so that a restart does not become a burst of errors.
// If the server had in fact run the call and only its reply was lost, the call runs twice: a
// second add finds the first (TryLock then reads its token and knows its own lock), a second cas
// finds nothing to swap (the lock is released either way), but a set or delete sent again may
// land after another process's newer write of the key and overwrite or delete it. For a cache
// that costs at worst an older value or a miss, until the next write.
//
// # URLs
//
// Importing the package registers it under the name "memcached" for backends.Open:
//
//	memcached://10.0.0.1:11211,10.0.0.2:11211?prefix=myapp:&default_ttl=24h&max_item_size=2m
//
// Servers are separated by commas; a server without a port uses 11211. The parameters are prefix,
// default_ttl, timeout (the client's), max_conns (the cap on connections to each server),
// max_idle_conns (the client's, per server; max_conns by default) and max_item_size (bytes, or
// with a k or m suffix as memcached's -I). Any other parameter is an error naming it.
// Open does no I/O and owns the client it builds (Close closes its idle connections). url.Parse
// does not take a list that holds an IPv6 address: for those, build the client and call New.
package memcached
