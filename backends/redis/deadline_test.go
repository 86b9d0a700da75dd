package redis_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/region"
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

// TestRegionDeadlineHoldsAgainstPausedServer: a region's GetOrCreate with a 200ms deadline, on a
// Redis that is paused, returns within 300ms. Under FailClosed it returns the read's error. Under
// FailOpen (the default) the failed read is a miss and the creation starts, but the caller's
// deadline has passed by then, so the caller gets the deadline's error while the creation goes
// on for any other caller (the region's rule for a caller whose context ends); a read that failed
// sooner would get the creator's value.
func TestRegionDeadlineHoldsAgainstPausedServer(t *testing.T) {
	srv := testserver.StartRedis(t)
	for _, pc := range []struct {
		name   string
		policy region.FailurePolicy
	}{{"FailOpen", region.FailOpen}, {"FailClosed", region.FailClosed}} {
		policy := pc.policy
		r := region.New("deadline", region.WithExpiration(time.Minute), region.WithFailurePolicy(policy),
			region.WithLogger(slog.New(slog.DiscardHandler)))
		if err := r.Configure(openURL(t, srv.Addr)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		v := region.NewView[string](r)
		if _, err := v.GetOrCreate(t.Context(), "warm", func(context.Context) (string, error) { return "v", nil }); err != nil {
			t.Fatal(err) // a pooled connection, warm
		}
		srv.Pause(t)
		n := 0
		testserver.WithinDeadline(t, "GetOrCreate under "+pc.name, func(ctx context.Context) error {
			n++
			got, err := v.GetOrCreate(ctx, "k"+string(rune('0'+n)), func(context.Context) (string, error) { return "made", nil })
			if err == nil && got != "made" {
				return errors.New("got " + got)
			}
			return err
		}, func(err error) error {
			switch {
			case policy == region.FailOpen && err != nil && !errors.Is(err, context.DeadlineExceeded):
				return errors.New("want the creator's value, or the deadline's error, under FailOpen; got " + err.Error())
			case policy == region.FailClosed && err == nil:
				return errors.New("want an error under FailClosed")
			}
			return nil
		})
		srv.Resume()
	}
}
