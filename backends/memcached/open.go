package memcached

import (
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/dogpile-go/dogpile/backends"
)

func init() {
	if err := backends.Register("memcached", Open); err != nil {
		panic(err)
	}
}

// defaultPort is memcached's port, used for servers of a URL given without one.
const defaultPort = "11211"

// Open is the backends.Opener for "memcached" URLs (see the package documentation):
//
//	memcached://host1[:port][,host2[:port]...][?param=value&...]
//
// It returns a backend on a new client of those servers (port 11211 when none is given), which the
// backend owns: its Close closes the client's idle connections. The parameters are prefix
// (WithPrefix), default_ttl (WithDefaultTTL, a time.ParseDuration string), timeout (the client's
// Timeout for dials, reads and writes, a duration, default 500ms), max_conns (WithMaxConns: the
// most connections open to each server, a whole number >= 1, default DefaultMaxConns),
// max_idle_conns (the client's MaxIdleConns per server, default max_conns) and max_item_size
// (WithMaxItemSize, in bytes or with a k or m suffix as memcached's -I takes it: 2m). An unknown
// or repeated parameter, a bad value, a user name, a path or a fragment is an error naming it.
// The cap counts each server apart, since the backend knows which server the client picks for a
// key.
//
// Open does no I/O: host names are resolved when the client dials, not when Open reads them (unlike
// memcache.New, which resolves them at once and silently drops every server when one fails). The
// client picks servers by gomemcache's rule (CRC-32 of the key modulo the number of servers, in
// the order given), so a process using Open and one using memcache.New with the same servers in the
// same order put a key on the same server.
func Open(u *url.URL) (backends.Backend, error) {
	if u.Scheme != "memcached" {
		return nil, fmt.Errorf("memcached: scheme %q: want memcached", u.Scheme)
	}
	if u.Opaque != "" || u.Fragment != "" || u.User != nil || (u.Path != "" && u.Path != "/") {
		return nil, errors.New("memcached: want a URL of the form memcached://host[:port][,host[:port]...][?param=value&...] (no user, path or fragment)")
	}
	servers, err := parseServers(u.Host)
	if err != nil {
		return nil, err
	}
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		// Not err: its escape ("%zz") may be part of a password. The query, redacted, locates it.
		return nil, fmt.Errorf("memcached: query %q: a %% not followed by two hex digits, or a ';'", backends.Redact("?"+u.RawQuery))
	}
	client := memcache.NewFromSelector(servers)
	c := config{maxItemSize: defaultMaxItemSize, maxConns: DefaultMaxConns()}
	var unknown []string
	for _, name := range slices.Sorted(maps.Keys(query)) { // sorted: the same error every time
		values := query[name]
		if len(values) != 1 {
			return nil, fmt.Errorf("memcached: parameter %q given %d times", name, len(values))
		}
		v := values[0]
		switch name {
		case "prefix":
			c.prefix = v
		case "default_ttl":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return nil, fmt.Errorf("memcached: parameter default_ttl=%q: want a duration >= 0, such as 24h", v)
			}
			c.defaultTTL = d
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("memcached: parameter timeout=%q: want a duration > 0, such as 200ms", v)
			}
			client.Timeout = d
		case "max_conns":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("memcached: parameter max_conns=%q: want a whole number >= 1, the most connections open to each server", v)
			}
			c.maxConns = n
		case "max_idle_conns":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("memcached: parameter max_idle_conns=%q: want a number > 0", v)
			}
			client.MaxIdleConns = n
		case "max_item_size":
			n, err := parseSize(v)
			if err != nil {
				return nil, fmt.Errorf("memcached: parameter max_item_size=%q: want a size in bytes, or with a k or m suffix (2m)", v)
			}
			c.maxItemSize = n
		default:
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("memcached: unknown parameters %q (known: prefix, default_ttl, timeout, max_conns, max_idle_conns, max_item_size)", unknown)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("memcached: %w", err)
	}
	b := New(client, WithPrefix(c.prefix), WithDefaultTTL(c.defaultTTL), WithMaxItemSize(c.maxItemSize),
		WithMaxConns(c.maxConns), func(cfg *config) { cfg.servers = servers })
	b.closeClient = true
	return b, nil
}

// parseServers reads the host part of a URL: servers separated by commas, each host[:port].
func parseServers(hosts string) (serverList, error) {
	if hosts == "" {
		return nil, errors.New("memcached: no server in the URL: want memcached://host[:port][,host[:port]...]")
	}
	var list serverList
	for _, h := range strings.Split(hosts, ",") {
		host, port := h, defaultPort
		if i := strings.LastIndexByte(h, ':'); i > strings.LastIndexByte(h, ']') {
			host, port = h[:i], h[i+1:]
		}
		if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
			host = host[1 : len(host)-1] // an IPv6 address
		}
		if host == "" || strings.ContainsAny(host, "[]/") {
			return nil, fmt.Errorf("memcached: server %q: want host[:port]", h)
		}
		if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
			return nil, fmt.Errorf("memcached: server %q: bad port %q", h, port)
		}
		list = append(list, tcpAddr(net.JoinHostPort(host, port)))
	}
	return list, nil
}

// parseSize reads a size as memcached's -I option takes it: bytes, or a number of KiB (k) or
// MiB (m).
func parseSize(s string) (int, error) {
	unit := 1
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		unit, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "m"), strings.HasSuffix(s, "M"):
		unit, s = 1<<20, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || n > (1<<30)/unit {
		return 0, errors.New("bad size")
	}
	return n * unit, nil
}

// serverList is the memcache.ServerSelector of clients made by Open: memcache.ServerList's rule on
// addresses that the client resolves when it dials. Read-only after Open.
type serverList []net.Addr

// tcpAddr is a host:port that is not resolved yet.
type tcpAddr string

func (a tcpAddr) Network() string { return "tcp" }
func (a tcpAddr) String() string  { return string(a) }

// crcBufs holds buffers for PickServer, so that the checksum of a key does not allocate.
// (256 bytes, as ServerList's: a longer key is refused by the client anyway.)
var crcBufs = sync.Pool{New: func() any { return new([256]byte) }}

// PickServer picks the server of key as memcache.ServerList does: the IEEE CRC-32 of the key
// modulo the number of servers. (TestServerListAgrees holds the two to the same choices.)
func (s serverList) PickServer(key string) (net.Addr, error) {
	if len(s) == 0 {
		return nil, memcache.ErrNoServers
	}
	return s[s.index(key)], nil
}

// index returns the position in s of the server PickServer picks for key; s is not empty.
func (s serverList) index(key string) int {
	if len(s) == 1 {
		return 0
	}
	buf := crcBufs.Get().(*[256]byte)
	n := copy(buf[:], key)
	cs := crc32.ChecksumIEEE(buf[:n])
	crcBufs.Put(buf)
	return int(cs % uint32(len(s)))
}

// Each calls f with every server, in order, and stops at its first error.
func (s serverList) Each(f func(net.Addr) error) error {
	for _, a := range s {
		if err := f(a); err != nil {
			return err
		}
	}
	return nil
}
