package region_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	_ "github.com/dogpile-go/dogpile/backends/memcached" // memcached:// URLs
	_ "github.com/dogpile-go/dogpile/backends/redis"     // redis:// URLs
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/region"
)

// TestGetOrCreateReturnsByItsDeadlineOnAPausedRedis: a region's GetOrCreate with a 200ms
// deadline, on a Redis that is paused (SIGSTOP: it accepts connections and never answers), returns
// within 300ms, on a backend opened from a URL with the client's defaults for timeouts and
// retries. Under FailClosed it returns the read's error. Under FailOpen (the default) the failed
// read is a miss and the creation starts, but the caller's deadline has passed by then, so the
// caller gets the deadline's error while the creation goes on for any other caller (the region's
// rule for a caller whose context ends); a read that failed sooner would get the creator's value.
func TestGetOrCreateReturnsByItsDeadlineOnAPausedRedis(t *testing.T) {
	srv := testserver.StartRedis(t)
	getOrCreateByDeadline(t, srv, "redis://"+srv.Addr)
}

// TestGetOrCreateReturnsByItsDeadlineOnAPausedMemcached is
// TestGetOrCreateReturnsByItsDeadlineOnAPausedRedis on a memcached, whose client's timeout (500ms
// by default) is longer than the deadline.
func TestGetOrCreateReturnsByItsDeadlineOnAPausedMemcached(t *testing.T) {
	srv := testserver.StartMemcached(t)
	getOrCreateByDeadline(t, srv, "memcached://"+srv.Addr)
}

// getOrCreateByDeadline checks, under FailOpen and then FailClosed, that a GetOrCreate on a region
// on a backend opened from rawURL returns within testserver.CallBound once srv is paused.
func getOrCreateByDeadline(t *testing.T, srv *testserver.Server, rawURL string) {
	t.Helper()
	for _, pc := range []struct {
		name   string
		policy region.FailurePolicy
	}{{"FailOpen", region.FailOpen}, {"FailClosed", region.FailClosed}} {
		policy := pc.policy
		r := region.New("deadline", region.WithExpiration(time.Minute), region.WithFailurePolicy(policy),
			region.WithLogger(slog.New(slog.DiscardHandler)))
		if err := r.Configure(openURL(t, rawURL)); err != nil {
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
			got, err := v.GetOrCreate(ctx, "k"+strconv.Itoa(n), func(context.Context) (string, error) { return "made", nil })
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

// openURL opens a backend the way the README shows (backends.Open on a URL), and closes it when
// tb ends.
func openURL(tb testing.TB, rawURL string) backends.Backend {
	tb.Helper()
	b, err := backends.Open(rawURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if c, ok := b.(io.Closer); ok {
			_ = c.Close()
		}
	})
	return b
}
