// Package testserver starts real servers for tests: a redis-server or a memcached of the test's
// own on a free loopback port, stopped when the test (or TestMain) ends. Tests talk to real servers, never to
// mocks, and never to a server they did not start, so runs do not see each other's keys.
//
// A missing server binary is a test failure, never a skip: `make test` installs what is missing
// (scripts/ensure-servers.sh) before it runs the tests.
package testserver

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is a server process of the test's own, on a free loopback port.
type Server struct {
	// Addr is host:port on 127.0.0.1.
	Addr string

	name  string
	args  func(port int) []string // the command line, for the port
	ready func(addr string) error // nil once the server answers

	port int
	mu   sync.Mutex
	cmd  *exec.Cmd // nil while stopped; guarded by mu
}

// Redis is a redis-server of the test's own.
type Redis = Server

// Memcached is a memcached of the test's own.
type Memcached = Server

// StartRedis starts a redis-server for tb and stops it when tb ends. It fails tb if redis-server
// cannot start (not installed: run `make test`, or apt-get install redis-server).
func StartRedis(tb testing.TB) *Redis {
	tb.Helper()
	r, err := NewRedis(tb.TempDir())
	if err != nil {
		tb.Fatalf("testserver: %v", err)
	}
	tb.Cleanup(r.Close)
	return r
}

// NewRedis starts a redis-server that keeps its files in dir, for a TestMain that shares one
// server across a package's tests; Close stops it.
func NewRedis(dir string) (*Redis, error) {
	return newServer("redis-server", func(port int) []string {
		return []string{"redis-server",
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir,
			"--daemonize", "no", "--loglevel", "warning"}
	}, pingRedis)
}

// StartMemcached starts a memcached for tb and stops it when tb ends. Its item size limit is
// 2 MiB (-I 2m), above the 1 MiB values of the conformance suite. It fails tb if memcached cannot
// start (not installed: run `make test`, or apt-get install memcached).
func StartMemcached(tb testing.TB) *Memcached {
	tb.Helper()
	m, err := NewMemcached()
	if err != nil {
		tb.Fatalf("testserver: %v", err)
	}
	tb.Cleanup(m.Close)
	return m
}

// StartMemcachedArgs is StartMemcached with extra memcached options after the usual ones, such as
// "-c", "64" for a server that refuses connections beyond 64 ("ERROR Too many open connections").
func StartMemcachedArgs(tb testing.TB, extra ...string) *Memcached {
	tb.Helper()
	m, err := newMemcached(extra)
	if err != nil {
		tb.Fatalf("testserver: %v", err)
	}
	tb.Cleanup(m.Close)
	return m
}

// NewMemcached starts a memcached for a TestMain that shares one server across a package's
// tests; Close stops it.
func NewMemcached() (*Memcached, error) { return newMemcached(nil) }

func newMemcached(extra []string) (*Memcached, error) {
	return newServer("memcached", func(port int) []string {
		args := []string{"memcached", "-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "64", "-I", "2m"}
		if os.Geteuid() == 0 {
			args = append(args, "-u", "root") // memcached refuses to run as root without it
		}
		return append(args, extra...)
	}, pingMemcached)
}

func newServer(name string, args func(int) []string, ready func(string) error) (*Server, error) {
	if _, err := exec.LookPath(name); err != nil {
		return nil, fmt.Errorf("%s is not installed: run `make test`, which installs it, or apt-get install %s", name, name)
	}
	// A port freePort found free may be taken before the server binds it (by another test's
	// server, say): the server then exits, and a new port is tried, up to three times.
	var err error
	for range 3 {
		var port int
		if port, err = freePort(); err != nil {
			return nil, err
		}
		s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), name: name, args: args, ready: ready, port: port}
		if err = s.Start(); err == nil {
			return s, nil
		}
	}
	return nil, err
}

