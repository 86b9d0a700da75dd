package memory

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"

	"github.com/dogpile-go/dogpile/backends"
)

func init() {
	if err := backends.Register("memory", Open); err != nil {
		panic(err)
	}
}

// Open is the backends.Opener for "memory" URLs: memory:// or memory: with optional query
// parameters max_entries and copy (see the package documentation). It does no I/O; the backend
// it returns starts otter's goroutines, which its Close stops.
func Open(u *url.URL) (backends.Backend, error) {
	if u.Opaque != "" || u.User != nil || u.Host != "" || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return nil, errors.New("memory: the URL takes query parameters only (memory://?max_entries=N), no host, user, path or fragment")
	}
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		// Not err: its escape ("%zz") may be part of a password. The query, redacted, locates it.
		return nil, fmt.Errorf("memory: query %q: a %% not followed by two hex digits, or a ';'", backends.Redact("?"+u.RawQuery))
	}
	var opts []Option
	for _, name := range slices.Sorted(maps.Keys(query)) {
		values := query[name]
		if len(values) != 1 {
			return nil, fmt.Errorf("memory: parameter %q given %d times", name, len(values))
		}
		v := values[0]
		switch name {
		case "max_entries":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("memory: parameter max_entries=%q: want a count >= 0", v)
			}
			opts = append(opts, WithMaxEntries(n))
		case "copy":
			c, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("memory: parameter copy=%q: want true or false", v)
			}
			if c {
				opts = append(opts, WithCopy())
			}
		default:
			return nil, fmt.Errorf("memory: unknown parameter %q (known: max_entries, copy)", name)
		}
	}
	return New(opts...), nil
}
