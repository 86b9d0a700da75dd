package region

import (
	"sync/atomic"
	"time"
)

// wallClock reads the wall clock in Unix nanoseconds at the cost of the monotonic clock alone:
// a base time.Now() plus the monotonic time elapsed since it. time.Now reads both clocks and
// costs about twice as much, on the hit path. The base is taken again once it is a second old,
// so a step of the system clock is seen within a second.
type wallClock struct {
	base atomic.Pointer[time.Time]
}

const wallClockResync = time.Second

func (c *wallClock) now() int64 {
	b := c.base.Load()
	if b != nil {
		if d := time.Since(*b); d >= 0 && d < wallClockResync {
			return b.UnixNano() + int64(d)
		}
	}
	t := time.Now()
	c.base.Store(&t)
	return t.UnixNano()
}

// coarseClock is the process's clock for the freshness checks of the hit path: a goroutine reads
// the wall clock every coarseStep and readers load what it read last, an atomic load (2 ns)
// instead of a clock read (26 ns on a quiet 2-core EPYC virtual machine, 30-50 ns on a busy one,
// a quarter to a third of a hit: BenchmarkClockRead). It lags the time by up to a step, more
// while the process is starved of CPU; readers use it only to confirm what it can confirm
// despite that lag, a value that is fresh by more than coarseSlack, and ask the precise clock
// about everything else (see Region.fresh).
//
// The goroutine runs only while the clock is read: it starts at the first read and stops once
// coarseIdle has passed without one, so an idle process, or a test that checks for leaked
// goroutines, finds none for long. It never starts inside a testing/synctest bubble, whose fake
// time it would spread to the readers outside; readers inside a bubble, whose time runs behind
// the real one, fall through to the precise clock, which reads the bubble's.
type coarseClock struct {
	now     atomic.Int64 // Unix nanoseconds at the last tick; 0 while no goroutine ticks
	used    atomic.Bool  // read since the goroutine last looked
	running atomic.Bool
}

const (
	coarseStep  = time.Millisecond
	coarseIdle  = 100 * time.Millisecond
	coarseSlack = 20 * time.Millisecond
)

// coarse is the process's coarse clock, shared by every region.
var coarse coarseClock

// read returns the time of the last tick, or 0 when the clock is not running (it starts it).
func (c *coarseClock) read() int64 {
	if !c.used.Load() {
		c.used.Store(true)
	}
	if t := c.now.Load(); t != 0 {
		return t
	}
	c.start()
	return 0
}

// start starts the goroutine, unless it runs or the caller is in a synctest bubble.
func (c *coarseClock) start() {
	t := time.Now()
	if t == t.Round(0) {
		return // no monotonic reading: the fake time of a synctest bubble
	}
	if c.running.CompareAndSwap(false, true) {
		c.now.Store(t.UnixNano())
		go c.run()
	}
}

func (c *coarseClock) run() {
	tick := time.NewTicker(coarseStep)
	defer tick.Stop()
	n := 0
	for range tick.C {
		c.now.Store(time.Now().UnixNano())
		if n++; n < int(coarseIdle/coarseStep) {
			continue
		}
		n = 0
		if !c.used.Swap(false) {
			c.now.Store(0)
			c.running.Store(false)
			return
		}
	}
}
