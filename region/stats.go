package region

import (
	"errors"
	"expvar"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dogpile-go/dogpile/internal/dogpile"
)

// Stats is a snapshot of what a region, or one function's View of it, has done since it was
// made. Every field only grows. Hits, NegativeHits, Misses and Expired add up to the reads made
// through GetOrCreate, GetOrCreateWith, GetOrCreateMulti and memo Calls (a batch counts each of
// its keys).
type Stats struct {
	// Hits are reads answered with a fresh value, at the cost of the read alone.
	Hits uint64
	// NegativeHits are reads answered with a cached "not found" (WithNegativeCaching).
	NegativeHits uint64
	// Misses are reads that found no usable value, failed reads included: the caller got a
	// created value, or an error.
	Misses uint64
	// Expired are reads that found an expired value (or one due for an early refresh).
	Expired uint64
	// Stale are calls answered with an expired value while another caller regenerates it (a
	// subset of Expired; a batch counts each key).
	Stale uint64
	// EarlyRefreshes are fresh values whose regeneration a read started early (WithEarlyRefresh;
	// counted in Expired too).
	EarlyRefreshes uint64
	// Creations are calls of creators; a batch creator counts once a call. CreationErrors are
	// those that returned an error or panicked, and CreationTime their total duration.
	Creations      uint64
	CreationErrors uint64
	CreationTime   time.Duration
	// Waits are calls (or batch keys) that waited for a creation another caller led, in this
	// process or, through the backend's lock, in another; WaitTime is the total.
	Waits    uint64
	WaitTime time.Duration
	// BackgroundRefreshes are regenerations handed to the background workers
	// (WithBackgroundRefresh); BackgroundDropped were skipped, every worker being busy.
	BackgroundRefreshes uint64
	BackgroundDropped   uint64
	// StaleOnError are calls answered with an expired value because its regeneration failed
	// (WithStaleIfError).
	StaleOnError uint64
	// Skipped are backend calls the circuit breaker kept from an unreachable backend
	// (WithCircuitBreaker): reads answered as misses, writes dropped, locks not tried. They are
	// not in Errors.
	Skipped uint64
	// Errors are the errors the region reported (to its logger and error handler), by kind.
	Errors ErrorStats
}

// ErrorStats counts reported errors by kind (Error.Kind).
type ErrorStats struct {
	Read      uint64 // backend reads that failed
	Write     uint64 // backend writes and deletes that failed (too large values included)
	Lock      uint64 // lock and unlock calls that failed
	Malformed uint64 // stored entries that did not decode, or held another type
	Encode    uint64 // values the codec could not encode
	Creator   uint64 // creator errors the region reported instead of returning (background, stale-if-error, early refresh)
}

// counters are the live counts behind Stats. Hits, the one count of the hot path, is striped so
// that parallel hits on one function do not all meet on one cache line.
type counters struct {
	hits                                     striped
	negHits, misses, expired, stale, early   atomic.Uint64
	creations, creationErrors, creationTime  atomic.Uint64
	waits, waitTime, background, dropped     atomic.Uint64
	staleOnError, skipped                    atomic.Uint64
	errRead, errWrite, errLock, errMalformed atomic.Uint64
	errEncode, errCreator                    atomic.Uint64
}

// striped is a counter spread over cache lines, each goroutine adding to the cell its stack's
// address picks: cheaper under contention than one atomic word, and exact.
type striped struct {
	cells [8]struct {
		n atomic.Uint64
		_ [56]byte
	}
}

func (s *striped) add() {
	var probe byte
	// Goroutine stacks are at least 2 KiB apart, so bits above the 11th tell goroutines apart.
	s.cells[uintptr(unsafe.Pointer(&probe))>>11&7].n.Add(1)
}

func (s *striped) load() uint64 {
	var n uint64
	for i := range s.cells {
		n += s.cells[i].n.Load()
	}
	return n
}

func (c *counters) snapshot() Stats {
	return Stats{
		Hits: c.hits.load(), NegativeHits: c.negHits.Load(), Misses: c.misses.Load(),
		Expired: c.expired.Load(), Stale: c.stale.Load(), EarlyRefreshes: c.early.Load(),
		Creations: c.creations.Load(), CreationErrors: c.creationErrors.Load(),
		CreationTime: time.Duration(c.creationTime.Load()),
		Waits:        c.waits.Load(), WaitTime: time.Duration(c.waitTime.Load()),
		BackgroundRefreshes: c.background.Load(), BackgroundDropped: c.dropped.Load(),
		StaleOnError: c.staleOnError.Load(), Skipped: c.skipped.Load(),
		Errors: ErrorStats{
			Read: c.errRead.Load(), Write: c.errWrite.Load(), Lock: c.errLock.Load(),
			Malformed: c.errMalformed.Load(), Encode: c.errEncode.Load(), Creator: c.errCreator.Load(),
		},
	}
}

