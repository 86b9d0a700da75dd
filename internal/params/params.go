// Package params carries the region parameters (expiration=10m, failure_policy=closed, ...) from
// package region, which owns them, to package config, which reads them from documents and the
// environment as well, without making them part of region's API.
//
// The parameters' reading and the check of a region's settings need region's unexported
// settings, and region cannot import a package that imports region; so region keeps them and
// provides them here once, from init, as a Table:
//
//	// package region
//	func init() { params.Provide(paramTable) }
//
//	// package config
//	var regionParams = params.Provided[*region.Region, region.Option]()
//	opts, err := regionParams.FromQuery(q)
package params

import (
	"fmt"
	"net/url"

	"github.com/dogpile-go/dogpile/backends"
)

// Table is a region's parameters and the check of its settings: R is *region.Region and O
// region.Option. Its functions are region's own, unexported.
type Table[R, O any] struct {
	// Names are the parameters, in the order their options apply.
	Names []string
	// Param returns the option that the parameter name sets to value, checked alone, or an
	// error naming the parameter.
	Param func(name, value string) (O, error)
	// Check returns the error r.ConfigureWith would return for b and opts, configuring nothing.
	Check func(r R, b backends.Backend, opts ...O) error
}

// FromQuery takes the parameters of t out of q and returns the options they set, in the order of
// Names. A parameter given more than once, or with a value Param refuses, is an error naming it;
// q is then left partly taken.
func (t Table[R, O]) FromQuery(q url.Values) ([]O, error) {
	var opts []O
	for _, name := range t.Names {
		vals, ok := q[name]
		if !ok {
			continue
		}
		delete(q, name)
		if len(vals) != 1 {
			return nil, fmt.Errorf("parameter %s given %d times", name, len(vals))
		}
		o, err := t.Param(name, vals[0])
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	return opts, nil
}

// provided is the Table that package region provides: written by region's init, before any
// package that imports region is initialized, and only read afterwards.
var provided any

// Provide records t for Provided. Package region calls it once, from init; a second call
// panics.
func Provide[R, O any](t Table[R, O]) {
	if provided != nil {
		panic("params: Provide called twice")
	}
	provided = t
}

// Provided returns the Table package region provided. It panics if R and O are not the types
// region provided it with: a mistake in this module's code, seen at its first run.
func Provided[R, O any]() Table[R, O] {
	t, ok := provided.(Table[R, O])
	if !ok {
		panic(fmt.Sprintf("params: Provided[%T, %T]: package region provided a %T", *new(R), *new(O), provided))
	}
	return t
}

// URLString is u.String(), but keeps the "//" of a URL without host or path ("memory://",
// which url.URL would print "memory:"), so that errors show URLs as they were written.
func URLString(u *url.URL) string {
	if u.Opaque == "" && u.Host == "" && u.Path == "" && u.User == nil && u.Scheme != "" {
		s := u.Scheme + "://"
		if u.RawQuery != "" {
			s += "?" + u.RawQuery
		}
		return s
	}
	return u.String()
}
