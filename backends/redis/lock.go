package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	goredis "github.com/redis/go-redis/v9"
)

// lockTag starts the name of every lock after the prefix: prefix + lockTag + key. A data key
// (prefix + key) can equal a lock's name only if its key starts with a NUL byte and "lock", which
// no key from memo does and no key of a View should; a suffix such as ":lock" would collide with
// any data key that happens to end with it ("report" and "report:lock").
const lockTag = "\x00lock\x00"

// lockKey returns the Redis key of the lock named key: prefix + lockTag + key, which lives in
// the hash slot of its data key (prefix + key) on a Cluster too, so that the two move together
// in a failover or a resharding. When the data key has a hash tag ("{app}:" as the prefix, or a
// "{...}" in the key), the lock key begins with the same tag and shares its slot already.
// Otherwise the lock key carries the data key as its own tag, after the lock mark:
// prefix + lockTag + "{" + prefix + key + "}" + key, possible when the prefix has no '{' and the
// data key no '}'. For the rare forms left (a prefix holding a '{' but no hash tag of its own, a
// key without a hash tag holding a '}'), the lock key keeps the plain form, in another slot:
// still exclusive, only not beside its key. Outside a Cluster the lock key is always the plain
// prefix + lockTag + key.
func (b *Backend) lockKey(key string) string {
	data := b.prefix + key
	if hashPart(data) != data { // a hash tag: the lock key starts with the same one
		if hashSlot(b.prefix+lockTag+key) == hashSlot(data) {
			return b.prefix + lockTag + key
		}
	}
	if b.sharding == shardCluster && !strings.ContainsRune(b.prefix, '{') && !strings.ContainsRune(data, '}') {
		return b.prefix + lockTag + "{" + data + "}" + key
	}
	return b.prefix + lockTag + key
}

// acquireScript takes the lock KEYS[1] for the token ARGV[1] for ARGV[2] milliseconds, unless
// another token holds it. It also answers 1 when the lock already holds ARGV[1]: a retry of a
// SET whose reply was lost (go-redis retries a command on a dropped connection) then finds its
// own lock instead of mistaking it for another holder's and waiting for it to expire.
var acquireScript = goredis.NewScript(`
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
	return 1
end
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return 1
end
return 0`)

// unlockScript deletes the lock KEYS[1] if it holds the token ARGV[1]; it returns 1 if it
// deleted it, 0 otherwise (expired, or taken by another holder since).
var unlockScript = goredis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)

// extendScript resets the expiry of the lock KEYS[1] to ARGV[2] milliseconds if it holds the
// token ARGV[1]; it returns 1 if it did, 0 otherwise.
var extendScript = goredis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)

// TryLock tries once, without waiting, to take the lock named key: a script runs
// SET <prefix>\x00lock\x00<key> <token> NX PX <timeout>, and also succeeds when the lock already
// holds the token, so that go-redis's retry of a command whose reply was lost finds its own lock.
// The token is 16 random bytes in hex; the timeout is rounded up to whole milliseconds and must
// be positive. It returns (lock, true, nil) when taken, (nil, false, nil) when another holder has
// the lock, and an error wrapping ctx.Err() without any I/O when ctx is already done. One round
// trip (EVALSHA; EVAL too, once, on a server that has not seen the script).
//
// An error other than ctx's may leave the lock taken (the script ran, every reply was lost); it
// then frees itself after timeout.
func (b *Backend) TryLock(ctx context.Context, key string, timeout time.Duration) (backends.Lock, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("redis: trylock %q: %w", key, err)
	}
	if timeout <= 0 {
		return nil, false, fmt.Errorf("redis: trylock %q: timeout %v: must be positive", key, timeout)
	}
	timeout = roundUpMs(timeout)
	var raw [16]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (it crashes the program instead)
	l := &lock{b: b, name: key, key: b.lockKey(key), token: hex.EncodeToString(raw[:])}
	taken, err := acquireScript.Run(ctx, b.client, []string{l.key}, l.token, timeout.Milliseconds()).Int()
	if err != nil {
		return nil, false, fmt.Errorf("redis: trylock %q: %w", key, err)
	}
	if taken != 1 {
		return nil, false, nil
	}
	if b.watchdog {
		b.startWatchdog(ctx, l, timeout)
	}
	return l, true, nil
}

// TryLockMulti tries once, without waiting, to take the lock of every key, with TryLock's script
// for each, all in one pipeline: one round trip (one per node on a Cluster or Ring; the commands
// a server answers with NOSCRIPT go again, with EVAL, in a second one). On an error it releases
// the locks it took before returning. The locks are TryLock's:
// the same names, tokens of their own, a watchdog each under WithLockWatchdog. release.Unlock
// runs the compare-and-delete script of every lock taken, in one pipeline too.
func (b *Backend) TryLockMulti(ctx context.Context, keys []string, timeout time.Duration) ([]bool, backends.Lock, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("redis: trylockmulti (%d keys): %w", len(keys), err)
	}
	if timeout <= 0 {
		return nil, nil, fmt.Errorf("redis: trylockmulti (%d keys): timeout %v: must be positive", len(keys), timeout)
	}
	taken := make([]bool, len(keys))
	if len(keys) == 0 {
		return taken, &multiLock{b: b}, nil
	}
	timeout = roundUpMs(timeout)
	ms := timeout.Milliseconds()
	raw := make([]byte, 16*len(keys))
	_, _ = rand.Read(raw)
	ls := make([]*lock, len(keys))
	for i, key := range keys {
		ls[i] = &lock{b: b, name: key, key: b.lockKey(key), token: hex.EncodeToString(raw[16*i : 16*(i+1)])}
	}
	cmds, err := b.lockScripts(ctx, acquireScript, ls, ms)
	held := &multiLock{b: b}
	for i, cmd := range cmds {
		if n, _ := cmd.Int(); n == 1 {
			taken[i] = true
			held.locks = append(held.locks, ls[i])
		}
	}
	if err != nil {
		// Some locks may be taken: release them rather than leave their keys blocked until the
		// timeout. (Those whose reply was lost still free themselves after it.)
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		_ = held.Unlock(uctx)
		return nil, nil, fmt.Errorf("redis: trylockmulti (%d keys): %w", len(keys), err)
	}
	if b.watchdog {
		for _, l := range held.locks {
			b.startWatchdog(ctx, l, timeout)
		}
	}
	return taken, held, nil
}

