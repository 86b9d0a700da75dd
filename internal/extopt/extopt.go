// Package extopt lets packages built on region views (memo) carry settings of their own in
// region.Option values, so that a user passes one list of options of one type. Package region
// fills in the two functions at init; nothing else sets them.
package extopt

// New returns a region.Option (as any) named name that carries v, accepted only by the package
// that reads it back with Value: region itself refuses it with an error at every level.
var New func(name string, v any) any

// Value returns what an option made by New carries, and whether o is such an option.
var Value func(o any) (any, bool)
