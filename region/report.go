package region

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/dogpile-go/dogpile/backends"
)

// ReportInterval is how often a region logs an error of one kind: the first of a kind is logged
// at once, the others of that kind within the interval after it are only counted, and the next
// one logged after the interval carries their number (the attribute "suppressed"). A kind is an
// operation ("get", "set", "lock", ...) and, for malformed entries and values that fail to
// encode, that class. Statistics (Stats.Errors) and the error handler (WithErrorHandler) see
// every error. The interval follows the region's clock (WithClock).
const ReportInterval = 10 * time.Second

// limiter rate-limits a region's log lines by kind.
type limiter struct {
	mu    sync.Mutex
	kinds map[string]*limited // guarded by mu; the kinds are a few fixed strings of this package
}

type limited struct {
	last       int64 // when a line of the kind was last logged (the region's clock)
	suppressed int64 // lines of the kind not logged since
}

// admit says whether a line of kind may be logged at now, and how many of the kind were not
// logged since the last one that was.
func (l *limiter) admit(kind string, now int64) (bool, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, ok := l.kinds[kind]
	if !ok {
		if l.kinds == nil {
			l.kinds = make(map[string]*limited)
		}
		l.kinds[kind] = &limited{last: now}
		return true, 0
	}
	if now-k.last < int64(ReportInterval) {
		k.suppressed++
		return false, 0
	}
	n := k.suppressed
	k.last, k.suppressed = now, 0
	return true, n
}

// logLimited logs msg with attrs unless a line of kind was logged less than ReportInterval ago;
// a line logged after some were not carries their number.
func (r *Region) logLimited(ctx context.Context, level slog.Level, kind, msg string, attrs ...slog.Attr) {
	ok, n := r.reports.admit(kind, r.now())
	if !ok {
		return
	}
	if n > 0 {
		attrs = append(attrs, slog.Int64("suppressed", n))
	}
	r.cfg.logger.LogAttrs(ctx, level, msg, attrs...)
}

// logReport logs a reported error, rate-limited by its kind (reportKind).
func (r *Region) logReport(ctx context.Context, err error) {
	r.logLimited(ctx, slog.LevelWarn, reportKind(err), "dogpile: cache error",
		slog.String("region", r.name), slog.Any("error", err))
}

// reportKind is the kind of a reported error for the rate limit: its operation, and its class
// where the operation alone does not say it.
func reportKind(err error) string {
	kind := "error"
	var oe *opError
	if errors.As(err, &oe) {
		kind = oe.op
	}
	switch {
	case errors.Is(err, backends.ErrMalformed):
		return kind + " (malformed)"
	case errors.Is(err, errEncode):
		return kind + " (encode)"
	}
	return kind
}
