// Package testserver starts real servers for tests: a redis-server of the test's own on a free
// loopback port, stopped when the test (or TestMain) ends. Tests talk to real servers, never to
// mocks, and never to a server they did not start, so runs do not see each other's keys.
//
// A missing server binary is a test failure, never a skip: `make test` installs what is missing
// (scripts/ensure-servers.sh) before it runs the tests.
package testserver

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Redis is a redis-server process of the test's own.
type Redis struct {
	// Addr is host:port on 127.0.0.1.
	Addr string

	port int
	dir  string

	mu  sync.Mutex
	cmd *exec.Cmd // nil while stopped
}

// StartRedis starts a redis-server for tb and stops it when tb ends. It fails tb if redis-server
// cannot start (not installed: run `make test`, or apt-get install redis-server).
func StartRedis(tb testing.TB) *Redis {
	tb.Helper()
	dir := tb.TempDir()
	r, err := NewRedis(dir)
	if err != nil {
		tb.Fatalf("testserver: %v", err)
	}
	tb.Cleanup(r.Close)
	return r
}

// NewRedis starts a redis-server that keeps its files in dir, for a TestMain that shares one
// server across a package's tests; Close stops it.
func NewRedis(dir string) (*Redis, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New("redis-server is not installed: run `make test`, which installs it, or apt-get install redis-server")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &Redis{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), port: port, dir: dir}
	if err := r.Start(); err != nil {
		return nil, err
	}
	return r, nil
}

// Start starts the server again on the same port after Stop. It waits until the server answers
// PING, for up to 10 seconds.
func (r *Redis) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return nil
	}
	cmd := exec.Command("redis-server",
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir,
		"--daemonize", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := ping(r.Addr); err == nil {
			break
		} else if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return fmt.Errorf("redis-server on %s did not answer PING within 10s: %w", r.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.cmd = cmd
	return nil
}

// Stop stops the server (SIGTERM, then SIGKILL after 5 seconds) and waits for it to exit. Data is
// lost: the server keeps nothing on disk.
func (r *Redis) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		_ = r.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
	r.cmd = nil
}

// Close stops the server; it is Stop under the name Cleanup and TestMain expect.
func (r *Redis) Close() { r.Stop() }

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

// ping sends PING in the inline protocol and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// InCI reports whether the tests run in CI (CI is set), where nothing may be skipped.
func InCI() bool { return os.Getenv("CI") != "" }
