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
	"os"
	"path/filepath"
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

	// maxFileSize is the largest entry file Get reads; a larger file in the directory is not one
	// of ours and is a miss.
	maxFileSize = 1 << 36

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
	maxSize    int64
	maxEntries int64
	fsync      bool
	defaultTTL time.Duration
}

func defaultConfig() config { return config{fsync: true} }

// WithMaxSize bounds the total size of the entry files (headers, keys and values; not the file
// system's block overhead) to about n bytes: a write that takes the total over n runs an eviction
// pass (see the package documentation). 0, the default, sets no bound. A negative n makes New
// return an error.
func WithMaxSize(n int64) Option {
	return func(c *config) { c.maxSize = n }
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
	return nil
}

// New returns a backend that keeps its entries under dir, creating dir and its subdirectories
// data/ and locks/ (mode 0700) if they do not exist. Several backends, in one process or many,
// may use the same dir at once. When a size or entry bound is set, New scans data/ to count what
// is there (a ReadDir of 256 subdirectories and an lstat per entry), and runs an eviction pass if
// the directory is already over a bound.
//
// New returns an error for an invalid option, a dir it cannot create, and on platforms without
// flock (see the package documentation).
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
	}
	for i := range b.writers {
		b.writers[i] = make(chan struct{}, 1)
	}
	for _, d := range []string{b.dataDir, b.lockDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("file: new %q: %w", dir, err)
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "evict.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("file: new %q: %w", dir, err)
	}
	b.evictFile = f
	b.lastPass.Store(time.Now().UnixNano())
	if b.bounded() {
		st, err := b.scan(time.Now(), false)
		if err != nil {
			_ = f.Close()
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

// path returns the entry file of key: data/<2 hex digits>/<62 hex digits> of the key's SHA-256.
// Whatever key holds, the name is made of hex digits only and stays inside dataDir. One SHA-256
// and one allocation (the path).
func (b *Backend) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	var name [2*sha256.Size + 1]byte
	hex.Encode(name[:2], sum[:1])
	name[2] = os.PathSeparator
	hex.Encode(name[3:], sum[1:])
	return b.dataDir + string(os.PathSeparator) + string(name[:])
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

// Get returns the value stored under key, or an error wrapping backends.ErrNotFound. A hit costs
// an open, an fstat, a read and a close, and allocates the file's contents (the caller gets the
// value as a sub-slice), the path and the *os.File. A file that is expired, truncated, foreign,
// or holds another key is a miss and is removed. Other failures (permissions, I/O errors) are
// wrapped with the key and are not misses.
func (b *Backend) Get(ctx context.Context, key string) ([]byte, error) {
	if err := b.check(ctx, "get", key); err != nil {
		return nil, err
	}
	return b.get(key, time.Now())
}

func (b *Backend) get(key string, now time.Time) ([]byte, error) {
	p := b.path(key)
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errNotFound
		}
		return nil, fmt.Errorf("file: get %q: %w", key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("file: get %q: %w", key, err)
	}
	size := fi.Size()
	if size < int64(headerSize) || size > maxFileSize {
		b.removeBad(p, fi)
		return nil, errNotFound
	}
	buf := make([]byte, size)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("file: get %q: %w", key, err)
	}
	buf = buf[:n] // a file is never written in place, but one may have been cut short on disk
	value, ok := decode(buf, key, now)
	if !ok {
		b.removeBad(p, fi)
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

// removeBad removes the entry file at p, read through a file whose info is fi, if p still names
// that file: a writer may have renamed a good entry over it since the read, and that one stays.
// (A narrow race remains between the check and the removal; the worst it does is lose that new
// entry, a miss.)
func (b *Backend) removeBad(p string, fi fs.FileInfo) {
	now, err := os.Lstat(p)
	if err != nil || !os.SameFile(fi, now) {
		return
	}
	if os.Remove(p) == nil {
		b.account(-fi.Size(), -1)
	}
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

// Set stores value under key: it writes the entry to a new temporary file in the key's
// subdirectory, fsyncs it (unless WithFsync(false)), and renames it over the entry file, so that a
// reader, in any process, sees the old entry or the new one, never a part. A ttl > 0 bounds how
// long the entry is kept; ttl <= 0 uses WithDefaultTTL, or keeps it until deleted or evicted.
// It writes under the key's write stripe lock, so that it cannot come between the read and the
// write of a SetIfNotNewer in any process; it waits for the lock, until ctx ends, while another
// write of the stripe runs.
// Syscalls: open, flock and close of the stripe's lock file, create, one write (two above 64 KiB),
// fsync, close, rename (and an lstat when a bound is set). Value is written before Set returns and
// not kept. A full or read-only disk is an error wrapped with the key; nothing is left behind.
func (b *Backend) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := b.check(ctx, "set", key); err != nil {
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
	p := b.path(key)
	dir := filepath.Dir(p)
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o700); err == nil {
			f, err = os.CreateTemp(dir, tmpPrefix+"*")
		}
	}
	if err != nil {
		return err
	}
	tmp := f.Name()
	fail := func(err error) error {
		_ = f.Close()
		_ = os.Remove(tmp)
		return err
	}
	// Small values are copied behind the header and written with it in one write; larger ones
	// take a second write rather than a copy.
	joined := len(value) <= joinLimit
	c := headerSize + len(key)
	if joined {
		c += len(value)
	}
	hdr := make([]byte, headerSize, c)
	copy(hdr, magic)
	binary.BigEndian.PutUint64(hdr[8:16], uint64(exp))
	binary.BigEndian.PutUint32(hdr[16:20], uint32(len(key)))
	hdr = append(hdr, key...)
	sum := crc32.Update(crc32.Checksum(hdr[8:], castagnoli), castagnoli, value)
	binary.BigEndian.PutUint32(hdr[4:8], sum)
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
		_ = os.Remove(tmp)
		return err
	}
	var old int64 = -1
	if b.bounded() {
		if fi, err := os.Lstat(p); err == nil {
			old = fi.Size()
		}
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if old >= 0 {
		b.account(n-old, 0)
	} else {
		b.account(n, 1)
	}
	return nil
}

// Delete removes key's entry file: an lstat (when a bound is set) and an unlink. Deleting an
// absent key is not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.check(ctx, "delete", key); err != nil {
		return err
	}
	if err := b.remove(b.path(key)); err != nil {
		return fmt.Errorf("file: delete %q: %w", key, err)
	}
	return nil
}

