package backends

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned (possibly wrapped) by Get and GetValue when a key holds no entry.
// Test for it with errors.Is. A backend never reports a miss as a nil value with a nil error.
var ErrNotFound = errors.New("backends: not found")

// ErrMalformed is returned by DecodeEntry when stored bytes are not an entry this version of the
// library wrote: a foreign value, a truncated one, or one from a newer format version. Regions treat
// such an entry as a miss and report it; it is never a panic.
var ErrMalformed = errors.New("backends: malformed entry")

// ErrTooLarge is returned (wrapped, with the key and the size) by Set and SetMulti when a value
// is larger than the backend can store, before it is sent. That value is not stored (SetMulti
// stores the other items); a region reports it and still returns the created value.
var ErrTooLarge = errors.New("backends: value too large")

// Backend is the interface every backend implements: get, set and delete of encoded entries on
// string keys. Keys are already mangled by the region; values are the bytes of an entry envelope
// (see EncodeEntry) and must be stored and returned unchanged.
//
// Implementations must be safe for concurrent use. A backend may implement any of the optional
// capabilities in this package (MultiGetter, MultiSetter, MultiDeleter, Locker, MultiLocker,
// ConditionalSetter, ConditionalMultiSetter, BatchLimiter, Notifier, ValueStore, io.Closer);
// regions discover them with type assertions, walking Unwrap chains with As.
type Backend interface {
	// Get returns the value stored under key, or an error that errors.Is ErrNotFound when there is
	// none. The returned slice belongs to the caller.
	Get(ctx context.Context, key string) ([]byte, error)

	// Set stores value under key, replacing any previous value. A ttl greater than zero bounds
	// how long the backend keeps the value; zero keeps it until it is deleted or evicted.
	// The backend must not retain value after Set returns unless it copied it.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error

	// Delete removes key. Deleting a key that does not exist is not an error.
	Delete(ctx context.Context, key string) error
}

// MultiGetter is implemented by backends that read many keys in one round trip.
type MultiGetter interface {
	// GetMulti returns the values of the keys that hold one; keys that do not are absent from the
	// map. An empty keys slice returns an empty map and does no I/O. When only some keys could be
	// read (one server of several down), it may return their values together with the error:
	// callers that go on despite the error use them and count the other keys as misses.
	GetMulti(ctx context.Context, keys []string) (map[string][]byte, error)
}

// MultiSetter is implemented by backends that write many keys in one round trip.
type MultiSetter interface {
	// SetMulti stores every pair of items with the same ttl rule as Backend.Set. An item too
	// large for the backend is not stored and the others are: the error then wraps ErrTooLarge.
	SetMulti(ctx context.Context, items map[string][]byte, ttl time.Duration) error
}

// MultiDeleter is implemented by backends that delete many keys in one round trip.
type MultiDeleter interface {
	// DeleteMulti removes every key; absent keys are not an error.
	DeleteMulti(ctx context.Context, keys []string) error
}

// ConditionalSetter is implemented by backends that can store an entry only if the entry they
// already hold under the key is not newer, as one atomic step on the server (a Lua script on
// Redis, gets and cas on memcached, a check under the key's lock on files). Regions store what a
// creation made through it, so that a write made in any process after the creation began (a
// Set, a Delete, which leaves a tombstone entry, a Refresh) is never overwritten by the older
// creation. Without it, regions store creations with Set: within one process a write still wins
// over a creation in progress, but a write made by another process during a creation may be
// overwritten by it.
type ConditionalSetter interface {
	// SetIfNotNewer stores value, an entry envelope (EncodeEntry), under key with Set's ttl rule,
	// unless the key holds an entry whose created-at (EntryCreated) is later than value's. A held
	// value that is not an entry (foreign or malformed bytes) is replaced. stored reports whether
	// value was written; a refusal is not an error.
	SetIfNotNewer(ctx context.Context, key string, value []byte, ttl time.Duration) (stored bool, err error)
}

// ConditionalMultiSetter is implemented by backends that make many conditional stores in one
// round trip. Regions use it for the keys a batch creates; without it they call SetIfNotNewer
// once a key (or, without ConditionalSetter, SetMulti).
type ConditionalMultiSetter interface {
	// SetMultiIfNotNewer applies SetIfNotNewer's rule to every pair of items, each on its own.
	// It returns the keys that were not stored because a newer entry was held. An item too large
	// for the backend is not stored and the others are: the error then wraps ErrTooLarge.
	SetMultiIfNotNewer(ctx context.Context, items map[string][]byte, ttl time.Duration) (refused []string, err error)
}

// Lock is a held distributed lock.
type Lock interface {
	// Unlock releases the lock if, and only if, this holder still holds it: a holder whose lock
	// timed out and was taken by another must not release the other's lock. Unlocking a lock that
	// already expired is not an error.
	Unlock(ctx context.Context) error
}

