package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
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

// errNoCreate is what the processes' creators return while a test watches what they serve: a
// call that is not served the cached value fails, and stores and announces nothing.
var errNoCreate = errors.New("creation refused by the test")

// process is one application process of the users region: a region with a local cache,
// configured from the document as the application configures it, and a memo handle.
type process struct {
	name    string
	l1      *memory.Backend
	handle  *memo.Handle[int, user]
	version *atomic.Int64 // the Name of the next value created: "v<n>"
	refuse  *atomic.Bool  // creators return errNoCreate
}

func newProcess(t *testing.T, name string, doc config.Document, maxAge time.Duration, version *atomic.Int64, refuse *atomic.Bool) *process {
	t.Helper()
	p := &process{name: name, l1: memory.New(), version: version, refuse: refuse}
	r := region.New("users", region.WithLocalCache(p.l1, maxAge))
	if err := config.Configure(doc, nil, r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	p.handle = memo.Func(r, func(_ context.Context, id int) (user, error) {
		if refuse.Load() {
			return user{}, errNoCreate
		}
		return user{ID: id, Name: fmt.Sprintf("v%d", version.Add(1))}, nil
	}, memo.WithNamespace(usersNS))
	return p
}

// serves reports whether a call for 42 is answered with the value named want.
func (p *process) serves(t *testing.T, want string) bool {
	t.Helper()
	u, err := p.handle.Call(t.Context(), 42)
	if err != nil && !errors.Is(err, errNoCreate) {
		t.Fatalf("%s: Call: %v", p.name, err)
	}
	return err == nil && u.Name == want
}

// fillBoth has process a create the value for 42 and b read it, so that both hold it in their
// local caches, and returns its name.
func fillBoth(t *testing.T, a, b *process) string {
	t.Helper()
	a.refuse.Store(false)
	u, err := a.handle.Call(t.Context(), 42)
	if err != nil {
		t.Fatal(err)
	}
	// a's creation was announced, and b may have been asked to drop the key just now: read it
	// until b serves the value from its own cache.
	deadline := time.Now().Add(5 * time.Second)
	for !b.serves(t, u.Name) {
		if time.Now().After(deadline) {
			t.Fatalf("%s does not serve %s", b.name, u.Name)
		}
	}
	a.refuse.Store(true)
	for _, p := range []*process{a, b} {
		if _, err := p.l1.GetValue(t.Context(), usersNS+"|i:42"); err != nil {
			t.Fatalf("%s: the value is not in its local cache: %v", p.name, err)
		}
		if !p.serves(t, u.Name) {
			t.Fatalf("%s does not serve %s", p.name, u.Name)
		}
	}
	return u.Name
}

// untilNotServed returns how long after start each of ps stops serving want, up to limit.
func untilNotServed(t *testing.T, start time.Time, limit time.Duration, want string, ps ...*process) []time.Duration {
	t.Helper()
	took := make([]time.Duration, len(ps))
	for i, p := range ps {
		for p.serves(t, want) {
			if time.Since(start) > limit {
				t.Fatalf("%s still serves %s %v after the command", p.name, want, limit)
			}
			time.Sleep(time.Millisecond)
		}
		took[i] = time.Since(start)
	}
	return took
}

// TestCommandsReachProcessesLocalCaches runs the built command against two live processes of a
// region with local caches, configured from the document the command reads: delete and
// invalidate (keys, -match, -hard) given the region make both stop serving the value at once,
// where a deletion without the region leaves it served until the local caches' max age; and get
// finds what a memo handle stored from the key as the code writes it.
func TestCommandsReachProcessesLocalCaches(t *testing.T) {
	bin := buildBinary(t)
	u, prefix := redisURL(t)
	const maxAge = 3 * time.Second
	doc := config.Document{Regions: map[string]config.Region{"users": {
		Backend:            "redis://" + server.Addr + "/0",
		Arguments:          map[string]any{"prefix": prefix},
		SharedInvalidation: "1m",
	}}}
	file := filepath.Join(t.TempDir(), "app.yaml")
	yaml := fmt.Sprintf("regions:\n  users:\n    backend: redis://%s/0\n    arguments: {prefix: %q}\n    shared_invalidation: 1m\n  sessions:\n    backend: memory://\n", server.Addr, prefix)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var version atomic.Int64
	var refuse atomic.Bool
	a := newProcess(t, "process A", doc, maxAge, &version, &refuse)
	b := newProcess(t, "process B", doc, maxAge, &version, &refuse)
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
		start := time.Now()
		r := execDogpile(t, bin, nil, "delete", u, "-raw", usersNS+"|i:42")
		r.want(t, exitOK)
		r.contains(t, "not announced (no -region)")
		took := untilNotServed(t, start, 2*maxAge, name, a, b)
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
			start := time.Now()
			r := execDogpile(t, bin, nil, tc.args...)
			ran := time.Since(start)
			r.want(t, exitOK)
			r.contains(t, tc.want...)
			if r.stderr != "" {
				t.Errorf("stderr: %s", r.stderr)
			}
			// Well within the local max age: the announcement, not the age, dropped it.
			took := untilNotServed(t, start, maxAge/2, name, a, b)
			t.Logf("%s: the value left both local caches %v and %v after the command started (the command ran %v)", tc.name, took[0], took[1], ran)
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