func (b *Backend) remove(p string) error {
	var size int64 = -1
	if b.bounded() {
		if fi, err := os.Lstat(p); err == nil {
			size = fi.Size()
		}
	}
	err := os.Remove(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if size >= 0 {
		b.account(-size, -1)
	}
	return nil
}

// GetMulti returns the values of the keys that hold one, reading them one after another as Get
// does: the disk is local, there are no round trips to save. Keys that hold nothing (or a bad
// file) are absent from the map. No keys: an empty map and no I/O. It stops at the first error
// other than a miss, which it returns with no values.
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
		if err == errNotFound {
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
// another, and stops at the first error, which it returns; the items written before it stay.
func (b *Backend) SetMulti(ctx context.Context, items map[string][]byte, ttl time.Duration) error {
	if len(items) == 0 {
		return nil
	}
	exp := b.expiresAt(ttl, time.Now())
	var n, size int64
	defer func() { b.wrote(n, size) }()
	for k, v := range items {
		if err := b.check(ctx, "setmulti", k); err != nil {
			return err
		}
		unlock, err := b.lockWrite(ctx, k)
		if err != nil {
			return fmt.Errorf("file: setmulti: set %q: %w", k, err)
		}
		err = b.set(k, v, exp)
		unlock()
		if err != nil {
			return fmt.Errorf("file: setmulti: set %q: %w", k, err)
		}
		n, size = n+1, size+int64(len(k)+len(v))
	}
	return nil
}

// DeleteMulti removes every key as Delete does, one after another; absent keys are not an error.
// It stops at the first error, which it returns.
func (b *Backend) DeleteMulti(ctx context.Context, keys []string) error {
	for _, k := range keys {
		if err := b.check(ctx, "deletemulti", k); err != nil {
			return err
		}
		if err := b.remove(b.path(k)); err != nil {
			return fmt.Errorf("file: deletemulti: delete %q: %w", k, err)
		}
	}
	return nil
}

// Close closes the backend's own file (the eviction lock) and makes every later call return an
// error. It leaves the directory, its entries and its lock files alone, and releases no lock:
// locks taken with TryLock belong to their holders, who unlock them, or free themselves after
// their timeout. Close may be called more than once.
func (b *Backend) Close() error {
	var err error
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		// An eviction pass may be running: take the flag so that none starts, and wait for one
		// that runs.
		for !b.evicting.CompareAndSwap(false, true) {
			time.Sleep(time.Millisecond)
		}
		if cerr := b.evictFile.Close(); cerr != nil {
			err = fmt.Errorf("file: close: %w", cerr)
		}
	})
	return err
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
