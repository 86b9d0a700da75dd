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
