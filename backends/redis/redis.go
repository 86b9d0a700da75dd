package redis

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	goredis "github.com/redis/go-redis/v9"
)

var (
	_ backends.Backend      = (*Backend)(nil)
	_ backends.MultiGetter  = (*Backend)(nil)
	_ backends.MultiSetter  = (*Backend)(nil)
	_ backends.MultiDeleter = (*Backend)(nil)
	_ backends.Locker       = (*Backend)(nil)
	_ backends.MultiLocker  = (*Backend)(nil)
	_ backends.BatchLimiter = (*Backend)(nil)
	_ io.Closer             = (*Backend)(nil)
)

// errNotFound is what every miss returns: wrapped once here, so that a miss costs no allocation
// beyond go-redis's own.
var errNotFound = fmt.Errorf("redis: %w", backends.ErrNotFound)

// Backend is a backend on a Redis server, or a Sentinel or Cluster deployment, reached through a
// go-redis UniversalClient. Create it with New or backends.Open; the zero value is not usable.
// It is safe for concurrent use: the client does the synchronization of the hot path, and mu
// guards only the bookkeeping of lock watchdogs.
type Backend struct {
	// Set by New, read-only after.
	client      goredis.UniversalClient
	sharding    sharding // how multi-key commands are split; from the client's type
	prefix      string
	defaultTTL  time.Duration
	closeClient bool
	watchdog    bool
	maxBatch    int

	mu       sync.Mutex     // guards closed and the watchers.Add calls
	closed   bool           // set by Close; no watchdog starts after it
	closing  chan struct{}  // closed by Close: running watchdogs stop
	watchers sync.WaitGroup // running watchdog goroutines; Close waits for them

	closeOnce sync.Once
	closeErr  error
}

// sharding says how a client spreads keys over servers, which decides how multi-key commands
// must be split.
type sharding int

const (
	shardNone    sharding = iota // one server (or Sentinel's current master): MGET/DEL of any keys
	shardCluster                 // Redis Cluster: one MGET/DEL per hash slot
	shardRing                    // go-redis Ring: the client hashes keys; one command per key
)

// Partitioned reports whether the client spreads keys over several servers (a ClusterClient or a
// Ring), where regions keep their circuit breaker off (backends.Partitioned).
func (b *Backend) Partitioned() bool { return b.sharding != shardNone }

// Option configures New.
type Option func(*config)

type config struct {
	prefix      string
	defaultTTL  time.Duration
	closeClient bool
	watchdog    bool
	maxBatch    int
}

// DefaultMaxBatch is the most keys a region puts in one multi-key call (MGET, a pipeline of SETs,
// DEL, a pipeline of lock or conditional store scripts) unless WithMaxBatch says otherwise: Redis
// runs one command at a time, and a command of many thousand keys holds every other client up
// while it runs.
const DefaultMaxBatch = 1000

// WithMaxBatch sets the most keys a region puts in one multi-key call (see DefaultMaxBatch);
// larger batches are split into several calls, one round trip each. n <= 0 removes the limit.
// It bounds what regions send; GetMulti and the other methods called directly take any number.
func WithMaxBatch(n int) Option {
	return func(c *config) { c.maxBatch = n }
}

// WithPrefix prepends p to every key the backend reads or writes, lock keys included, so that
// applications can share a Redis database. It costs a string concatenation (an allocation) per
// key when p is not empty. A prefix with a hash tag ("{myapp}:") puts every key in one Cluster
// slot.
func WithPrefix(p string) Option {
	return func(c *config) { c.prefix = p }
}

// WithDefaultTTL sets the storage TTL of values written with ttl 0, that is, by a region without a
// storage TTL of its own (region.WithStorageTTL). The default, 0, keeps such values until they are
// deleted or evicted by Redis. A negative d makes New panic.
func WithDefaultTTL(d time.Duration) Option {
	return func(c *config) { c.defaultTTL = d }
}

// WithCloseClient makes Close close the client too, for a backend that owns its client.
// backends.Open sets it, since nobody else holds the client it builds.
func WithCloseClient() Option {
	return func(c *config) { c.closeClient = true }
}

// WithLockWatchdog makes every lock taken by TryLock extend itself while it is held: a goroutine
// per held lock resets the lock's expiry to the full timeout every third of the timeout, with a
// script that does so only while the lock still holds the holder's token. Unlock (or Close) stops
// it. Use it when a creator may run longer than the region's lock timeout; the timeout then only
// bounds how long the lock of a crashed holder (whose watchdog dies with it) blocks the key, and a
// lock that its holder never unlocks lasts until the backend's Close. (backendtest's LockTimeout
// subtest, which leaves a lock held and waits for it to expire, fails for that reason.) A failed
// extension (Redis unreachable) is retried at the next tick; a lock found expired or taken by
// another holder stops the watchdog. Each held lock costs a goroutine and a timer, and an EVALSHA
// every timeout/3.
func WithLockWatchdog() Option {
	return func(c *config) { c.watchdog = true }
}

