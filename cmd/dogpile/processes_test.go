package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/memory"
	"github.com/dogpile-go/dogpile/config"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
)

// buildBinary builds the command into a directory of t's and returns its path.
func buildBinary(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(build.Default.GOROOT, "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "dogpile")
	if out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// execDogpile runs the built binary with args and the environment env added to the test's.
func execDogpile(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{stdout.String(), stderr.String(), code}
}

// usersNS is the namespace of the application's memo handle in these tests, as
// memo.WithNamespace sets it.
const usersNS = "example.com/app/users.Load"

// envProcess carries a processSpec, as JSON, to a child process of the test binary: its presence
// makes the process an application process (runIfProcess) instead of a test run.
const envProcess = "DOGPILE_CMD_TEST_PROCESS"

// processSpec is what an application process is started with.
type processSpec struct {
	Name   string        `json:"name"`    // names the values its function creates: "<name>-v<n>"
	Config string        `json:"config"`  // the document's file, as the command reads it
	MaxAge time.Duration `json:"max_age"` // of the users region's local cache
}

// errNoCreate is what a process's function returns unless it was asked to create: a call that
// is not served the cached value runs the function, which fails, and stores and announces nothing.
var errNoCreate = errors.New("creation refused by the test")

// answer is what an application process says of its calls of the memo handle for 42.
type answer struct {
	Name    string `json:"name,omitempty"` // the Name of the user the call returned
	Refused bool   `json:"refused"`        // the call returned errNoCreate
	Err     string `json:"err,omitempty"`  // any other error the call returned
	Ran     bool   `json:"ran"`            // the function ran during the call
	Held    bool   `json:"held"`           // the key is in the local cache after the call
	// A watch's end: when (Unix nanoseconds) the call was first not served the value, or Still
	// when it was served it until the deadline.
	At    int64 `json:"at,omitempty"`
	Still bool  `json:"still,omitempty"`
}

// runIfProcess serves as an application process and exits, if the environment says this is one
// (envProcess); otherwise it returns at once. TestMain calls it first.
func runIfProcess() {
	raw := os.Getenv(envProcess)
	if raw == "" {
		return
	}
	quietRedis()
	var spec processSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "process:", err)
		os.Exit(2)
	}
	if err := serveProcess(spec, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "process %s: %v\n", spec.Name, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveProcess is an application process: it configures its regions from the document, users
// with a local cache, makes a memo handle on users, says "ready", and answers each line of in
// with an answer, as JSON on a line of out, until in ends:
//
//	call                  one call, the function refusing to create
//	create                one call, the function creating "<name>-v<n>" if it runs
//	watch <value> <ns>    calls, the function refusing, until one is not served <value> or the
//	                      deadline (Unix nanoseconds) passes; answers the last call
func serveProcess(spec processSpec, in io.Reader, out io.Writer) error {
	doc, err := config.ReadFile(spec.Config)
	if err != nil {
		return err
	}
	l1 := memory.New()
	defer l1.Close()
	users := region.New("users", region.WithLocalCache(l1, spec.MaxAge))
	sessions := region.New("sessions")
	if err := config.Configure(doc, nil, users, sessions); err != nil {
		return err
	}
	defer users.Close()
	defer sessions.Close()
	var create atomic.Bool // the function creates; it refuses otherwise
	var runs, created atomic.Int64
	h := memo.Func(users, func(_ context.Context, id int) (user, error) {
		runs.Add(1)
		if !create.Load() {
			return user{}, errNoCreate
		}
		return user{ID: id, Name: fmt.Sprintf("%s-v%d", spec.Name, created.Add(1))}, nil
	}, memo.WithNamespace(usersNS))
	ctx := context.Background()
	call := func() answer {
		before := runs.Load()
		u, err := h.Call(ctx, 42)
		a := answer{Name: u.Name, Ran: runs.Load() != before}
		switch {
		case errors.Is(err, errNoCreate):
			a.Name, a.Refused = "", true
		case err != nil:
			a.Name, a.Err = "", err.Error()
		}
		_, err = l1.GetValue(ctx, usersNS+"|i:42")
		a.Held = err == nil
		return a
	}
	enc := json.NewEncoder(out)
	if _, err := fmt.Fprintln(out, "ready"); err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		var a answer
		switch f := strings.Fields(sc.Text()); {
		case len(f) == 1 && f[0] == "call":
			a = call()
		case len(f) == 1 && f[0] == "create":
			create.Store(true)
			a = call()
			create.Store(false)
		case len(f) == 3 && f[0] == "watch":
			ns, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				return err
			}
			deadline := time.Unix(0, ns)
			for {
				a = call()
				now := time.Now()
				if a.Err != "" || a.Name != f[1] {
					a.At = now.UnixNano()
					break
				}
				if now.After(deadline) {
					a.Still = true
					break
				}
				time.Sleep(time.Millisecond)
			}
		default:
			return fmt.Errorf("unknown request %q", sc.Text())
		}
		if err := enc.Encode(a); err != nil {
			return err
		}
	}
	return sc.Err()
}

