package region

import (
	"context"
	"errors"
	"hash/maphash"
	"reflect"
	"sync"
)

// reads shares one backend read of a key among the callers of this process that want it at the
// same time: the herd that reads a hot key, or a cold one, costs the backend one round trip per
// read in flight rather than one per caller. It holds only reads in flight; a finished read is
// forgotten at once, so it caches nothing.
//
// A read that starts after a write of the key in this process has completed never joins one
// that started before it: every write forgets the key's read in flight once it is done (forget),
// so later callers start a read of their own. Callers wait with their own context; the read
// itself runs without the cancellation of the caller that started it, bounded by that caller's
// deadline, so one impatient caller does not fail the others (a caller whose read ended on
// another's deadline reads again).
type reads struct {
	seed   maphash.Seed
	shards [32]readShard
}

type readShard struct {
	mu sync.Mutex
	m  map[string]*read // guarded by mu
	_  [40]byte         // keeps neighbouring shards' mutexes off one cache line
}

// read is one backend read in flight and, once done is closed, its result.
type read struct {
	// done is closed when raw and err are set. It is made, under the shard's mutex, only for a
	// read that someone waits for: a caller alone with no context to watch reads without one.
	done chan struct{}
	raw  []byte
	err  error
	// shared counts the callers that joined the read after the one that started it; guarded by
	// the shard's mutex until done, fixed after.
	shared int

	// mu guards decoded: what the callers that shared the read decoded from raw, one per value
	// type, so that the herd decodes it once (decoded).
	mu      sync.Mutex
	decoded []decodedAs
}

// decodedAs is raw decoded for callers of one value type.
type decodedAs struct {
	typ reflect.Type
	val any
}

// decoded returns what decode makes of the read's bytes for callers of type typ, decoding them
// once for all the callers that shared the read (the others wait for that one decoding). The
// value is shared by those callers, as a hit on the memory backend is.
func (rd *read) decodedAs(typ reflect.Type, decode func() any) any {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	for _, d := range rd.decoded {
		if d.typ == typ {
			return d.val
		}
	}
	val := decode()
	rd.decoded = append(rd.decoded, decodedAs{typ, val})
	return val
}

func (g *reads) init() {
	g.seed = maphash.MakeSeed()
	for i := range g.shards {
		g.shards[i].m = make(map[string]*read)
	}
}

func (g *reads) shard(k string) *readShard {
	return &g.shards[maphash.String(g.seed, k)%uint64(len(g.shards))]
}

// join returns the read in flight for k, or a new one that the caller (leader) must do and end
// with finish. wait says whether a leader will wait for rd.done; a caller that joins always may.
func (g *reads) join(k string, wait bool) (rd *read, leader bool) {
	s := g.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if rd := s.m[k]; rd != nil {
		rd.shared++
		if rd.done == nil {
			rd.done = make(chan struct{})
		}
		return rd, false
	}
	rd = &read{}
	if wait {
		rd.done = make(chan struct{})
	}
	s.m[k] = rd
	return rd, true
}

// finish publishes rd's result and forgets it.
func (g *reads) finish(k string, rd *read, raw []byte, err error) {
	s := g.shard(k)
	s.mu.Lock()
	if s.m[k] == rd {
		delete(s.m, k)
	}
	done := rd.done // no one joins once it is out of the map
	s.mu.Unlock()
	rd.raw, rd.err = raw, err
	if done != nil {
		close(done)
	}
}

// forget detaches k's read in flight, if any: callers that come later start a new one. Writes
// call it once they are done, so that no later read returns what the backend held before them.
func (g *reads) forget(k string) {
	s := g.shard(k)
	s.mu.Lock()
	delete(s.m, k)
	s.mu.Unlock()
}

// read reads k from b's backend, sharing the read with the other callers of this process that
// want k meanwhile. The returned bytes are shared with them: callers only read them (decoders
// must not retain or change their input). It costs a map lookup under a sharded mutex, and for
// a caller whose context can end, a goroutine for the read. It returns the read, done (nil when
// the caller gave up first: then the error is ctx's), whose raw and err are the read's result.
func (g *reads) read(ctx context.Context, b *bound, k string) (*read, error) {
	for {
		rd, leader := g.join(k, ctx.Done() != nil)
		if leader {
			if ctx.Done() == nil {
				// The caller cannot give up: read here and save a goroutine.
				raw, err := b.backend.Get(ctx, k)
				g.finish(k, rd, raw, err)
				return rd, nil
			}
			rctx, cancel := detach(ctx)
			go func() {
				defer cancel()
				raw, err := b.backend.Get(rctx, k)
				g.finish(k, rd, raw, err)
			}()
		}
		select {
		case <-rd.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if !leader && rd.err != nil && isContextErr(rd.err) && ctx.Err() == nil {
			// The read ended on the deadline of the caller that started it, not on ours.
			continue
		}
		return rd, nil
	}
}

// detach returns a context with ctx's values and deadline but not its cancellation.
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	d := context.WithoutCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(d, dl)
	}
	return d, func() {}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
