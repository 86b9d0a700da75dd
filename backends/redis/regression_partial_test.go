package redis

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// TestGetMultiPartialCluster: a Cluster whose nodes serve half the slots while the other half's
// node is down (a master killed, before its replica takes over). GetMulti dropped everything
// the live node answered and returned only the error, so a FailOpen region missed, and created
// again, every key of a batch; it now returns the live node's values with the error, as the
// MultiGetter contract allows and memcached's GetMulti does.
func TestGetMultiPartialCluster(t *testing.T) {
	ctx := t.Context()
	live := startCluster(t) // one node serving every slot
	dead := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	client := goredis.NewClusterClient(&goredis.ClusterOptions{
		// The client is told the upper half of the slots lives on a node that is down.
		ClusterSlots: func(context.Context) ([]goredis.ClusterSlot, error) {
			return []goredis.ClusterSlot{
				{Start: 0, End: slotCount/2 - 1, Nodes: []goredis.ClusterNode{{Addr: live}}},
				{Start: slotCount / 2, End: slotCount - 1, Nodes: []goredis.ClusterNode{{Addr: dead}}},
			}, nil
		},
		MaxRedirects: 1,
	})
	t.Cleanup(func() { closeDialing(client) })
	b := New(client, WithPrefix("partial:"))
	direct := goredis.NewClient(&goredis.Options{Addr: live})
	t.Cleanup(func() { _ = direct.Close() })

	var keys, onLive []string
	for i := 0; len(onLive) < 10 || len(keys)-len(onLive) < 10; i++ {
		k := "k" + strconv.Itoa(i)
		keys = append(keys, k)
		if hashSlot("partial:"+k) < slotCount/2 {
			onLive = append(onLive, k)
			if err := direct.Set(ctx, "partial:"+k, "v"+k, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	m, err := b.GetMulti(ctx, keys)
	if err == nil {
		t.Fatal("GetMulti with a node down returned no error")
	}
	if len(m) != len(onLive) {
		t.Fatalf("GetMulti with a node down returned %d values, want the %d the live node holds (%v)", len(m), len(onLive), err)
	}
	for _, k := range onLive {
		if string(m[k]) != "v"+k {
			t.Fatalf("%s = %q, want %q", k, m[k], "v"+k)
		}
	}
}

// closeDialing closes a client that dialed a server that is down, and waits for go-redis's
// background dialer to notice: it probes a failing server once a second, and returns only then,
// so the leak check of TestMain would see it otherwise.
func closeDialing(c goredis.UniversalClient) {
	_ = c.Close()
	time.Sleep(2 * time.Second)
}
