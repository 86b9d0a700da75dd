package file

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dogpile-go/dogpile/backends"
)

var (
	_ backends.Backend      = (*Backend)(nil)
	_ backends.MultiGetter  = (*Backend)(nil)
	_ backends.MultiSetter  = (*Backend)(nil)
	_ backends.MultiDeleter = (*Backend)(nil)
	_ backends.Locker       = (*Backend)(nil)
	_ io.Closer             = (*Backend)(nil)
)

// errNotFound is what every miss returns: wrapped once here, so that a miss allocates no error.
var errNotFound = fmt.Errorf("file: %w", backends.ErrNotFound)

// castagnoli is the CRC-32C table (computed with SSE4.2 or ARMv8 CRC instructions where present).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errClosed is returned by every operation after Close.
var errClosed = errors.New("file: backend closed")

// The layout of an entry file (see the package documentation): magic, CRC-32C of the rest of the
// file, expiry, key length, key, value. Integers are big-endian, as in backends.EncodeEntry.
const (
	magic      = "dpf1"
	headerSize = len(magic) + 4 + 8 + 4 // 20 bytes
	expOffset  = 8                      // where the expiry starts

	// tmpPrefix starts the name of every temporary file; entry files are named with hex digits
	// only, so the two never meet.
	tmpPrefix = ".tmp-"

	// staleTmpAge is how old a temporary file must be before an eviction pass removes it as the
	// leftover of a writer that crashed between create and rename.
	staleTmpAge = time.Hour

	// joinLimit is the largest value Set copies behind the header to write both at once.
	joinLimit = 64 << 10
)

// Backend is a cache in a directory of the local file system, shared by every process that opens
// the same directory. Create it with New or backends.Open; the zero value is not usable. It is safe
// for concurrent use.
type Backend struct {
	dir     string // as given to New, cleaned
	dataDir string // dir/data: entries, under 256 subdirectories
	lockDir string // dir/locks: lock stripes

	// dataFD and lockFD are descriptors of dataDir and lockDir, opened and checked by New: every
	// file of the backend is reached relative to them, without following links. fdMu guards
	// them against Close: an operation holds it for reading while it uses them, Close for
	// writing while it closes them, so that no operation uses a descriptor number the kernel has
	// since given to another file.
	fdMu   sync.RWMutex
	dataFD int
	lockFD int

	maxValue int64 // the largest value Set stores; bounds reads too (see readLimit)

	fsync      bool
	defaultTTL time.Duration
	maxSize    int64 // 0: no bound
	maxEntries int64 // 0: no bound

	// Approximate totals of the entries in dataDir, kept only when a bound is set: initialised by
	// a scan in New, moved by this process's writes and removals, and re-based on the real
	// figures by every eviction pass. Other processes' writes are seen at the next pass.
	size    atomic.Int64
	entries atomic.Int64

	// What this process wrote since the last pass (entries, bytes) and when that pass was, in
	// Unix nanoseconds: other processes' writes are invisible to the totals above, so a pass also
	// runs after a tenth of a bound's worth of this process's own writes, and, with or without a
	// bound, every cleanupInterval, to remove expired entries nobody reads.
	writes   atomic.Int64
	written  atomic.Int64
	lastPass atomic.Int64

	// writers are the in-process semaphores of the write stripes (see lockWrite), each a
	// channel of capacity 1, made by New.
	writers [writeSlots]chan struct{}

	evicting  atomic.Bool // one eviction pass at a time in this process
	evictFile *os.File    // dir/evict.lock, flocked during a pass: one pass at a time across processes; owned by Close

	closed    atomic.Bool
	closeOnce sync.Once
}

// Option configures New.
type Option func(*config)

type config struct {
	maxSize     int64
	maxValue    int64
	maxValueSet bool
	maxEntries  int64
	fsync       bool
	defaultTTL  time.Duration
}

func defaultConfig() config { return config{fsync: true} }

// WithMaxSize bounds the total size of the entry files (headers, keys and values; not the file
// system's block overhead) to about n bytes: a write that takes the total over n runs an eviction
// pass (see the package documentation). 0, the default, sets no bound. A negative n makes New
// return an error.
func WithMaxSize(n int64) Option {
	return func(c *config) { c.maxSize = n }
}

