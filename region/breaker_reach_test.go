package region

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/dogpile-go/dogpile/backends"
	goredis "github.com/redis/go-redis/v9"
)

// TestConnectionErrorsOpenTheBreaker: only errors of reaching the backend open the breaker;
// answers (misses, malformed entries, values too large, error replies) do not, and the
// caller's context ending says nothing either way.
func TestConnectionErrorsOpenTheBreaker(t *testing.T) {
	live := context.Background()
	cancelled, cancel := context.WithCancel(live)
	cancel()
	wrap := func(err error) error { return fmt.Errorf("redis: get %q: %w", "k", err) }
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want reached
	}{
		{"nil", live, nil, reachedYes},
		{"miss", live, wrap(backends.ErrNotFound), reachedYes},
		{"too large", live, wrap(backends.ErrTooLarge), reachedYes},
		{"malformed", live, wrap(backends.ErrMalformed), reachedYes},
		{"error reply", live, wrap(goredis.Nil), reachedYes},
		{"other error", live, wrap(errors.New("WRONGTYPE Operation against a key holding the wrong kind of value")), reachedYes},
		{"refused", live, wrap(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), reachedNot},
		{"reset", live, wrap(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), reachedNot},
		{"i/o timeout", live, wrap(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}), reachedNot},
		{"dial timeout as deadline", live, wrap(fmt.Errorf("%w: %w", context.DeadlineExceeded, &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded})), reachedNot},
		{"EOF", live, wrap(io.EOF), reachedNot},
		{"unexpected EOF", live, wrap(io.ErrUnexpectedEOF), reachedNot},
		{"bare refused", live, wrap(syscall.ECONNREFUSED), reachedNot},
		{"go-redis pool timeout", live, wrap(goredis.ErrPoolTimeout), reachedNot},
		{"memcached connect timeout", live, wrap(&memcache.ConnectTimeoutError{Addr: &net.TCPAddr{}}), reachedNot},
		{"caller cancelled", cancelled, wrap(context.Canceled), reachedUnknown},
		{"read cut by cancellation", cancelled, wrap(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}), reachedUnknown},
		{"caller's deadline", live, wrap(context.DeadlineExceeded), reachedUnknown},
	} {
		if got := reach(tc.ctx, tc.err); got != tc.want {
			t.Errorf("%s: reach(%v) = %d; want %d", tc.name, tc.err, got, tc.want)
		}
	}
}
