// Package null is a backend that stores nothing: every Get is a miss, so every call through a
// region runs its creator. Use it in tests, or as a kill switch that turns a cache off without
// touching the code that uses it.
//
//	b := null.New()
//
// Importing the package registers it under the name "null" for backends.Open: the URL is
// null:// (or null:), with no host, path or query parameters.
package null

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/dogpile-go/dogpile/backends"
)

var (
	_ backends.Backend      = (*Backend)(nil)
	_ backends.MultiGetter  = (*Backend)(nil)
	_ backends.MultiSetter  = (*Backend)(nil)
	_ backends.MultiDeleter = (*Backend)(nil)
)

// errNotFound is what every Get returns, wrapped once here so that a miss does not allocate.
var errNotFound = fmt.Errorf("null: %w", backends.ErrNotFound)

func init() {
	if err := backends.Register("null", Open); err != nil {
		panic(err)
	}
}

// Open is the backends.Opener for "null" URLs: null://, with no host, path or parameter. It
// returns New().
func Open(u *url.URL) (backends.Backend, error) {
	if u.Opaque != "" || u.User != nil || u.Host != "" || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return nil, errors.New("null: the URL takes no host or path (null://)")
	}
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		// Not err: its escape ("%zz") may be part of a secret. The query, redacted, locates it.
		return nil, fmt.Errorf("null: query %q: a %% not followed by two hex digits, or a ';'", backends.Redact("?"+u.RawQuery))
	}
	for name := range query {
		return nil, fmt.Errorf("null: unknown parameter %q (null takes none)", name)
	}
	return New(), nil
}

// Backend stores nothing. It has no state: the zero value and New() are the same backend, safe
// for concurrent use, and no call but GetMulti allocates.
type Backend struct{}

// New returns a backend that stores nothing. It does not allocate: Backend has no fields.
func New() *Backend {
	return &Backend{}
}

// Get always returns an error wrapping backends.ErrNotFound.
func (*Backend) Get(context.Context, string) ([]byte, error) {
	return nil, errNotFound
}

// Set discards the value and returns nil.
func (*Backend) Set(context.Context, string, []byte, time.Duration) error {
	return nil
}

// Delete does nothing and returns nil.
func (*Backend) Delete(context.Context, string) error {
	return nil
}

// GetMulti returns a new empty map and no error; the map is its only allocation.
func (*Backend) GetMulti(context.Context, []string) (map[string][]byte, error) {
	return map[string][]byte{}, nil
}

// SetMulti discards the values and returns nil.
func (*Backend) SetMulti(context.Context, map[string][]byte, time.Duration) error {
	return nil
}

// DeleteMulti does nothing and returns nil.
func (*Backend) DeleteMulti(context.Context, []string) error {
	return nil
}
