package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinary builds the command and runs it as operators do, to test main itself: the backends
// it registers, its exit statuses, and what goes to stdout and stderr.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	u, _ := redisURL(t)
	fill(t, newRegion(t, u))
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil { // a (new, empty) file cache
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args         []string
		code         int
		stdout, errs string
	}{
		{[]string{"get", "-raw", u, "users|i:42"}, 0, `"name": "Ada"`, ""},
		{[]string{"get", "-raw", "-json", u, "users|i:7"}, 0, `"negative":true`, ""},
		{[]string{"get", "-raw", u, "users|i:1"}, 1, "", `dogpile get: key "users|i:1" not found in redis://`},
		{[]string{"stats", "file://" + dir}, 0, "entries:    0, 0 bytes", ""},
		{[]string{"stats", "memory://"}, 0, "nothing to inspect", ""},
		{[]string{"get", "-raw", "nope://x", "k"}, 2, "", `unknown backend "nope"`},
		// A pattern that reaches every key of a database without prefix: refused, nothing read.
		{[]string{"invalidate", "-match", "*", "redis://" + server.Addr + "/0"}, 2, "", "-all-prefixes"},
		{[]string{"get", "-raw", "redis://127.0.0.1:1/0?password=s3cret", "k"}, 2, "", "password=xxxxx"},
		{nil, 2, "", "Commands:"},
		{[]string{"help"}, 0, "Commands:", ""},
	} {
		cmd := exec.Command(bin, tc.args...)
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
		if code != tc.code || !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.errs) {
			t.Errorf("dogpile %q: exit %d, want %d\nstdout (want %q):\n%s\nstderr (want %q):\n%s",
				tc.args, code, tc.code, tc.stdout, stdout.String(), tc.errs, stderr.String())
		}
	}
}