// DefaultMaxValueSize is the largest value a backend stores when neither WithMaxValueSize nor a
// smaller WithMaxSize says otherwise.
const DefaultMaxValueSize = 64 << 20

// WithMaxValueSize sets the largest value, in bytes, that Set, SetMulti and SetIfNotNewer store;
// a larger one is an error wrapping backends.ErrTooLarge, and is not written. It also bounds
// reads: Get reads no entry file larger than the largest entry the backend would write (a
// 20-byte header, the key and n bytes of value), and allocates no more than the file's size up to
// that bound; a larger file is a miss and is left in place (another process, with a larger
// bound, may have written it). The default is DefaultMaxValueSize, or WithMaxSize's bound when
// that is smaller. n <= 0 makes New return an error.
func WithMaxValueSize(n int64) Option {
	return func(c *config) { c.maxValue = n; c.maxValueSet = true }
}

// WithMaxEntries bounds the number of entries to about n, as WithMaxSize bounds their size. 0, the
// default, sets no bound. A negative n makes New return an error.
func WithMaxEntries(n int) Option {
	return func(c *config) { c.maxEntries = int64(n) }
}

// WithFsync sets whether Set flushes each entry to stable storage (fsync of the temporary file)
// before renaming it into place. The default, true, means that after a power loss an entry is
// either the old one or the new one, whole. Turning it off makes writes several times cheaper and
// risks, after a power loss (not a process crash), an empty or partial file in place, which reads
// as a miss and is removed.
func WithFsync(on bool) Option {
	return func(c *config) { c.fsync = on }
}

// WithDefaultTTL sets the storage TTL of values written with ttl 0. The default, 0, keeps such
// values until they are deleted or evicted. A negative d makes New return an error.
func WithDefaultTTL(d time.Duration) Option {
	return func(c *config) { c.defaultTTL = d }
}

func (c *config) validate() error {
	if c.maxSize < 0 {
		return fmt.Errorf("WithMaxSize(%d): must not be negative", c.maxSize)
	}
	if c.maxEntries < 0 {
		return fmt.Errorf("WithMaxEntries(%d): must not be negative", c.maxEntries)
	}
	if c.defaultTTL < 0 {
		return fmt.Errorf("WithDefaultTTL(%v): must not be negative", c.defaultTTL)
	}
	if c.maxValueSet && c.maxValue <= 0 {
		return fmt.Errorf("WithMaxValueSize(%d): must be positive", c.maxValue)
	}
	return nil
}

// maxValueSize is the largest value the backend stores: WithMaxValueSize's n, or
// DefaultMaxValueSize, or WithMaxSize's bound when that is smaller.
func (c *config) maxValueSize() int64 {
	if c.maxValueSet {
		return c.maxValue
	}
	if c.maxSize > 0 {
		return min(c.maxSize, DefaultMaxValueSize)
	}
	return DefaultMaxValueSize
}

