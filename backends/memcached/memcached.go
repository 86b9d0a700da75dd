package memcached

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"strings"
	"syscall"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
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

// errNotFound is what every miss returns: wrapped once here, so that a miss costs no allocation
// beyond gomemcache's own.
var errNotFound = fmt.Errorf("memcached: %w", backends.ErrNotFound)

// Limits of memcached that the backend meets before the server would refuse.
const (
	// maxKeyLen is the longest key memcached accepts, in bytes.
	maxKeyLen = 250

	// hashedMark starts (after the prefix) every key the backend sends as a hash: "sha1:" and the
	// 40 hex digits of the SHA-1 of the region's key. Keys that start with it are hashed too, so
	// that a key sent as it is can never be the hash of another.
	hashedMark = "sha1:"
	// lockMark starts (after the prefix) every lock's key: "lock:" and the hex SHA-1 of the
	// lock's name. Data keys that start with it are hashed, so no data key is ever a lock.
	lockMark  = "lock:"
	hashedLen = len(hashedMark) + 2*sha1.Size

	// maxPrefixLen leaves room after the prefix for a hashed key.
	maxPrefixLen = maxKeyLen - hashedLen

	// itemOverhead is what an item costs memcached (64-bit, 1.4.x to 1.6.x, CAS on) beyond its
	// key and value: the item header (48 bytes), the CAS id (8), the key's terminating NUL (1) and
	// the value's trailing "\r\n" (2). An item of key k and value v fits the item size limit (-I)
	// if len(k) + len(v) + itemOverhead <= limit; TestMaxItemSize checks the figure against the
	// real server.
	itemOverhead = 48 + 8 + 1 + 2

	// defaultMaxItemSize is memcached's default item size limit (-I 1m).
	defaultMaxItemSize = 1 << 20

	// maxRelative is the longest expiry, in seconds, that memcached reads as relative to now
	// (30 days); a larger one is read as a Unix time.
	maxRelative = 30 * 24 * 60 * 60
)

// Backend is a backend on one memcached server or a pool of them, reached through a gomemcache
// client. Create it with New or backends.Open; the zero value is not usable. It is safe for
// concurrent use: every field is set by New and only read after, the client does its own
// synchronization, and the limiters are channels.
type Backend struct {
	client      *memcache.Client
	prefix      string
	defaultTTL  time.Duration
	maxItemSize int
	closeClient bool       // set by Open, which made the client: Close closes its idle connections
	servers     serverList // the client's servers when Open made it, in the client's order; else nil
	limiters    []limiter  // the connection cap: one per server of servers, or one for all
}

// Partitioned reports whether the backend spreads keys over several servers (a pool opened from
// a URL with several hosts), where regions keep their circuit breaker off
// (backends.Partitioned). A client given to New counts as one server: the backend cannot see its
// servers.
func (b *Backend) Partitioned() bool { return len(b.servers) > 1 }

// Option configures New.
type Option func(*config)

type config struct {
	prefix      string
	defaultTTL  time.Duration
	maxItemSize int
	maxConns    int
	servers     serverList // set by Open only
}

// WithPrefix prepends p to every key the backend sends, lock keys included, so that applications
// can share a memcached. p must be at most 205 bytes (so that a hashed key still fits in 250)
// without spaces or control characters; New panics otherwise. It costs a string concatenation
// (an allocation) per key when p is not empty.
func WithPrefix(p string) Option {
	return func(c *config) { c.prefix = p }
}

// WithDefaultTTL sets the storage TTL of values written with ttl 0, that is, by a region without a
// storage TTL of its own (region.WithStorageTTL). The default, 0, keeps such values until they are
// deleted or evicted by memcached's LRU. A negative d makes New panic.
func WithDefaultTTL(d time.Duration) Option {
	return func(c *config) { c.defaultTTL = d }
}

// WithMaxItemSize tells the backend the item size limit of the servers (memcached's -I option, in
// bytes): 2<<20 for a memcached started with -I 2m. The default is memcached's, 1 MiB. Set and
// SetMulti refuse a value that would not fit under that limit together with its key and
// memcached's per-item overhead (59 bytes), with an error wrapping backends.ErrTooLarge, without
// sending it. n must be larger than the overhead of the longest key (309 bytes); New panics
// otherwise.
func WithMaxItemSize(n int) Option {
	return func(c *config) { c.maxItemSize = n }
}

