package testserver

import "testing"

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