// New returns a backend that keeps its entries under dir, creating dir and its subdirectories
// data/ and locks/ (mode 0700) if they do not exist. Several backends, in one process or many,
// may use the same dir at once. When a size or entry bound is set, New scans data/ to count what
// is there (a ReadDir of 256 subdirectories and an lstat per entry), and runs an eviction pass if
// the directory is already over a bound.
//
// dir, data/ and locks/ must belong to the process's (effective) user and must not be writable by
// their group or others: New refuses any other with an error naming the path and the fix
// (chmod 700, or a directory of one's own). dir may be a symbolic link, or lie under one: links
// in dir are followed, and the directory they lead to is the one checked. data/ and locks/ must
// not be links. The backend keeps data/ and locks/ open and reaches everything under them
// relative to those descriptors, so a directory moved or removed while a backend uses it is not
// made again: its operations fail until a new New.
//
// New returns an error for an invalid option, a dir it cannot create or does not trust, and on
// platforms without flock (see the package documentation).
func New(dir string, opts ...Option) (*Backend, error) {
	if !flockSupported {
		return nil, fmt.Errorf("file: new %q: %w: the file backend needs flock", dir, errors.ErrUnsupported)
	}
	if dir == "" {
		return nil, errors.New("file: new: empty directory name")
	}
	c := defaultConfig()
	for _, opt := range opts {
		if opt != nil {
			opt(&c)
		}
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("file: new %q: %w", dir, err)
	}
	dir = filepath.Clean(dir)
	b := &Backend{
		dir:        dir,
		dataDir:    filepath.Join(dir, "data"),
		lockDir:    filepath.Join(dir, "locks"),
		fsync:      c.fsync,
		defaultTTL: c.defaultTTL,
		maxSize:    c.maxSize,
		maxEntries: c.maxEntries,
		maxValue:   c.maxValueSize(),
	}
	for i := range b.writers {
		b.writers[i] = make(chan struct{}, 1)
	}
	dataFD, lockFD, f, err := openTree(dir)
	if err != nil {
		return nil, fmt.Errorf("file: new %q: %w", dir, err)
	}
	b.dataFD, b.lockFD, b.evictFile = dataFD, lockFD, f
	b.lastPass.Store(time.Now().UnixNano())
	if b.bounded() {
		st, err := b.scan(time.Now(), false)
		if err != nil {
			b.closeFiles()
			return nil, fmt.Errorf("file: new %q: scan: %w", dir, err)
		}
		b.size.Store(st.size)
		b.entries.Store(st.entries)
		b.maybeEvict()
	}
	return b, nil
}

// Dir returns the directory the backend keeps its entries in.
func (b *Backend) Dir() string { return b.dir }

func (b *Backend) bounded() bool { return b.maxSize > 0 || b.maxEntries > 0 }

// entryName returns where key's entry file lives: the fan-out directory (2 hex digits) under dataDir
// and the file's name in it (62 hex digits), from the key's SHA-256. Whatever key holds, both
// are made of hex digits only. Two allocations.
func entryName(key string) (sub, file string) {
	sum := sha256.Sum256([]byte(key))
	var h [2 * sha256.Size]byte
	hex.Encode(h[:], sum[:])
	return string(h[:2]), string(h[2:])
}

// path returns the path of the entry file of key, for errors: data/<2 hex digits>/<62 hex digits>.
func (b *Backend) path(key string) string {
	sub, file := entryName(key)
	return filepath.Join(b.dataDir, sub, file)
}

func (b *Backend) check(ctx context.Context, op, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("file: %s %q: %w", op, key, err)
	}
	if b.closed.Load() {
		return errClosed
	}
	return nil
}

// useFDs takes b.fdMu for reading and reports whether the descriptors are still open; the caller
// releases it (fdMu.RUnlock) when it is done with them.
func (b *Backend) useFDs() bool {
	b.fdMu.RLock()
	if b.closed.Load() {
		b.fdMu.RUnlock()
		return false
	}
	return true
}

// openFanout opens the fan-out directory sub of dataDir, making it (mode 0700) when create is set
// and it is missing. A missing one is an error wrapping fs.ErrNotExist; a link or a file in its
// place is an error wrapping errNotRegular (backends.ErrMalformed), and is left there.
func (b *Backend) openFanout(sub string, create bool) (int, error) {
	fd, err := openDirAt(b.dataFD, sub)
	if err == nil {
		return fd, nil
	}
	if create && errors.Is(err, fs.ErrNotExist) {
		if err := mkdirAt(b.dataFD, sub); err != nil && !errors.Is(err, fs.ErrExist) {
			return -1, &os.PathError{Op: "mkdir", Path: filepath.Join(b.dataDir, sub), Err: err}
		}
		if fd, err = openDirAt(b.dataFD, sub); err == nil {
			return fd, nil
		}
	}
	p := filepath.Join(b.dataDir, sub)
	if !errors.Is(err, fs.ErrNotExist) {
		if st, serr := statAt(b.dataFD, sub); serr == nil && st.typ&fs.ModeDir == 0 {
			return -1, fmt.Errorf("%s is %s, not a directory: %w", p, st.kind(), errNotRegular)
		}
	}
	return -1, &os.PathError{Op: "open", Path: p, Err: err}
}