// New returns a backend that stores values through client, which may address one server or many
// (memcache.New(addr1, addr2, ...): the client picks a server per key). It does no I/O. The caller
// keeps ownership of client; the backend's Close leaves it alone.
//
// Every call returns by its context's deadline (see the package documentation), and the calls in
// flight are capped (WithMaxConns; DefaultMaxConns without it). New cannot see which server the
// client picks for a key, so for a client passed to New the cap counts the calls to all its
// servers together: no server has more connections open than the cap, and a client of several
// servers has no more calls in flight in all (backends.Open, which knows the servers, caps each
// apart). If client.MaxIdleConns is 0 (gomemcache's default: keep 2 idle), New sets it to the cap,
// so that a steady load reuses its connections instead of closing and dialing them; set it before
// the client is in use, as gomemcache reads it unsynchronized.
//
// New panics if client is nil, or an option is invalid (a negative default TTL, a prefix memcached
// cannot take, an item size too small, a cap below 1): those are programmer errors, and
// configuration read at run time goes through backends.Open, which returns an error instead.
func New(client *memcache.Client, opts ...Option) *Backend {
	if client == nil {
		panic("memcached: New: nil client")
	}
	c := config{maxItemSize: defaultMaxItemSize, maxConns: DefaultMaxConns()}
	for _, opt := range opts {
		if opt != nil {
			opt(&c)
		}
	}
	if err := c.validate(); err != nil {
		panic("memcached: New: " + err.Error())
	}
	if client.MaxIdleConns == 0 {
		client.MaxIdleConns = c.maxConns
	}
	return &Backend{
		client:      client,
		prefix:      c.prefix,
		defaultTTL:  c.defaultTTL,
		maxItemSize: c.maxItemSize,
		servers:     c.servers,
		limiters:    newLimiters(c.servers, c.maxConns),
	}
}

func (c *config) validate() error {
	if c.defaultTTL < 0 {
		return fmt.Errorf("WithDefaultTTL(%v): the duration must not be negative", c.defaultTTL)
	}
	if len(c.prefix) > maxPrefixLen {
		return fmt.Errorf("WithPrefix(%q): %d bytes, more than the %d that leave room for a hashed key", c.prefix, len(c.prefix), maxPrefixLen)
	}
	if !sendable(c.prefix) {
		return fmt.Errorf("WithPrefix(%q): memcached keys cannot contain spaces or control characters", c.prefix)
	}
	if least := itemOverhead + maxKeyLen; c.maxItemSize <= least {
		return fmt.Errorf("WithMaxItemSize(%d): must be more than %d bytes, the overhead of an item with the longest key", c.maxItemSize, least)
	}
	return validateMaxConns(c.maxConns)
}

// Client returns the client the backend uses, for commands of one's own. It belongs to the backend
// when the backend was made by backends.Open.
func (b *Backend) Client() *memcache.Client { return b.client }

// key maps a region's key to the key sent to memcached: the prefix and the key as they are when
// memcached can take them (at most 250 bytes in all, no spaces or control characters, and not
// starting with "sha1:" or "lock:"), otherwise the prefix, "sha1:" and the hex SHA-1 of the key. Distinct keys
// stay distinct (short of a SHA-1 collision). Keys sent as they are cost what the prefix costs
// (nothing without one); hashed ones a SHA-1 and an allocation.
func (b *Backend) key(key string) string {
	if len(b.prefix)+len(key) <= maxKeyLen && len(b.prefix)+len(key) > 0 &&
		sendable(key) && !strings.HasPrefix(key, hashedMark) && !strings.HasPrefix(key, lockMark) {
		return b.prefix + key
	}
	return b.hashed(hashedMark, key)
}

// lockKey maps the name of a lock to its memcached key: the prefix, "lock:" and the hex SHA-1 of
// the name, which no data key maps to, then steerLen letters, each 'a' or 'b', chosen so that the
// lock key has the CRC-32 of its data key (b.key(name)). A client picks a pool's server by the
// CRC-32 of the key (memcache.ServerList and the clients Open makes), so the lock lives on the
// server of its key: a server that dies takes a key's value and its lock together, and the others
// keep theirs. With a prefix too long for the letters, the lock key ends after the SHA-1 (and may
// live on another server).
func (b *Backend) lockKey(name string) string {
	k := b.hashed(lockMark, name)
	if len(k)+steerLen > maxKeyLen {
		return k
	}
	buf := make([]byte, len(k)+steerLen)
	copy(buf, k)
	for i := len(k); i < len(buf); i++ {
		buf[i] = 'a'
	}
	flips := steer.solve(crc32.ChecksumIEEE(buf) ^ crc32.ChecksumIEEE([]byte(b.key(name))))
	for d := range steerLen {
		if flips&(1<<d) != 0 {
			buf[len(buf)-1-d] = 'b' // 'a' ^ 0x03
		}
	}
	return string(buf)
}

