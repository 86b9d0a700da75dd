package file

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dogpile-go/dogpile/backends"
)

func init() {
	if err := backends.Register("file", Open); err != nil {
		panic(err)
	}
}

// Open is the backends.Opener for "file" URLs:
//
//	file:///var/cache/myapp?max_size=1GiB&max_entries=100000&fsync=false&default_ttl=24h
//
// The path is the directory (file:///abs/path, or file:rel/path relative to the working
// directory); the host must be empty or localhost. The parameters are max_size (WithMaxSize: bytes,
// or a number with a unit among B, KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB, TiB (powers
// of 1024), case-insensitive), max_value_size (WithMaxValueSize, a size as max_size's, above 0),
// max_entries (WithMaxEntries), fsync (WithFsync: true or false) and
// default_ttl (WithDefaultTTL, a time.ParseDuration string). An unknown or repeated parameter or a
// bad value is an error naming it.
//
// Unlike the Openers of network backends, Open does I/O: it calls New, which creates the
// directory and, with a bound, scans it. A file backend has no connection to defer.
func Open(u *url.URL) (backends.Backend, error) {
	if u.Scheme != "file" {
		return nil, fmt.Errorf("file: scheme %q: want file", u.Scheme)
	}
	if u.User != nil || u.Fragment != "" || (u.Host != "" && u.Host != "localhost") {
		return nil, errors.New("file: want a URL of the form file:///path/to/dir[?param=value&...] (no host, user or fragment)")
	}
	dir := u.Path
	if u.Opaque != "" {
		dir = u.Opaque
		if d, err := url.PathUnescape(dir); err == nil {
			dir = d
		}
	}
	if dir == "" {
		return nil, errors.New("file: no directory in the URL: want file:///path/to/dir")
	}
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		// Not err: its escape ("%zz") may be part of a password. The query, redacted, locates it.
		return nil, fmt.Errorf("file: query %q: a %% not followed by two hex digits, or a ';'", backends.Redact("?"+u.RawQuery))
	}
	var opts []Option
	var unknown []string
	for _, name := range slices.Sorted(maps.Keys(query)) {
		values := query[name]
		if len(values) != 1 {
			return nil, fmt.Errorf("file: parameter %q given %d times", name, len(values))
		}
		v := values[0]
		switch name {
		case "max_size":
			n, err := parseSize(v)
			if err != nil {
				return nil, fmt.Errorf("file: parameter max_size=%q: want a size in bytes, or with a unit such as 512MiB or 1GB", v)
			}
			opts = append(opts, WithMaxSize(n))
		case "max_value_size":
			n, err := parseSize(v)
			if err != nil || n == 0 {
				return nil, fmt.Errorf("file: parameter max_value_size=%q: want a size above 0, in bytes or with a unit such as 1MiB", v)
			}
			opts = append(opts, WithMaxValueSize(n))
		case "max_entries":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("file: parameter max_entries=%q: want a number >= 0", v)
			}
			opts = append(opts, WithMaxEntries(n))
		case "fsync":
			on, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("file: parameter fsync=%q: want true or false", v)
			}
			opts = append(opts, WithFsync(on))
		case "default_ttl":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return nil, fmt.Errorf("file: parameter default_ttl=%q: want a duration >= 0, such as 24h", v)
			}
			opts = append(opts, WithDefaultTTL(d))
		default:
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("file: unknown parameters %q (known: max_size, max_value_size, max_entries, fsync, default_ttl)", unknown)
	}
	return New(dir, opts...)
}

// sizeUnits are the units parseSize takes, longest suffixes first so that "KiB" is not read as
// "B".
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

// parseSize reads a size: a whole number of bytes, optionally followed by a unit (see Open).
func parseSize(s string) (int64, error) {
	num, mult := s, int64(1)
	lower := strings.ToLower(s)
	for _, u := range sizeUnits {
		if strings.HasSuffix(lower, u.suffix) {
			num, mult = strings.TrimSpace(s[:len(s)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, errors.New("bad size")
	}
	return n * mult, nil
}
