package redis_test

import (
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends/redis"
)

// subscriber collects what a subscription delivers.
type subscriber struct {
	msgs chan string
	gaps chan struct{}
}

func newSubscriber() *subscriber {
	return &subscriber{msgs: make(chan string, 16), gaps: make(chan struct{}, 16)}
}

func (s *subscriber) deliver(m []byte) { s.msgs <- string(m) }
func (s *subscriber) gap()             { s.gaps <- struct{}{} }

func (s *subscriber) want(t *testing.T, msg string) {
	t.Helper()
	select {
	case got := <-s.msgs:
		if got != msg {
			t.Fatalf("received %q, want %q", got, msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%q not received within 5s", msg)
	}
}

func TestNotifier(t *testing.T) {
	ctx := t.Context()
	prefix := uniquePrefix(t)
	pub := redis.New(newClient(t), redis.WithPrefix(prefix))
	subClient := newClient(t)
	sub := redis.New(subClient, redis.WithPrefix(prefix))
	other := redis.New(newClient(t), redis.WithPrefix(prefix+"other:"))

	s, o := newSubscriber(), newSubscriber()
	closer, err := sub.Subscribe(ctx, "inval", s.deliver, s.gap)
	if err != nil {
		t.Fatal(err)
	}
	oc, err := other.Subscribe(ctx, "inval", o.deliver, o.gap)
	if err != nil {
		t.Fatal(err)
	}
	defer oc.Close()

	// Subscribe returns once subscribed: a message published right after arrives.
	if err := pub.Publish(ctx, "inval", []byte("k1")); err != nil {
		t.Fatal(err)
	}
	s.want(t, "k1")
	select {
	case m := <-o.msgs:
		t.Errorf("a subscriber under another prefix received %q", m)
	case <-time.After(100 * time.Millisecond):
	}

	// The subscription's connection is killed: messages published while it is down are lost,
	// and gap says so once it is back; then messages flow again.
	if err := subClient.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.gaps:
	case <-time.After(5 * time.Second):
		t.Fatal("no gap reported after the subscription's connection was killed")
	}
	if err := pub.Publish(ctx, "inval", []byte("k2")); err != nil {
		t.Fatal(err)
	}
	s.want(t, "k2")

	// Close stops it, and may be called again.
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	_ = closer.Close()
	if err := pub.Publish(ctx, "inval", []byte("k3")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-s.msgs:
		t.Errorf("received %q after Close", m)
	case <-time.After(100 * time.Millisecond):
	}
}