// steerLen is how many letters end a lock key to give it its data key's CRC-32.
const steerLen = 40

// steer solves for the letters of lockKey. CRC-32 is affine: changing the byte d places from the
// end of a message by x changes the checksum by a value that depends only on d and x. So turning
// an 'a' into a 'b' (x = 0x03) at distance d toggles a fixed 32-bit vector, and steerLen of them
// span all 32 bits: any wanted change of checksum is a set of letters to turn.
var steer = newSteering()

type steering struct {
	basis [32]uint32 // a basis of the toggles, by leading bit
	combo [32]uint64 // for each, which distances make it
}

func newSteering() *steering {
	var s steering
	zero := crc32.ChecksumIEEE(make([]byte, steerLen))
	for d := range steerLen {
		msg := make([]byte, steerLen)
		msg[steerLen-1-d] = 0x03
		v, m := crc32.ChecksumIEEE(msg)^zero, uint64(1)<<d
		for bit := 31; bit >= 0 && v != 0; bit-- {
			if v&(1<<bit) == 0 {
				continue
			}
			if s.basis[bit] == 0 {
				s.basis[bit], s.combo[bit] = v, m
				break
			}
			v, m = v^s.basis[bit], m^s.combo[bit]
		}
	}
	for bit, v := range s.basis {
		if v == 0 {
			panic(fmt.Sprintf("memcached: lock key steering spans no bit %d: make steerLen longer", bit))
		}
	}
	return &s
}

// solve returns the distances (a bit each) whose toggles add up to diff.
func (s *steering) solve(diff uint32) uint64 {
	var m uint64
	for bit := 31; bit >= 0; bit-- {
		if diff&(1<<bit) != 0 {
			diff, m = diff^s.basis[bit], m^s.combo[bit]
		}
	}
	return m
}

// hashed returns the prefix, mark and the hex SHA-1 of key; mark is as long as hashedMark.
func (b *Backend) hashed(mark, key string) string {
	sum := sha1.Sum([]byte(key))
	buf := make([]byte, len(b.prefix)+hashedLen)
	n := copy(buf, b.prefix)
	n += copy(buf[n:], mark)
	hex.Encode(buf[n:], sum[:])
	return string(buf)
}

// sendable reports whether s holds no byte memcached's text protocol refuses in a key: spaces,
// control characters and DEL. Bytes from 0x80 up (UTF-8) are fine.
func sendable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// expiration converts a TTL into a memcached expiry time, given the time now.
//
// memcached counts whole seconds on a clock that ticks once a second, so an item set with expiry n
// lives more than n-1 seconds and at most n: an expiry of 1 may end a millisecond after the set.
// To keep an item at least ttl, the TTL is rounded up to whole seconds and one second is added; an
// item then lives at least ttl and at most about 2s more, and a sub-second TTL never becomes 0
// (no expiry).
// memcached reads an expiry over 30 days as a Unix time: longer TTLs are sent as now plus the TTL
// (the server's clock must then agree with ours). A TTL reaching past what memcached's 32-bit
// times hold (January 2038) is sent as 0, no expiry. ttl <= 0 is 0, no expiry.
func expiration(ttl time.Duration, now time.Time) int32 {
	if ttl <= 0 {
		return 0
	}
	secs := int64(ttl / time.Second)
	if ttl%time.Second != 0 {
		secs++
	}
	secs++ // the tick (see above)
	if secs <= maxRelative {
		return int32(secs)
	}
	abs := now.Unix() + secs
	if abs > math.MaxInt32 {
		return 0
	}
	return int32(abs)
}

// expiry returns the memcached expiry of a value written with the storage TTL ttl: ttl <= 0 uses
// the default TTL (0: no expiry).
func (b *Backend) expiry(ttl time.Duration) int32 {
	if ttl <= 0 {
		ttl = b.defaultTTL
	}
	if ttl <= 0 {
		return 0 // no clock read
	}
	return expiration(ttl, time.Now())
}

// checkSize returns an error wrapping backends.ErrTooLarge if value under the memcached key mk
// does not fit the item size limit.
func (b *Backend) checkSize(op, key, mk string, value []byte) error {
	limit := b.maxItemSize - itemOverhead - len(mk)
	if len(value) <= limit {
		return nil
	}
	return fmt.Errorf("memcached: %s %q: value of %d bytes: %w (at most %d bytes under this key with an item size limit of %d; see WithMaxItemSize)",
		op, key, len(value), backends.ErrTooLarge, limit, b.maxItemSize)
}

