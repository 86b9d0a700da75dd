package testserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// ClusterNodeTimeout is the cluster-node-timeout of the clusters StartCluster starts: a master
// that stops answering is marked failed after it, and one of its replicas takes over a second or
// two later. (Redis's default is 15s; production clusters keep it well above a GC pause.)
const ClusterNodeTimeout = 1000 * time.Millisecond

// Cluster is a Redis Cluster of the test's own: six redis-server processes in cluster mode on
// free loopback ports, three masters that share the 16384 slots and a replica of each, made with
// `redis-cli --cluster create --cluster-replicas 1`.
type Cluster struct {
	// Nodes are the six nodes in the order given to redis-cli. Which are masters changes with
	// failovers: ask Masters.
	Nodes []*Server
}

// StartCluster starts a six-node Redis Cluster for tb and waits until every node says the
// cluster is ok and every replica is in sync with its master; it stops every node when tb ends.
// The nodes keep nothing on disk besides their nodes.conf, in tb.TempDir(). It fails tb, with
// what redis-server or redis-cli said, if the cluster cannot be made (redis-server or redis-cli
// not installed: run `make test`).
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := newCluster(tb.TempDir(), tb.Cleanup)
	if err != nil {
		tb.Fatalf("testserver: %v", err)
	}
	return c
}

func newCluster(dir string, cleanup func(func())) (*Cluster, error) {
	if _, err := exec.LookPath("redis-cli"); err != nil {
		return nil, errors.New("redis-cli is not installed: run `make test`, which installs it, or apt-get install redis-tools")
	}
	c := &Cluster{}
	for i := range 6 {
		nodeDir := filepath.Join(dir, "node"+strconv.Itoa(i))
		if err := os.Mkdir(nodeDir, 0o755); err != nil {
			return nil, err
		}
		// Each port newServer tries (it tries again on a port taken meanwhile) gets a bus port of
		// its own, which a bus port taken before the node binds it fails as its own port does;
		// a restart (Start after Stop) keeps the node's.
		busPorts := map[int]int{}
		s, err := newServer("redis-server", func(port int) []string {
			busPort, ok := busPorts[port]
			if !ok {
				p, err := freePort()
				if err != nil {
					p = port + 10000 // redis-server's own default
				}
				busPort, busPorts[port] = p, p
			}
			return []string{"redis-server",
				"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
				"--save", "", "--appendonly", "no", "--dir", nodeDir,
				"--daemonize", "no", "--loglevel", "warning",
				"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(nodeDir, "nodes.conf"),
				"--cluster-port", strconv.Itoa(busPort), "--cluster-announce-ip", "127.0.0.1",
				"--cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout.Milliseconds()))}
		}, pingRedis)
		if err != nil {
			return nil, fmt.Errorf("cluster node %d: %w", i, err)
		}
		cleanup(s.Close)
		c.Nodes = append(c.Nodes, s)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli %s: %w; it said:\n%s", strings.Join(args, " "), err, out)
	}
	if err := c.WaitHealthy(20 * time.Second); err != nil {
		return nil, err
	}
	return c, nil
}

// Addrs returns the addresses of the six nodes, to give a goredis.ClusterClient.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// Node returns the node at addr, or nil.
func (c *Cluster) Node(addr string) *Server {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// ClusterNode is a node as the cluster sees it.
type ClusterNode struct {
	Addr     string
	ID       string
	Master   bool
	MasterID string // of a replica: its master's ID
	Failed   bool   // flagged fail (or pfail) by the node that was asked
	Slots    int    // how many slots it serves (a master)
}

// Topology asks the live nodes, in order, for CLUSTER NODES, and returns the first answer.
func (c *Cluster) Topology(ctx context.Context) ([]ClusterNode, error) {
	var lastErr error
	for _, n := range c.Nodes {
		cl := goredis.NewClient(&goredis.Options{Addr: n.Addr, MaxRetries: -1, DialTimeout: time.Second})
		out, err := cl.ClusterNodes(ctx).Result()
		_ = cl.Close()
		if err != nil {
			lastErr = err
			continue
		}
		return parseClusterNodes(out), nil
	}
	return nil, fmt.Errorf("cluster: no node answered CLUSTER NODES: %w", lastErr)
}

// Masters returns the nodes that are masters serving slots and not flagged failed, as the first
// live node sees them.
func (c *Cluster) Masters(ctx context.Context) ([]*Server, error) {
	nodes, err := c.Topology(ctx)
	if err != nil {
		return nil, err
	}
	var ms []*Server
	for _, n := range nodes {
		if n.Master && !n.Failed && n.Slots > 0 {
			if s := c.Node(n.Addr); s != nil {
				ms = append(ms, s)
			}
		}
	}
	return ms, nil
}

// parseClusterNodes reads the answer of CLUSTER NODES: a line per node,
// "<id> <ip:port@cport> <flags> <master id or -> <ping> <pong> <epoch> <link> <slot ranges...>".
func parseClusterNodes(out string) []ClusterNode {
	var nodes []ClusterNode
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		n := ClusterNode{Addr: addr, ID: f[0]}
		for _, flag := range strings.Split(f[2], ",") {
			switch flag {
			case "master":
				n.Master = true
			case "fail", "fail?":
				n.Failed = true
			}
		}
		if f[3] != "-" {
			n.MasterID = f[3]
		}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being migrated
			}
			lo, hi, isRange := strings.Cut(r, "-")
			a, err1 := strconv.Atoi(lo)
			b, err2 := a, error(nil)
			if isRange {
				b, err2 = strconv.Atoi(hi)
			}
			if err1 == nil && err2 == nil {
				n.Slots += b - a + 1
			}
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// WaitHealthy waits until every live node says cluster_state:ok with all 16384 slots served by
// three masters, and every live replica's link to its master is up, for up to timeout.
func (c *Cluster) WaitHealthy(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var why error
	for {
		if why = c.healthy(ctx); why == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster %v not healthy within %v: %w", c.Addrs(), timeout, why)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) healthy(ctx context.Context) error {
	live := 0
	for _, n := range c.Nodes {
		if !n.running() {
			continue
		}
		live++
		cl := goredis.NewClient(&goredis.Options{Addr: n.Addr, MaxRetries: -1, DialTimeout: time.Second})
		err := func() error {
			defer cl.Close()
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil {
				return fmt.Errorf("%s: CLUSTER INFO: %w", n.Addr, err)
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
				return fmt.Errorf("%s: CLUSTER INFO says %q", n.Addr, strings.Join(strings.Fields(info)[:4], " "))
			}
			repl, err := cl.Info(ctx, "replication").Result()
			if err != nil {
				return fmt.Errorf("%s: INFO replication: %w", n.Addr, err)
			}
			if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
				return fmt.Errorf("%s: a replica whose link to its master is not up yet", n.Addr)
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	nodes, err := c.Topology(ctx)
	if err != nil {
		return err
	}
	masters := 0
	for _, n := range nodes {
		if n.Master && !n.Failed && n.Slots > 0 {
			masters++
		}
	}
	if masters != 3 {
		return fmt.Errorf("%d masters serve slots, want 3", masters)
	}
	if live == 0 {
		return errors.New("no node is running")
	}
	return nil
}

// running reports whether the server's process is running (not stopped or killed by the test).
func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}
