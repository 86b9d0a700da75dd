package region

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dogpile-go/dogpile/backends"
)

// Invalidation says how Invalidate treats the region's entries.
type Invalidation int

const (
	// Hard makes every entry created before the invalidation absent: the next call for a key
	// waits for its creation, as on a cold cache. Creations in progress are not joined by later
	// callers, and what they make counts as absent too.
	Hard Invalidation = iota + 1
	// Soft makes every entry created before the invalidation expired: one caller per key
	// regenerates it while the others are still served the old value.
	Soft
)

// Invalidate invalidates every entry of the region at once, without touching the entries: it
// records the time, and entries created before it count as absent (Hard) or expired (Soft).
// It costs a clock read and a few atomic operations, and no I/O, and applies within this
// process; with WithSharedInvalidation it also stores the time in the backend (one write, and one
// PUBLISH on Redis) for every process of the fleet, and returns the backend's error if that fails.
func (r *Region) Invalidate(ctx context.Context, mode Invalidation) error {
	if r.bound.Load() == nil && !r.closed.Load() {
		// ConfigureWith may be writing the settings (the clock stamp reads) and the engine: wait
		// for it. Once configured, both are fixed. (After Close the lock is not needed, and may be
		// held by a Close waiting for a creator that calls this.)
		r.configMu.Lock()
		defer r.configMu.Unlock()
	}
	var at *atomic.Int64
	switch mode {
	case Hard:
		at = &r.hardAt
	case Soft:
		at = &r.softAt
	default:
		return r.fail(OpInvalidate, KindUsage, "", fmt.Errorf("unknown mode %d", mode))
	}
	// A stamp after every created-at handed out so far: a value set before this call is
	// invalidated even within one clock tick, and one set after it is not.
	s := r.stamp()
	for {
		old := at.Load()
		if old >= s || at.CompareAndSwap(old, s) {
			break
		}
	}
	if mode == Hard {
		r.engine.ForgetAll()
	}
	if r.cfg.sharedPoll > 0 {
		return r.share(ctx, mode, s)
	}
	return nil
}

// WithSharedInvalidation makes Invalidate apply to every process whose region of the same name
// shares the backend, not only to this one: the invalidation's time is stored in the backend
// (under a key of its own per region and mode, no scan and no flush), and every process reads it
// when it is configured and then every poll. On a backend that can broadcast
// (backends.Notifier: Redis pub/sub) Invalidate also announces it, so that the others apply it
// at once, and a process whose subscription dropped reads the stored times again as soon as it
// is back. poll bounds how long a process may miss an invalidation otherwise; it must be
// positive.
//
// The times are each invalidating process's clock: clocks apart by d make an invalidation reach
// d too far or not far enough into the past, at the others.
func WithSharedInvalidation(poll time.Duration) Option {
	return regionOption("WithSharedInvalidation", func(c *config) error {
		if poll <= 0 {
			return fmt.Errorf("WithSharedInvalidation(%v): the poll interval must be positive", poll)
		}
		c.sharedPoll = poll
		return nil
	})
}

// sharedKey is the backend key under which the time of the region's last invalidation of mode
// is stored. It holds a NUL byte, which no key from memo does, so no data key is one.
func (r *Region) sharedKey(mode Invalidation) string {
	name := "soft"
	if mode == Hard {
		name = "hard"
	}
	return r.mangle("\x00dogpile\x00invalidated\x00" + name + "\x00" + r.name)
}

// sharedChannel is the Notifier channel of the region: its invalidations ("i:<mode>:<time>"),
// the keys its writes changed ("k:<origin>:<JSON array of keys>"), and the locks its callers wait
// for ("w:<JSON array of keys>") and those released ("r:<JSON array of keys>").
func (r *Region) sharedChannel() string { return "region\x00" + r.name }

