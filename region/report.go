package region

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// report logs err, an *Error, and hands it to the error handler.
func (r *Region) report(ctx context.Context, err error) { r.reportTo(ctx, nil, err) }

// reportTo is report for an error met in the calls of the view whose counters are c (nil: the
// region's own). Calls the circuit breaker skipped are only counted; the log is rate-limited.
func (r *Region) reportTo(ctx context.Context, c *counters, err error) {
	if err = r.withoutSkipped(c, err); err == nil {
		return
	}
	r.countError(c, err)
	r.logReport(ctx, err)
	if r.cfg.onError != nil {
		r.cfg.onError(ctx, err)
	}
}

// report is the region's, counting the error in the view's statistics.
func (v *View[V]) report(ctx context.Context, err error) { v.r.reportTo(ctx, v.c, err) }

// failed reports a backend error and applies the failure policy: under FailClosed it returns
// err, marked as reported, to end the call; under FailOpen nil, and the call goes on.
func (v *View[V]) failed(ctx context.Context, err *Error) error {
	if v.r.cfg.failClosed {
		err.reported = true
	}
	v.report(ctx, err)
	if v.r.cfg.failClosed {
		return err
	}
	return nil
}

// ReportInterval is how often a region logs an error of one kind (Error.Kind: read, write, lock,
// ...): the first of a kind is logged at once, the others of that kind within the interval after
// it are only counted, and the next one logged after the interval carries their number (the
// attribute "suppressed"). Statistics (Stats.Errors) and the error handler (WithErrorHandler) see
// every error. The interval follows the region's clock (WithClock).
//
// A reported error is logged at level Warn with the message "dogpile: cache error" and the
// attributes of its Error: "region", "op", "kind", "key" ("" when it names none) and "error",
// the cause. The region adds "region" itself: a logger given to WithLogger need not carry it.
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

// logReport logs a reported error, rate-limited by its kind, with the fields of its Error as
// attributes (see ReportInterval).
func (r *Region) logReport(ctx context.Context, err error) {
	e, ok := err.(*Error)
	if !ok {
		e = &Error{Region: r.name, Err: err}
	}
	attrs := make([]slog.Attr, 0, 6) // and "suppressed"
	attrs = append(attrs, slog.String("region", e.Region), slog.String("op", string(e.Op)),
		slog.String("kind", string(e.Kind)), slog.String("key", e.Key), slog.Any("error", e.Err))
	r.logLimited(ctx, slog.LevelWarn, "kind "+string(e.Kind), "dogpile: cache error", attrs...)
}
