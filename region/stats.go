package region

import (
	"errors"
	"expvar"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dogpile-go/dogpile/internal/dogpile"
)

// Stats is a snapshot of what a region, or one function's View of it, has done since it was
// made. Every field only grows. Hits, NegativeHits, Misses and Expired add up to the reads made
// through GetOrCreate, GetOrCreateWith, GetOrCreateMulti and memo Calls (a batch counts each of
// its keys): Reads.
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
	// those that returned an error or panicked, and CreationTime their total duration, read from
	// the region's clock (WithClock's, if set).
	Creations      uint64
	CreationErrors uint64
	CreationTime   time.Duration
	// Waits are calls (or batch keys) that waited for a creation another caller led, in this
	// process or, through the backend's lock, in another; WaitTime is the total.
	Waits    uint64
	WaitTime time.Duration
	// Background counts the regenerations of expired values by the background workers
	// (WithBackgroundRefresh).
	Background BackgroundStats
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

// BackgroundStats counts background regenerations (WithBackgroundRefresh, and early refreshes,
// which always run in the background: see WithEarlyRefresh) by what became of them, in keys (a
// batch counts each of its keys). A read that finds a value expired or due for an early refresh,
// and leads its regeneration, either hands it to a worker (Scheduled) or, every worker being
// busy, leaves the value as it is for a later read to try again (Skipped). A scheduled
// regeneration runs its creator (Run) unless it finds another process regenerating the key, its
// lock held or a new value stored already, or the region closes first: Scheduled - Run are those.
type BackgroundStats struct {
	Scheduled uint64 // regenerations handed to a background worker
	Run       uint64 // scheduled regenerations that called their creator
	Skipped   uint64 // regenerations not scheduled, every worker being busy
}

// Reads returns the number of reads: Hits + NegativeHits + Misses + Expired.
func (s Stats) Reads() uint64 { return s.Hits + s.NegativeHits + s.Misses + s.Expired }

// HitRatio returns Hits / Reads: the share of reads answered with a fresh value, in [0, 1], or
// 0 when there were no reads. A cached "not found" (NegativeHits) is a read but not a hit.
func (s Stats) HitRatio() float64 {
	n := s.Reads()
	if n == 0 {
		return 0
	}
	return float64(s.Hits) / float64(n)
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
	waits, waitTime                          atomic.Uint64
	bgScheduled, bgRun, bgSkipped            atomic.Uint64
	staleOnError, skipped                    atomic.Uint64
	errRead, errWrite, errLock, errMalformed atomic.Uint64
	errEncode, errCreator                    atomic.Uint64
}

// striped is a counter spread over cache lines, one cell per P (the scheduler's processors,
// GOMAXPROCS of them), Ps beyond the cells' number sharing them: parallel adds from different Ps
// write different lines, and the sum stays exact. (A cell picked by the goroutine's stack
// address, the other cheap way, puts two goroutines on one cell often enough to halve parallel
// hits.)
type striped struct {
	// A leading line keeps the first cell off the first line of the counter's allocation: there,
	// on the 2-core AMD EPYC machines this was measured on, parallel adds ran 2.5 times slower,
	// as if the line were shared.
	_     [cacheLine]byte
	cells [16]struct {
		n atomic.Uint64
		_ [cacheLine - 8]byte
	}
}

// cacheLine is the size of a cache line on amd64 and on most arm64 parts (some arm64 parts
// have 128-byte lines, where two neighbouring cells share one: still exact, only slower).
const cacheLine = 64

func (s *striped) add() {
	p := procID()
	s.cells[uint(p)%uint(len(s.cells))].n.Add(1)
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
		Background: BackgroundStats{
			Scheduled: c.bgScheduled.Load(), Run: c.bgRun.Load(), Skipped: c.bgSkipped.Load(),
		},
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
	s.Background.Scheduled += o.Background.Scheduled
	s.Background.Run += o.Background.Run
	s.Background.Skipped += o.Background.Skipped
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
		c.bgScheduled.Add(uint64(n))
	case dogpile.EventBackgroundRun:
		c.bgRun.Add(uint64(n))
	case dogpile.EventDropped:
		c.bgSkipped.Add(uint64(n))
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
	live    map[*counters]string // each live view's counters, and its name
	retired map[string]*Stats    // what the views collected since counted, by name
}

