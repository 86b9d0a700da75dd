package redis_test

import (
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/redis"
)

// TestUnlockStopsWatchdog checks what TestLockWatchdog's last step claims and cannot check:
// that Unlock stops the watchdog. An old watchdog never extends a new holder's lock anyway (the
// compare fails and it stops itself), so TestLockWatchdog passes with Unlock not stopping it; a
// stopped watchdog sends no command after Unlock.
func TestUnlockStopsWatchdog(t *testing.T) {
	const timeout = 300 * time.Millisecond
	client, c := countingClient(t)
	b := redis.New(client, redis.WithPrefix(uniquePrefix(t)), redis.WithLockWatchdog())
	l := mustLock(t, b, "k", timeout)
	time.Sleep(timeout / 2) // one extension
	if err := l.Unlock(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.take()
	time.Sleep(timeout) // three more ticks, were the watchdog running
	if cmds, pipelines := c.take(); len(cmds) != 0 || len(pipelines) != 0 {
		t.Fatalf("commands after Unlock: %v %v; the watchdog still runs", cmds, pipelines)
	}
}
