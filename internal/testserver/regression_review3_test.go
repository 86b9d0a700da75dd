package testserver

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Start checks readiness by pinging the port before it checks that its own process is alive. When
// another process holds the port (freePort's race, or a Stop/Kill then Start while another
// package's server took the port), the new redis-server fails to bind and exits, but the ping is
// answered by the other process: Start reports success for a server that is not running, and the
// test goes on against someone else's server (Kill then kills nothing).
func TestReview3StartSucceedsAgainstAForeignServer(t *testing.T) {
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

// The servers are started without Pdeathsig (fleettest's children have it): when the test
// binary dies without running its cleanups (go test -timeout's panic, a SIGKILL from the CI, a
// Ctrl-C), every redis-server and memcached it started keeps running: six for a Cluster, five
// for a Sentinel setup, on a 2-core machine shared with other runs.
func TestReview3ServersOutliveTheirTest(t *testing.T) {
	if os.Getenv("REVIEW3_CHILD") == "1" {
		dir, err := os.MkdirTemp("", "review3-")
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
	cmd := exec.Command(os.Args[0], "-test.run=^TestReview3ServersOutliveTheirTest$")
	cmd.Env = append(os.Environ(), "REVIEW3_CHILD=1")
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