// readLimit is the size of the largest entry file the backend would write for key: the header,
// the key and a value of maxValue bytes. Get reads no larger file.
func (b *Backend) readLimit(key string) int64 {
	return int64(headerSize) + int64(len(key)) + b.maxValue
}

// Get returns the value stored under key, or an error wrapping backends.ErrNotFound. A hit costs
// two opens (the key's fan-out directory, then its entry file, neither through a link, the file
// without blocking), an fstat, a read and two closes, and allocates the file's contents (the
// caller gets the value as a sub-slice) and the two names. A file that is expired, truncated,
// foreign, or holds another key is a miss and is removed; a file larger than the largest entry
// the backend writes (see WithMaxValueSize) is a miss, left in place, and costs no read. A link,
// FIFO, socket, device or directory where the entry file goes is not read: it is an error
// wrapping backends.ErrMalformed (which a region counts as a miss and reports), and all but a
// directory are removed. Other failures (permissions, I/O errors) are wrapped with the key and
// are not misses.
func (b *Backend) Get(ctx context.Context, key string) ([]byte, error) {
	if err := b.check(ctx, "get", key); err != nil {
		return nil, err
	}
	return b.get(key, time.Now())
}

func (b *Backend) get(key string, now time.Time) ([]byte, error) {
	if !b.useFDs() {
		return nil, errClosed
	}
	defer b.fdMu.RUnlock()
	sub, file := entryName(key)
	dfd, err := b.openFanout(sub, false)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errNotFound
		}
		return nil, fmt.Errorf("file: get %q: %w", key, err)
	}
	defer closeFD(dfd)
	fd, err := openReadAt(dfd, file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errNotFound
		}
		if st, serr := statAt(dfd, file); serr == nil && !st.regular() {
			b.removeNotRegular(dfd, file, st)
			return nil, fmt.Errorf("file: get %q: %s is %s: %w", key, b.path(key), st.kind(), errNotRegular)
		}
		return nil, fmt.Errorf("file: get %q: %w", key, &os.PathError{Op: "open", Path: b.path(key), Err: err})
	}
	defer closeFD(fd)
	st, err := statFD(fd)
	if err != nil {
		return nil, fmt.Errorf("file: get %q: %w", key, &os.PathError{Op: "fstat", Path: b.path(key), Err: err})
	}
	if !st.regular() {
		b.removeNotRegular(dfd, file, st)
		return nil, fmt.Errorf("file: get %q: %s is %s: %w", key, b.path(key), st.kind(), errNotRegular)
	}
	if limit := b.readLimit(key); st.size > limit {
		return nil, fmt.Errorf("file: get %q: the entry file has %d bytes, more than the %d of the largest entry this backend writes: %w",
			key, st.size, limit, backends.ErrNotFound)
	}
	if st.size < int64(headerSize) {
		b.removeBad(dfd, file, st)
		return nil, errNotFound
	}
	// The size is checked and the buffer is of that size: a file that grew since the fstat
	// (entries are never written in place) is read up to it, and fails its checksum.
	buf := make([]byte, st.size)
	n := 0
	for n < len(buf) {
		m, err := readFD(fd, buf[n:])
		if err != nil {
			return nil, fmt.Errorf("file: get %q: %w", key, &os.PathError{Op: "read", Path: b.path(key), Err: err})
		}
		if m == 0 {
			break // a file is never written in place, but one may have been cut short on disk
		}
		n += m
	}
	value, ok := decode(buf[:n], key, now)
	if !ok {
		b.removeBad(dfd, file, st)
		return nil, errNotFound
	}
	return value, nil
}