// Start starts the server again on the same port after Stop. It waits until the server answers,
// for up to 10 seconds.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	argv := s.args(s.port)
	cmd := exec.Command(argv[0], argv[1:]...)
	dieWithParent(cmd) // a test binary killed by go test's timeout leaves no server behind
	// The server's output goes to a file, not a pipe: a pipe needs a goroutine to copy it for as
	// long as the server runs, and the leak checks of TestMain would see it. The file is unlinked
	// once the server answers; the server keeps writing to it until it exits.
	out, err := os.CreateTemp("", "testserver-"+s.name+"-*.log")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Start()
	_ = out.Close()
	if err != nil {
		return fmt.Errorf("start %s: %w", s.name, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.ready(s.Addr)
		if err == nil {
			// Ours, not another process that holds the port (freePort's race, or a port taken
			// between Stop and Start): that one would answer while ours exits.
			pid, perr := serverPid(s.name, s.Addr)
			if perr == nil && pid == cmd.Process.Pid {
				break
			}
			if perr == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				return fmt.Errorf("%s on %s: another process (pid %d) answers on the port; ours said: %s", s.name, s.Addr, pid, said(out.Name()))
			}
			err = perr
		}
		if exited(cmd.Process.Pid) {
			_ = cmd.Wait()
			return fmt.Errorf("%s on %s exited before it answered (%v); it said: %s", s.name, s.Addr, cmd.ProcessState, said(out.Name()))
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return fmt.Errorf("%s on %s did not answer within 10s: %w; it said: %s", s.name, s.Addr, err, said(out.Name()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.cmd = cmd
	return nil
}

// Stop stops the server (SIGTERM, then SIGKILL after 5 seconds) and waits for it to exit. Data is
// lost: the servers keep nothing on disk.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // a paused server acts on SIGTERM only once resumed
	done := make(chan struct{})
	go func() {
		_ = s.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// Kill kills the server with SIGKILL, as a crash would, and waits for it to exit: it gets no
// chance to close its connections or tell its peers. Start starts it again on the same port.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Pause stops the server's process with SIGSTOP, for tests of clients against a hung server: the
// kernel still accepts connections on its port (up to the listen backlog) and takes what clients
// send, but nothing answers. Resume, which Pause registers with tb.Cleanup so that the server can
// be stopped, lets it go on. Pause fails tb if the server is not running.
func (s *Server) Pause(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		tb.Fatalf("testserver: Pause: %s on %s is not running", s.name, s.Addr)
	}
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		tb.Fatalf("testserver: Pause: %v", err)
	}
	tb.Cleanup(s.Resume)
	// The signal is delivered asynchronously: wait until the process is stopped, or a request
	// sent right after Pause may still be answered.
	for deadline := time.Now().Add(5 * time.Second); !stopped(s.cmd.Process.Pid); {
		if time.Now().After(deadline) {
			tb.Fatalf("testserver: Pause: %s on %s did not stop within 5s", s.name, s.Addr)
		}
		time.Sleep(time.Millisecond)
	}
}

// Resume lets a paused server go on (SIGCONT). Resuming a server that is not paused, or not
// running, does nothing.
func (s *Server) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// Close stops the server; it is Stop under the name Cleanup and TestMain expect.
func (s *Server) Close() { s.Stop() }

// freePort asks the kernel for a free loopback port. Another process could take it before the
// server binds it; Start then fails and says so.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// pingRedis sends PING in the inline protocol and expects +PONG.
func pingRedis(addr string) error {
	return ask(addr, "PING\r\n", "+PONG")
}

// pingMemcached sends version and expects VERSION.
func pingMemcached(addr string) error {
	return ask(addr, "version\r\n", "VERSION")
}

// serverPid asks the server on addr for its process id: INFO server's process_id for Redis (and
// Sentinel), stats' pid for memcached.
func serverPid(name, addr string) (int, error) {
	req, field, end := "INFO server\r\n", "process_id:", ""
	if name == "memcached" {
		req, field, end = "stats\r\n", "STAT pid ", "END"
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		return 0, err
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, fmt.Errorf("%s on %s: no %q in its answer: %w", name, addr, strings.TrimSpace(field), err)
		}
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, field); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
		if end != "" && line == end {
			return 0, fmt.Errorf("%s on %s: no %q in its stats", name, addr, strings.TrimSpace(field))
		}
	}
}

// ask sends req and expects a first line starting with want.
func ask(addr, req, want string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, want) {
		return fmt.Errorf("%q answered %q", strings.TrimSpace(req), strings.TrimSpace(line))
	}
	return nil
}

// exited reports whether the process pid has exited (it is gone, or a zombie waiting for Wait),
// without waiting for it: Linux's /proc says. Elsewhere it reports false, and a server that
// exits at once is reported after Start's 10 seconds instead.
func exited(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return runtime.GOOS == "linux"
	}
	// "pid (comm) state ...": comm may hold spaces and parentheses; the state follows the last ')'.
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X')
}

// stopped reports whether the process pid is stopped by a signal, as Linux's /proc says.
// Elsewhere it reports true at once, and Pause returns without waiting.
func stopped(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return runtime.GOOS != "linux"
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'T'
}

// said returns the last 2 KiB a server wrote to its output file, quoted, for the error of a
// server that does not start.
func said(name string) string {
	b, err := os.ReadFile(name)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return "(nothing)"
	}
	if len(b) > 2048 {
		b = b[len(b)-2048:]
	}
	return strconv.Quote(string(bytes.TrimSpace(b)))
}
