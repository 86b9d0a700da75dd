package fleettest_test

import (
	"net/url"
	"testing"

	_ "github.com/dogpile-go/dogpile/backends/memcached" // registers memcached://
	"github.com/dogpile-go/dogpile/internal/testserver"
)

func memcachedEnv(t *testing.T) env {
	srv := testserver.StartMemcached(t)
	return env{
		srv: srv,
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
