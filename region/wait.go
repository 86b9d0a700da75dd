package region

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/internal/dogpile"
)

// Defaults of WithLockPoll.
const (
	DefaultLockPollMin = dogpile.DefaultPollMin
	DefaultLockPollMax = dogpile.DefaultPollMax
)

// WithLockPoll sets how a process polls for a key whose distributed lock another process holds
// while it creates the key's value: the process reads the key (and tries the lock) after waits
// that grow from min to max, each random up to its bound, so that a short creation is seen soon
// and a long one costs few reads. DefaultLockPollMin and DefaultLockPollMax (1ms, 100ms) by
// default; min must be positive and max at least min.
//
// On a backend that can broadcast (backends.Notifier: Redis pub/sub) the waiting process says
// so on the region's channel, and the process that holds the lock announces its release there,
// so that the waiting processes read the value at once: one PUBLISH for each waiting process
// and one for the holder, and none for a creation that nobody waits for. The poll stays, for
// messages that are lost, and max bounds how late they make a waiter. A region on such a backend
// subscribes to its channel at Configure for this (one pub/sub connection of the backend's
// client a region), as it does for WithLocalCache and WithSharedInvalidation. With the
// announcements a longer poll costs little: lock_poll=10ms,1s makes a waiting process read a few
// times a second instead of some ten times in its first 100ms. It has no effect on backends
// without a distributed lock. A region setting.
func WithLockPoll(min, max time.Duration) Option {
	return regionOption("WithLockPoll", func(c *config) error {
		if min <= 0 || max < min {
			return fmt.Errorf("WithLockPoll(%v, %v): min must be positive and max at least min", min, max)
		}
		c.lockPollMin, c.lockPollMax = min, max
		return nil
	})
}

// waker is a region's dogpile.Waker on a backend that locks and broadcasts. A caller of this
// process that waits for another's lock says so on the region's channel ("w:<JSON array of
// keys>", one PUBLISH a waiting creation); the process that holds the lock hears it, and when it
// releases the lock it announces the release ("r:<JSON array of keys>", one more), which wakes
// the waiting callers. A creation nobody waits for publishes nothing. A region on another
// backend holds a nil *waker, whose methods do nothing.
type waker struct {
	r *Region
	n backends.Notifier

	mu sync.Mutex
	// waiting has the channels of this process's callers waiting for each key (Watch).
	waiting map[string][]chan<- struct{} // guarded by mu
	// held has the keys whose locks this process holds or is about to try, with whether another
	// process said it waits for them; a count of holds, for calls of one key with different
	// value types.
	held map[string]*hold // guarded by mu
}

type hold struct {
	n      int
	waited bool
}

var _ dogpile.Waker = (*waker)(nil)

func newWaker(r *Region, n backends.Notifier) *waker {
	return &waker{r: r, n: n, waiting: map[string][]chan<- struct{}{}, held: map[string]*hold{}}
}

// Watch registers ch for the releases of keys and says that this process waits for them.
func (w *waker) Watch(ctx context.Context, keys []string, ch chan<- struct{}) {
	w.mu.Lock()
	for _, k := range keys {
		w.waiting[k] = append(w.waiting[k], ch)
	}
	w.mu.Unlock()
	w.publish(ctx, 'w', keys)
}

// Unwatch removes a registration of Watch.
func (w *waker) Unwatch(keys []string, ch chan<- struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range keys {
		chs := slices.DeleteFunc(w.waiting[k], func(c chan<- struct{}) bool { return c == ch })
		if len(chs) == 0 {
			delete(w.waiting, k)
		} else {
			w.waiting[k] = chs
		}
	}
}

// hold notes that this process is about to try the locks of keys: from now on until release, it
// hears which of them other processes wait for. Before the attempt, so that a waiter who found
// a lock held is always heard by its holder.
func (w *waker) hold(keys ...string) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range keys {
		h := w.held[k]
		if h == nil {
			h = &hold{}
			w.held[k] = h
		}
		h.n++
	}
}

// release ends a hold of keys, after their locks were released or not taken; announce says
// to tell the processes that wait for them (those that said so) that the locks are released.
func (w *waker) release(ctx context.Context, announce bool, keys ...string) {
	if w == nil {
		return
	}
	var waited []string
	w.mu.Lock()
	for _, k := range keys {
		h := w.held[k]
		if h == nil {
			continue
		}
		if announce && h.waited {
			waited = append(waited, k)
			h.waited = false
		}
		if h.n--; h.n == 0 {
			delete(w.held, k)
		}
	}
	w.mu.Unlock()
	if len(waited) > 0 {
		w.publish(context.WithoutCancel(ctx), 'r', waited)
	}
}

// publish sends "<kind>:<JSON array of keys>" on the region's channel, bounded by the lock
// timeout. A failure is reported; the waiting processes find the values by polling.
func (w *waker) publish(ctx context.Context, kind byte, keys []string) {
	raw := make([][]byte, len(keys))
	for i, k := range keys {
		raw[i] = []byte(k) // base64 in JSON: keys need not be UTF-8
	}
	js, _ := json.Marshal(raw)
	ctx, cancel := context.WithTimeout(ctx, w.r.cfg.lockTimeout)
	defer cancel()
	what := "the wait for"
	if kind == 'r' {
		what = "the release of"
	}
	if err := w.n.Publish(ctx, w.r.sharedChannel(), append([]byte{kind, ':'}, js...)); err != nil {
		w.r.report(ctx, w.r.fail(OpGetOrCreate, KindLock, "", fmt.Errorf("announce %s %d lock(s) to other processes: %w", what, len(keys), err)))
	}
}

// announced applies the part after "<kind>:" of a message of kind 'w' (another process waits for
// keys: those this one holds are announced when released) or 'r' (the locks of keys were
// released: the callers waiting for them are woken). The messages of this process count too:
// calls of one key with different value types wait for each other's locks.
func (w *waker) announced(kind byte, msg string) {
	if w == nil {
		return
	}
	var keys [][]byte
	if json.Unmarshal([]byte(msg), &keys) != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range keys {
		if kind == 'w' {
			if h := w.held[string(k)]; h != nil {
				h.waited = true
			}
			continue
		}
		for _, ch := range w.waiting[string(k)] {
			wake(ch)
		}
	}
}

// wakeAll wakes every waiting caller, when announcements may have been missed (a gap in the
// subscription): each reads its key once more.
func (w *waker) wakeAll() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, chs := range w.waiting {
		for _, ch := range chs {
			wake(ch)
		}
	}
}

func wake(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default: // woken already
	}
}
