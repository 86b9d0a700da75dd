package memcached_test

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memcached"
	"github.com/dogpile-go/dogpile/internal/testserver"
)

// failedByDeadline wants an error that wraps the deadline's, and is not a miss.
func failedByDeadline(err error) error {
	if err == nil || errors.Is(err, backends.ErrNotFound) || !errors.Is(err, context.DeadlineExceeded) {
		return errors.New("want an error wrapping context.DeadlineExceeded, not a miss")
	}
	return nil
}

// openURL opens a backend the way the README shows (backends.Open on a memcached:// URL), with
// the client's default timeout (500ms), and closes it when tb ends.
func openURL(tb testing.TB, addr, query string) *memcached.Backend {
	tb.Helper()
	q := "prefix=" + url.QueryEscape(uniquePrefix(tb))
	if query != "" {
		q += "&" + query
	}
	b, err := backends.Open("memcached://" + addr + "?" + q)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.(*memcached.Backend).Close() })
	return b.(*memcached.Backend)
}

// TestDeadlineHoldsAgainstPausedServer: every call of a backend from a URL returns by its
// context's deadline, before the client's timeout (500ms), against a memcached that is paused
// (SIGSTOP: it accepts connections and never answers), on a connection opened before the pause
// and on new ones.
func TestDeadlineHoldsAgainstPausedServer(t *testing.T) {
	srv := testserver.StartMemcached(t)
	b := openURL(t, srv.Addr, "")
	ctx := t.Context()
	if err := b.Set(ctx, "k", []byte("v"), 0); err != nil { // an idle connection, warm
		t.Fatal(err)
	}
	held, ok, err := b.TryLock(ctx, "held", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	srv.Pause(t)

	for _, o := range []struct {
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
		{"Unlock", func(ctx context.Context) error { return held.Unlock(ctx) }},
	} {
		testserver.WithinDeadline(t, o.name, o.op, failedByDeadline)
	}
}

// TestDeadlineHoldsOnAPoolWithOneServerPaused: GetMulti over a pool of two servers, one of them
// paused, returns by the deadline with the live server's values and the deadline's error.
func TestDeadlineHoldsOnAPoolWithOneServerPaused(t *testing.T) {
	pool := testserver.StartMemcachedPool(t, 2)
	b := openURL(t, pool[0].Addr+","+pool[1].Addr, "")
	ctx := t.Context()
	keys := make([]string, 40)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
		if err := b.Set(ctx, keys[i], []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	pool[1].Pause(t)
	var got int
	testserver.WithinDeadline(t, "GetMulti", func(ctx context.Context) error {
		m, err := b.GetMulti(ctx, keys)
		got = len(m)
		return err
	}, failedByDeadline)
	if got == 0 || got == len(keys) {
		t.Errorf("GetMulti with one of two servers paused returned %d of %d values; want those of the live server", got, len(keys))
	}
}