// share stores an invalidation made here and announces it.
func (r *Region) share(ctx context.Context, mode Invalidation, at int64) error {
	b := r.bound.Load()
	if b == nil {
		return nil // not configured: the invalidation applies here only, as without the option
	}
	k := r.sharedKey(mode)
	// Applied here already: this process's own marker, read back at its polls, is not new.
	if mode == Hard {
		r.markers[0].Store(at)
	} else {
		r.markers[1].Store(at)
	}
	raw := r.seal(k, backends.Entry{Created: at, Payload: []byte(strconv.FormatInt(at, 10))})
	if err := b.backend.Set(ctx, k, raw, 0); err != nil {
		err := r.fail(OpInvalidate, KindWrite, "", fmt.Errorf("store the invalidation under %q: %w", k, err))
		r.report(ctx, err)
		return err
	}
	if n, ok := backends.As[backends.Notifier](b.backend); ok {
		msg := fmt.Sprintf("i:%d:%d", mode, at)
		if err := n.Publish(ctx, r.sharedChannel(), []byte(msg)); err != nil {
			// Stored: the others will read it at their next poll.
			r.report(ctx, r.fail(OpInvalidate, KindWrite, "", fmt.Errorf("announce the invalidation: %w", err)))
		}
	}
	return nil
}

// apply records an invalidation of the fleet's, stored or announced with the time at: once per
// marker, however often it is read again. Its time counts no later than now, this process's
// time of receipt: a peer whose clock runs ahead would otherwise make every entry written here
// until this clock catches up count as invalidated, again at every poll.
func (r *Region) apply(mode Invalidation, at int64) {
	seen := &r.markers[0]
	if mode == Soft {
		seen = &r.markers[1]
	}
	if seen.Swap(at) == at {
		return // applied already: this marker was read or announced before
	}
	at = min(at, r.now())
	a := &r.softAt
	if mode == Hard {
		a = &r.hardAt
	}
	for {
		old := a.Load()
		if old >= at {
			return
		}
		if a.CompareAndSwap(old, at) {
			break
		}
	}
	if mode == Hard {
		r.engine.ForgetAll()
	}
}

// readShared reads the stored invalidation times and applies them.
func (r *Region) readShared(ctx context.Context) {
	b := r.bound.Load()
	if b == nil {
		return
	}
	for _, mode := range []Invalidation{Hard, Soft} {
		k := r.sharedKey(mode)
		raw, err := b.backend.Get(ctx, k)
		if errors.Is(err, backends.ErrNotFound) {
			continue
		}
		if err != nil {
			r.report(ctx, r.backendFailed(scope{op: OpWatch}, KindRead, fmt.Errorf("read the invalidation under %q: %w", k, err)))
			continue
		}
		e, err := r.open(k, raw)
		if err != nil {
			r.report(ctx, r.fail(OpWatch, KindMalformed, "", fmt.Errorf("read the invalidation under %q: %w", k, err)))
			continue
		}
		r.apply(mode, e.Created)
	}
}

// watcher keeps a region's shared invalidations up to date: a poll loop, and a subscription
// where the backend has one.
type watcher struct {
	stop     chan struct{}
	cancel   context.CancelFunc // ends the I/O in flight; stopWatcher calls it
	done     chan struct{}
	retrying chan struct{} // closed when the subscription retry ends; nil if none
	mu       sync.Mutex    // guards sub, which a retry sets
	sub      io.Closer
	once     sync.Once
}

// bounded returns ctx with DefaultConfigureTimeout as its deadline if it has none.
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultConfigureTimeout)
}

