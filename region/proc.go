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

// procPin and procUnpin are the runtime's own, the pair sync.Pool uses to find its per-P slot. The
// runtime keeps them reachable through go:linkname, with their signatures fixed, for the
// packages that need a P's id (see go.dev/issue/67401); a goroutine holds its P only between
// the two calls, never across anything that can block.
//
//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()
