package region

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dogpile-go/dogpile/backends"
)

// ErrBackendUnavailable is the error of a call the region did not make because its circuit
// breaker is open (WithCircuitBreaker): the backend failed to answer lately and is left alone
// until the next probe. Under FailClosed reads return it (errors.Is); under FailOpen they are
// misses. Writes (Set, SetMulti, Delete) return it whatever the policy, as they return the
// backend's errors.
var ErrBackendUnavailable = errors.New("region: backend unavailable")

// errSkipped is what a call the breaker skipped fails with, in place of the backend's error.
var errSkipped = fmt.Errorf("circuit breaker open: %w", ErrBackendUnavailable)

// The default circuit breaker (see WithCircuitBreaker): open for 100ms after the first
// connection error, doubling with every failed probe up to 5s.
const (
	DefaultBreakerMin = 100 * time.Millisecond
	DefaultBreakerMax = 5 * time.Second
)

// WithCircuitBreaker sets how long the region leaves its backend alone after a connection error
// (the default is DefaultBreakerMin and DefaultBreakerMax); WithCircuitBreaker(0, 0) turns the
// breaker off.
//
// A call that fails to reach the backend (connection refused or reset, an i/o timeout, EOF,
// go-redis's pool timeout: not a miss, not a malformed entry, not a value too large, not the
// caller's own context ending, not an error the server answered with) opens the breaker for min.
// While it is open the region does not call the backend: reads are misses (under FailClosed they
// fail with an error that errors.Is ErrBackendUnavailable), writes are dropped, lock attempts
// create without the distributed lock, as after a failed attempt under FailOpen; each skipped
// call counts in Stats.Skipped and is neither logged nor handed to the error handler. Once the
// interval has passed, the next call goes through as a probe while the others still skip: if it
// reaches the backend the breaker closes, otherwise it opens again for twice as long, up to max.
// Each interval is lengthened by up to a quarter, at random, so that a fleet's probes spread
// out. The intervals follow the region's clock (WithClock). The breaker logs when it opens and
// when it closes.
//
// A miss on a dead backend thus costs one failed round trip, then none until the next probe,
// instead of four (read, lock, read again, write). The breaker sees the backend as one, so it
// stays off on a backend of several servers that fail one at a time (backends.Partitioned: a
// memcached pool opened from a URL, a Redis Cluster or Ring), where one server's errors would
// skip the healthy ones too; a memcached pool given to memcached.New counts as one server, so
// turn the breaker off for it. It costs one atomic load a backend call while closed. min and max must be positive, with min <= max, or
// both 0.
func WithCircuitBreaker(min, max time.Duration) Option {
	return regionOption("WithCircuitBreaker", func(c *config) error {
		if (min != 0 || max != 0) && (min <= 0 || max < min) {
			return fmt.Errorf("WithCircuitBreaker(%v, %v): need 0 < min <= max, or both 0 (off)", min, max)
		}
		c.breakerMin, c.breakerMax = min, max
		return nil
	})
}

// breaker is a region's circuit breaker; see WithCircuitBreaker. Calls to the backend ask allow
// first and tell settle how they went.
type breaker struct {
	// until is 0 while the breaker is closed. Otherwise calls skip the backend until this time
	// (the region's clock, Unix nanoseconds); the first call after it is the probe, and moves it
	// on by the interval, so that the others keep skipping while the probe is out.
	until atomic.Int64

	mu       sync.Mutex    // serialises the changes of state; guards the fields below
	interval time.Duration // how long it opened for last
	probing  bool          // a probe is out
	opened   int64         // when it opened (the region's clock)
}

// ticket is what allow answers: whether a call may go to the backend, and in what role.
type ticket uint8

const (
	pass  ticket = iota // closed: go
	probe               // the probe of an open breaker: go, and settle decides
	skip                // open: do not call the backend
)

// allow says whether a backend call may go now. It costs one atomic load while the breaker is
// closed.
func (r *Region) allow() ticket {
	if r.brk.until.Load() == 0 {
		return pass
	}
	return r.allowOpen()
}