// setError wraps an error of a set. A server that refuses the value as too large (its item size
// limit is below WithMaxItemSize) answers with a line that gomemcache reports as an unexpected
// response; it is wrapped as backends.ErrTooLarge too.
func setError(op, key string, size int, err error) error {
	if strings.Contains(err.Error(), "object too large for cache") {
		return fmt.Errorf("memcached: %s %q: value of %d bytes: %w (refused by the server: its item size limit, -I, is below WithMaxItemSize)",
			op, key, size, backends.ErrTooLarge)
	}
	return fmt.Errorf("memcached: %s %q: %w", op, key, err)
}

// ctxError returns ctx's error wrapped for op on key, or nil: the check before a call that sends
// nothing once ctx is done. (A call already started returns when ctx ends: see bounded.)
func ctxError(ctx context.Context, op, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memcached: %s %q: %w", op, key, err)
	}
	return nil
}

// retry makes call, and makes it again while it fails as calls fail on an idle connection that the
// server closed (a memcached restart, or its idle timeout): gomemcache then drops the connection,
// and the next try takes another idle one or dials. It tries at most once per idle connection the
// client may keep, plus one. Such a call did not reach a live server (the server that closed the
// connection did not read the request, as a rule), and every command the backend sends may be
// repeated anyway: a set or delete twice is one, a repeated add or cas fails as if another holder
// had acted, which is the safe side. On the hot path it costs nothing: call is not a heap closure.
func retry[T any](b *Backend, call func() (T, error)) (T, error) {
	v, err := call()
	if err == nil || !staleConn(err) {
		return v, err
	}
	tries := b.client.MaxIdleConns
	if tries < 1 {
		tries = memcache.DefaultMaxIdleConns
	}
	for ; tries > 0 && err != nil && staleConn(err); tries-- {
		v, err = call()
	}
	return v, err
}

// staleConn reports whether err is how a request on a connection that the server closed fails:
// end of file before any reply, or a reset or broken pipe when writing.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// The client's calls, each through retry, under the connection cap of its key's server and
// bounded by ctx (see bounded; getMulti is in conns.go). An item passed to a call that ctx ended
// may still be read by the call going on: the callers do not reuse it.

func (b *Backend) get(ctx context.Context, mk string) (*memcache.Item, error) {
	return bounded(ctx, b.limiter(mk), func() (*memcache.Item, error) {
		return retry(b, func() (*memcache.Item, error) { return b.client.Get(mk) })
	})
}

func (b *Backend) set(ctx context.Context, it *memcache.Item) error {
	return b.store(ctx, it, b.client.Set)
}

func (b *Backend) add(ctx context.Context, it *memcache.Item) error {
	return b.store(ctx, it, b.client.Add)
}

func (b *Backend) compareAndSwap(ctx context.Context, it *memcache.Item) error {
	return b.store(ctx, it, b.client.CompareAndSwap)
}

func (b *Backend) store(ctx context.Context, it *memcache.Item, call func(*memcache.Item) error) error {
	_, err := bounded(ctx, b.limiter(it.Key), func() (struct{}, error) {
		return retry(b, func() (struct{}, error) { return struct{}{}, call(it) })
	})
	return err
}

func (b *Backend) delete(ctx context.Context, mk string) error {
	_, err := bounded(ctx, b.limiter(mk), func() (struct{}, error) {
		return retry(b, func() (struct{}, error) { return struct{}{}, b.client.Delete(mk) })
	})
	return err
}

// Get returns the value stored under key, or an error wrapping backends.ErrNotFound. It is one
// gets command, one round trip: a hit allocates what gomemcache allocates (the item and its value,
// which the caller gets), and, for a ctx that can end, a goroutine and its channel (see the
// package documentation); a miss returns a preallocated error. It waits for a free connection
// under the cap (WithMaxConns) and returns when ctx ends. Other failures (memcached down, a
// timeout, ctx done) are wrapped, with key, and are not misses.
func (b *Backend) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctxError(ctx, "get", key); err != nil {
		return nil, err
	}
	it, err := b.get(ctx, b.key(key))
	if err != nil {
		if err == memcache.ErrCacheMiss {
			return nil, errNotFound
		}
		return nil, fmt.Errorf("memcached: get %q: %w", key, err)
	}
	return it.Value, nil
}