// New returns a backend that stores values through client. It does no I/O. The caller keeps
// ownership of client and must keep it open while the backend is used, unless WithCloseClient
// hands it over to the backend's Close.
//
// New looks at the client's concrete type once: a *goredis.ClusterClient makes multi-key
// commands go per hash slot, a *goredis.Ring per key (see the package documentation).
//
// Build the client with ContextTimeoutEnabled: true (in goredis.Options, ClusterOptions,
// FailoverOptions, RingOptions or UniversalOptions), as Open does. Without it go-redis sets its
// connections' deadlines from ReadTimeout and WriteTimeout alone (5s each by default, and a read
// that times out is retried up to MaxRetries times) and never from the context, so a call to a
// server that accepts connections and never answers outlives its context's deadline by seconds
// (only a context already done when the call starts stops it). New cannot tell, and does not
// check.
//
// New panics if client is nil or WithDefaultTTL was given a negative duration: those are
// programmer errors, and configuration read at run time goes through backends.Open, which
// returns an error instead.
func New(client goredis.UniversalClient, opts ...Option) *Backend {
	if client == nil {
		panic("redis: New: nil client")
	}
	c := config{maxBatch: DefaultMaxBatch}
	for _, opt := range opts {
		if opt != nil {
			opt(&c)
		}
	}
	if c.defaultTTL < 0 {
		panic(fmt.Sprintf("redis: New: WithDefaultTTL(%v): the duration must not be negative", c.defaultTTL))
	}
	b := &Backend{
		client:      client,
		prefix:      c.prefix,
		defaultTTL:  c.defaultTTL,
		closeClient: c.closeClient,
		watchdog:    c.watchdog,
		maxBatch:    c.maxBatch,
		closing:     make(chan struct{}),
	}
	switch client.(type) {
	case *goredis.ClusterClient:
		b.sharding = shardCluster
	case *goredis.Ring:
		b.sharding = shardRing
	}
	return b
}

// MaxBatch returns the most keys a region puts in one multi-key call; see WithMaxBatch.
func (b *Backend) MaxBatch() int { return b.maxBatch }

// Client returns the client the backend uses, for commands of one's own or for adding hooks
// (tracing, metrics). It belongs to the backend when the backend was made by backends.Open or
// WithCloseClient: do not close it then.
func (b *Backend) Client() goredis.UniversalClient { return b.client }

// storageTTL maps the contract's ttl to the PX of a SET: ttl <= 0 becomes the default TTL (0: no
// expiry), and a fraction of a millisecond is rounded up, since Redis counts whole milliseconds
// (and go-redis would log a warning).
func (b *Backend) storageTTL(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		ttl = b.defaultTTL
	}
	return roundUpMs(ttl)
}

func roundUpMs(d time.Duration) time.Duration {
	if r := d % time.Millisecond; r != 0 {
		d += time.Millisecond - r
	}
	return d
}

// Get returns the value stored under key, or an error wrapping backends.ErrNotFound. It is one
// GET: a hit allocates what go-redis allocates for the command plus the copy of the value the
// caller gets; a miss allocates nothing more than the command. Other failures (Redis down, a
// timeout, ctx done, a key holding another Redis type) are wrapped, with key, and are not misses.
func (b *Backend) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := b.client.Get(ctx, b.prefix+key).Bytes()
	if err != nil {
		if err == goredis.Nil {
			return nil, errNotFound
		}
		return nil, fmt.Errorf("redis: get %q: %w", key, err)
	}
	return v, nil
}

// Set stores value under key with SET, replacing the value and its TTL. A ttl > 0 is the key's
// PX; ttl <= 0 uses WithDefaultTTL, or no expiry without it. Value is written to the connection
// before Set returns and not kept.
func (b *Backend) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := b.client.Set(ctx, b.prefix+key, value, b.storageTTL(ttl)).Err(); err != nil {
		return fmt.Errorf("redis: set %q: %w", key, err)
	}
	return nil
}

// Delete removes key with DEL. Deleting an absent key is not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.client.Del(ctx, b.prefix+key).Err(); err != nil {
		return fmt.Errorf("redis: delete %q: %w", key, err)
	}
	return nil
}

