// Package fleettest runs a fleet of processes against one backend, to test the dogpile lock
// across processes: the test binary re-executes itself as child processes (as x/sync's tests
// do), each child calls one memo handle from many goroutines, and the parent coordinates them
// through their standard input and output.
//
// A package that uses it calls MaybeChild first thing in its TestMain:
//
//	func TestMain(m *testing.M) {
//		fleettest.MaybeChild()
//		goleak.VerifyTestMain(m)
//	}
//
// Backends are opened in the children from a URL (backends.Open), so the package that runs the
// fleet must import the backend's package for its registration. Creations are counted outside
// the processes, in a Counter every child shares: a Redis key or a file.
package fleettest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
	goredis "github.com/redis/go-redis/v9"
)

const envConfig = "DOGPILE_FLEETTEST_CHILD"

// Config is what every child of a fleet does.
type Config struct {
	// Role is "callers" (Goroutines callers per wave) or "holder" (one caller whose creator
	// never returns: the parent kills it mid-creation).
	Role string
	// BackendURL is opened with backends.Open in each child.
	BackendURL string
	// CounterURL names where creations are counted: redis://host:port/key or file:///path.
	CounterURL string
	// Key is the argument every call passes; the namespace is "fleettest".
	Key         string
	Goroutines  int
	Creator     time.Duration // how long the creator takes
	Expiration  time.Duration
	LockTimeout time.Duration
}

// Wave is what one child reports for one wave of concurrent calls.
type Wave struct {
	PID     int            `json:"pid"`
	Results map[string]int `json:"results"` // value returned -> how many callers got it
	Errors  []string       `json:"errors"`
	Slowest time.Duration  `json:"slowest"`
}

// Child is a running child process.
type Child struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	PID   int
	errMu sync.Mutex
}

// MaybeChild runs the child's role and exits if this process is a fleet child; otherwise it
// returns at once.
func MaybeChild() {
	raw := os.Getenv(envConfig)
	if raw == "" {
		return
	}
	var cfg Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "fleettest child: bad config:", err)
		os.Exit(2)
	}
	if err := runChild(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "fleettest child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Start starts n children with cfg and waits until each has said it is ready. They are killed
// when tb ends, if still running.
func Start(tb testing.TB, n int, cfg Config) []*Child {
	tb.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	children := make([]*Child, n)
	for i := range children {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envConfig+"="+string(raw))
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			tb.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			tb.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		c := &Child{cmd: cmd, in: in, out: bufio.NewScanner(out), PID: cmd.Process.Pid}
		c.out.Buffer(make([]byte, 64<<10), 1<<20)
		tb.Cleanup(func() {
			_ = c.in.Close()
			_ = c.cmd.Process.Kill()
			_ = c.cmd.Wait()
		})
		children[i] = c
	}
	for _, c := range children {
		if line := c.expectLine(tb); line != "ready" {
			tb.Fatalf("child %d: said %q, want ready", c.PID, line)
		}
	}
	return children
}

func (c *Child) expectLine(tb testing.TB) string {
	tb.Helper()
	if !c.out.Scan() {
		tb.Fatalf("child %d ended early: %v", c.PID, c.out.Err())
	}
	return c.out.Text()
}

// Go releases one wave in every child at once and returns what each reported.
func Go(tb testing.TB, children []*Child) []Wave {
	tb.Helper()
	for _, c := range children {
		if _, err := io.WriteString(c.in, "go\n"); err != nil {
			tb.Fatalf("child %d: %v", c.PID, err)
		}
	}
	waves := make([]Wave, len(children))
	for i, c := range children {
		line := c.expectLine(tb)
		if err := json.Unmarshal([]byte(line), &waves[i]); err != nil {
			tb.Fatalf("child %d: bad report %q: %v", c.PID, line, err)
		}
	}
	return waves
}

// WaitCreating waits until a holder child says its creator started.
func (c *Child) WaitCreating(tb testing.TB) {
	tb.Helper()
	if _, err := io.WriteString(c.in, "go\n"); err != nil {
		tb.Fatal(err)
	}
	if line := c.expectLine(tb); line != "creating" {
		tb.Fatalf("holder %d said %q, want creating", c.PID, line)
	}
}