// WithName names a view, or a memo handle, in the region's statistics: ViewStats and the
// "functions" of PublishExpvar add up the counts of the views of each name. A view without one
// is named by its value type (reflect.Type.String: "string", "*app.User"), a memo handle by its
// namespace. Views of one name add up: give different functions different names to tell them
// apart. A setting of views and handles only; name must not be empty.
func WithName(name string) Option {
	var err error
	if name == "" {
		err = invalid("WithName(\"\"): need a name")
	}
	return Option{name: "WithName", at: atView, err: err, viewName: name}
}

// viewName is the name of a view made with opts and values of type t: the last WithName in
// opts, or t's.
func viewName(opts []Option, t reflect.Type) string {
	name := t.String()
	for _, o := range opts {
		if o.viewName != "" {
			name = o.viewName
		}
	}
	return name
}

// track adds the counters of a new view, named name, to the region's; when the view is
// collected they move to retired (retire), so a program that makes views on the fly keeps
// neither the views nor its totals growing without bound, as long as it makes them under a
// bounded set of names.
func track[V any](r *Region, v *View[V], name string) {
	r.views.mu.Lock()
	if r.views.live == nil {
		r.views.live = make(map[*counters]string)
	}
	r.views.live[v.c] = name
	r.views.mu.Unlock()
	runtime.AddCleanup(v, r.retire, v.c)
}

func (r *Region) retire(c *counters) {
	r.views.mu.Lock()
	defer r.views.mu.Unlock()
	name := r.views.live[c]
	delete(r.views.live, c)
	if r.views.retired == nil {
		r.views.retired = make(map[string]*Stats)
	}
	s := r.views.retired[name]
	if s == nil {
		s = new(Stats)
		r.views.retired[name] = s
	}
	s.add(c.snapshot())
}

// Stats returns the region's counts: those of every View of it (memo handles included), added
// up, and its own (errors outside any view's calls: Delete, Invalidate, background reports). It
// costs a lock and a few atomic loads a view.
func (r *Region) Stats() Stats {
	s, _ := r.stats(false)
	return s
}

// ViewStats returns the counts of the region's views (memo handles included) by name (see
// WithName): of each name, the Stats of the views of that name added up, those collected
// included. Errors outside any view's calls are in Region.Stats only. It costs what Stats does,
// and a map.
func (r *Region) ViewStats() map[string]Stats {
	_, by := r.stats(true)
	return by
}

// stats returns the region's counts and, if byName, its views' by name, from one pass under
// the lock.
func (r *Region) stats(byName bool) (Stats, map[string]Stats) {
	s := r.counters.snapshot()
	var by map[string]Stats
	if byName {
		by = make(map[string]Stats)
	}
	r.views.mu.Lock()
	defer r.views.mu.Unlock()
	for name, o := range r.views.retired {
		s.add(*o)
		if byName {
			v := by[name]
			v.add(*o)
			by[name] = v
		}
	}
	for c, name := range r.views.live {
		o := c.snapshot()
		s.add(o)
		if byName {
			v := by[name]
			v.add(o)
			by[name] = v
		}
	}
	return s, by
}

// Stats returns the counts of the calls made through this View: one function's, for a memo
// handle's View. Errors outside its calls are counted by the region only.
func (v *View[V]) Stats() Stats { return v.c.snapshot() }

