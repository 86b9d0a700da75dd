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
	return func(c *config) error {
		if poll <= 0 {
			return fmt.Errorf("WithSharedInvalidation(%v): the poll interval must be positive", poll)
		}
		c.sharedPoll = poll
		return nil
	}
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

// sharedChannel is the Notifier channel of the region's invalidations.
func (r *Region) sharedChannel() string { return "invalidate\x00" + r.name }

// share stores an invalidation made here and announces it.
func (r *Region) share(ctx context.Context, mode Invalidation, at int64) error {
	b := r.bound.Load()
	if b == nil {
		return nil // not configured: the invalidation applies here only, as without the option
	}
	k := r.sharedKey(mode)
	raw := backends.EncodeEntry(backends.Entry{Created: at, Payload: []byte(strconv.FormatInt(at, 10))})
	if err := b.backend.Set(ctx, k, raw, 0); err != nil {
		err = r.wrap("invalidate (shared)", k, err)
		r.report(ctx, err)
		return err
	}
	if n, ok := backends.As[backends.Notifier](b.backend); ok {
		msg := fmt.Sprintf("%d:%d", mode, at)
		if err := n.Publish(ctx, r.sharedChannel(), []byte(msg)); err != nil {
			// Stored: the others will read it at their next poll.
			r.report(ctx, r.wrap("invalidate (announce)", r.sharedChannel(), err))
		}
	}
	return nil
}

// apply records an invalidation made elsewhere (or here): a time after the one the region has.
func (r *Region) apply(mode Invalidation, at int64) {
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
	// Keep this process's stamps after it, so that its next writes count as newer.
	for {
		last := r.lastStamp.Load()
		if last >= at || r.lastStamp.CompareAndSwap(last, at) {
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
			r.report(ctx, r.wrap("read invalidation", k, err))
			continue
		}
		e, err := backends.DecodeEntry(raw)
		if err != nil {
			r.report(ctx, r.wrap("read invalidation", k, err))
			continue
		}
		r.apply(mode, e.Created)
	}
}

// watcher keeps a region's shared invalidations up to date: a poll loop, and a subscription
// where the backend has one.
type watcher struct {
	stop chan struct{}
	done chan struct{}
	sub  io.Closer
	once sync.Once
	// polls counts the reads, for tests.
	polls atomic.Int64
}

// startWatcher reads the stored invalidations once, subscribes to their announcements and starts
// the poll loop. It runs at Configure, with the backend bound.
func (r *Region) startWatcher() {
	w := &watcher{stop: make(chan struct{}), done: make(chan struct{})}
	ctx := context.Background()
	b := r.bound.Load()
	if n, ok := backends.As[backends.Notifier](b.backend); ok {
		sub, err := n.Subscribe(ctx, r.sharedChannel(), r.announced, func() { r.readShared(ctx) })
		if err != nil {
			r.report(ctx, r.wrap("subscribe", r.sharedChannel(), err)) // polling still works
		} else {
			w.sub = sub
		}
	}
	r.readShared(ctx)
	r.watch = w
	go func() {
		defer close(w.done)
		t := time.NewTicker(r.cfg.sharedPoll)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				r.readShared(ctx)
				w.polls.Add(1)
			}
		}
	}()
}

// announced applies an invalidation another process announced: "<mode>:<time>".
func (r *Region) announced(msg []byte) {
	m, at, ok := strings.Cut(string(msg), ":")
	if !ok {
		return
	}
	mode, err1 := strconv.Atoi(m)
	t, err2 := strconv.ParseInt(at, 10, 64)
	if err1 != nil || err2 != nil || (Invalidation(mode) != Hard && Invalidation(mode) != Soft) {
		return
	}
	r.apply(Invalidation(mode), t)
}

// stopWatcher stops the poll loop and the subscription; Close calls it.
func (r *Region) stopWatcher() {
	w := r.watch
	if w == nil {
		return
	}
	w.once.Do(func() {
		close(w.stop)
		if w.sub != nil {
			_ = w.sub.Close()
		}
	})
	<-w.done
}
