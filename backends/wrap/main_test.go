package wrap_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/dogpile-go/dogpile/backends/wrap"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is a hook that records the calls it sees, after they return.
type recorder struct {
	mu    sync.Mutex // guards calls
	calls []wrap.Call
}

func (r *recorder) hook(ctx context.Context, c *wrap.Call, next func(context.Context) error) error {
	err := next(ctx)
	cp := *c
	cp.Keys = slices.Clone(c.Keys)
	r.mu.Lock()
	r.calls = append(r.calls, cp)
	r.mu.Unlock()
	return err
}

// take returns the calls recorded since the last take.
func (r *recorder) take() []wrap.Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	calls := r.calls
	r.calls = nil
	return calls
}

// ops returns the operations of calls, in order.
func ops(calls []wrap.Call) []string {
	var s []string
	for _, c := range calls {
		s = append(s, c.Op.String())
	}
	return s
}