// process is an application process of the test's: the test binary run as one (runIfProcess).
type process struct {
	name  string
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string // its standard output, a line at a time; closed at its end
}

// answerTimeout bounds how long the test waits for a process's line: one that hangs fails the
// test rather than hanging it.
const answerTimeout = time.Minute

// startProcess starts the application process name, configured from the document in file, and
// waits until it is ready. It is stopped when t ends: its standard input is closed, on which it
// closes its regions and exits, and it is killed if it has not within a few seconds.
func startProcess(t *testing.T, name, file string, maxAge time.Duration) *process {
	t.Helper()
	spec, err := json.Marshal(processSpec{Name: name, Config: file, MaxAge: maxAge})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envProcess+"="+string(spec))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{name: fmt.Sprintf("process %s (pid %d)", name, cmd.Process.Pid), cmd: cmd, in: in, lines: make(chan string, 4)}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = p.in.Close()
		kill := time.After(5 * time.Second)
		for open := true; open; { // its output to the end, which ends the reader
			select {
			case _, open = <-p.lines:
			case <-kill:
				t.Errorf("%s did not exit when its input closed: killed", p.name)
				_ = p.cmd.Process.Kill()
			}
		}
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("%s: %v", p.name, err)
		}
	})
	if line := p.line(t); line != "ready" {
		t.Fatalf("%s said %q, want ready", p.name, line)
	}
	return p
}

// line returns the process's next line of output.
func (p *process) line(t *testing.T) string {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			t.Fatalf("%s ended", p.name)
		}
		return line
	case <-time.After(answerTimeout):
		t.Fatalf("%s did not answer within %v", p.name, answerTimeout)
		return ""
	}
}

// send sends the process a request.
func (p *process) send(t *testing.T, req string) {
	t.Helper()
	if _, err := io.WriteString(p.in, req+"\n"); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
}

// answer reads the process's answer to a request; a call that failed other than by the
// function's refusal fails t.
func (p *process) answer(t *testing.T) answer {
	t.Helper()
	line := p.line(t)
	var a answer
	if err := json.Unmarshal([]byte(line), &a); err != nil {
		t.Fatalf("%s: bad answer %q: %v", p.name, line, err)
	}
	if a.Err != "" {
		t.Fatalf("%s: Call: %s", p.name, a.Err)
	}
	return a
}

// ask sends the process a request and returns its answer.
func (p *process) ask(t *testing.T, req string) answer {
	t.Helper()
	p.send(t, req)
	return p.answer(t)
}

// fillBoth has process a create the value for 42 (if it has none) and b read it, so that both hold it in their
// local caches and serve it from there, and returns its name.
func fillBoth(t *testing.T, a, b *process) string {
	t.Helper()
	got := a.ask(t, "create") // or finds the value a test before this one left
	if got.Name == "" {
		t.Fatalf("%s has no value: %+v", a.name, got)
	}
	name := got.Name
	// a's creation was announced, and b may have been asked to drop the key just now: read it
	// until b serves the value from its own cache.
	deadline := time.Now().Add(5 * time.Second)
	for b.ask(t, "call").Name != name {
		if time.Now().After(deadline) {
			t.Fatalf("%s does not serve %s", b.name, name)
		}
	}
	for _, p := range []*process{a, b} {
		if got := p.ask(t, "call"); got.Name != name || got.Ran || !got.Held {
			t.Fatalf("%s: %+v, want %s served from its local cache without running the function", p.name, got, name)
		}
	}
	return name
}

// whileServed has each of ps call for 42 until it is not served the value named want, from
// before run runs until limit after, and returns how long after run started each was first not
// served it. A process whose call was not served want must have run the function for it.
func whileServed(t *testing.T, want string, limit time.Duration, run func(), ps ...*process) []time.Duration {
	t.Helper()
	start := time.Now()
	for _, p := range ps {
		p.send(t, fmt.Sprintf("watch %s %d", want, start.Add(limit).UnixNano()))
	}
	run()
	took := make([]time.Duration, len(ps))
	for i, p := range ps {
		a := p.answer(t)
		if a.Still {
			t.Fatalf("%s still serves %s %v after the command", p.name, want, limit)
		}
		if !a.Ran || !a.Refused {
			t.Errorf("%s was not served %s, and the function did not run: %+v", p.name, want, a)
		}
		took[i] = time.Unix(0, a.At).Sub(start)
	}
	return took
}

