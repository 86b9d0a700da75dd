package testserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// SentinelDownAfter is the down-after-milliseconds of the Sentinel setups StartSentinel starts:
// a master that does not answer for this long is subjectively down, and the sentinels fail it
// over a second or two later.
const SentinelDownAfter = 1000 * time.Millisecond

// SentinelMaster is the name the sentinels of StartSentinel monitor their master under.
const SentinelMaster = "dogpile"

// Sentinel is a Redis Sentinel setup of the test's own on free loopback ports: a master, a
// replica of it, and three sentinels that monitor the master with a quorum of two.
type Sentinel struct {
	// Master and Replica are the servers as started; a failover swaps their roles (ask
	// MasterAddr which is the master now).
	Master, Replica *Server
	Sentinels       []*Server
}

// StartSentinel starts a master, a replica and three sentinels for tb, waits until the replica is
// in sync and every sentinel knows the replica and the other two sentinels, and stops them all
// when tb ends. Nothing is kept on disk but the sentinels' own configuration files, which
// Sentinel rewrites as it learns, in tb.TempDir(). It fails tb, with what the servers said, when
// the setup cannot be made.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	s, err := newSentinel(tb.TempDir(), tb.Cleanup)
	if err != nil {
		tb.Fatalf("testserver: %v", err)
	}
	return s
}

func newSentinel(dir string, cleanup func(func())) (*Sentinel, error) {
	redis := func(name string, extra ...string) (*Server, error) {
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
		s, err := newServer("redis-server", func(port int) []string {
			return append([]string{"redis-server",
				"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
				"--save", "", "--appendonly", "no", "--dir", d,
				"--daemonize", "no", "--loglevel", "warning"}, extra...)
		}, pingRedis)
		if err != nil {
			return nil, fmt.Errorf("sentinel setup, %s: %w", name, err)
		}
		cleanup(s.Close)
		return s, nil
	}
	master, err := redis("master")
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(master.Addr)
	replica, err := redis("replica", "--replicaof", host, port)
	if err != nil {
		return nil, err
	}
	st := &Sentinel{Master: master, Replica: replica}
	for i := range 3 {
		d := filepath.Join(dir, "sentinel"+strconv.Itoa(i))
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
		conf := filepath.Join(d, "sentinel.conf")
		s, err := newServer("redis-server", func(p int) []string {
			// Sentinel needs a configuration file it can rewrite; it is written afresh at each
			// Start, so a sentinel started again forgets what it had learnt and learns it anew.
			text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n", p, d) +
				fmt.Sprintf("sentinel monitor %s %s %s 2\n", SentinelMaster, host, port) +
				fmt.Sprintf("sentinel down-after-milliseconds %s %d\n", SentinelMaster, SentinelDownAfter.Milliseconds()) +
				fmt.Sprintf("sentinel failover-timeout %s %d\n", SentinelMaster, 10*SentinelDownAfter.Milliseconds()) +
				fmt.Sprintf("sentinel parallel-syncs %s 1\n", SentinelMaster)
			_ = os.WriteFile(conf, []byte(text), 0o644) // an unwritable file makes the server say so
			return []string{"redis-server", conf, "--sentinel", "--loglevel", "warning"}
		}, pingRedis)
		if err != nil {
			return nil, fmt.Errorf("sentinel setup, sentinel %d: %w", i, err)
		}
		cleanup(s.Close)
		st.Sentinels = append(st.Sentinels, s)
	}
	if err := st.WaitReady(20 * time.Second); err != nil {
		return nil, err
	}
	return st, nil
}

// Addrs returns the addresses of the sentinels, to give goredis.FailoverOptions.SentinelAddrs.
func (s *Sentinel) Addrs() []string {
	addrs := make([]string, len(s.Sentinels))
	for i, n := range s.Sentinels {
		addrs[i] = n.Addr
	}
	return addrs
}

// Server returns the master or the replica, whichever is at addr, or nil.
func (s *Sentinel) Server(addr string) *Server {
	for _, n := range []*Server{s.Master, s.Replica} {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// MasterAddr asks the first sentinel that answers for the master's address.
func (s *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	var lastErr error
	for _, n := range s.Sentinels {
		sc := goredis.NewSentinelClient(&goredis.Options{Addr: n.Addr, MaxRetries: -1, DialTimeout: time.Second})
		addr, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
		_ = sc.Close()
		if err == nil && len(addr) == 2 {
			return net.JoinHostPort(addr[0], addr[1]), nil
		}
		lastErr = err
	}
	return "", fmt.Errorf("sentinel: no sentinel named the master: %v", lastErr)
}

// WaitReady waits, for up to timeout, until every running sentinel agrees on the master, knows
// one replica and two other sentinels, and the replica's link to the master is up.
func (s *Sentinel) WaitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var why error
	for {
		if why = s.ready(ctx); why == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sentinel setup not ready within %v: %w", timeout, why)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Sentinel) ready(ctx context.Context) error {
	master := ""
	for _, n := range s.Sentinels {
		if !n.running() {
			continue
		}
		sc := goredis.NewSentinelClient(&goredis.Options{Addr: n.Addr, MaxRetries: -1, DialTimeout: time.Second})
		m, err := sc.Master(ctx, SentinelMaster).Result()
		_ = sc.Close()
		if err != nil {
			return fmt.Errorf("sentinel %s: SENTINEL MASTER: %w", n.Addr, err)
		}
		addr := net.JoinHostPort(m["ip"], m["port"])
		if master != "" && addr != master {
			return fmt.Errorf("sentinels disagree on the master: %s and %s", master, addr)
		}
		master = addr
		if m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" || m["flags"] != "master" {
			return fmt.Errorf("sentinel %s: master %s has flags %s, %s replicas, %s other sentinels; want master, 1, 2",
				n.Addr, addr, m["flags"], m["num-slaves"], m["num-other-sentinels"])
		}
	}
	replica := s.Replica
	if replica.Addr == master {
		replica = s.Master
	}
	if !replica.running() {
		return nil // nothing to wait for
	}
	c := goredis.NewClient(&goredis.Options{Addr: replica.Addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	repl, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return fmt.Errorf("replica %s: %w", replica.Addr, err)
	}
	if !strings.Contains(repl, "master_link_status:up") {
		return fmt.Errorf("replica %s: link to the master not up", replica.Addr)
	}
	return nil
}

// StartMemcachedPool starts n memcached servers for tb (see StartMemcached), for a client that
// spreads keys over them; they stop when tb ends.
func StartMemcachedPool(tb testing.TB, n int) []*Memcached {
	tb.Helper()
	pool := make([]*Memcached, n)
	for i := range pool {
		pool[i] = StartMemcached(tb)
	}
	return pool
}
