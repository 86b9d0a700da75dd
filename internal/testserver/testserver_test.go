package testserver

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

func TestStopStart(t *testing.T) {
	for name, start := range map[string]func(testing.TB) *Server{"redis": StartRedis, "memcached": StartMemcached} {
		t.Run(name, func(t *testing.T) {
			s := start(t)
			if err := s.ready(s.Addr); err != nil {
				t.Fatal(err)
			}
			s.Stop()
			if err := s.ready(s.Addr); err == nil {
				t.Fatal("the server still answers after Stop")
			}
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			if err := s.ready(s.Addr); err != nil {
				t.Fatalf("after Start on the same port: %v", err)
			}
		})
	}
}

func TestCluster(t *testing.T) {
	c := StartCluster(t)
	nodes, err := c.Topology(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	masters, replicas, slots := 0, 0, 0
	for _, n := range nodes {
		if n.Master {
			masters++
			slots += n.Slots
		} else if n.MasterID != "" {
			replicas++
		}
	}
	if masters != 3 || replicas != 3 || slots != 16384 {
		t.Fatalf("%d masters serving %d slots, %d replicas; want 3, 16384, 3: %+v", masters, slots, replicas, nodes)
	}
}

func TestSentinel(t *testing.T) {
	s := StartSentinel(t)
	addr, err := s.MasterAddr(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if addr != s.Master.Addr {
		t.Fatalf("the sentinels name %s the master, want %s", addr, s.Master.Addr)
	}
}

func TestPauseResume(t *testing.T) {
	for name, start := range map[string]func(testing.TB) *Server{"redis": StartRedis, "memcached": StartMemcached} {
		t.Run(name, func(t *testing.T) {
			s := start(t)
			s.Pause(t)
			if err := s.ready(s.Addr); err == nil {
				t.Fatal("a paused server answers")
			}
			s.Resume()
			if err := s.ready(s.Addr); err != nil {
				t.Fatalf("after Resume: %v", err)
			}
			s.Pause(t) // left paused: Cleanup resumes it, and the server stops
		})
	}
}

func TestMemcachedArgs(t *testing.T) {
	s := StartMemcachedArgs(t, "-c", "32")
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("stats settings\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "STAT maxconns ") {
			if got := strings.TrimSpace(strings.TrimPrefix(line, "STAT maxconns ")); got != "32" {
				t.Fatalf("maxconns %s; want 32", got)
			}
			return
		}
		if strings.HasPrefix(line, "END") {
			t.Fatal("no maxconns in stats settings")
		}
	}
}