// decode checks an entry file's contents against key and the time now and returns the value.
func decode(buf []byte, key string, now time.Time) ([]byte, bool) {
	if len(buf) < headerSize || string(buf[:4]) != magic ||
		binary.BigEndian.Uint32(buf[4:8]) != crc32.Checksum(buf[8:], castagnoli) {
		return nil, false
	}
	exp := int64(binary.BigEndian.Uint64(buf[8:16]))
	if exp != 0 && now.UnixNano() >= exp {
		return nil, false
	}
	klen := int(binary.BigEndian.Uint32(buf[16:20]))
	rest := buf[headerSize:]
	if klen != len(key) || len(rest) < klen || string(rest[:klen]) != key {
		return nil, false
	}
	v := rest[klen:]
	return v[:len(v):len(v)], true
}

// encodeHeader returns the header and key of the entry file for key, value and expiry exp (Unix
// nanoseconds, 0 for none), with room for room more bytes behind them; its checksum covers value,
// which the caller writes right after. decode reads what it and value make.
func encodeHeader(key string, value []byte, exp int64, room int) []byte {
	hdr := make([]byte, headerSize, headerSize+len(key)+room)
	copy(hdr, magic)
	binary.BigEndian.PutUint64(hdr[8:16], uint64(exp))
	binary.BigEndian.PutUint32(hdr[16:20], uint32(len(key)))
	hdr = append(hdr, key...)
	sum := crc32.Update(crc32.Checksum(hdr[8:], castagnoli), castagnoli, value)
	binary.BigEndian.PutUint32(hdr[4:8], sum)
	return hdr
}

// removeBad removes the entry file name of the directory dfd, read through a file whose stat is
// st, if name still is that file: a writer may have renamed a good entry over it since the read,
// and that one stays. (A narrow race remains between the check and the removal; the worst it
// does is lose that new entry, a miss.)
func (b *Backend) removeBad(dfd int, name string, st fileStat) {
	if removeIfSame(dfd, name, st) {
		b.account(-st.size, -1)
	}
}

// removeNotRegular removes what stands where an entry file goes when it is a link, a FIFO, a
// socket or a device (removing the name costs nothing to whatever it names), and leaves a
// directory alone.
func (b *Backend) removeNotRegular(dfd int, name string, st fileStat) {
	if st.typ&fs.ModeDir == 0 {
		removeIfSame(dfd, name, st)
	}
}

// removeIfSame removes name from dfd if it still is the file of stat st (a writer may have
// renamed a new entry over it since), and reports whether it did.
func removeIfSame(dfd int, name string, st fileStat) bool {
	cur, err := statAt(dfd, name)
	if err != nil || !cur.same(st) {
		return false
	}
	return unlinkAt(dfd, name) == nil
}

// account moves the approximate totals, when a bound is set.
func (b *Backend) account(size, entries int64) {
	if !b.bounded() {
		return
	}
	b.size.Add(size)
	b.entries.Add(entries)
}

// expiresAt returns the expiry stored for a value written at now with ttl: ttl <= 0 uses the
// default TTL, and 0 means never.
func (b *Backend) expiresAt(ttl time.Duration, now time.Time) int64 {
	if ttl <= 0 {
		ttl = b.defaultTTL
	}
	if ttl <= 0 {
		return 0
	}
	if ttl > time.Duration(math.MaxInt64-now.UnixNano()) {
		return 0 // past what Unix nanoseconds can hold (the year 2262): never, rather than an overflow into the past
	}
	return now.Add(ttl).UnixNano()
}

// checkSize returns an error wrapping backends.ErrTooLarge if value is larger than the backend
// stores.
func (b *Backend) checkSize(op, key string, value []byte) error {
	if int64(len(value)) > b.maxValue {
		return fmt.Errorf("file: %s %q: %d bytes: %w (WithMaxValueSize is %d)", op, key, len(value), backends.ErrTooLarge, b.maxValue)
	}
	return nil
}

