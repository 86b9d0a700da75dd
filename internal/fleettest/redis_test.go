package fleettest_test

import (
	"net/url"
	"testing"

	_ "github.com/dogpile-go/dogpile/backends/redis" // registers redis://
	"github.com/dogpile-go/dogpile/internal/testserver"
)

// redisEnv is a fleet on one Redis server; creations are counted on it.
func redisEnv(t *testing.T) env {
	srv := testserver.StartRedis(t)
	return env{
		srv:     srv,
		servers: []*testserver.Server{srv},
		backendURL: func(prefix string, fast bool) string {
			u := "redis://" + srv.Addr + "/0?prefix=" + url.QueryEscape(prefix)
			if fast {
				u += "&dial_timeout=200ms&read_timeout=200ms&write_timeout=200ms&max_retries=-1&dialer_retries=1"
			}
			return u
		},
		counterURL: func(key string) string { return "redis://" + srv.Addr + "/" + key },
	}
}

// TestRedisStampedeCreatesOnce: see testStampedeCreatesOnce.
func TestRedisStampedeCreatesOnce(t *testing.T) { testStampedeCreatesOnce(t, redisEnv(t)) }

// TestRedisKilledLockHolderIsReplaced: see testKilledLockHolderIsReplaced.
func TestRedisKilledLockHolderIsReplaced(t *testing.T) {
	testKilledLockHolderIsReplaced(t, redisEnv(t))
}

// TestRedisCallsSurviveServerRestart: see testCallsSurviveServerRestart.
func TestRedisCallsSurviveServerRestart(t *testing.T) { testCallsSurviveServerRestart(t, redisEnv(t)) }

// TestRedisCallsHonourDeadlineOnHungServer: see testCallsHonourDeadlineOnHungServer.
func TestRedisCallsHonourDeadlineOnHungServer(t *testing.T) {
	testCallsHonourDeadlineOnHungServer(t, redisEnv(t))
}

// TestRedisWriteWinsOverOlderCreation: see testWriteWinsOverOlderCreation.
func TestRedisWriteWinsOverOlderCreation(t *testing.T) {
	testWriteWinsOverOlderCreation(t, redisEnv(t))
}

// TestRedisExpiryCountsFromStore: see testExpiryCountsFromStore.
func TestRedisExpiryCountsFromStore(t *testing.T) { testExpiryCountsFromStore(t, redisEnv(t)) }
