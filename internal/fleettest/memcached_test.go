package fleettest_test

import (
	"net/url"
	"strings"
	"testing"

	_ "github.com/dogpile-go/dogpile/backends/memcached" // registers memcached://
	"github.com/dogpile-go/dogpile/internal/testserver"
)

func memcachedEnv(t *testing.T) env {
	srv := testserver.StartMemcached(t)
	return env{
		srv:     srv,
		servers: []*testserver.Server{srv},
		backendURL: func(prefix string, fast bool) string {
			u := "memcached://" + srv.Addr + "?prefix=" + url.QueryEscape(prefix)
			if fast {
				u += "&timeout=200ms"
			}
			return u
		},
		counterURL: func(key string) string { return "memcached://" + srv.Addr + "/" + key },
	}
}

// TestMemcachedStampedeAcrossProcesses is issue 4's acceptance test; see testStampede.
func TestMemcachedStampedeAcrossProcesses(t *testing.T) { testStampede(t, memcachedEnv(t)) }

// TestMemcachedLockHolderKilled: see testHolderKilled.
func TestMemcachedLockHolderKilled(t *testing.T) { testHolderKilled(t, memcachedEnv(t)) }

// TestMemcachedRestartMidRun: see testRestart.
func TestMemcachedRestartMidRun(t *testing.T) { testRestart(t, memcachedEnv(t)) }

// TestMemcachedCallsHonourDeadlineOnHungServer: see testDeadlineOnHungServer.
func TestMemcachedCallsHonourDeadlineOnHungServer(t *testing.T) {
	testDeadlineOnHungServer(t, memcachedEnv(t))
}

// memcachedPoolEnv is a fleet on three memcached servers: each child's client picks a server per
// key, the same one in every process; creations are counted on the pool too.
func memcachedPoolEnv(t *testing.T) env {
	var addrs []string
	for _, s := range testserver.StartMemcachedPool(t, 3) {
		addrs = append(addrs, s.Addr)
	}
	servers := strings.Join(addrs, ",")
	return env{
		backendURL: func(prefix string, fast bool) string {
			return "memcached://" + servers + "?prefix=" + url.QueryEscape(prefix)
		},
		counterURL: func(key string) string { return "memcached://" + servers + "/" + key },
	}
}

// TestMemcachedPoolFleet runs the fleet scenarios on a pool of three memcached servers (issue
// 11): a key's value and its lock each live on the server their names map to.
func TestMemcachedPoolFleet(t *testing.T) {
	e := memcachedPoolEnv(t)
	t.Run("Stampede", func(t *testing.T) { testStampede(t, e) })
	t.Run("LockHolderKilled", func(t *testing.T) { testHolderKilled(t, e) })
}

// TestMemcachedWriteWinsAcrossProcesses: see testWriteWins.
func TestMemcachedWriteWinsAcrossProcesses(t *testing.T) { testWriteWins(t, memcachedEnv(t)) }

// TestMemcachedExpiryFromStored: see testExpiryFromStored.
func TestMemcachedExpiryFromStored(t *testing.T) { testExpiryFromStored(t, memcachedEnv(t)) }
