package fleettest_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/internal/testserver"
	goredis "github.com/redis/go-redis/v9"
)

// The fleet's children open their backend from a URL, and redis:// URLs make single-node clients
// only: rediscluster://host:port,host:port...?prefix=p is a backend on a goredis.ClusterClient of
// those seed nodes, for these tests alone.
func init() {
	if err := backends.Register("rediscluster", openCluster); err != nil {
		panic(err)
	}
}

func openCluster(u *url.URL) (backends.Backend, error) {
	if u.Host == "" {
		return nil, errors.New("rediscluster: no nodes")
	}
	q := u.Query()
	// ContextTimeoutEnabled as redis.Open sets it: calls end by their context's deadline even on
	// nodes that never answer.
	client := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: strings.Split(u.Host, ","), ContextTimeoutEnabled: true})
	return redis.New(client, redis.WithPrefix(q.Get("prefix")), redis.WithCloseClient()), nil
}

func clusterEnv(t *testing.T, c *testserver.Cluster) env {
	nodes := strings.Join(c.Addrs(), ",")
	return env{
		servers: c.Nodes,
		backendURL: func(prefix string, fast bool) string {
			return "rediscluster://" + nodes + "?prefix=" + url.QueryEscape(prefix)
		},
		counterURL: func(key string) string { return "rediscluster://" + nodes + "/" + key },
	}
}

// TestClusterFleet runs the fleet scenarios on a six-node Redis Cluster: the lock of a
// key and the key itself live on whichever masters their slots map to, and the stampede test
// still sees one creation per key across four processes.
func TestClusterFleet(t *testing.T) {
	c := testserver.StartCluster(t)
	e := clusterEnv(t, c)
	t.Run("StampedeCreatesOnce", func(t *testing.T) { testStampedeCreatesOnce(t, e) })
	t.Run("KilledLockHolderIsReplaced", func(t *testing.T) { testKilledLockHolderIsReplaced(t, e) })
	t.Run("WriteWinsOverOlderCreation", func(t *testing.T) { testWriteWinsOverOlderCreation(t, e) })
	t.Run("ExpiryCountsFromStore", func(t *testing.T) { testExpiryCountsFromStore(t, e) })
	// Last: pausing every node may leave the cluster electing new masters for a while.
	t.Run("CallsHonourDeadlineOnHungServer", func(t *testing.T) { testCallsHonourDeadlineOnHungServer(t, e) })
}
