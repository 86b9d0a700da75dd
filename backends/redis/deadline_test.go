package redis_test

import (
	"context"
	"errors"
	"io"
	"net/url"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/internal/testserver"
)

// failed wants an error that is not a miss.
func failed(err error) error {
	if err == nil || errors.Is(err, backends.ErrNotFound) {
		return errors.New("want a failure that is not a miss")
	}
	return nil
}

// openURL opens a backend the way the README shows (backends.Open on a redis:// URL), with the
// client's defaults for timeouts and retries, and closes it when tb ends.
func openURL(tb testing.TB, addr string) *redis.Backend {
	tb.Helper()
	b, err := backends.Open((&url.URL{Scheme: "redis", Host: addr}).String() + "?prefix=" + url.QueryEscape(uniquePrefix(tb)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.(io.Closer).Close() })
	return b.(*redis.Backend)
}

// TestDeadlineHoldsAgainstPausedServer: every call of a backend from a URL honours its context's
// deadline against a Redis that is paused (SIGSTOP: it accepts connections and never answers),
// on connections opened before the pause and on new ones.
func TestDeadlineHoldsAgainstPausedServer(t *testing.T) {
	srv := testserver.StartRedis(t)
	b := openURL(t, srv.Addr)
	ctx := t.Context()
	if err := b.Set(ctx, "k", []byte("v"), 0); err != nil { // a pooled connection, warm
		t.Fatal(err)
	}
	held, ok, err := b.TryLock(ctx, "held", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	srv.Pause(t)

	ops := []struct {
		name string
		op   func(context.Context) error
	}{
		{"Get", func(ctx context.Context) error { _, err := b.Get(ctx, "k"); return err }},
		{"Set", func(ctx context.Context) error { return b.Set(ctx, "k", []byte("v"), 0) }},
		{"Delete", func(ctx context.Context) error { return b.Delete(ctx, "k") }},
		{"GetMulti", func(ctx context.Context) error { _, err := b.GetMulti(ctx, []string{"a", "b"}); return err }},
		{"SetMulti", func(ctx context.Context) error {
			return b.SetMulti(ctx, map[string][]byte{"a": nil, "b": nil}, time.Minute)
		}},
		{"DeleteMulti", func(ctx context.Context) error { return b.DeleteMulti(ctx, []string{"a", "b"}) }},
		{"TryLock", func(ctx context.Context) error { _, _, err := b.TryLock(ctx, "k", time.Second); return err }},
		{"TryLockMulti", func(ctx context.Context) error {
			_, _, err := b.TryLockMulti(ctx, []string{"a", "b"}, time.Second)
			return err
		}},
		{"Unlock", func(ctx context.Context) error { return held.Unlock(ctx) }},
		{"Publish", func(ctx context.Context) error { return b.Publish(ctx, "c", []byte("m")) }},
		{"Subscribe", func(ctx context.Context) error {
			sub, err := b.Subscribe(ctx, "c", func([]byte) {}, func() {})
			if err == nil {
				_ = sub.Close()
			}
			return err
		}},
	}
	for _, o := range ops {
		testserver.WithinDeadline(t, o.name, o.op, failed)
	}
}