// startWatcher follows what other processes do: it subscribes to the region's announcements
// where the backend can (invalidations, keys to drop from the local cache, releases of locks
// waited for), reads the stored invalidations once, and starts their poll loop. It runs at
// Configure, with the backend bound, when the region shares its invalidations, has a local cache,
// or is on a backend that locks and broadcasts (WithLockPoll). The first subscription and read
// are bounded by ctx (see ConfigureContext); later ones each by DefaultConfigureTimeout, and all
// end when the watcher stops.
func (r *Region) startWatcher(ctx context.Context) {
	b := r.bound.Load()
	shared := r.cfg.sharedPoll > 0
	if !shared && !b.local.follows() && b.waker == nil {
		return
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx)) // ctx's values, for what comes later
	w := &watcher{stop: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	ctx, cancelFirst := bounded(ctx) // one budget for the first subscription and read together
	defer cancelFirst()
	readShared := func(ctx context.Context) {
		ctx, cancel := bounded(ctx)
		defer cancel()
		r.readShared(ctx)
	}
	if n, ok := backends.As[backends.Notifier](b.backend); ok {
		gap := func() {
			b.local.clear()   // evictions may have been missed
			b.waker.wakeAll() // and releases of locks waited for
			if shared {
				readShared(bg)
			}
		}
		subscribe := func(ctx context.Context) (io.Closer, error) {
			ctx, cancel := bounded(ctx)
			defer cancel()
			return n.Subscribe(ctx, r.sharedChannel(), func(msg []byte) { r.announced(b, msg) }, gap)
		}
		sub, err := subscribe(ctx)
		if err != nil {
			// Polling and max age bound it meanwhile; a subscription that comes later counts as
			// a gap, since everything before it was missed.
			r.report(ctx, r.fail(OpWatch, KindRead, "", fmt.Errorf("subscribe to other processes' announcements: %w", err)))
			w.retrying = make(chan struct{})
			go w.retry(func() (io.Closer, error) { return subscribe(bg) }, gap)
		} else {
			w.sub = sub
		}
	}
	r.watch = w
	if !shared {
		close(w.done)
		return
	}
	readShared(ctx) // a failure is reported, and the poll tries again
	go func() {
		defer close(w.done)
		t := time.NewTicker(r.cfg.sharedPoll)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				readShared(bg)
			}
		}
	}()
}

// announced applies what another process announced: an invalidation, "i:<mode>:<time>", keys to
// drop from the local cache, "k:<origin>:<JSON array>" (this region's own are skipped), or a
// wait for locks, "w:<JSON array>", and their release, "r:<JSON array>" (see waker).
func (r *Region) announced(b *bound, msg []byte) {
	kind, rest, ok := strings.Cut(string(msg), ":")
	if !ok {
		return
	}
	switch kind {
	case "i":
		m, at, ok := strings.Cut(rest, ":")
		if !ok {
			return
		}
		mode, err1 := strconv.Atoi(m)
		t, err2 := strconv.ParseInt(at, 10, 64)
		if err1 != nil || err2 != nil || (Invalidation(mode) != Hard && Invalidation(mode) != Soft) {
			return
		}
		r.apply(Invalidation(mode), t)
	case "k":
		b.local.announced(r, rest)
	case "w", "r":
		b.waker.announced(kind[0], rest)
	}
}

// retry subscribes again, with a backoff up to 30s, until it succeeds or the watcher stops.
func (w *watcher) retry(subscribe func() (io.Closer, error), gap func()) {
	defer close(w.retrying)
	backoff := time.Second
	for {
		t := time.NewTimer(backoff)
		select {
		case <-w.stop:
			t.Stop()
			return
		case <-t.C:
		}
		sub, err := subscribe()
		if err == nil {
			w.mu.Lock()
			w.sub = sub
			w.mu.Unlock()
			gap()
			return
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// stopWatcher stops the poll loop and the subscription; Close calls it.
func (r *Region) stopWatcher() {
	w := r.watch
	if w == nil {
		return
	}
	w.once.Do(func() {
		close(w.stop)
		w.cancel()
		if w.retrying != nil {
			<-w.retrying
		}
		w.mu.Lock()
		sub := w.sub
		w.mu.Unlock()
		if sub != nil {
			_ = sub.Close()
		}
	})
	<-w.done
}
