// Package file is a backend that keeps entries in a directory on the local disk: a cache that
// survives restarts, needs no server, and is shared by every process on the machine that opens
// the same directory (a CLI run many times, workers forked from one service, a CI job), with a
// dogpile lock across those processes.
//
//	b, err := file.New("/var/cache/myapp", file.WithMaxSize(1<<30))
//	if err != nil { ... }
//	defer b.Close()
//	if err := cache.Configure(b); err != nil { ... } // cache is a *region.Region
//
// or, from configuration, backends.Open("file:///var/cache/myapp?max_size=1GiB").
//
// The package works where Go's syscall package has flock: Linux, macOS and the BSDs. Elsewhere New
// returns an error wrapping errors.ErrUnsupported rather than offer a lock that does not lock.
//
// # Layout
//
//	dir/data/<2 hex digits>/<62 hex digits>   one file per key: the hex SHA-256 of the key
//	dir/data/<2 hex digits>/.tmp-*            a write in progress (or a crashed writer's leftover)
//	dir/locks/<0..65535>.lock                 TryLock's stripes, created on first use, always empty
//	dir/locks/w<0..4095>.lock                 write stripes, created on first use, always empty
//	dir/evict.lock                            held while a process runs an eviction pass
//
// One file per key was chosen over an embedded database for correctness across processes first:
// every write is a rename, which the kernel makes atomic for every reader in every process, with
// no shared writer lock, no log to recover and nothing a killed process can leave half done. The
// cost is a few syscalls per operation, which is still well under what the region spends around
// it (see the benchmarks). Since a file's name is the hash of its key, made of hex digits only,
// no key can name a path outside the directory, whatever it holds ("../../etc/passwd", NUL bytes,
// an empty key, 10 KB). Files and directories are created with modes 0600 and 0700: the cache is
// private to the user that runs the processes (see "What the backend trusts").
//
// An entry file holds, in order (integers big-endian):
//
//	"dpf1"            magic, 4 bytes
//	crc               CRC-32C (Castagnoli) of everything after it, 4 bytes
//	expires           Unix nanoseconds, int64; 0: never
//	key length        uint32
//	key               the region's key, checked on every read
//	value             the bytes given to Set
//
// A file that is too short, has another magic or a wrong checksum (truncated, filled with
// garbage, written by something else), or holds another key, is a miss: Get returns an error
// wrapping backends.ErrNotFound, as for an absent key, and removes the file, so the next Set
// starts clean. A file larger than the largest entry the backend writes (see WithMaxValueSize) is
// a miss too, and is not read. The backend does not log (a region reports nothing for misses);
// Get never panics on any content. The checksum is what makes a truncation a miss instead of a
// shorter, wrong value; it costs about 60 ns per KB.
//
// # What the backend trusts
//
// Everything in the directory is read as bytes the backend did not write: another program, a user
// with the same uid, or root may have put anything there.
//
//   - The directory. New checks that dir, data/ and locks/ belong to the process's effective user
//     and that neither their group nor others may write them (mode & 0o022 == 0), and refuses any
//     other with an error that names the path and the fix, such as "chmod 700 /var/cache/myapp". A
//     directory that others may write is one where they may plant entries, links or FIFOs; a
//     directory of another user is theirs to fill. Directories the backend makes have mode 0700,
//     fan-out directories included. The directory's parents are not checked. dir may be a symbolic
//     link, or lie under one (as /var/cache sometimes does): links in the path given to New are
//     followed, and the directory they lead to is the one checked.
//   - Links. Below dir, nothing is reached through a link: New keeps data/ and locks/ open, and
//     every fan-out directory, entry, temporary file and lock file is opened relative to its
//     directory's descriptor with O_NOFOLLOW. A link in the place of a fan-out directory makes the
//     key's Get, Set and Delete fail with an error wrapping backends.ErrMalformed (the link stays:
//     somebody put it there on purpose); a link in the place of an entry is a miss reported as an
//     error wrapping backends.ErrMalformed, and the link (not its target) is removed; a link in the
//     place of a lock file makes the lock or the write fail. No write lands outside the directory.
//   - File types. An entry is opened with O_NONBLOCK, so that an open of a FIFO cannot block, and
//     is read only when fstat says it is a regular file: a FIFO, socket, device or directory in its
//     place is a miss reported as an error wrapping backends.ErrMalformed, and all but a directory
//     are removed. Lock files are checked the same way. Eviction passes skip what is not a regular
//     file.
//   - Sizes. A read is bounded by the largest entry the backend would write for the key (a 20-byte
//     header, the key, and WithMaxValueSize bytes of value, 64 MiB by default) and allocates no
//     more than the file's size up to that bound: a larger file is a miss, costs an fstat, and is
//     left in place (another process with a larger WithMaxValueSize may have written it). Set
//     refuses a value over the bound with an error wrapping backends.ErrTooLarge.
//
// # Writes
//
// Set writes the entry to a new temporary file (O_CREAT|O_EXCL, a random name) in the key's
// subdirectory, fsyncs it unless WithFsync(false), and renames it over the entry file. A reader, in any process, opens
// either the old file or the new one and reads it whole: it never sees a part of an entry, and a
// crashed writer leaves at most a temporary file, which an eviction pass removes after an hour.
// The directory itself is not fsynced after the rename: after a power loss, the last writes may
// be lost (the old entry or none is there), which a cache can afford; what fsync buys is that
// whatever entry is there is whole. A failed write (a read-only or full disk) returns the error
// wrapped with the key, removes its temporary file, and leaves the old entry in place; the
// region's failure policy decides what the caller sees.
//
// Every write of an entry (Set, SetMulti, SetIfNotNewer) holds the key's write stripe, an
// exclusive flock on one of 4096 files under dir/locks (apart from TryLock's, since a region
// stores while it holds the key's TryLock), and within a process a semaphore in front of it. It
// costs an open, a flock and a close per write, and a write waits while another of its stripe
// runs (until its context ends). It makes the backend a backends.ConditionalSetter: SetIfNotNewer
// reads the entry file under the stripe and writes the new one only if the held entry is not
// newer (by created-at; an expired, damaged or foreign file counts as absent), so that a
// creation never overwrites a Set, a deletion's tombstone or a Refresh made after it began, in
// any process. Delete and eviction take no stripe: a removal between the read and the write of a
// SetIfNotNewer is one made before it. The backend is no ConditionalMultiSetter (there are no
// round trips to save): a region calls SetIfNotNewer once a key.
//
// # Expiry and the size bound
//
// An entry read after its storage TTL is a miss, and the read removes its file. Entries nobody
// reads are removed by eviction passes, which a write also runs when the last one is more than
// ten minutes old, with or without a bound. With WithMaxSize or WithMaxEntries, each process keeps
// approximate totals (initialised by a scan in New, moved by its own writes and deletes), and a
// write that takes them over a bound runs a pass in the writer's goroutine: it scans data/,
// removes expired entries and stale temporary files, then removes entries oldest first until
// the directory is under 90% of each bound, and re-bases the totals on what it found. One pass
// runs at a time per process (other writers skip it and go on) and across processes (a
// non-blocking flock on evict.lock: if another process runs one, this one skips it). Readers never
// wait for a pass. Evict runs a pass on demand.
//
// "Oldest" means written longest ago (the file's mtime), not least recently read: Get changes
// nothing on disk, so a hit costs no write. An entry read often but written once is evicted as
// early as one never read; regions that rewrite entries as they expire keep the hot ones young.
// The size counted is that of the files (header, key and value), not the file system's blocks.
// Other processes' writes are seen only by a pass (or a new New), so a process also runs a pass
// once it alone has written a tenth of a bound since its last one: with N writing processes the
// directory exceeds a bound by about N tenths of it at most, until the next pass of any of them.
//
// # The lock
//
// TryLock hashes the lock's name to one of 65536 stripe files under dir/locks and takes an
// exclusive, non-blocking flock on a new open file description of it; the Lock keeps that file
// open, and Unlock closes it. flock belongs to the open file description, so the lock excludes
// other processes and also other TryLocks in the same process, which open the file anew. Two
// names on one stripe exclude each other (probability 1/65536 per pair): the cost is a caller
// that waits for a value instead of making it, never a wrong value. Lock files are never removed,
// so no holder can find its file unlinked under it.
//
// A lock frees itself when its timeout passes (a timer closes its file), as backends.Locker
// requires, and, unlike a Redis or Memcached lock, also at once when the holding process dies:
// the kernel releases a flock with the last descriptor of its file. A holder whose lock timed out
// may still call Unlock: the file is closed only once (an *os.File guarded by sync.Once), so it
// never closes a descriptor number the kernel has since handed to a later holder.
//
// flock is advisory and local: it works between processes of one machine. On NFS it is emulated
// with fcntl locks on Linux (or not at all, depending on the mount); do not share a directory
// between machines.
//
// # Multi-key operations and Close
//
// GetMulti, SetMulti and DeleteMulti loop over the single-key operations: the disk is local and
// there is no round trip to save. Close closes the backend's own file and makes later calls fail;
// it leaves entries and other holders' locks alone, and locks taken through the backend stay held
// until their Unlock or timeout. Close may be called more than once.
//
// # URLs
//
// Importing the package registers it under the name "file" for backends.Open:
//
//	file:///var/cache/myapp?max_size=1GiB&max_entries=100000&fsync=false&default_ttl=24h
//
// See Open for the parameters. Unlike the network backends' Openers, Open does I/O: it creates
// the directory, as New does.
package file
