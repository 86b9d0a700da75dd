package region_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/region"
)

// waitingFleet is two processes, a and b, regions on one store with a distributed lock and one
// pub/sub: a holds the lock of "k" in its creator until the test closes release, and b then runs
// call, which waits for "k". call's result comes on got; waiting is closed once b has said it
// waits. lose says which messages are lost (nil: none); said has every message published.
type waitingFleet struct {
	release   chan struct{}
	waiting   chan struct{}
	got       chan string
	creations atomic.Int32

	mu   sync.Mutex
	said []string
}

func startWaitingFleet(t *testing.T, lose func(msg string) bool, call func(*waitingFleet, context.Context, *region.View[string]) string, opts ...region.Option) *waitingFleet {
	t.Helper()
	ctx := t.Context()
	f := &waitingFleet{release: make(chan struct{}), waiting: make(chan struct{}), got: make(chan string, 1)}
	var once sync.Once
	publish := func(msg []byte) bool {
		f.mu.Lock()
		f.said = append(f.said, string(msg))
		f.mu.Unlock()
		if strings.HasPrefix(string(msg), "w:") {
			once.Do(func() { close(f.waiting) })
		}
		return lose == nil || !lose(string(msg))
	}
	s, h := newShared(), newFleetHub()
	a := &filtering{fleetBackend: &fleetBackend{batchBackend: newBatchBackend(s), h: h}, publish: publish}
	b := &filtering{fleetBackend: &fleetBackend{batchBackend: newBatchBackend(s), h: h}, publish: publish}
	va := region.NewView[string](newRegion(t, a, opts...))
	vb := region.NewView[string](newRegion(t, b, opts...))
	creating := make(chan struct{})
	go func() {
		_, _ = va.GetOrCreate(ctx, "k", func(context.Context) (string, error) {
			f.creations.Add(1)
			close(creating)
			<-f.release
			return "a's", nil
		})
	}()
	<-creating
	go func() { f.got <- call(f, ctx, vb) }()
	return f
}

// messages returns the kinds of the messages published so far, in order.
func (f *waitingFleet) messages() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var kinds []string
	for _, m := range f.said {
		kinds = append(kinds, m[:1])
	}
	return strings.Join(kinds, "")
}

// getK is b's call of "k": GetOrCreate, which counts a creation.
func (f *waitingFleet) getK(ctx context.Context, v *region.View[string]) string {
	got, err := v.GetOrCreate(ctx, "k", func(context.Context) (string, error) {
		f.creations.Add(1)
		return "b's", nil
	})
	if err != nil {
		return err.Error()
	}
	return got
}

// filtering is a fleetBackend whose Publish sends only what publish lets through.
type filtering struct {
	*fleetBackend
	publish func(msg []byte) bool
}

func (d *filtering) Publish(ctx context.Context, ch string, msg []byte) error {
	if !d.publish(msg) {
		return nil // lost
	}
	return d.fleetBackend.Publish(ctx, ch, msg)
}

