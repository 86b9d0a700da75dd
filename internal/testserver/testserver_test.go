package testserver

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
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

// Start fails when another process holds the port (freePort's race, or a Stop/Kill then Start while
// another package's server took the port): it checks that its own process is alive, so a ping
// answered by the other process is not taken for readiness, and the test does not go on against
// someone else's server.
func TestStartFailsAgainstAForeignServer(t *testing.T) {
	a := StartRedis(t)
	b := &Server{Addr: a.Addr, name: a.name, args: a.args, ready: pingRedis, port: a.port}
	err := b.Start()
	defer b.Kill()
	if err == nil {
		time.Sleep(200 * time.Millisecond)
		b.mu.Lock()
		pid := b.cmd.Process.Pid
		b.mu.Unlock()
		t.Errorf("Start returned nil on %s, whose port another redis-server holds; its own process %d exited: %v",
			b.Addr, pid, exited(pid))
	}
}

// The servers die with the test binary that started them, also when it dies without running its
// cleanups (go test -timeout's panic, a SIGKILL from the CI, a Ctrl-C): none keeps running on a
// machine shared with other runs.
func TestServersDieWithTheirTest(t *testing.T) {
	if os.Getenv("TESTSERVER_ORPHAN_CHILD") == "1" {
		dir, err := os.MkdirTemp("", "orphan-")
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewRedis(dir)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("%s %d %s\n", s.Addr, s.cmd.Process.Pid, dir)
		os.Exit(0) // dies as a timed-out test binary does: no cleanup
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServersDieWithTheirTest$")
	cmd.Env = append(os.Environ(), "TESTSERVER_ORPHAN_CHILD=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var addr, dir string
	var pid int
	if _, err := fmt.Sscan(string(out), &addr, &pid, &dir); err != nil {
		t.Fatalf("child said %q: %v", out, err)
	}
	defer os.RemoveAll(dir)
	time.Sleep(100 * time.Millisecond)
	if err := pingRedis(addr); err == nil {
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill() // the orphan this test made
		}
		t.Errorf("redis-server %d on %s still runs after the test binary that started it exited", pid, addr)
	}
}