// Set stores value under key with a set command, one round trip, replacing the value and its
// expiry. A ttl > 0 bounds how long memcached keeps it (see the package documentation for how it
// is rounded); ttl <= 0 uses WithDefaultTTL, or no expiry without it. A value too large for the
// item size limit is an error wrapping backends.ErrTooLarge, and nothing is sent. Value is written
// to the connection before Set returns and not kept.
func (b *Backend) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := ctxError(ctx, "set", key); err != nil {
		return err
	}
	mk := b.key(key)
	if err := b.checkSize("set", key, mk, value); err != nil {
		return err
	}
	if err := b.set(ctx, &memcache.Item{Key: mk, Value: value, Expiration: b.expiry(ttl)}); err != nil {
		return setError("set", key, len(value), err)
	}
	return nil
}

// Delete removes key with a delete command, one round trip. Deleting an absent key is not an
// error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := ctxError(ctx, "delete", key); err != nil {
		return err
	}
	if err := b.delete(ctx, b.key(key)); err != nil && err != memcache.ErrCacheMiss {
		return fmt.Errorf("memcached: delete %q: %w", key, err)
	}
	return nil
}

// GetMulti returns the values of the keys that hold one with gomemcache's GetMulti: one gets
// command naming all of a server's keys per server, sent to the servers concurrently, so one
// round trip per server (and a goroutine per server for its duration; see getMulti for how the
// connection cap and ctx bound it). Duplicate keys are sent once. Keys that hold nothing are absent from the map. No keys: an empty map and no I/O. If a
// server fails, GetMulti returns the error together with the values the other servers returned,
// so that a region under FailOpen still hits on them.
func (b *Backend) GetMulti(ctx context.Context, keys []string) (map[string][]byte, error) {
	if len(keys) == 0 {
		return map[string][]byte{}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memcached: getmulti (%d keys): %w", len(keys), err)
	}
	caller := make(map[string]string, len(keys)) // memcached key -> the caller's key
	mks := make([]string, 0, len(keys))
	for _, key := range keys {
		mk := b.key(key)
		if _, dup := caller[mk]; !dup {
			caller[mk] = key
			mks = append(mks, mk)
		}
	}
	items, err := b.getMulti(ctx, mks)
	m := make(map[string][]byte, len(items))
	for mk, it := range items {
		if key, ok := caller[mk]; ok {
			m[key] = it.Value
		}
	}
	if err != nil {
		return m, fmt.Errorf("memcached: getmulti (%d keys): %w", len(keys), err)
	}
	return m, nil
}

// SetMulti stores every item with the ttl rule of Set. memcached's text protocol has no multi-key
// set and gomemcache does not pipeline, so it is one set command and one round trip per item, one
// after another. The sizes are checked first: items too large are not sent, and the others are;
// the error then wraps backends.ErrTooLarge once for each of them (errors.Join). The writes are not
// atomic as a group: SetMulti stops at the first failure of another kind (memcached down), which
// it returns, and the items before it are stored.
func (b *Backend) SetMulti(ctx context.Context, items map[string][]byte, ttl time.Duration) error {
	if len(items) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memcached: setmulti (%d keys): %w", len(items), err)
	}
	exp := b.expiry(ttl)
	var tooLarge []error
	type pending struct {
		key  string // the caller's, for errors
		item memcache.Item
	}
	send := make([]pending, 0, len(items))
	for key, value := range items {
		mk := b.key(key)
		if err := b.checkSize("setmulti", key, mk, value); err != nil {
			tooLarge = append(tooLarge, err)
			continue
		}
		send = append(send, pending{key, memcache.Item{Key: mk, Value: value, Expiration: exp}})
	}
	for i := range send {
		p := &send[i]
		if err := b.set(ctx, &p.item); err != nil {
			return errors.Join(append(tooLarge, setError("setmulti", p.key, len(p.item.Value), err))...)
		}
	}
	return errors.Join(tooLarge...)
}

// DeleteMulti removes every key, with one delete command and one round trip per key (memcached's
// text protocol has no multi-key delete and gomemcache does not pipeline). Absent keys are not an
// error; no keys, no I/O. It stops at the first failure, which it returns.
func (b *Backend) DeleteMulti(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memcached: deletemulti (%d keys): %w", len(keys), err)
	}
	for _, key := range keys {
		if err := b.delete(ctx, b.key(key)); err != nil && err != memcache.ErrCacheMiss {
			return fmt.Errorf("memcached: deletemulti (%d keys): delete %q: %w", len(keys), key, err)
		}
	}
	return nil
}

// Close closes the idle connections of the client if the backend was made by backends.Open, which
// made the client; a client passed to New is the caller's and is left alone. gomemcache clients
// stay usable after Close (they dial again), and so does the backend. Close may be called more
// than once.
func (b *Backend) Close() error {
	if !b.closeClient {
		return nil
	}
	if err := b.client.Close(); err != nil {
		return fmt.Errorf("memcached: close: %w", err)
	}
	return nil
}