// Set stores value under key: it writes the entry to a new temporary file in the key's
// subdirectory, fsyncs it (unless WithFsync(false)), and renames it over the entry file, so that a
// reader, in any process, sees the old entry or the new one, never a part. A ttl > 0 bounds how
// long the entry is kept; ttl <= 0 uses WithDefaultTTL, or keeps it until deleted or evicted.
// It writes under the key's write stripe lock, so that it cannot come between the read and the
// write of a SetIfNotNewer in any process; it waits for the lock, until ctx ends, while another
// write of the stripe runs.
// Syscalls: open, fstat, flock and close of the stripe's lock file, open of the key's fan-out
// directory, create, one write (two above 64 KiB), fsync, close, rename, close (and an lstat when
// a bound is set); none follows a link. Value is written before Set returns and not kept. A value
// larger than WithMaxValueSize is an error wrapping backends.ErrTooLarge, and nothing is written.
// A full or read-only disk, or a link where the key's fan-out directory goes, is an error wrapped
// with the key; nothing is left behind.
func (b *Backend) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := b.check(ctx, "set", key); err != nil {
		return err
	}
	if err := b.checkSize("set", key, value); err != nil {
		return err
	}
	unlock, err := b.lockWrite(ctx, key)
	if err != nil {
		return fmt.Errorf("file: set %q: %w", key, err)
	}
	err = b.set(key, value, b.expiresAt(ttl, time.Now()))
	unlock()
	if err != nil {
		return fmt.Errorf("file: set %q: %w", key, err)
	}
	b.wrote(1, int64(len(key)+len(value))) // may run an eviction pass: not under the lock
	return nil
}

func (b *Backend) set(key string, value []byte, exp int64) error {
	if !b.useFDs() {
		return errClosed
	}
	defer b.fdMu.RUnlock()
	sub, file := entryName(key)
	dfd, err := b.openFanout(sub, true)
	if err != nil {
		return err
	}
	defer closeFD(dfd)
	var fd int
	var tmp string
	for range 100 {
		tmp = tmpPrefix + strconv.FormatUint(rand.Uint64(), 36)
		if fd, err = createAt(dfd, tmp); !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return &os.PathError{Op: "create", Path: filepath.Join(b.dataDir, sub, tmp), Err: err}
	}
	f := os.NewFile(uintptr(fd), filepath.Join(b.dataDir, sub, tmp))
	fail := func(err error) error {
		_ = f.Close()
		_ = unlinkAt(dfd, tmp)
		return err
	}
	// Small values are copied behind the header and written with it in one write; larger ones
	// take a second write rather than a copy.
	joined := len(value) <= joinLimit
	room := 0
	if joined {
		room = len(value)
	}
	hdr := encodeHeader(key, value, exp, room)
	n := int64(len(hdr) + len(value))
	if joined {
		hdr = append(hdr, value...)
	}
	if _, err := f.Write(hdr); err != nil {
		return fail(err)
	}
	if !joined {
		if _, err := f.Write(value); err != nil {
			return fail(err)
		}
	}
	if b.fsync {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := f.Close(); err != nil {
		_ = unlinkAt(dfd, tmp)
		return err
	}
	var old int64 = -1
	if b.bounded() {
		if st, err := statAt(dfd, file); err == nil && st.regular() {
			old = st.size
		}
	}
	if err := renameAt(dfd, tmp, file); err != nil {
		_ = unlinkAt(dfd, tmp)
		return &os.LinkError{Op: "rename", Old: filepath.Join(b.dataDir, sub, tmp), New: filepath.Join(b.dataDir, sub, file), Err: err}
	}
	if old >= 0 {
		b.account(n-old, 0)
	} else {
		b.account(n, 1)
	}
	return nil
}

// Delete removes key's entry file: an open of the key's fan-out directory, an lstat (when a bound
// is set) and an unlink. Deleting an absent key is not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.check(ctx, "delete", key); err != nil {
		return err
	}
	if err := b.remove(key); err != nil {
		return fmt.Errorf("file: delete %q: %w", key, err)
	}
	return nil
}

func (b *Backend) remove(key string) error {
	if !b.useFDs() {
		return errClosed
	}
	defer b.fdMu.RUnlock()
	sub, file := entryName(key)
	dfd, err := b.openFanout(sub, false)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	defer closeFD(dfd)
	var size int64 = -1
	if b.bounded() {
		if st, err := statAt(dfd, file); err == nil && st.regular() {
			size = st.size
		}
	}
	if err := unlinkAt(dfd, file); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return &os.PathError{Op: "remove", Path: filepath.Join(b.dataDir, sub, file), Err: err}
	}
	if size >= 0 {
		b.account(-size, -1)
	}
	return nil
}