// lockScripts runs script once a lock with scriptAll, with the lock's key, and its token and
// then args as the arguments.
func (b *Backend) lockScripts(ctx context.Context, script *goredis.Script, ls []*lock, args ...any) ([]*goredis.Cmd, error) {
	keys := make([]string, len(ls))
	for i, l := range ls {
		keys[i] = l.key
	}
	return b.scriptAll(ctx, script, keys, func(i int) []any { return append([]any{ls[i].token}, args...) })
}

// scriptAll runs script once a key of keys (Redis keys, prefix included) in one pipeline, with
// that key and argv(i) as its arguments, and returns its commands and the first error among
// them. Commands a server answers with NOSCRIPT (it has not seen the script, or flushed it) are
// sent again with EVAL and the script's source, in a second pipeline, to the server of their key:
// that also loads the script there for the next EVALSHA. (SCRIPT LOAD names no key: on a Ring it
// would reach one shard only.)
func (b *Backend) scriptAll(ctx context.Context, script *goredis.Script, keys []string, argv func(i int) []any) ([]*goredis.Cmd, error) {
	cmds := make([]*goredis.Cmd, len(keys))
	_, _ = b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, key := range keys {
			cmds[i] = script.EvalSha(ctx, p, []string{key}, argv(i)...)
		}
		return nil
	})
	var again []int
	for i, cmd := range cmds {
		if goredis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		_, _ = b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, i := range again {
				cmds[i] = script.Eval(ctx, p, []string{keys[i]}, argv(i)...)
			}
			return nil
		})
	}
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			return cmds, err
		}
	}
	return cmds, nil
}

// multiLock is the locks one TryLockMulti took.
type multiLock struct {
	b     *Backend
	locks []*lock
}

// Unlock releases every lock TryLockMulti took that still holds its holder's token, in one
// pipeline, after stopping their watchdogs. Locks that expired, or were taken by another holder
// since, are left alone, and that is not an error. Unlock may be called more than once.
func (m *multiLock) Unlock(ctx context.Context) error {
	if len(m.locks) == 0 {
		return nil
	}
	for _, l := range m.locks {
		l.stop()
	}
	if _, err := m.b.lockScripts(ctx, unlockScript, m.locks); err != nil {
		return fmt.Errorf("redis: unlock (%d locks): %w", len(m.locks), err)
	}
	return nil
}

// lock is a lock taken by TryLock.
type lock struct {
	b     *Backend
	name  string // the key TryLock was given, for errors
	key   string // the lock's Redis key, prefix and suffix included
	token string // this holder's random token, the lock key's value while it holds the lock

	// The watchdog, when there is one; nil otherwise.
	stopWatchdog context.CancelFunc // cancels the watchdog's context
	watchdogDone chan struct{}      // closed when the watchdog goroutine returns
	unlockOnce   sync.Once
}

// Unlock releases the lock if it still holds this holder's token, with a compare-and-delete
// script (EVALSHA, falling back to EVAL the first time a server does not know the script): one
// round trip. A lock that expired, or was taken by another holder since, is left alone, and that
// is not an error. It first stops the lock's watchdog, if it has one, and waits for it. Unlock
// may be called more than once.
func (l *lock) Unlock(ctx context.Context) error {
	l.stop()
	if err := unlockScript.Run(ctx, l.b.client, []string{l.key}, l.token).Err(); err != nil {
		return fmt.Errorf("redis: unlock %q: %w", l.name, err)
	}
	return nil
}

// stop stops the lock's watchdog, if it has one, and waits for it.
func (l *lock) stop() {
	l.unlockOnce.Do(func() {
		if l.stopWatchdog != nil {
			l.stopWatchdog()
			<-l.watchdogDone
		}
	})
}

// startWatchdog starts the goroutine that extends l every timeout/3 until Unlock or Close. Its
// context keeps ctx's values (for tracing hooks) but not its cancellation: the lock outlives the
// call that took it.
func (b *Backend) startWatchdog(ctx context.Context, l *lock, timeout time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return // the lock still frees itself after timeout
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.stopWatchdog = cancel
	l.watchdogDone = make(chan struct{})
	b.watchers.Add(1)
	go func() {
		defer b.watchers.Done()
		defer close(l.watchdogDone)
		defer cancel()
		l.watch(wctx, timeout)
	}()
}

// watch extends the lock every timeout/3 until ctx is done, the backend closes, or the lock is
// found no longer held by this holder. Each extension may take up to timeout/3.
func (l *lock) watch(ctx context.Context, timeout time.Duration) {
	interval := max(timeout/3, time.Millisecond)
	ms := timeout.Milliseconds()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.b.closing:
			return
		case <-ticker.C:
		}
		callCtx, cancel := context.WithTimeout(ctx, interval)
		n, err := extendScript.Run(callCtx, l.b.client, []string{l.key}, l.token, ms).Int64()
		cancel()
		if err == nil && n == 0 {
			return // expired or taken by another holder: nothing left to extend
		}
		// On an error, the lock may still be ours: try again at the next tick.
	}
}
