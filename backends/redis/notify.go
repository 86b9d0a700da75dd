package redis

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	goredis "github.com/redis/go-redis/v9"
)

var _ backends.Notifier = (*Backend)(nil)

// notifyTag names the backend's pub/sub channels after the prefix: prefix + notifyTag + channel.
// Channels are not keys, but the prefix keeps applications that share a Redis apart here too.
const notifyTag = "\x00notify\x00"

// Publish sends msg on channel with PUBLISH: one round trip. On a Cluster, PUBLISH reaches the
// subscribers of every node.
func (b *Backend) Publish(ctx context.Context, channel string, msg []byte) error {
	if err := b.client.Publish(ctx, b.prefix+notifyTag+channel, msg).Err(); err != nil {
		return fmt.Errorf("redis: publish %q: %w", channel, err)
	}
	return nil
}

// Subscribe subscribes to channel on a connection of its own (go-redis's PubSub), returns once
// Redis has confirmed the subscription, and then calls deliver with each message on a goroutine
// of its own. When the connection drops, go-redis dials again and subscribes again; each new
// confirmation calls gap, since messages published in between are lost. While Redis is down the
// goroutine retries with a backoff up to a second. Close unsubscribes and waits for the
// goroutine.
func (b *Backend) Subscribe(ctx context.Context, channel string, deliver func([]byte), gap func()) (io.Closer, error) {
	ps := b.client.Subscribe(ctx, b.prefix+notifyTag+channel)
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			_ = ps.Close()
			return nil, fmt.Errorf("redis: subscribe %q: %w", channel, err)
		}
		if _, ok := msg.(*goredis.Subscription); ok {
			break // confirmed: nothing published from now on is missed
		}
	}
	s := &subscription{ps: ps, stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop(deliver, gap)
	return s, nil
}

// subscription is a running Subscribe.
type subscription struct {
	ps   *goredis.PubSub
	stop chan struct{} // closed by Close
	done chan struct{} // closed when loop returns
	once sync.Once
}

func (s *subscription) loop(deliver func([]byte), gap func()) {
	defer close(s.done)
	ctx := context.Background()
	backoff := time.Duration(0)
	for {
		msg, err := s.ps.Receive(ctx)
		select {
		case <-s.stop:
			return
		default:
		}
		if err != nil {
			// The connection failed; the next Receive dials again and subscribes again.
			backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
			t := time.NewTimer(backoff)
			select {
			case <-s.stop:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		backoff = 0
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" {
				gap() // subscribed again after a drop: what was published meanwhile is lost
			}
		case *goredis.Message:
			deliver([]byte(m.Payload))
		}
	}
}

// Close stops the subscription and waits for a deliver or gap call in progress. It may be called
// more than once.
func (s *subscription) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		err = s.ps.Close()
	})
	<-s.done
	return err
}