// GetMulti returns the values of the keys that hold one, in one round trip: one MGET (on a
// Cluster, one MGET per hash slot in one pipeline; on a Ring, one GET per key in one pipeline).
// Keys that hold nothing, or hold another Redis type, are absent from the map. No keys: an
// empty map and no I/O. It allocates the map, go-redis's reply and a copy of every value. On a
// Cluster, if a node fails, GetMulti returns the error together with the values the other nodes
// returned, so that a region under FailOpen still hits on them.
func (b *Backend) GetMulti(ctx context.Context, keys []string) (map[string][]byte, error) {
	if len(keys) == 0 {
		return map[string][]byte{}, nil
	}
	m := make(map[string][]byte, len(keys))
	switch b.sharding {
	case shardCluster:
		groups := b.slotGroups(keys)
		cmds := make([]*goredis.SliceCmd, len(groups))
		_, err := b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, g := range groups {
				cmds[i] = p.MGet(ctx, g.redisKeys...)
			}
			return nil
		})
		// A node that fails (a master down, before its replica takes over) fails only its
		// slots' commands: the values the other nodes returned are kept, with the error.
		for i, g := range groups {
			if cmds[i].Err() != nil {
				continue
			}
			for j, v := range cmds[i].Val() {
				if s, ok := v.(string); ok {
					m[g.keys[j]] = []byte(s)
				}
			}
		}
		if err != nil {
			return m, fmt.Errorf("redis: getmulti (%d keys, %d slots): %w", len(keys), len(groups), err)
		}
	case shardRing:
		cmds := make([]*goredis.StringCmd, len(keys))
		// Pipelined's error is the first command's, which may be a miss (goredis.Nil) hiding a
		// failure further on: every command is checked instead.
		_, _ = b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, key := range keys {
				cmds[i] = p.Get(ctx, b.prefix+key)
			}
			return nil
		})
		for i, cmd := range cmds {
			switch v, err := cmd.Bytes(); {
			case err == nil:
				m[keys[i]] = v
			case err == goredis.Nil, isWrongType(err):
				// A miss, or a key of another Redis type, which MGET also leaves out.
			default:
				return nil, fmt.Errorf("redis: getmulti (%d keys): %w", len(keys), err)
			}
		}
	default:
		vals, err := b.client.MGet(ctx, b.redisKeys(keys)...).Result()
		if err != nil {
			return nil, fmt.Errorf("redis: getmulti (%d keys): %w", len(keys), err)
		}
		for i, v := range vals {
			if s, ok := v.(string); ok {
				m[keys[i]] = []byte(s)
			}
		}
	}
	return m, nil
}

// SetMulti stores every item with SET, with the ttl rule of Set, in one pipeline: one round trip
// (one per node on a Cluster or Ring). The writes are not atomic as a group. On failure some items
// may have been written; the error is the first command's that failed.
func (b *Backend) SetMulti(ctx context.Context, items map[string][]byte, ttl time.Duration) error {
	if len(items) == 0 {
		return nil
	}
	ttl = b.storageTTL(ttl)
	_, err := b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for key, value := range items {
			p.Set(ctx, b.prefix+key, value, ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: setmulti (%d keys): %w", len(items), err)
	}
	return nil
}

// DeleteMulti removes every key in one round trip: one DEL (on a Cluster, one DEL per hash slot
// in one pipeline; on a Ring, one DEL per key in one pipeline). Absent keys are not an error; no
// keys, no I/O.
func (b *Backend) DeleteMulti(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	var err error
	switch b.sharding {
	case shardCluster:
		groups := b.slotGroups(keys)
		_, err = b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, g := range groups {
				p.Del(ctx, g.redisKeys...)
			}
			return nil
		})
	case shardRing:
		_, err = b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, key := range keys {
				p.Del(ctx, b.prefix+key)
			}
			return nil
		})
	default:
		err = b.client.Del(ctx, b.redisKeys(keys)...).Err()
	}
	if err != nil {
		return fmt.Errorf("redis: deletemulti (%d keys): %w", len(keys), err)
	}
	return nil
}

// redisKeys returns the prefixed keys.
func (b *Backend) redisKeys(keys []string) []string {
	rk := make([]string, len(keys))
	for i, key := range keys {
		rk[i] = b.prefix + key
	}
	return rk
}

// slotGroup is the keys of one Cluster hash slot: the caller's and the prefixed ones, in the
// same order.
type slotGroup struct {
	keys      []string
	redisKeys []string
}

// slotGroups groups keys by the hash slot of their prefixed form, in the order of each slot's
// first key.
func (b *Backend) slotGroups(keys []string) []slotGroup {
	index := make(map[uint16]int) // slot -> position in groups
	var groups []slotGroup
	for _, key := range keys {
		rk := b.prefix + key
		s := hashSlot(rk)
		i, ok := index[s]
		if !ok {
			i = len(groups)
			index[s] = i
			groups = append(groups, slotGroup{})
		}
		groups[i].keys = append(groups[i].keys, key)
		groups[i].redisKeys = append(groups[i].redisKeys, rk)
	}
	return groups
}

// Close stops the watchdogs of locks still held (their locks then expire after their timeout)
// and, if the backend was made by backends.Open or WithCloseClient, closes the client. It may be
// called more than once; later calls return the first call's result.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		close(b.closing)
		b.mu.Unlock()
		b.watchers.Wait()
		if b.closeClient {
			if err := b.client.Close(); err != nil {
				b.closeErr = fmt.Errorf("redis: close: %w", err)
			}
		}
	})
	return b.closeErr
}

// isWrongType reports whether err is Redis's WRONGTYPE: the key holds a list, a hash or another
// type that is not a string.
func isWrongType(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE")
}
