package memcached

import (
	"context"
	"fmt"
	"runtime"

	"github.com/bradfitz/gomemcache/memcache"
)

// DefaultMaxConns returns the cap on open connections per server that New and Open use without
// WithMaxConns or max_conns: 10 × GOMAXPROCS, go-redis's default pool size. It reads GOMAXPROCS
// when called.
func DefaultMaxConns() int { return 10 * runtime.GOMAXPROCS(0) }

// WithMaxConns caps the connections the backend has open to each server at n (DefaultMaxConns
// without it): a call waits for one of the n to be free, until its context ends (it then returns
// the context's error), and the client keeps up to n idle, so that a steady load reuses them
// instead of dialing. gomemcache alone dials a connection for every concurrent call and keeps
// only two idle, so that a burst of callers opens connections until memcached refuses them
// ("Too many open connections", from its -c limit: 1024 by default). n must be at least 1; New
// panics otherwise. Give every process a share of the servers' -c.
func WithMaxConns(n int) Option {
	return func(c *config) { c.maxConns = n }
}

// limiter is the connection cap of one server (or, for a client passed to New, of all the
// client's servers): a slot for each call in flight, taken before the call and given back when
// the client's call returns, also when its caller stopped waiting for it.
type limiter chan struct{}

// newLimiters returns the limiters of a backend: one per server of an Open client (the list
// whose PickServer the client uses), one for all the servers of another.
func newLimiters(servers serverList, maxConns int) []limiter {
	n := max(len(servers), 1)
	ls := make([]limiter, n)
	for i := range ls {
		ls[i] = make(limiter, maxConns)
	}
	return ls
}

// limiter returns the limiter of the server the client picks for the memcached key mk.
func (b *Backend) limiter(mk string) limiter {
	if len(b.limiters) == 1 {
		return b.limiters[0]
	}
	return b.limiters[b.servers.index(mk)]
}

// result is what a call of the client returned.
type result[T any] struct {
	v   T
	err error
}

// bounded makes call, one or more of the client's calls on one server's connections, under l,
// and returns by the time ctx ends: gomemcache takes no context, so the call runs on a goroutine
// of its own while the caller waits for it or for ctx, whichever comes first. A call whose caller
// stopped waiting goes on to its end, bounded by the client's Timeout (for each dial, read and
// write), and keeps its connection, and its slot in l, until then: no goroutine outlives the
// client's timeout, and the cap counts connections that are really open. A ctx without a Done
// channel (context.Background) can never end: the call is made on the caller's goroutine. ctx
// already done: its error, and no I/O. The error for ctx is ctx.Err(), unwrapped: the callers
// wrap every error with the operation and key.
func bounded[T any](ctx context.Context, l limiter, call func() (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	select {
	case l <- struct{}{}:
	default:
		select {
		case l <- struct{}{}:
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
	if ctx.Done() == nil {
		defer func() { <-l }()
		return call()
	}
	done := make(chan result[T], 1)
	go func() {
		defer func() { <-l }()
		v, err := call()
		done <- result[T]{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		select {
		case r := <-done: // finished too: its result, which is better news than ctx's
			return r.v, r.err
		default:
			return zero, ctx.Err()
		}
	}
}

// getMulti is the client's GetMulti of mks, bounded by ctx. With a limiter per server, the keys
// are split by server and each server's share is a call of its own under that server's limiter,
// all at once (gomemcache would also ask the servers concurrently): a server whose connections
// are all busy, or that hangs, holds up only its own keys, and the others' values come back with
// its error. With one limiter for all the client's servers, GetMulti takes one slot however many
// servers it asks (each of them on one connection).
func (b *Backend) getMulti(ctx context.Context, mks []string) (map[string]*memcache.Item, error) {
	call := func(mks []string) func() (map[string]*memcache.Item, error) {
		return func() (map[string]*memcache.Item, error) {
			return retry(b, func() (map[string]*memcache.Item, error) { return b.client.GetMulti(mks) })
		}
	}
	if len(b.limiters) == 1 {
		return bounded(ctx, b.limiters[0], call(mks))
	}
	shares := make([][]string, len(b.limiters))
	asked := 0
	for _, mk := range mks {
		i := b.servers.index(mk)
		if len(shares[i]) == 0 {
			asked++
		}
		shares[i] = append(shares[i], mk)
	}
	if asked == 1 {
		return bounded(ctx, b.limiter(mks[0]), call(mks))
	}
	results := make(chan result[map[string]*memcache.Item], asked)
	for i, share := range shares {
		if len(share) > 0 {
			go func() {
				items, err := bounded(ctx, b.limiters[i], call(share))
				results <- result[map[string]*memcache.Item]{items, err}
			}()
		}
	}
	m := make(map[string]*memcache.Item, len(mks))
	var err error
	for range asked {
		r := <-results
		for k, it := range r.v {
			m[k] = it
		}
		if r.err != nil && err == nil {
			err = r.err
		}
	}
	return m, err
}

// validateMaxConns checks WithMaxConns's n.
func validateMaxConns(n int) error {
	if n < 1 {
		return fmt.Errorf("WithMaxConns(%d): want at least 1 connection per server", n)
	}
	return nil
}
