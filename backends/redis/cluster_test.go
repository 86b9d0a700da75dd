package redis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/backendtest"
	goredis "github.com/redis/go-redis/v9"
)

// slotCases are keys whose slots the cluster specification gives or that exercise its hash tag
// rule; TestHashSlot pins them and TestCluster checks them against the server.
var slotCases = []struct {
	key  string
	slot uint16
}{
	{"123456789", 0x31c3 % slotCount}, // the specification's CRC16 check value
	{"foo", 12182},
	{"bar", 5061},
	{"hello", 866},
	{"user1000", 3443},
	{"{user1000}.following", 3443}, // only the tag is hashed
	{"{user1000}.followers", 3443},
	{"foo{}{bar}", hashSlotNoTag("foo{}{bar}")}, // an empty tag: the whole key
	{"foo{{bar}}zap", hashSlotNoTag("{bar")},    // the tag is "{bar"
	{"foo{bar}{zap}", hashSlotNoTag("bar")},     // the first tag only
	{"{", hashSlotNoTag("{")},                   // no closing brace
	{"}{", hashSlotNoTag("}{")},                 // a '}' before the '{' does not close it
	{"", 0},                                     // CRC16 of nothing
	{"app:{tenant7}:user:1:lock", hashSlotNoTag("tenant7")},
}

func hashSlotNoTag(s string) uint16 { return crc16(s) % slotCount }

func TestHashSlot(t *testing.T) {
	if got := crc16("123456789"); got != 0x31c3 {
		t.Fatalf("crc16(%q) = %#04x, want 0x31c3 (CRC-16/XMODEM check value)", "123456789", got)
	}
	for _, tc := range slotCases {
		if got := hashSlot(tc.key); got != tc.slot {
			t.Errorf("hashSlot(%q) = %d, want %d", tc.key, got, tc.slot)
		}
	}
}

func BenchmarkHashSlot(b *testing.B) {
	key := "myapp:" + strings.Repeat("k", 40)
	for b.Loop() {
		_ = hashSlot(key)
	}
}