// Locker is implemented by backends that offer a mutex per key shared by every process that uses
// the backend (Redis SET NX, Memcached add, flock). Regions use it for the dogpile lock across
// processes; without it the lock holds within one process only.
type Locker interface {
	// TryLock tries once, without waiting, to take the lock named key. It returns (lock, true, nil)
	// when taken and (nil, false, nil) when another holder has it. The lock frees itself after
	// timeout, so that a holder that crashed cannot block the key forever.
	TryLock(ctx context.Context, key string, timeout time.Duration) (Lock, bool, error)
}

// MultiLocker is implemented by backends that try many locks in one round trip. Regions use it
// for the keys a batch creates; without it they call TryLock once a key.
type MultiLocker interface {
	// TryLockMulti tries once, without waiting, to take the lock of every key, each with
	// TryLock's rules (same names, same timeout, same exclusion against TryLock's holders).
	// taken[i] reports whether the lock of keys[i] is now held. release.Unlock releases every
	// lock taken, with Lock.Unlock's rules for each; release is never nil when err is nil, even if
	// nothing was taken. An empty keys slice takes nothing and does no I/O.
	//
	// An error may leave some locks taken; they free themselves after timeout.
	TryLockMulti(ctx context.Context, keys []string, timeout time.Duration) (taken []bool, release Lock, err error)
}

// BatchLimiter is implemented by backends whose multi-key operations should carry a bounded
// number of keys per call: one huge command holds a single-threaded server (and the client's
// memory) for everyone. Regions split larger batches into calls of at most MaxBatch keys.
type BatchLimiter interface {
	// MaxBatch returns the most keys one GetMulti, SetMulti, DeleteMulti, TryLockMulti or
	// SetMultiIfNotNewer call should carry; zero or less means no limit.
	MaxBatch() int
}

// Notifier is implemented by backends that broadcast short messages to every process using
// the backend (Redis pub/sub). Regions use it to tell the other processes of a fleet at once
// about invalidations, writes their local caches must drop, and the release of a lock they wait
// for (when the backend is also a Locker). Without it the other processes poll: they learn of
// each of those within their poll interval instead.
type Notifier interface {
	// Publish sends msg to the subscribers of channel, in every process. Delivery is at most
	// once: a subscriber whose connection is down misses it, and learns so through its gap.
	Publish(ctx context.Context, channel string, msg []byte) error

	// Subscribe calls deliver with each message published on channel from its return on, and
	// gap whenever messages may have been missed: the subscription's connection dropped and is
	// back, so the subscriber should read again what the messages would have told it. deliver
	// and gap run on one goroutine, one call at a time, and must not block for long. Close of the
	// returned io.Closer stops the calls and waits for a call in progress.
	Subscribe(ctx context.Context, channel string, deliver func(msg []byte), gap func()) (io.Closer, error)
}

// Partitioned is implemented by backends spread over several servers that fail one at a time: a
// memcached pool, a Redis Cluster or Ring. Regions keep their circuit breaker off on such a
// backend (region.WithCircuitBreaker), since one server's errors say nothing of the others'
// health, and the client routes around a failed node itself where it can. A backend without it
// counts as one server: its connection errors open the breaker for all of its keys.
type Partitioned interface {
	// Partitioned reports whether the backend's keys live on several servers.
	Partitioned() bool
}

// Item is an entry kept as a Go value by a ValueStore: no encoding on either side.
type Item struct {
	// Value is the cached value as the region stored it.
	Value any
	// Created is when the value was created, in Unix nanoseconds.
	Created int64
	// Delta is how long the creation took, in nanoseconds; 0 when unknown (see Entry.Delta).
	Delta int64
}

// ValueStore is implemented by in-process backends that keep Go values without encoding them,
// so that a cache hit costs no decoding. The values are shared: a caller that mutates a value it
// got mutates the cached one.
type ValueStore interface {
	// StoresValues reports whether the region should use GetValue and SetValue. A backend that
	// implements the methods but is configured to copy values (the memory backend's WithCopy)
	// returns false, and the region then goes through the byte methods and its codec.
	StoresValues() bool

	// GetValue returns the item under key, or an error that errors.Is ErrNotFound.
	GetValue(ctx context.Context, key string) (Item, error)

	// SetValue stores item under key with the same ttl rule as Backend.Set.
	SetValue(ctx context.Context, key string, item Item, ttl time.Duration) error
}

// Wrapper is implemented by backends that wrap another backend (logging, metrics, fault
// injection). Unwrap returns the wrapped backend so that As can find its capabilities.
type Wrapper interface {
	Unwrap() Backend
}

// As finds the first backend in the chain b, b.Unwrap(), b.Unwrap().Unwrap(), ... that implements
// T and returns it as T. It is how regions find optional capabilities behind wrappers, as
// http.ResponseController does. It costs a type assertion per link and does not allocate.
//
// A wrapper that must see every call (fault injection, for instance) should implement the
// capabilities itself, forwarding them, since As otherwise reaches past it.
func As[T any](b Backend) (T, bool) {
	for b != nil {
		if t, ok := b.(T); ok {
			return t, true
		}
		w, ok := b.(Wrapper)
		if !ok {
			break
		}
		b = w.Unwrap()
	}
	var zero T
	return zero, false
}