// Kill sends SIGKILL to the child and waits for it to die.
func (c *Child) Kill(tb testing.TB) {
	tb.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		tb.Fatal(err)
	}
	_ = c.cmd.Wait()
}

// Count returns the number of creations counted at counterURL.
func Count(tb testing.TB, counterURL string) int {
	tb.Helper()
	c, err := openCounter(counterURL)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.close()
	n, err := c.get(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// Region returns a region configured as a child configures its own, for a parent that takes part
// in the fleet itself. It is closed when tb ends.
func Region(tb testing.TB, cfg Config) (*region.Region, *memo.Handle[string, string]) {
	tb.Helper()
	r, h, err := newHandle(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Close() })
	return r, h
}

func newHandle(cfg Config) (*region.Region, *memo.Handle[string, string], error) {
	b, err := backends.Open(cfg.BackendURL)
	if err != nil {
		return nil, nil, err
	}
	r := region.New("fleettest", region.WithExpiration(cfg.Expiration),
		region.WithLockTimeout(cfg.LockTimeout), region.WithLogger(slog.New(slog.DiscardHandler)))
	if err := r.Configure(b); err != nil {
		return nil, nil, err
	}
	counter, err := openCounter(cfg.CounterURL)
	if err != nil {
		_ = r.Close()
		return nil, nil, err
	}
	h := memo.Func(r, func(ctx context.Context, key string) (string, error) {
		n, err := counter.incr(ctx)
		if err != nil {
			return "", err
		}
		if cfg.Role == "holder" {
			fmt.Println("creating")
			select {} // killed here
		}
		time.Sleep(cfg.Creator)
		return "v" + strconv.Itoa(n), nil
	}, memo.WithNamespace("fleettest"))
	return r, h, nil
}

func runChild(cfg Config) error {
	r, h, err := newHandle(cfg)
	if err != nil {
		return err
	}
	defer r.Close()
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if cfg.Role == "holder" {
			_, _ = h.Call(context.Background(), cfg.Key) // never returns
			continue
		}
		w := wave(h, cfg)
		raw, err := json.Marshal(w)
		if err != nil {
			return err
		}
		fmt.Println(string(raw))
	}
	return in.Err()
}

// wave starts cfg.Goroutines callers at once and collects what they got.
func wave(h *memo.Handle[string, string], cfg Config) Wave {
	w := Wave{PID: os.Getpid(), Results: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range cfg.Goroutines {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			v, err := h.Call(context.Background(), cfg.Key)
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				w.Errors = append(w.Errors, err.Error())
				return
			}
			w.Results[v]++
			w.Slowest = max(w.Slowest, d)
		})
	}
	close(start)
	wg.Wait()
	slices.Sort(w.Errors)
	return w
}

// counter counts creations across processes.
type counter interface {
	incr(ctx context.Context) (int, error)
	get(ctx context.Context) (int, error)
	close()
}

func openCounter(raw string) (counter, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "redis":
		key := u.Path
		if len(key) > 1 {
			key = key[1:]
		}
		return &redisCounter{c: goredis.NewClient(&goredis.Options{Addr: u.Host}), key: key}, nil
	case "file":
		return fileCounter(u.Path), nil
	}
	return nil, fmt.Errorf("fleettest: unknown counter %q", raw)
}

type redisCounter struct {
	c   *goredis.Client
	key string
}

func (r *redisCounter) incr(ctx context.Context) (int, error) {
	n, err := r.c.Incr(ctx, r.key).Result()
	return int(n), err
}

func (r *redisCounter) get(ctx context.Context) (int, error) {
	n, err := r.c.Get(ctx, r.key).Int()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	return n, err
}

func (r *redisCounter) close() { _ = r.c.Close() }

// fileCounter appends one byte per creation: appends of one byte are atomic across processes
// on a local file system, so the file's size is the count.
type fileCounter string

func (f fileCounter) incr(context.Context) (int, error) {
	fd, err := os.OpenFile(string(f), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return 0, err
	}
	defer fd.Close()
	if _, err := fd.Write([]byte{'x'}); err != nil {
		return 0, err
	}
	st, err := fd.Stat()
	if err != nil {
		return 0, err
	}
	return int(st.Size()), nil
}

func (f fileCounter) get(context.Context) (int, error) {
	st, err := os.Stat(string(f))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return int(st.Size()), nil
}

func (fileCounter) close() {}