// startCluster starts a redis-server in cluster mode, a one-node cluster that serves all 16384
// slots, for tb, and returns its address. One node is enough to check what matters to the
// backend: a command naming keys of two slots fails with CROSSSLOT. (internal/testserver starts
// plain servers only.)
func startCluster(tb testing.TB) string {
	tb.Helper()
	port, busPort := freePort(tb), freePort(tb)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	dir := tb.TempDir()
	cmd := exec.Command("redis-server",
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--loglevel", "warning",
		"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
		"--cluster-port", strconv.Itoa(busPort), "--cluster-announce-ip", "127.0.0.1")
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start redis-server in cluster mode (is redis-server installed? run `make servers`): %v", err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})

	ctx := context.Background()
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	poll := func(what string, cond func() error) {
		tb.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := cond()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				tb.Fatalf("cluster on %s: %s: %v", addr, what, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	poll("PING", func() error { return c.Ping(ctx).Err() })
	if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, slotCount-1).Err(); err != nil {
		tb.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	poll("cluster_state:ok", func() error {
		info, err := c.ClusterInfo(ctx).Result()
		if err == nil && !strings.Contains(info, "cluster_state:ok") {
			err = fmt.Errorf("CLUSTER INFO: %q", info)
		}
		return err
	})
	return addr
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestCluster(t *testing.T) {
	addr := startCluster(t)
	client := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: []string{addr}})
	t.Cleanup(func() { _ = client.Close() })
	ctx := t.Context()

	t.Run("KeySlot", func(t *testing.T) {
		keys := []string{"a", "user:42", "myapp:{x}:y", "{}", "{{}}", "a{b}c{d}", "\x00\xff{\x01}"}
		for _, tc := range slotCases {
			if tc.key != "" {
				keys = append(keys, tc.key)
			}
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for range 200 {
			k := make([]byte, 1+rng.IntN(30))
			for i := range k {
				k[i] = "ab{}:xyz0123"[rng.IntN(12)]
			}
			keys = append(keys, string(k))
		}
		for _, k := range keys {
			want, err := client.ClusterKeySlot(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if got := hashSlot(k); int64(got) != want {
				t.Errorf("hashSlot(%q) = %d; CLUSTER KEYSLOT says %d", k, got, want)
			}
		}
	})

	t.Run("Conformance", func(t *testing.T) {
		backendtest.Run(t, func(t *testing.T) backends.Backend {
			return New(client, WithPrefix(fmt.Sprintf("cluster:%x:", rand.Uint64())))
		})
	})

	t.Run("MultiAcrossSlots", func(t *testing.T) {
		b := New(client, WithPrefix("multi:"))
		if b.sharding != shardCluster {
			t.Fatalf("New(*goredis.ClusterClient) did not select cluster sharding")
		}
		items := make(map[string][]byte)
		var keys []string
		slots := make(map[uint16]bool)
		for i := range 100 {
			k := "k" + strconv.Itoa(i)
			keys = append(keys, k)
			items[k] = []byte("v" + strconv.Itoa(i))
			slots[hashSlot("multi:"+k)] = true
		}
		if len(slots) < 50 {
			t.Fatalf("the keys fall into %d slots; the test needs many", len(slots))
		}
		// What the grouping is for: a plain command over keys of several slots fails.
		// (Logged, not failed, should a later go-redis split such commands itself.)
		if err := client.MGet(ctx, b.redisKeys(keys)...).Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
			t.Logf("note: a plain MGET across slots answered %v, not CROSSSLOT", err)
		}

		if err := b.SetMulti(ctx, items, time.Minute); err != nil {
			t.Fatal(err)
		}
		m, err := b.GetMulti(ctx, append(keys, "absent"))
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != len(items) {
			t.Fatalf("GetMulti over %d slots: %d of %d keys found", len(slots), len(m), len(items))
		}
		for k, v := range items {
			if string(m[k]) != string(v) {
				t.Fatalf("GetMulti: %q = %q, want %q", k, m[k], v)
			}
		}
		if err := b.DeleteMulti(ctx, keys); err != nil {
			t.Fatal(err)
		}
		if m, err := b.GetMulti(ctx, keys); err != nil || len(m) != 0 {
			t.Fatalf("GetMulti after DeleteMulti = %d keys, %v; want none", len(m), err)
		}
	})

	t.Run("HashTagPrefixIsOneSlot", func(t *testing.T) {
		b := New(client, WithPrefix("{tagged}:"))
		keys := []string{"a", "b", "c", "d"}
		if g := b.slotGroups(keys); len(g) != 1 || len(g[0].keys) != 4 {
			t.Fatalf("slotGroups with a hash-tag prefix = %+v; want one group of 4", g)
		}
		if err := b.SetMulti(ctx, map[string][]byte{"a": []byte("1"), "b": []byte("2")}, 0); err != nil {
			t.Fatal(err)
		}
		m, err := b.GetMulti(ctx, keys)
		if err != nil || len(m) != 2 || string(m["a"]) != "1" || string(m["b"]) != "2" {
			t.Fatalf("GetMulti = %q, %v", m, err)
		}
		if err := b.DeleteMulti(ctx, keys); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSlotGroups(t *testing.T) {
	b := &Backend{prefix: "p:"}
	keys := []string{"foo", "bar", "{foo}x", "baz", "{bar}y", "foo", "{p}:z"}
	groups := b.slotGroups(keys)
	var flat []string
	seen := make(map[uint16]bool)
	for _, g := range groups {
		if len(g.keys) == 0 || len(g.keys) != len(g.redisKeys) {
			t.Fatalf("group %+v: empty, or keys and redisKeys differ in length", g)
		}
		s := hashSlot(g.redisKeys[0])
		if seen[s] {
			t.Fatalf("two groups for slot %d", s)
		}
		seen[s] = true
		for i, k := range g.keys {
			if g.redisKeys[i] != "p:"+k || hashSlot(g.redisKeys[i]) != s {
				t.Fatalf("group %+v mixes slots, or a key and its prefixed form", g)
			}
		}
		flat = append(flat, g.keys...)
	}
	if len(flat) != len(keys) {
		t.Fatalf("slotGroups(%q) holds %d keys: %q", keys, len(flat), flat)
	}
	if hashSlot("p:{foo}x") != hashSlot("foo") || hashSlot("p:{foo}x") == hashSlot("p:foo") {
		t.Fatal("a hash tag in a prefixed key must decide its slot")
	}
}

// On a Cluster whose nodes serve half the slots while the other half's node is down (a master
// killed, before its replica takes over), GetMulti returns the live node's values with the error,
// as the MultiGetter contract allows and memcached's GetMulti does, so a FailOpen region creates
// again only the keys it could not read.
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
