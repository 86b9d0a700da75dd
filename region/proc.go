package region

import _ "unsafe" // for go:linkname

// procID returns the id of the P (the scheduler's processor) the calling goroutine runs on, in
// [0, GOMAXPROCS): a hint for spreading writes over cache lines, which may be stale as soon as it
// returns (the goroutine can move to another P), never a lock.
func procID() int {
	p := procPin()
	procUnpin()
	return p
}

// procPin and procUnpin are the runtime's own, the pair sync.Pool uses to find its per-P slot.
// They are internal to the runtime, which tolerates their use through go:linkname by the widely
// used packages that already made it, and marks them not to be removed or changed (see
// go.dev/issue/67401): the linker accepts the reference. A goroutine holds its P only between
// the two calls, never across anything that can block.
//
//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()
