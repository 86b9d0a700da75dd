package testserver

import (
	"context"
	"testing"
	"time"
)

// The rule the paused-server tests check: a call with a CallDeadline deadline returns within
// CallBound, even against a server that accepts connections and never answers (Pause).
const (
	CallDeadline = 200 * time.Millisecond
	CallBound    = 300 * time.Millisecond
)

// WithinDeadline runs op with a context of CallDeadline and fails t if it has not returned within
// CallBound. A measurement over the bound but under a second is taken again, up to three times in
// all, so that a loaded machine's scheduling delay does not fail the test; a call that waits for
// the client's own timeouts (a second or more) fails at once. check judges op's result: a non-nil
// error from it fails t.
func WithinDeadline(t *testing.T, name string, op func(ctx context.Context) error, check func(error) error) {
	t.Helper()
	var took []time.Duration
	for range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), CallDeadline)
		start := time.Now()
		err := op(ctx)
		elapsed := time.Since(start)
		cancel()
		took = append(took, elapsed.Round(time.Millisecond))
		if cerr := check(err); cerr != nil {
			t.Errorf("%s on a paused server (after %v): %v", name, elapsed.Round(time.Millisecond), cerr)
			return
		}
		if elapsed < CallBound {
			t.Logf("%s on a paused server: %v after %v", name, err, took)
			return
		}
		if elapsed > time.Second {
			break
		}
	}
	t.Errorf("%s with a %v deadline on a paused server took %v; want less than %v", name, CallDeadline, took, CallBound)
}
