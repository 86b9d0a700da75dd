package fleettest_test

import (
	"net/url"
	"strings"
	"testing"

	_ "github.com/dogpile-go/dogpile/backends/memcached" // registers memcached://
	"github.com/dogpile-go/dogpile/internal/testserver"
)

// fleetTimeout is the memcached client's timeout (for each dial, read and write) in the fleets'
// backends, instead of its default of 500ms: with 1,000 callers a process under -race, on 2 cores
// that other work also loads, a process can be starved long enough for a dial to the server on
// loopback to time out; the shared read then fails for the ~1,000 callers that joined it, and
// each reports it (they still get the creator's value). That tests the machine, not the lock.
// go-redis dials with 5s.
const fleetTimeout = "2s"

// memcachedEnv is a fleet on one memcached server; creations are counted on it.
func memcachedEnv(t *testing.T) env {
	srv := testserver.StartMemcached(t)
	return env{
		srv:     srv,
		servers: []*testserver.Server{srv},
		backendURL: func(prefix string, fast bool) string {
			u := "memcached://" + srv.Addr + "?prefix=" + url.QueryEscape(prefix)
			if fast {
				return u + "&timeout=200ms"
			}
			return u + "&timeout=" + fleetTimeout
		},
		counterURL: func(key string) string { return "memcached://" + srv.Addr + "/" + key },
	}
}

// TestMemcachedStampedeCreatesOnce: see testStampedeCreatesOnce.
func TestMemcachedStampedeCreatesOnce(t *testing.T) { testStampedeCreatesOnce(t, memcachedEnv(t)) }

// TestMemcachedKilledLockHolderIsReplaced: see testKilledLockHolderIsReplaced.
func TestMemcachedKilledLockHolderIsReplaced(t *testing.T) {
	testKilledLockHolderIsReplaced(t, memcachedEnv(t))
}

// TestMemcachedCallsSurviveServerRestart: see testCallsSurviveServerRestart.
func TestMemcachedCallsSurviveServerRestart(t *testing.T) {
	testCallsSurviveServerRestart(t, memcachedEnv(t))
}

// TestMemcachedCallsHonourDeadlineOnHungServer: see testCallsHonourDeadlineOnHungServer.
func TestMemcachedCallsHonourDeadlineOnHungServer(t *testing.T) {
	testCallsHonourDeadlineOnHungServer(t, memcachedEnv(t))
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
			return "memcached://" + servers + "?prefix=" + url.QueryEscape(prefix) + "&timeout=" + fleetTimeout
		},
		counterURL: func(key string) string { return "memcached://" + servers + "/" + key },
	}
}

// TestMemcachedPoolFleet runs the fleet scenarios on a pool of three memcached servers: a key's
// value and its lock each live on the server their names map to.
func TestMemcachedPoolFleet(t *testing.T) {
	e := memcachedPoolEnv(t)
	t.Run("StampedeCreatesOnce", func(t *testing.T) { testStampedeCreatesOnce(t, e) })
	t.Run("KilledLockHolderIsReplaced", func(t *testing.T) { testKilledLockHolderIsReplaced(t, e) })
}

// TestMemcachedWriteWinsOverOlderCreation: see testWriteWinsOverOlderCreation.
func TestMemcachedWriteWinsOverOlderCreation(t *testing.T) {
	testWriteWinsOverOlderCreation(t, memcachedEnv(t))
}

// TestMemcachedExpiryCountsFromStore: see testExpiryCountsFromStore.
func TestMemcachedExpiryCountsFromStore(t *testing.T) { testExpiryCountsFromStore(t, memcachedEnv(t)) }
