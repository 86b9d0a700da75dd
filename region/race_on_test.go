//go:build race

package region_test

// raceEnabled is whether the race detector is on: it needs terabytes of address space, so
// tests that cap the address space skip the cap under it.
const raceEnabled = true
