package redis_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/redis"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
)

// logChildEnv selects what the test binary does when TestSlogLoggerTakesPoolLinesOffStderr runs
// it again as a subprocess: "slog" routes go-redis's lines through SlogLogger into a JSON handler
// on stdout, "discard" into slog.DiscardHandler, "disable" calls go-redis's logging.Disable, and
// "default" leaves them to go-redis's own logger. go-redis's logger is global to the
// process and its default writes to the stderr it found at start-up, so only a process of its
// own can show where the lines go.
const logChildEnv = "DOGPILE_REDIS_LOG_CHILD"

// dialClosedPort makes one call through a backend whose client dials a loopback port that
// nothing listens on, once, so that go-redis's pool logs the failed dial.
func dialClosedPort(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	client := goredis.NewClient(&goredis.Options{Addr: addr, DialerRetries: 1, MaxRetries: -1})
	defer client.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err = redis.New(client).Get(ctx, "k")
	if err == nil || errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Get on a closed port = %v; want a connection error", err)
	}
}

// TestSlogLoggerTakesPoolLinesOffStderr checks that, once go-redis's logger is a SlogLogger, the
// line its pool logs for a failed dial arrives in the slog handler, at warning level with the
// pool as its source, and no longer on stderr, where go-redis's own logger puts it; and that a
// SlogLogger on slog.DiscardHandler, or logging.Disable, silences it.
func TestSlogLoggerTakesPoolLinesOffStderr(t *testing.T) {
	switch os.Getenv(logChildEnv) {
	case "slog":
		goredis.SetLogger(redis.SlogLogger(slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{AddSource: true}))))
		dialClosedPort(t)
		return
	case "discard":
		goredis.SetLogger(redis.SlogLogger(slog.New(slog.DiscardHandler)))
		dialClosedPort(t)
		return
	case "disable":
		logging.Disable()
		dialClosedPort(t)
		return
	case "default":
		logging.Enable() // TestMain discards go-redis's lines; the child wants go-redis's default
		dialClosedPort(t)
		return
	}

	const line = "redis: connection pool: failed to dial after 1 attempts"
	run := func(mode string) (stdout, stderr string) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestSlogLoggerTakesPoolLinesOffStderr$", "-test.count=1")
		cmd.Env = append(os.Environ(), logChildEnv+"="+mode)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("child %s: %v\nstdout:\n%s\nstderr:\n%s", mode, err, &out, &errOut)
		}
		return out.String(), errOut.String()
	}

	// Without SlogLogger the line is on stderr: the outage this test provokes is one go-redis logs.
	if _, stderr := run("default"); !strings.Contains(stderr, line) {
		t.Fatalf("go-redis's default logger did not write %q to stderr; stderr:\n%s", line, stderr)
	}

	// Silenced: on a discarding slog handler, or by go-redis's logging.Disable.
	for _, mode := range []string{"discard", "disable"} {
		if stdout, stderr := run(mode); strings.Contains(stdout+stderr, "connection pool") {
			t.Errorf("%s: go-redis's line is still written:\nstdout:\n%s\nstderr:\n%s", mode, stdout, stderr)
		}
	}

	stdout, stderr := run("slog")
	if strings.Contains(stderr, "connection pool") {
		t.Errorf("with SlogLogger, stderr still has go-redis's line:\n%s", stderr)
	}
	var found bool
	for l := range strings.Lines(stdout) {
		if !strings.HasPrefix(l, "{") {
			continue // the test binary's own output: PASS
		}
		var rec struct {
			Level  string
			Msg    string
			Source struct{ File string }
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("a record that is not JSON: %v: %s", err, l)
		}
		if !strings.HasPrefix(rec.Msg, line) {
			continue
		}
		found = true
		if rec.Level != slog.LevelWarn.String() {
			t.Errorf("record level = %q, want %q", rec.Level, slog.LevelWarn)
		}
		if !strings.HasSuffix(rec.Source.File, "/pool.go") {
			t.Errorf("record source = %q, want go-redis's pool.go", rec.Source.File)
		}
	}
	if !found {
		t.Errorf("no slog record with %q; stdout:\n%s", line, stdout)
	}
}

// TestSlogLoggerSkipsDisabledLevels checks that a handler above warning level gets nothing, and
// that a nil logger means slog.Default.
func TestSlogLoggerSkipsDisabledLevels(t *testing.T) {
	var buf bytes.Buffer
	redis.SlogLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError}))).
		Printf(t.Context(), "redis: %s", "dropped")
	if buf.Len() != 0 {
		t.Errorf("a handler at error level got %q", buf.String())
	}

	old := slog.Default()
	t.Cleanup(func() { slog.SetDefault(old) })
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})))
	redis.SlogLogger(nil).Printf(t.Context(), "redis: %s\n", "kept")
	if got, want := buf.String(), "level=WARN msg=\"redis: kept\"\n"; got != want {
		t.Errorf("through slog.Default: %q, want %q", got, want)
	}
}
