package backends

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// ErrUnknownBackend is returned (wrapped) by Open when no backend is registered under the URL's
// scheme. The message names the scheme and the registered ones; the usual cause is a backend
// package that the program does not import.
var ErrUnknownBackend = errors.New("backends: unknown backend")

// ErrDuplicateBackend is returned (wrapped) by Register when the name is already registered.
var ErrDuplicateBackend = errors.New("backends: backend already registered")

// Opener builds a backend from a configuration URL whose scheme is the name it was registered
// under; the rest of the URL (host, path, query parameters) is the backend's own. An Opener must
// be stateless: each call returns a new, independent backend. It should reject what it does not
// understand, unknown query parameters in particular, with an error naming it, so that a typo in a
// configuration file fails at start-up rather than being ignored. Like sql.Open, an Opener should
// not do I/O (it takes no context): a network backend connects lazily or on its first call. Its
// errors should not quote the URL: Open names it, redacted (Redact); an error that quotes a query
// value or an escape of it could show part of a password.
type Opener func(u *url.URL) (Backend, error)

// registry maps a scheme to its Opener. It is the only global mutable state of the library;
// registryMu guards it.
var (
	registryMu sync.RWMutex
	registry   = make(map[string]Opener)
)

// Register makes open the Opener for URLs whose scheme is name, as sql.Register does for drivers.
// Backend packages call it from init, so that importing the package (blank imports included) is
// enough to make its name usable in Open.
//
// name must be a lower-case URL scheme (a letter, then letters, digits, '+', '-' or '.'), since
// url.Parse lower-cases the scheme it reads. Register returns an error for an invalid name, a nil
// open, or a name already registered (wrapping ErrDuplicateBackend). It is safe for concurrent use
// and takes a lock; it is not meant for hot paths.
func Register(name string, open Opener) error {
	if !validScheme(name) {
		return fmt.Errorf("backends: register %q: name must be a lower-case URL scheme ([a-z][a-z0-9+.-]*)", name)
	}
	if open == nil {
		return fmt.Errorf("backends: register %q: nil Opener", name)
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		return fmt.Errorf("backends: register %q: %w", name, ErrDuplicateBackend)
	}
	registry[name] = open
	return nil
}

// Open parses rawURL and builds a backend with the Opener registered under its scheme, for
// example
//
//	b, err := backends.Open("memory://?max_entries=10000")
//
// The scheme must have been registered, usually by importing the backend's package. An unknown
// scheme yields an error wrapping ErrUnknownBackend that names it and the registered ones. Errors
// show the URL as Redact does, without its user information (name, password, token) or the values
// of secret query parameters (password=...), also when it does not parse (ParseURL). Open costs a
// URL parse, a read lock and what the Opener costs, which should not include I/O (see Opener).
func Open(rawURL string) (Backend, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("backends: open: invalid URL: %w", err)
	}
	shown := Redact(rawURL) // the URL as errors show it
	if u.Scheme == "" {
		return nil, fmt.Errorf("backends: open %q: %w: the URL has no scheme (want name://...; registered: %s)",
			shown, ErrUnknownBackend, registeredList())
	}
	registryMu.RLock()
	open := registry[u.Scheme]
	registryMu.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("backends: open %q: %w %q (registered: %s; is its package imported?)",
			shown, ErrUnknownBackend, u.Scheme, registeredList())
	}
	b, err := open(u)
	if err != nil {
		return nil, fmt.Errorf("backends: open %q: %w", shown, err)
	}
	if b == nil {
		return nil, fmt.Errorf("backends: open %q: the %q Opener returned a nil Backend", shown, u.Scheme)
	}
	return b, nil
}

// Registered returns the registered names in sorted order, in a new slice.
func Registered() []string {
	registryMu.RLock()
	names := make([]string, 0, len(registry))
	for name := range registry {
		names = append(names, name)
	}
	registryMu.RUnlock()
	slices.Sort(names)
	return names
}

func registeredList() string {
	names := Registered()
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// validScheme reports whether s is a URL scheme as url.Parse returns it: lower-case.
func validScheme(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}