// GetMulti returns the values of the keys that hold one, reading them one after another as Get
// does: the disk is local, there are no round trips to save. Keys that hold nothing (or a bad
// file, or something else than a regular file) are absent from the map. No keys: an empty map
// and no I/O. It stops at the first error other than a miss or a malformed entry, which it
// returns with no values.
func (b *Backend) GetMulti(ctx context.Context, keys []string) (map[string][]byte, error) {
	m := make(map[string][]byte, len(keys))
	if len(keys) == 0 {
		return m, nil
	}
	now := time.Now()
	for _, k := range keys {
		if err := b.check(ctx, "getmulti", k); err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			continue
		}
		v, err := b.get(k, now)
		if err == errNotFound || errors.Is(err, backends.ErrNotFound) || errors.Is(err, backends.ErrMalformed) {
			continue
		}
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, nil
}

// SetMulti stores every pair of items as Set does (each under its write stripe lock), one after
// another. A value larger than WithMaxValueSize is not stored and the others are: the error then
// wraps backends.ErrTooLarge once for each (errors.Join). Any other error stops it, and is
// returned; the items written before it stay.
func (b *Backend) SetMulti(ctx context.Context, items map[string][]byte, ttl time.Duration) error {
	if len(items) == 0 {
		return nil
	}
	exp := b.expiresAt(ttl, time.Now())
	var n, size int64
	defer func() { b.wrote(n, size) }()
	var tooLarge error
	for k, v := range items {
		if err := b.check(ctx, "setmulti", k); err != nil {
			return errors.Join(tooLarge, err)
		}
		if err := b.checkSize("setmulti: set", k, v); err != nil {
			tooLarge = errors.Join(tooLarge, err)
			continue
		}
		unlock, err := b.lockWrite(ctx, k)
		if err != nil {
			return errors.Join(tooLarge, fmt.Errorf("file: setmulti: set %q: %w", k, err))
		}
		err = b.set(k, v, exp)
		unlock()
		if err != nil {
			return errors.Join(tooLarge, fmt.Errorf("file: setmulti: set %q: %w", k, err))
		}
		n, size = n+1, size+int64(len(k)+len(v))
	}
	return tooLarge
}

// DeleteMulti removes every key as Delete does, one after another; absent keys are not an error.
// It stops at the first error, which it returns.
func (b *Backend) DeleteMulti(ctx context.Context, keys []string) error {
	for _, k := range keys {
		if err := b.check(ctx, "deletemulti", k); err != nil {
			return err
		}
		if err := b.remove(k); err != nil {
			return fmt.Errorf("file: deletemulti: delete %q: %w", k, err)
		}
	}
	return nil
}

// Close closes the backend's own files (the eviction lock, and its descriptors of data/ and
// locks/, once the operations using them are done) and makes every later call return an error.
// It leaves the directory, its entries and its lock files alone, and releases no lock: locks
// taken with TryLock belong to their holders, who unlock them, or free themselves after their
// timeout. Close may be called more than once.
func (b *Backend) Close() error {
	var err error
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		// An eviction pass may be running: take the flag so that none starts, and wait for one
		// that runs.
		for !b.evicting.CompareAndSwap(false, true) {
			time.Sleep(time.Millisecond)
		}
		err = b.closeFiles()
	})
	return err
}

// closeFiles closes the eviction lock and the directory descriptors, waiting for the operations
// that use them.
func (b *Backend) closeFiles() error {
	b.fdMu.Lock()
	defer b.fdMu.Unlock()
	closeFD(b.dataFD)
	closeFD(b.lockFD)
	b.dataFD, b.lockFD = -1, -1
	if err := b.evictFile.Close(); err != nil {
		return fmt.Errorf("file: close: %w", err)
	}
	return nil
}

// isHexName reports whether name is made of n lower-case hex digits.
func isHexName(name string, n int) bool {
	if len(name) != n {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
