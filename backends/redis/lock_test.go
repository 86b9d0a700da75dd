package redis_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/internal/counting"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/region"
	goredis "github.com/redis/go-redis/v9"
)

func mustLock(t *testing.T, b *redis.Backend, key string, timeout time.Duration) backends.Lock {
	t.Helper()
	l, ok, err := b.TryLock(t.Context(), key, timeout)
	if err != nil || !ok || l == nil {
		t.Fatalf("TryLock(%q, %v) = %v, %v, %v; want a lock", key, timeout, l, ok, err)
	}
	return l
}

func wantLocked(t *testing.T, b *redis.Backend, key string) {
	t.Helper()
	l, ok, err := b.TryLock(t.Context(), key, time.Minute)
	if err != nil || ok || l != nil {
		if ok {
			_ = l.Unlock(t.Context())
		}
		t.Fatalf("TryLock(%q) of a held lock = %v, %v, %v; want nil, false, nil", key, l, ok, err)
	}
}

// lockValue returns the lock key's value, "" if absent.
func lockValue(t *testing.T, client *goredis.Client, redisKey string) string {
	t.Helper()
	v, err := client.Get(t.Context(), redisKey).Result()
	if err == goredis.Nil {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestLockKeyAndToken(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	prefix := uniquePrefix(t)
	b := redis.New(client, redis.WithPrefix(prefix))
	other := redis.New(client, redis.WithPrefix(prefix)) // another process, as far as Redis can tell

	l := mustLock(t, b, "k", 1500*time.Millisecond)
	token := lockValue(t, client, lockKey(prefix, "k"))
	if raw, err := hex.DecodeString(token); err != nil || len(raw) != 16 {
		t.Errorf("the lock key %sk:lock holds %q; want 16 random bytes in hex", prefix, token)
	}
	if ttl, err := client.PTTL(ctx, lockKey(prefix, "k")).Result(); err != nil || ttl <= 0 || ttl > 1500*time.Millisecond {
		t.Errorf("PTTL of the lock key = %v, %v; want within (0, 1.5s]", ttl, err)
	}
	if n, err := client.Exists(ctx, prefix+"k").Result(); err != nil || n != 0 {
		t.Errorf("the lock wrote the data key %sk (EXISTS = %d, %v)", prefix, n, err)
	}
	wantLocked(t, other, "k")
	wantLocked(t, b, "k")

	l2 := mustLock(t, b, "k2", time.Minute)
	if token2 := lockValue(t, client, lockKey(prefix, "k2")); token2 == token {
		t.Errorf("two locks got the same token %q", token)
	}
	_ = l2.Unlock(ctx)

	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if v := lockValue(t, client, lockKey(prefix, "k")); v != "" {
		t.Fatalf("after Unlock the lock key holds %q; want it deleted", v)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatalf("second Unlock: %v; want nil", err)
	}
	_ = mustLock(t, other, "k", time.Minute).Unlock(ctx)
}

// TestLockStaleHolder makes the first holder's lock expire by deleting its key (what its timeout
// does), lets another holder take the lock, and checks that the first holder's Unlock leaves the
// new holder's lock in place.
func TestLockStaleHolder(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	prefix := uniquePrefix(t)
	first := redis.New(client, redis.WithPrefix(prefix))
	second := redis.New(client, redis.WithPrefix(prefix))
	lockKey := lockKey(prefix, "k")

	stale := mustLock(t, first, "k", time.Minute)
	if err := client.Del(ctx, lockKey).Err(); err != nil { // the timeout passes
		t.Fatal(err)
	}
	current := mustLock(t, second, "k", time.Minute)
	token := lockValue(t, client, lockKey)
	for range 2 {
		if err := stale.Unlock(ctx); err != nil {
			t.Fatalf("Unlock by the stale holder: %v; want nil", err)
		}
		if v := lockValue(t, client, lockKey); v != token {
			t.Fatalf("after the stale holder's Unlock the lock key holds %q; want the current holder's %q", v, token)
		}
		wantLocked(t, first, "k")
	}
	if err := current.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if v := lockValue(t, client, lockKey); v != "" {
		t.Fatalf("after the current holder's Unlock the lock key holds %q", v)
	}
}

func TestLockTimeout(t *testing.T) {
	client := newClient(t)
	b := redis.New(client, redis.WithPrefix(uniquePrefix(t)))
	mustLock(t, b, "k", 100*time.Millisecond) // never unlocked
	wantLocked(t, b, "k")
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, ok, err := b.TryLock(t.Context(), "k", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			_ = l.Unlock(t.Context())
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a lock taken with timeout 100ms is still held after 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTryLockErrors(t *testing.T) {
	client := newClient(t)
	prefix := uniquePrefix(t)
	b := redis.New(client, redis.WithPrefix(prefix))

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel2()
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		timeout time.Duration
		want    error
	}{
		{"cancelled", cancelled, time.Minute, context.Canceled},
		{"deadline", expired, time.Minute, context.DeadlineExceeded},
		{"zero timeout", t.Context(), 0, nil},
		{"negative timeout", t.Context(), -time.Second, nil},
	} {
		l, ok, err := b.TryLock(tc.ctx, "k", tc.timeout)
		if err == nil || ok || l != nil {
			t.Errorf("%s: TryLock = %v, %v, %v; want an error", tc.name, l, ok, err)
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: TryLock error %v; want one wrapping %v", tc.name, err, tc.want)
		}
		if err != nil && !strings.HasPrefix(err.Error(), `redis: trylock "k": `) {
			t.Errorf("%s: TryLock error %q; want it to name the operation and key", tc.name, err)
		}
	}
	if v := lockValue(t, client, lockKey(prefix, "k")); v != "" {
		t.Fatalf("a failed TryLock left the lock key holding %q", v)
	}
	_ = mustLock(t, b, "k", time.Minute).Unlock(t.Context())
}

// watchLock checks for d that the lock key holds token, every 25ms, and returns false as soon
// as it does not.
func watchLock(t *testing.T, client *goredis.Client, redisKey, token string, d time.Duration) bool {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(25 * time.Millisecond) {
		if lockValue(t, client, redisKey) != token {
			return false
		}
	}
	return true
}

func TestLockWatchdog(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ctx := t.Context()
	client := newClient(t)
	prefix := uniquePrefix(t)

	// Without a watchdog the lock is gone after its timeout (this is what makes the test able to
	// fail)...
	plain := redis.New(client, redis.WithPrefix(prefix))
	mustLock(t, plain, "plain", timeout)
	if watchLock(t, client, lockKey(prefix, "plain"), lockValue(t, client, lockKey(prefix, "plain")), 4*timeout) {
		t.Fatalf("a lock without watchdog outlived its timeout %v by 3 times", timeout)
	}

	// ...with one it lasts while held, and Unlock releases it.
	b := redis.New(client, redis.WithPrefix(prefix), redis.WithLockWatchdog())
	l := mustLock(t, b, "k", timeout)
	token := lockValue(t, client, lockKey(prefix, "k"))
	if !watchLock(t, client, lockKey(prefix, "k"), token, 4*timeout) {
		t.Fatalf("a lock with a watchdog expired within 4 times its timeout %v while held", timeout)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if v := lockValue(t, client, lockKey(prefix, "k")); v != "" {
		t.Fatalf("after Unlock the lock key holds %q", v)
	}
	// The watchdog stopped with Unlock (goleak checks that no goroutine is left): a lock taken
	// again is not extended by the old one's watchdog.
	_ = mustLock(t, plain, "k", timeout)
	if watchLock(t, client, lockKey(prefix, "k"), lockValue(t, client, lockKey(prefix, "k")), 4*timeout) {
		t.Fatal("a lock taken after Unlock was kept alive: the old watchdog still runs")
	}
}

// TestLockWatchdogLost checks that a watchdog whose lock expired and was taken by another holder
// neither extends nor touches the other's lock, and stops.
func TestLockWatchdogLost(t *testing.T) {
	const timeout = 150 * time.Millisecond
	ctx := t.Context()
	client, c := counting.RedisClient(t, server.Addr)
	prefix := uniquePrefix(t)
	b := redis.New(client, redis.WithPrefix(prefix), redis.WithLockWatchdog())
	other := redis.New(newClient(t), redis.WithPrefix(prefix))

	l := mustLock(t, b, "k", timeout)
	if err := client.Del(ctx, lockKey(prefix, "k")).Err(); err != nil { // the lock is lost
		t.Fatal(err)
	}
	current := mustLock(t, other, "k", time.Minute)
	time.Sleep(3 * timeout) // the watchdog ticks every 50ms: it runs at least once and stops
	c.Take()
	time.Sleep(3 * timeout)
	if cmds, pipelines := c.Take(); len(cmds) != 0 || len(pipelines) != 0 {
		t.Errorf("the watchdog of a lost lock still sends commands: %v %v", cmds, pipelines)
	}
	if ttl, err := client.PTTL(ctx, lockKey(prefix, "k")).Result(); err != nil || ttl < 50*time.Second {
		t.Errorf("PTTL of the new holder's lock = %v, %v; want about a minute: the old watchdog changed it", ttl, err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	wantLocked(t, b, "k")
	_ = current.Unlock(ctx)
}

func TestLockWatchdogStopsOnClose(t *testing.T) {
	client := newClient(t)
	prefix := uniquePrefix(t)
	b := redis.New(client, redis.WithPrefix(prefix), redis.WithLockWatchdog())
	mustLock(t, b, "k", 200*time.Millisecond) // never unlocked
	done := make(chan error)
	go func() { done <- b.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close with a watched lock held did not return within 5s")
	}
	// The lock is no longer extended: it frees itself. (goleak checks the goroutine is gone.)
	if watchLock(t, client, lockKey(prefix, "k"), lockValue(t, client, lockKey(prefix, "k")), 4*200*time.Millisecond) {
		t.Fatal("the lock is still extended after Close")
	}
}

// lockKey is the Redis key of the lock named key under prefix.
func lockKey(prefix, key string) string { return prefix + "\x00lock\x00" + key }

func TestTryLockMultiRoundTrips(t *testing.T) {
	ctx := t.Context()
	client, c := counting.RedisClient(t, server.Addr)
	prefix := uniquePrefix(t)
	b := redis.New(client, redis.WithPrefix(prefix))
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	held := mustLock(t, b, "k3", time.Minute)
	if err := mustLock(t, b, "warm", time.Minute).Unlock(ctx); err != nil { // both scripts known
		t.Fatal(err)
	}
	c.Take()

	for _, flush := range []bool{false, true} {
		if flush {
			// A server that has lost its scripts (restarted, SCRIPT FLUSH): the pipeline again,
			// with EVAL.
			if err := client.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			c.Take()
		}
		taken, release, err := b.TryLockMulti(ctx, keys, time.Minute)
		if err != nil {
			t.Fatalf("TryLockMulti (flushed scripts: %v): %v", flush, err)
		}
		for i, ok := range taken {
			if ok != (i != 3) {
				t.Errorf("taken[%d] = %v", i, ok)
			}
		}
		cmds, pipelines := c.Take()
		wantCmds, wantPipelines := 0, 1
		if flush {
			wantPipelines = 2 // EVALSHA, then EVAL of what got NOSCRIPT
		}
		if len(cmds) != wantCmds || len(pipelines) != wantPipelines || len(pipelines[0]) != 20 {
			t.Errorf("TryLockMulti of 20 keys (flushed scripts: %v) sent %v and pipelines %v; want %d commands and %d pipelines of 20",
				flush, cmds, pipelines, wantCmds, wantPipelines)
		}
		if flush {
			if err := client.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			c.Take()
		}
		if err := release.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		cmds, pipelines = c.Take()
		if len(cmds) != wantCmds || len(pipelines) != wantPipelines || len(pipelines[0]) != 19 {
			t.Errorf("releasing 19 locks sent %v and pipelines %v; want %d commands and %d pipelines of 19", cmds, pipelines, wantCmds, wantPipelines)
		}
		for i, k := range keys {
			if v := lockValue(t, client, lockKey(prefix, k)); (v != "") != (i == 3) {
				t.Errorf("after release, lock %s holds %q", k, v)
			}
		}
	}
	if err := held.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestTryLockMultiWatchdog(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	prefix := uniquePrefix(t)
	b := redis.New(client, redis.WithPrefix(prefix), redis.WithLockWatchdog())
	t.Cleanup(func() { _ = b.Close() })
	taken, release, err := b.TryLockMulti(ctx, []string{"a", "b"}, 300*time.Millisecond)
	if err != nil || !taken[0] || !taken[1] {
		t.Fatalf("TryLockMulti = %v, %v", taken, err)
	}
	time.Sleep(time.Second) // three timeouts: only the watchdogs keep the locks
	wantLocked(t, b, "a")
	wantLocked(t, b, "b")
	if err := release.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	mustLock(t, b, "a", time.Minute).Unlock(ctx)
	mustLock(t, b, "b", time.Minute).Unlock(ctx)
}

// The first TryLockMulti on a Ring whose shards have not seen the lock script succeeds: a NOSCRIPT
// is answered by loading the script on every shard, not on one random shard (a keyless command), so
// the run again does not fail on the others and drop the locks it took without release.
func TestRingTryLockMultiOnFreshShards(t *testing.T) {
	ctx := t.Context()
	ring := newRing(t) // two fresh redis-servers: no script loaded anywhere
	prefix := uniquePrefix(t)
	b := redis.New(ring, redis.WithPrefix(prefix))
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	taken, release, err := b.TryLockMulti(ctx, keys, time.Minute)
	if err == nil {
		_ = release.Unlock(ctx)
		t.Logf("taken %v", taken)
		return
	}
	t.Errorf("TryLockMulti of %d keys on a fresh two-shard Ring: %v; want the locks", len(keys), err)
	// What the failed call left behind.
	var (
		mu   sync.Mutex
		left []string
	)
	_ = ring.ForEachShard(ctx, func(ctx context.Context, shard *goredis.Client) error {
		ks, err := shard.Keys(ctx, prefix+"\x00lock\x00*").Result()
		mu.Lock()
		left = append(left, ks...)
		mu.Unlock()
		return err
	})
	if len(left) > 0 {
		t.Errorf("the failed TryLockMulti left %d locks held (until their 1m timeout), with no way to release them", len(left))
	}
}

// The same on release: with the lock script loaded on every shard but not yet the unlock script,
// the pipelined Unlock loads the script on every shard and releases every lock, so none stays held
// until its timeout.
func TestRingMultiUnlockOnFreshShards(t *testing.T) {
	ctx := t.Context()
	ring := newRing(t)
	prefix := uniquePrefix(t)
	b := redis.New(ring, redis.WithPrefix(prefix))
	// What a first single-key TryLock on each shard would leave: the acquire script loaded.
	const acquire = `
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
	return 1
end
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return 1
end
return 0`
	if err := ring.ForEachShard(ctx, func(ctx context.Context, shard *goredis.Client) error {
		return shard.ScriptLoad(ctx, acquire).Err()
	}); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	taken, release, err := b.TryLockMulti(ctx, keys, time.Minute)
	if err != nil {
		t.Fatalf("TryLockMulti with the script on every shard: %v", err)
	}
	for i, ok := range taken {
		if !ok {
			t.Fatalf("lock %s not taken", keys[i])
		}
	}
	if err := release.Unlock(ctx); err != nil {
		t.Errorf("Unlock of %d locks on a Ring whose shards lack the unlock script: %v", len(keys), err)
	}
	var (
		mu   sync.Mutex
		left int
	)
	_ = ring.ForEachShard(ctx, func(ctx context.Context, shard *goredis.Client) error {
		ks, err := shard.Keys(ctx, prefix+"\x00lock\x00*").Result()
		mu.Lock()
		left += len(ks)
		mu.Unlock()
		return err
	})
	if left > 0 {
		t.Errorf("%d locks still held after release.Unlock", left)
	}
}

// Locks have a namespace of their own: the lock of key "report" and the data of key "report:lock"
// are different Redis keys, so a region that caches both (View keys are the user's strings) can
// always take the lock of "report".
func TestLockKeyIsNotADataKey(t *testing.T) {
	client := newClient(t)
	r := region.New("collide", region.WithExpiration(time.Hour))
	if err := r.Configure(redis.New(client, redis.WithPrefix(uniquePrefix(t)))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	v := region.NewView[string](r)
	if err := v.Set(t.Context(), "report:lock", "an ordinary cached value"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err := v.GetOrCreate(ctx, "report", func(context.Context) (string, error) { return "fresh", nil })
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetOrCreate(\"report\") on a cold key with no lock holder: %v; the data key "+
			"\"report:lock\" is taken for report's lock", err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// When the reply to the lock command is lost after Redis executed it and go-redis retries the
// command (default MaxRetries 3) with the same token, the lock script recognises its own token and
// TryLock holds the lock, rather than answering "held by another holder" and leaving the key
// blocked for the whole timeout.
func TestLostLockReplyKeepsTheLock(t *testing.T) {
	ctx := t.Context()
	client := goredis.NewClient(&goredis.Options{Addr: dropLockReply(t)})
	t.Cleanup(func() { _ = client.Close() })
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	prefix := uniquePrefix(t)
	b := redis.New(client, redis.WithPrefix(prefix))
	direct := newClient(t)
	// Load the lock script into the server first: otherwise the reply dropped is NOSCRIPT, from
	// a command that took no lock, and the test proves nothing.
	if l, ok, err := redis.New(direct, redis.WithPrefix(prefix)).TryLock(ctx, "warm-up", time.Minute); err != nil || !ok {
		t.Fatalf("warm-up TryLock = %v, %v", ok, err)
	} else {
		_ = l.Unlock(ctx)
	}

	l, ok, err := b.TryLock(ctx, "k", time.Minute)
	held, _ := direct.Get(context.Background(), lockKey(prefix, "k")).Result()
	ttl, _ := direct.PTTL(context.Background(), lockKey(prefix, "k")).Result()
	t.Logf("TryLock = %v, %v, %v; lock key holds %q, PTTL %v", l, ok, err, held, ttl)
	if err == nil && !ok && held != "" {
		t.Fatalf("TryLock said the lock is held by another holder, but the only holder is this call "+
			"(its first SET NX succeeded, the reply was lost, go-redis retried): the key is blocked "+
			"for %v with no Lock to release it", ttl.Round(time.Second))
	}
	if ok {
		_ = l.Unlock(ctx)
	}
}

// The same lost reply seen from a region: a cold GetOrCreate, which nobody else is creating, does
// not wait out the lock timeout (30s by default) for a lock that it holds itself.
func TestLostLockReplyDoesNotStallCreation(t *testing.T) {
	const lockTimeout = 2 * time.Second
	client := goredis.NewClient(&goredis.Options{Addr: dropLockReply(t)})
	r := region.New("lostreply", region.WithExpiration(time.Hour), region.WithLockTimeout(lockTimeout))
	if err := r.Configure(redis.New(client, redis.WithPrefix(uniquePrefix(t)), redis.WithCloseClient())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	v := region.NewView[string](r)
	start := time.Now()
	got, err := v.GetOrCreate(t.Context(), "k", func(context.Context) (string, error) { return "v", nil })
	elapsed := time.Since(start)
	if err != nil || got != "v" {
		t.Fatalf("GetOrCreate = %q, %v", got, err)
	}
	if elapsed > lockTimeout/2 {
		t.Fatalf("a cold GetOrCreate with no other caller took %v (lock timeout %v): it waited for its own orphaned lock",
			elapsed.Round(time.Millisecond), lockTimeout)
	}
}

// dropLockReply is a proxy to the shared server that loses the reply to the first command naming a
// lock (its key holds "\x00lock\x00"), as when a network blip or a read timeout loses the reply
// after Redis executed the command.
func dropLockReply(t *testing.T) string {
	return testserver.DropReplyProxy(t, server.Addr, func(sent []byte) bool {
		return bytes.Contains(sent, []byte("\x00lock\x00"))
	})
}

// Unlock stops the watchdog: a stopped watchdog sends no command after Unlock. (TestLockWatchdog
// cannot check this: an old watchdog never extends a new holder's lock anyway, since the compare
// fails and it stops itself.)
func TestUnlockStopsWatchdog(t *testing.T) {
	const timeout = 300 * time.Millisecond
	client, c := counting.RedisClient(t, server.Addr)
	b := redis.New(client, redis.WithPrefix(uniquePrefix(t)), redis.WithLockWatchdog())
	l := mustLock(t, b, "k", timeout)
	time.Sleep(timeout / 2) // one extension
	if err := l.Unlock(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.Take()
	time.Sleep(timeout) // three more ticks, were the watchdog running
	if cmds, pipelines := c.Take(); len(cmds) != 0 || len(pipelines) != 0 {
		t.Fatalf("commands after Unlock: %v %v; the watchdog still runs", cmds, pipelines)
	}
}