// add adds o to s, field by field.
func (s *Stats) add(o Stats) {
	s.Hits += o.Hits
	s.NegativeHits += o.NegativeHits
	s.Misses += o.Misses
	s.Expired += o.Expired
	s.Stale += o.Stale
	s.EarlyRefreshes += o.EarlyRefreshes
	s.Creations += o.Creations
	s.CreationErrors += o.CreationErrors
	s.CreationTime += o.CreationTime
	s.Waits += o.Waits
	s.WaitTime += o.WaitTime
	s.BackgroundRefreshes += o.BackgroundRefreshes
	s.BackgroundDropped += o.BackgroundDropped
	s.StaleOnError += o.StaleOnError
	s.Skipped += o.Skipped
	s.Errors.Read += o.Errors.Read
	s.Errors.Write += o.Errors.Write
	s.Errors.Lock += o.Errors.Lock
	s.Errors.Malformed += o.Errors.Malformed
	s.Errors.Encode += o.Errors.Encode
	s.Errors.Creator += o.Errors.Creator
}

// observe counts an engine event for n keys.
func (c *counters) observe(e dogpile.Event, n int, d time.Duration) {
	switch e {
	case dogpile.EventStale:
		c.stale.Add(uint64(n))
	case dogpile.EventWaited:
		c.waits.Add(uint64(n))
		c.waitTime.Add(uint64(d))
	case dogpile.EventBackground:
		c.background.Add(uint64(n))
	case dogpile.EventDropped:
		c.dropped.Add(uint64(n))
	}
}

func (c *counters) created(d time.Duration, err error) {
	c.creations.Add(1)
	c.creationTime.Add(uint64(d))
	if err != nil {
		c.creationErrors.Add(1)
	}
}

// errPanicked counts a creator that panicked or called runtime.Goexit as failed.
var errPanicked = errors.New("creator did not return")

// views is a region's set of live views' counters, and what views collected since added up.
type views struct {
	mu      sync.Mutex
	live    map[*counters]struct{}
	retired Stats
}

// track adds the counters of a new view to the region's; when the view is collected they move
// to retired (retire), so a program that makes views on the fly keeps neither the views nor its
// totals growing without bound.
func track[V any](r *Region, v *View[V]) {
	r.views.mu.Lock()
	if r.views.live == nil {
		r.views.live = make(map[*counters]struct{})
	}
	r.views.live[v.c] = struct{}{}
	r.views.mu.Unlock()
	runtime.AddCleanup(v, r.retire, v.c)
}

func (r *Region) retire(c *counters) {
	r.views.mu.Lock()
	delete(r.views.live, c)
	r.views.retired.add(c.snapshot())
	r.views.mu.Unlock()
}

// Stats returns the region's counts: those of every View of it (memo handles included), added
// up, and its own (errors outside any view's calls: Delete, Invalidate, background reports). It
// costs a lock and a few atomic loads a view.
func (r *Region) Stats() Stats {
	s := r.counters.snapshot()
	r.views.mu.Lock()
	defer r.views.mu.Unlock()
	s.add(r.views.retired)
	for c := range r.views.live {
		s.add(c.snapshot())
	}
	return s
}

// Stats returns the counts of the calls made through this View: one function's, for a memo
// handle's View. Errors outside its calls are counted by the region only.
func (v *View[V]) Stats() Stats { return v.c.snapshot() }

// PublishExpvar publishes the region's Stats as the expvar variable name (for /debug/vars), as
// a JSON object computed when read. expvar names are global to the process: a name already
// published is an error, not a panic.
func (r *Region) PublishExpvar(name string) (err error) {
	if expvar.Get(name) != nil {
		return r.fail(OpPublishExpvar, KindUsage, "", fmt.Errorf("expvar %q is already published", name))
	}
	defer func() {
		if recover() != nil { // published meanwhile by another goroutine
			err = r.fail(OpPublishExpvar, KindUsage, "", fmt.Errorf("expvar %q is already published", name))
		}
	}()
	expvar.Publish(name, expvar.Func(func() any { return r.Stats() }))
	return nil
}

// countError counts a reported error by its kind, in c (a view's, or nil: the region's own).
// The region reports errors of the six kinds ErrorStats has; anything else counts as a write.
func (r *Region) countError(c *counters, err error) {
	if c == nil {
		c = &r.counters
	}
	var kind Kind
	if e, ok := err.(*Error); ok {
		kind = e.Kind
	}
	switch kind {
	case KindRead:
		c.errRead.Add(1)
	case KindLock:
		c.errLock.Add(1)
	case KindMalformed:
		c.errMalformed.Add(1)
	case KindEncode:
		c.errEncode.Add(1)
	case KindCreator:
		c.errCreator.Add(1)
	default:
		c.errWrite.Add(1)
	}
}