// A process waiting for another's creation of a key is woken by the release of its lock, which
// the creating process announces since it heard the other wait: with a minute between polls, it
// has the value at once. The two messages are all that is published.
func TestWaitersWokenByLockRelease(t *testing.T) {
	f := startWaitingFleet(t, nil, (*waitingFleet).getK,
		region.WithLockPoll(time.Minute, time.Minute))
	<-f.waiting
	start := time.Now()
	close(f.release)
	select {
	case v := <-f.got:
		if v != "a's" || f.creations.Load() != 1 {
			t.Fatalf("b got %q, with %d creations; want a's value, created once", v, f.creations.Load())
		}
		t.Logf("b had a's value %v after a's creator returned (lock_poll=1m,1m)", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("b still waits 10s after a released the lock: not woken by its announcement")
	}
	if got := f.messages(); got != "wr" {
		t.Errorf("published %q, want a wait (w) and a release (r)", got)
	}
}

// A batch waits for the keys other processes hold as one key does, and is woken by their
// release too.
func TestBatchWaitersWokenByLockRelease(t *testing.T) {
	f := startWaitingFleet(t, nil, func(f *waitingFleet, ctx context.Context, v *region.View[string]) string {
		m, err := v.GetOrCreateMulti(ctx, []string{"j", "k"}, func(_ context.Context, ks []string) (map[string]string, error) {
			f.creations.Add(int32(len(ks)))
			return map[string]string{"j": "b's j", "k": "b's k"}, nil
		})
		if err != nil {
			return err.Error()
		}
		return m["j"] + ", " + m["k"]
	}, region.WithLockPoll(time.Minute, time.Minute))
	<-f.waiting
	close(f.release)
	select {
	case v := <-f.got:
		if v != "b's j, a's" || f.creations.Load() != 2 {
			t.Fatalf("b got %q, with %d creations; want its own j and a's k, each created once", v, f.creations.Load())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b's batch still waits 10s after a released k's lock: not woken by its announcement")
	}
}

// A creation that no other process waits for publishes nothing: a cold miss costs no more round
// trips for the announcements.
func TestUnwaitedCreationPublishesNothing(t *testing.T) {
	f := startWaitingFleet(t, nil, func(_ *waitingFleet, ctx context.Context, v *region.View[string]) string {
		got, _ := v.GetOrCreate(ctx, "other", func(context.Context) (string, error) { return "b's", nil })
		return got
	})
	if v := <-f.got; v != "b's" {
		t.Fatalf("b got %q", v)
	}
	close(f.release)
	if got := f.messages(); got != "" {
		t.Errorf("published %q for creations nobody waited for, want nothing", got)
	}
}

// When the announcement of a release is lost, the waiting process finds the value by polling,
// within about the poll's max.
func TestWaitersPollWhenReleasesAreLost(t *testing.T) {
	lose := func(msg string) bool { return strings.HasPrefix(msg, "r:") }
	f := startWaitingFleet(t, lose, (*waitingFleet).getK,
		region.WithLockPoll(time.Millisecond, 50*time.Millisecond))
	<-f.waiting
	time.Sleep(200 * time.Millisecond) // the waits have grown to their max
	start := time.Now()
	close(f.release)
	select {
	case v := <-f.got:
		if v != "a's" || f.creations.Load() != 1 {
			t.Fatalf("b got %q, with %d creations; want a's value, created once", v, f.creations.Load())
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("b had a's value %v after a's creator returned, its release lost; want within about the poll's max, 50ms", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b still waits 10s after a released the lock, whose announcement was lost: it did not poll")
	}
}

// TestWithLockPoll: min must be positive and max at least min, in code and as lock_poll=min,max.
func TestWithLockPoll(t *testing.T) {
	for _, c := range []struct {
		min, max time.Duration
		ok       bool
	}{{time.Millisecond, 100 * time.Millisecond, true}, {time.Second, time.Second, true},
		{0, time.Second, false}, {-time.Millisecond, time.Second, false}, {time.Second, time.Millisecond, false}} {
		r := region.New("poll")
		err := r.ConfigureWith(newBatchBackend(newShared()), region.WithLockPoll(c.min, c.max))
		if (err == nil) != c.ok || err != nil && !errors.Is(err, region.ErrInvalidOption) {
			t.Errorf("WithLockPoll(%v, %v): %v", c.min, c.max, err)
		}
		_ = r.Close()
	}
	configure := func(value string) error {
		r := region.New("param")
		defer r.Close()
		return r.ConfigureURL("memory://?lock_poll=" + url.QueryEscape(value))
	}
	for _, ok := range []string{"1ms,100ms", " 10ms , 1s", "1s,1s"} {
		if err := configure(ok); err != nil {
			t.Errorf("lock_poll=%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "1s", "off", "1s,100ms", "0,1s", "-1ms,1s", "x,y"} {
		if err := configure(bad); err == nil || !strings.Contains(err.Error(), "lock_poll") {
			t.Errorf("lock_poll=%q: %v; want an error naming the parameter", bad, err)
		}
	}
}