// TestCommandsReachProcessesLocalCaches runs the built command against two application processes
// (the test binary run as one: serveProcess), each with a region with a local cache configured
// from the document the command reads, and a memo handle: delete and invalidate (keys, -match,
// -hard, -soft) given the region make both stop serving the value at once, where a deletion
// without the region leaves it served until the local caches' max age; and get finds what a memo
// handle stored from the key as the code writes it.
func TestCommandsReachProcessesLocalCaches(t *testing.T) {
	bin := buildBinary(t)
	u, prefix := redisURL(t)
	const maxAge = 3 * time.Second
	file := filepath.Join(t.TempDir(), "app.yaml")
	yaml := fmt.Sprintf("regions:\n  users:\n    backend: redis://%s/0\n    arguments: {prefix: %q}\n    shared_invalidation: 1m\n  sessions:\n    backend: memory://\n", server.Addr, prefix)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startProcess(t, "A", file, maxAge)
	b := startProcess(t, "B", file, maxAge)
	cfg := []string{"-config", file, "-region", "users"}
	key := []string{"-fn", usersNS, "42"}

	t.Run("get finds what a memo handle stored", func(t *testing.T) {
		name := fillBoth(t, a, b)
		r := execDogpile(t, bin, nil, append(append([]string{"get"}, cfg...), key...)...)
		r.want(t, exitOK)
		r.contains(t, "key:         "+usersNS+"|i:42\n", `"name": "`+name+`"`)
		// The region configured from the environment alone, as config.Load("") reads it.
		r = execDogpile(t, bin, []string{config.EnvName("users", "backend") + "=" + u}, "get", "-region", "users", "-fn", usersNS, "42")
		r.want(t, exitOK)
		r.contains(t, `"name": "`+name+`"`)
		// A guessed type that is not the function's: not found, and the message says how the
		// key was built.
		r = execDogpile(t, bin, nil, append(append([]string{"get"}, cfg...), "-fn", usersNS, "-types", "int64", "42")...)
		r.want(t, exitFailure)
		r.contains(t, "|i64:42", `"42" as int64`)
		r = execDogpile(t, bin, nil, append([]string{"get", "-config", file, "-region", "userz"}, key...)...)
		r.want(t, exitUsage)
		r.contains(t, `no region "userz" in `+file+" (regions: sessions, users;")
	})

	t.Run("delete without the region leaves local caches serving", func(t *testing.T) {
		name := fillBoth(t, a, b)
		var r result
		took := whileServed(t, name, 2*maxAge, func() {
			r = execDogpile(t, bin, nil, "delete", u, "-raw", usersNS+"|i:42")
		}, a, b)
		r.want(t, exitOK)
		r.contains(t, "not announced (no -region)")
		t.Logf("without -region, the deleted value was served for %v (A) and %v (B): the local max age is %v", took[0], took[1], maxAge)
		if took[0] < maxAge/2 || took[1] < maxAge/2 {
			t.Errorf("served for %v and %v only: something else dropped it", took[0], took[1])
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"delete", append(append([]string{"delete"}, cfg...), key...), []string{"(it existed)", `announced to the processes of region "users"`}},
		{"delete given a URL and the region", []string{"delete", u, "-region", "users", "-raw", usersNS + "|i:42"}, []string{`announced to the processes of region "users"`}},
		{"invalidate keys", append(append([]string{"invalidate"}, cfg...), "-fn", usersNS, "42", "43"), []string{"2 key(s) deleted, 1 of them held an entry", "announced"}},
		{"invalidate -match", append(append([]string{"invalidate"}, cfg...), "-match", usersNS+"|*"), []string{"key(s) matching", "announced"}},
		{"invalidate -hard", append(append([]string{"invalidate"}, cfg...), "-hard"), []string{`invalidated region "users" (hard)`, "stored in redis://", "announced"}},
		{"invalidate -soft", append(append([]string{"invalidate"}, cfg...), "-soft"), []string{`invalidated region "users" (soft)`, "announced"}},
	} {
		t.Run(tc.name+" reaches local caches at once", func(t *testing.T) {
			name := fillBoth(t, a, b)
			var r result
			var ran time.Duration
			// Well within the local max age: the announcement, not the age, dropped it.
			took := whileServed(t, name, maxAge/2, func() {
				start := time.Now()
				r = execDogpile(t, bin, nil, tc.args...)
				ran = time.Since(start)
			}, a, b)
			r.want(t, exitOK)
			r.contains(t, tc.want...)
			if r.stderr != "" {
				t.Errorf("stderr: %s", r.stderr)
			}
			t.Logf("%s: processes A and B stopped serving the value %v and %v after the command started (the command ran %v)", tc.name, took[0], took[1], ran)
		})
	}

	t.Run("stats shows the stored invalidations and where the counters are", func(t *testing.T) {
		r := execDogpile(t, bin, nil, append([]string{"stats"}, cfg...)...)
		r.want(t, exitOK)
		r.contains(t, "region:     users\n", "  hard invalidation: 20", "  soft invalidation: 20", "counted in each process", "PublishExpvar")
	})

	t.Run("invalidate -hard warns when the region does not share invalidations", func(t *testing.T) {
		r := execDogpile(t, bin, nil, "invalidate", u, "-region", "users", "-hard")
		r.want(t, exitOK)
		r.contains(t, "give no shared_invalidation", "announced")
		if !strings.Contains(r.stderr, "warning") {
			t.Errorf("no warning on stderr: %q", r.stderr)
		}
	})
}
