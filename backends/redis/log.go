package redis

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"
)

// Logger sends go-redis's own log lines into a slog.Logger. go-redis logs through one logger
// of its own, global to the process, which by default prints to stderr: during an outage, a
// line such as "redis: connection pool: failed to dial after 5 attempts: ..." for every failed
// dial. Give a Logger to goredis.SetLogger to route those lines into slog instead. Create it
// with SlogLogger.
type Logger struct {
	l *slog.Logger // nil: slog.Default() at each line
}

// SlogLogger returns a Logger for goredis.SetLogger that logs each of go-redis's lines to l
// (slog.Default(), read at each line, if l is nil) as one record at slog.LevelWarn, with the
// line as its message, the context go-redis passed, and as its source the go-redis code that
// logged it (pool.go, for a failed dial). To silence go-redis instead, give SetLogger a Logger of
// slog.New(slog.DiscardHandler), or call Disable in github.com/redis/go-redis/v9/logging.
//
//	goredis.SetLogger(redis.SlogLogger(logger.With("component", "go-redis")))
//
// go-redis keeps the logger in a package variable that it reads without synchronization, so call
// SetLogger once, as the program starts and before it creates a client. A line costs what l's
// handler costs, plus the formatting and a caller lookup when l is enabled at warning level, and
// one call to Enabled when it is not.
func SlogLogger(l *slog.Logger) *Logger {
	return &Logger{l: l}
}

// Printf logs one of go-redis's lines: the go-redis Logging interface, which goredis.SetLogger
// takes.
func (g *Logger) Printf(ctx context.Context, format string, v ...any) {
	l := g.l
	if l == nil {
		l = slog.Default()
	}
	if ctx == nil {
		ctx = context.Background()
	}
	h := l.Handler()
	if !h.Enabled(ctx, slog.LevelWarn) {
		return
	}
	var pcs [1]uintptr
	runtime.Callers(2, pcs[:]) // skip runtime.Callers and Printf: the source is go-redis's caller
	r := slog.NewRecord(time.Now(), slog.LevelWarn, strings.TrimSuffix(fmt.Sprintf(format, v...), "\n"), pcs[0])
	_ = h.Handle(ctx, r)
}
