// Package backends defines the contract between a region and the store behind it, the envelope in
// which byte backends keep entries, and a registry that lets configuration name a backend.
//
// Most programs only pick a backend and hand it to a region:
//
//	b := memory.New(memory.WithMaxEntries(100_000))
//	b, err := backends.Open(os.Getenv("CACHE_URL")) // "memory://?max_entries=100000", "redis://..."
//
// # The contract
//
// A Backend gets, sets and deletes opaque byte values on string keys. A miss is an error that
// errors.Is ErrNotFound, never a nil value with a nil error. Set takes a storage TTL: it only
// bounds how long the backend keeps a value; when a value counts as expired is the region's
// business, and regions ask for a storage TTL longer than their expiration so that stale values
// stay available while one caller regenerates them. Every backend is safe for concurrent use.
//
// # Capabilities
//
// Beyond the three required methods, a backend implements the optional interfaces it can support
// well, and regions discover them by type assertion, as database/sql does with driver.Pinger:
//
//   - MultiGetter, MultiSetter, MultiDeleter: many keys in one round trip. Without them, regions
//     loop over the single-key methods.
//   - Locker: a per-key mutex shared by every process using the backend, with a timeout so that a
//     crashed holder cannot block a key. Without it, the dogpile lock holds within one process.
//     MultiLocker tries many locks in one round trip; without it, regions call TryLock once a key.
//   - ConditionalSetter: store an entry only if the entry held under the key is not newer (by
//     created-at, EntryCreated), as one atomic step on the server, so that a creation never
//     overwrites a Set, Delete (a FlagDeleted tombstone) or Refresh made after it began, in any
//     process. Without it, regions store creations with Set: a write made in another process
//     during a creation may then be overwritten by it. ConditionalMultiSetter makes many such
//     stores in one round trip; without it, regions call SetIfNotNewer once a key.
//   - BatchLimiter: the most keys one multi-key call should carry. Without it, no limit.
//   - Notifier: broadcast short messages to every process (Redis pub/sub), for shared
//     invalidation and the local cache's evictions. Without it, other processes learn of them by
//     polling and by their local entries' maximum age.
//   - Partitioned: the backend's keys live on several servers that fail one at a time. Regions
//     keep their circuit breaker off on it. Without it, a backend counts as one server.
//   - ValueStore: keep Go values as they are, with no encoding (in-process backends only).
//   - io.Closer: release connections, files or goroutines.
//
// A backend that wraps another (for logging, metrics or fault injection) implements Wrapper.
// Callers look for a capability with As, which walks the Unwrap chain, so a wrapper does not hide
// the capabilities of what it wraps:
//
//	if l, ok := backends.As[backends.Locker](b); ok {
//		lock, taken, err := l.TryLock(ctx, key, 30*time.Second)
//		...
//	}
//
// Package backends/wrap builds such wrappers from a hook per call, keeping exactly the
// capabilities of the backend they wrap, and ships two: wrap.Log and wrap.Faults.
//
// # Writing a backend
//
// Implement Backend and whichever capabilities the store supports natively; do not emulate one
// (a Locker that is not shared between processes is worse than none, since regions then trust
// it). Values are opaque: store and return them byte for byte, and copy them where the store
// would otherwise keep or hand out the caller's slice. Wrap errors with the backend's name and
// the operation: fmt.Errorf("redis: get %q: %w", key, err). Then run the conformance suite,
// backendtest.Run, from a test of the backend's package.
//
// To make the backend reachable from configuration, register an Opener in the package's init,
// as database/sql drivers do; importing the package then makes the name usable in Open. The
// Opener parses the URL, rejects what it does not understand, and does no I/O.
//
// # Stored entries
//
// Regions do not store bare codec output: they wrap it in an envelope (Entry, EncodeEntry,
// DecodeEntry) that records the format version, the creation time and how long the creation
// took, and flags (a cached "not found"), so a key that holds a foreign value, or one from a
// newer format, reads as a miss instead of a wrong value or a panic. Entries of version 1, which
// earlier releases wrote, still decode. The layout is described at EntryHeaderSize and pinned by
// golden files in testdata/.
package backends