func (r *Region) allowOpen() ticket {
	b := &r.brk
	now := r.now()
	if now < b.until.Load() {
		return skip
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch u := b.until.Load(); {
	case u == 0:
		return pass
	case now < u:
		return skip
	}
	// The probe. Should it never settle, another goes after one more interval.
	b.probing = true
	b.until.Store(now + int64(b.interval))
	return probe
}

// settle records how a call that allow let through went: err is what the backend returned.
func (r *Region) settle(ctx context.Context, t ticket, err error) {
	if t == pass && err == nil {
		return
	}
	r.settleSlow(ctx, t, err)
}

func (r *Region) settleSlow(ctx context.Context, t ticket, err error) {
	if r.cfg.breakerMin == 0 || r.brkOff {
		return
	}
	b := &r.brk
	switch reach(ctx, err) {
	case reachedNot:
	case reachedUnknown:
		if t == probe { // let the next call probe instead
			b.mu.Lock()
			if b.probing && b.until.Load() != 0 {
				b.probing = false
				b.until.Store(r.now())
			}
			b.mu.Unlock()
		}
		return
	default: // reached
		// Only the probe closes the breaker: a call let through before it opened says nothing
		// about now.
		if t != probe {
			return
		}
		b.mu.Lock()
		if b.until.Load() == 0 {
			b.mu.Unlock()
			return
		}
		b.until.Store(0)
		b.probing = false
		down := time.Duration(r.now() - b.opened)
		b.mu.Unlock()
		r.logLimited(ctx, slog.LevelInfo, "breaker closed", "dogpile: backend reachable again; circuit breaker closed",
			slog.String("region", r.name), slog.Duration("down_for", down))
		return
	}
	b.mu.Lock()
	now, opening := r.now(), false
	switch {
	case b.until.Load() == 0:
		b.interval, b.opened, opening = r.cfg.breakerMin, now, true
	case t == probe && b.probing:
		b.interval = min(2*b.interval, r.cfg.breakerMax)
		b.probing = false
	default: // in flight when the breaker opened, or a probe that lost its turn: it knows
		b.mu.Unlock()
		return
	}
	d := b.interval
	if q := int64(d / 4); q > 0 {
		d += time.Duration(rand.Int64N(q))
	}
	b.until.Store(now + int64(d))
	b.mu.Unlock()
	if opening {
		r.logLimited(ctx, slog.LevelWarn, "breaker opened", "dogpile: backend unreachable; circuit breaker open, skipping it",
			slog.String("region", r.name), slog.Duration("retry_in", d), slog.Any("error", err))
	}
}

// reached is what a backend call's error says of the backend.
type reached uint8

const (
	reachedYes     reached = iota // it answered: a value, a miss, or an error of its own
	reachedNot                    // the call did not reach it, or it did not answer
	reachedUnknown                // the caller's context ended: nothing learnt
)

// reach classifies a backend call's error. Connection errors (refused, reset, EOF, timeouts of
// reads, writes or dials, go-redis's pool timeout, gomemcache's connect timeout) are reachedNot; the caller's cancellation, or
// its deadline passing before the client timed out on its own, reachedUnknown; anything else
// (nil, a miss, a value too large, a malformed entry, an error reply) reachedYes.
func reach(ctx context.Context, err error) reached {
	switch {
	case err == nil, isNotFound(err), errors.Is(err, backends.ErrTooLarge),
		errors.Is(err, backends.ErrMalformed):
		return reachedYes
	case errors.Is(err, context.Canceled), errors.Is(ctx.Err(), context.Canceled):
		return reachedUnknown
	}
	// A network operation that failed: a dial (refused, or timed out; go-redis may wrap a dial
	// timeout in context.DeadlineExceeded, so this comes first), a read or write (reset, i/o
	// timeout, also when the caller's deadline set the socket's).
	var op *net.OpError
	if errors.As(err, &op) {
		return reachedNot
	}
	if errors.Is(err, context.DeadlineExceeded) { // the caller's, before any I/O failed
		return reachedUnknown
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return reachedNot
	}
	msg := err.Error()
	for _, m := range clientConnErrors {
		if strings.Contains(msg, m) {
			return reachedNot
		}
	}
	return reachedYes
}

// clientConnErrors are the texts of clients' connection errors that carry no type a region can
// test for without importing the client: go-redis's pool timeout (every connection is busy with a
// server that does not answer) and gomemcache's connect timeout.
var clientConnErrors = []string{"redis: connection pool timeout", "memcache: connect timeout to "}

// withoutSkipped counts the backend calls the breaker skipped that err holds (in c, a view's
// counters, or the region's when nil) and returns the rest of err: nil when it held nothing else.
// The rest of a batch's Error is an Error of the same call holding the other errors.
func (r *Region) withoutSkipped(c *counters, err error) error {
	if !errors.Is(err, errSkipped) {
		return err
	}
	if e, ok := err.(*Error); ok {
		rest := r.withoutSkipped(c, e.Err)
		switch re, single := rest.(*Error); {
		case rest == nil:
			return nil
		case single:
			return re // the one error of a batch that was not skipped, naming its key
		}
		kept := *e
		kept.Err = rest
		return &kept
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok { // a batch's errors, joined
		var rest []error
		for _, e := range j.Unwrap() {
			if e = r.withoutSkipped(c, e); e != nil {
				rest = append(rest, e)
			}
		}
		return errors.Join(rest...)
	}
	if c == nil {
		c = &r.counters
	}
	c.skipped.Add(1)
	return nil
}