// PublishExpvar publishes the region's Stats as the expvar variable name (for /debug/vars), as
// a JSON object computed when read (at the cost of ViewStats). expvar names are global to the
// process: a name already published is an error, not a panic.
//
// The object holds every count of Stats under its snake-case name, times in seconds
// ("creation_seconds", "wait_seconds"), the reads and the hit ratio (Stats.Reads,
// Stats.HitRatio), the background regenerations and the errors as objects of their own, and
// "functions": the same object for each name of ViewStats, the region's memo handles by
// namespace. Published as "users":
//
//	{"reads": 10, "hits": 8, "negative_hits": 0, "misses": 2, "expired": 0, "hit_ratio": 0.8,
//	 "stale": 0, "early_refreshes": 0, "creations": 2, "creation_errors": 0,
//	 "creation_seconds": 0.25, "waits": 0, "wait_seconds": 0,
//	 "background_refreshes": {"scheduled": 0, "run": 0, "skipped": 0},
//	 "stale_on_error": 0, "skipped": 0,
//	 "errors": {"read": 0, "write": 0, "lock": 0, "malformed": 0, "encode": 0, "creator": 0},
//	 "functions": {"app.loadUser": {"reads": 10, "hits": 8, ...}}}
//
// so that a user of expvarmon or jq finds one function's ratio at users.functions.<name>.hit_ratio.
func (r *Region) PublishExpvar(name string) (err error) {
	if expvar.Get(name) != nil {
		return r.fail(OpPublishExpvar, KindUsage, "", fmt.Errorf("expvar %q is already published", name))
	}
	defer func() {
		if recover() != nil { // published meanwhile by another goroutine
			err = r.fail(OpPublishExpvar, KindUsage, "", fmt.Errorf("expvar %q is already published", name))
		}
	}()
	expvar.Publish(name, expvar.Func(func() any {
		s, by := r.stats(true)
		out := regionVar{statsVar: newStatsVar(s), Functions: make(map[string]statsVar, len(by))}
		for n, v := range by {
			out.Functions[n] = newStatsVar(v)
		}
		return out
	}))
	return nil
}

// regionVar is the JSON of PublishExpvar: the region's statsVar and its views'.
type regionVar struct {
	statsVar
	Functions map[string]statsVar `json:"functions"`
}

// statsVar is Stats as PublishExpvar shows it.
type statsVar struct {
	Reads          uint64        `json:"reads"`
	Hits           uint64        `json:"hits"`
	NegativeHits   uint64        `json:"negative_hits"`
	Misses         uint64        `json:"misses"`
	Expired        uint64        `json:"expired"`
	HitRatio       float64       `json:"hit_ratio"`
	Stale          uint64        `json:"stale"`
	EarlyRefreshes uint64        `json:"early_refreshes"`
	Creations      uint64        `json:"creations"`
	CreationErrors uint64        `json:"creation_errors"`
	CreationTime   float64       `json:"creation_seconds"`
	Waits          uint64        `json:"waits"`
	WaitTime       float64       `json:"wait_seconds"`
	Background     backgroundVar `json:"background_refreshes"`
	StaleOnError   uint64        `json:"stale_on_error"`
	Skipped        uint64        `json:"skipped"`
	Errors         errorsVar     `json:"errors"`
}

type backgroundVar struct {
	Scheduled uint64 `json:"scheduled"`
	Run       uint64 `json:"run"`
	Skipped   uint64 `json:"skipped"`
}

type errorsVar struct {
	Read      uint64 `json:"read"`
	Write     uint64 `json:"write"`
	Lock      uint64 `json:"lock"`
	Malformed uint64 `json:"malformed"`
	Encode    uint64 `json:"encode"`
	Creator   uint64 `json:"creator"`
}

func newStatsVar(s Stats) statsVar {
	return statsVar{
		Reads: s.Reads(), Hits: s.Hits, NegativeHits: s.NegativeHits, Misses: s.Misses,
		Expired: s.Expired, HitRatio: s.HitRatio(), Stale: s.Stale, EarlyRefreshes: s.EarlyRefreshes,
		Creations: s.Creations, CreationErrors: s.CreationErrors, CreationTime: s.CreationTime.Seconds(),
		Waits: s.Waits, WaitTime: s.WaitTime.Seconds(),
		Background:   backgroundVar(s.Background),
		StaleOnError: s.StaleOnError, Skipped: s.Skipped,
		Errors: errorsVar(s.Errors),
	}
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
