package memcached

import (
	"crypto/sha1"
	"encoding/hex"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

func TestExpiration(t *testing.T) {
	now := time.Unix(1_750_000_000, 0) // June 2025
	const day = 24 * time.Hour
	for _, tc := range []struct {
		ttl  time.Duration
		want int32
	}{
		{0, 0},
		{-time.Second, 0},
		{time.Nanosecond, 2},
		{time.Millisecond, 2}, // never 0, which is no expiry; and at least 1s on memcached's clock
		{999 * time.Millisecond, 2},
		{time.Second, 2},
		{time.Second + time.Nanosecond, 3},
		{1500 * time.Millisecond, 3},
		{90 * time.Second, 91},
		{time.Hour, 3601},
		{30*day - 2*time.Second, 30*86400 - 1},
		{30*day - time.Second, 30 * 86400}, // the longest relative expiry
		// Longer: memcached would read the number of seconds as a Unix time in 1970.
		{30 * day, 1_750_000_000 + 30*86400 + 1},
		{31 * day, 1_750_000_000 + 31*86400 + 1},
		{365 * day, 1_750_000_000 + 365*86400 + 1},
		// Past January 2038, which memcached's 32-bit times cannot hold: no expiry.
		{time.Duration(math.MaxInt32-1_750_000_000) * time.Second, 0},
		{time.Duration(math.MaxInt32-1_750_000_000-1) * time.Second, math.MaxInt32},
		{time.Duration(math.MaxInt64), 0},
	} {
		if got := expiration(tc.ttl, now); got != tc.want {
			t.Errorf("expiration(%v) = %d; want %d", tc.ttl, got, tc.want)
		}
	}
}

func TestKeyMapping(t *testing.T) {
	hash := func(prefix, key string) string {
		sum := sha1.Sum([]byte(key))
		return prefix + "sha1:" + hex.EncodeToString(sum[:])
	}
	for _, prefix := range []string{"", "app:", strings.Repeat("p", maxPrefixLen)} {
		b := New(memcache.New("127.0.0.1:1"), WithPrefix(prefix))
		fit := 250 - len(prefix)
		for _, tc := range []struct {
			key  string
			asIs bool
		}{
			{"users|i64:42", true},
			{strings.Repeat("k", fit), true},
			{strings.Repeat("k", fit+1), false},
			{"a b", false},
			{"a\tb", false},
			{"a\nb", false},
			{"a\x00b", false},
			{"a\x7fb", false},
			{"\x1f", false},
			{"ключ", true},
			{"\xff", true},
			{"sha1:0123", false},
			{"xsha1:0123", true},
			{"", prefix != ""},
		} {
			got := b.key(tc.key)
			want := hash(prefix, tc.key)
			if tc.asIs {
				want = prefix + tc.key
			}
			if got != want {
				t.Errorf("prefix %q: key(%q) = %q; want %q", prefix, tc.key, got, want)
			}
			if len(got) > 250 || !sendable(got) || got == "" {
				t.Errorf("prefix %q: key(%q) = %q, which memcached refuses", prefix, tc.key, got)
			}
			if lk := b.lockKey(tc.key); len(lk) > 250 || !sendable(lk) {
				t.Errorf("prefix %q: the lock key of %q is %q, which memcached refuses", prefix, tc.key, lk)
			}
		}
	}
}

func TestKeyMappingAllocations(t *testing.T) {
	b := New(memcache.New("127.0.0.1:1"))
	var sink string
	if n := testing.AllocsPerRun(100, func() { sink = b.key("users|i64:42") }); n != 0 {
		t.Errorf("mapping a key sent as it is, without a prefix, allocates %v times; want 0", n)
	}
	_ = sink
}

// TestServerListAgrees holds Open's server selection to gomemcache's, so that processes that
// configure the same servers with Open and with memcache.New put every key on the same server.
func TestServerListAgrees(t *testing.T) {
	addrs := []string{"127.0.0.1:11211", "127.0.0.2:11212", "10.1.2.3:11213"}
	for n := 1; n <= len(addrs); n++ {
		var theirs memcache.ServerList
		if err := theirs.SetServers(addrs[:n]...); err != nil {
			t.Fatal(err)
		}
		ours, err := parseServers(strings.Join(addrs[:n], ","))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5000 {
			key := "k" + strconv.Itoa(i) + strings.Repeat("x", i%250)
			key = key[:min(len(key), 250)]
			a, err1 := theirs.PickServer(key)
			b, err2 := ours.PickServer(key)
			if err1 != nil || err2 != nil || a.String() != b.String() || b.Network() != "tcp" {
				t.Fatalf("%d servers: key %q: ServerList picks %v (%v), Open's list %v (%v)", n, key, a, err1, b, err2)
			}
		}
	}
	var none serverList
	if _, err := none.PickServer("k"); err != memcache.ErrNoServers {
		t.Errorf("PickServer on no servers: %v; want memcache.ErrNoServers", err)
	}
	list, _ := parseServers("127.0.0.1:1,127.0.0.1:2")
	if n := testing.AllocsPerRun(100, func() { _, _ = list.PickServer("users|i64:42") }); n != 0 {
		t.Errorf("PickServer allocates %v times; want 0", n)
	}
}

func TestParseServers(t *testing.T) {
	for _, tc := range []struct {
		hosts string
		want  []string // nil: an error
	}{
		{"127.0.0.1:11211", []string{"127.0.0.1:11211"}},
		{"127.0.0.1", []string{"127.0.0.1:11211"}},
		{"cache.example.com", []string{"cache.example.com:11211"}},
		{"h1:11212,h2,h3:1", []string{"h1:11212", "h2:11211", "h3:1"}},
		{"[::1]:11212", []string{"[::1]:11212"}},
		{"[::1]", []string{"[::1]:11211"}},
		{"", nil},
		{"h1,", nil},
		{",h1", nil},
		{"h1:0", nil},
		{"h1:65536", nil},
		{"h1:x", nil},
		{":11211", nil},
		{"[]:11211", nil},
	} {
		list, err := parseServers(tc.hosts)
		if tc.want == nil {
			if err == nil {
				t.Errorf("parseServers(%q) = %v; want an error", tc.hosts, list)
			}
			continue
		}
		var got []string
		for _, a := range list {
			got = append(got, a.String())
		}
		if err != nil || strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("parseServers(%q) = %q, %v; want %q", tc.hosts, got, err, tc.want)
		}
		for _, a := range list {
			if _, _, err := net.SplitHostPort(a.String()); err != nil {
				t.Errorf("parseServers(%q): %q is not host:port", tc.hosts, a)
			}
		}
	}
}

func TestOpenOptions(t *testing.T) {
	for _, tc := range []struct {
		url   string
		check func(b *Backend) bool
	}{
		{"memcached://127.0.0.1:11211", func(b *Backend) bool {
			return b.prefix == "" && b.defaultTTL == 0 && b.maxItemSize == 1<<20 &&
				b.client.Timeout == 0 && b.closeClient &&
				b.client.MaxIdleConns == DefaultMaxConns() && len(b.limiters) == 1 && cap(b.limiters[0]) == DefaultMaxConns()
		}},
		{"memcached://h1,h2,h3?max_conns=7", func(b *Backend) bool {
			return b.client.MaxIdleConns == 7 && len(b.limiters) == 3 && cap(b.limiters[2]) == 7 && len(b.servers) == 3
		}},
		{"memcached://h1?max_conns=7&max_idle_conns=3", func(b *Backend) bool {
			return b.client.MaxIdleConns == 3 && cap(b.limiters[0]) == 7
		}},
		{"memcached://h1,h2:11212/?prefix=app:&default_ttl=24h", func(b *Backend) bool {
			return b.prefix == "app:" && b.defaultTTL == 24*time.Hour
		}},
		{"memcached://h1?timeout=200ms&max_idle_conns=16", func(b *Backend) bool {
			return b.client.Timeout == 200*time.Millisecond && b.client.MaxIdleConns == 16
		}},
		{"memcached://h1?max_item_size=2m", func(b *Backend) bool { return b.maxItemSize == 2<<20 }},
		{"memcached://h1?max_item_size=512k", func(b *Backend) bool { return b.maxItemSize == 512<<10 }},
		{"memcached://h1?max_item_size=1048576", func(b *Backend) bool { return b.maxItemSize == 1<<20 }},
		{"memcached://h1?prefix=" + url.QueryEscape("fleet1:"), func(b *Backend) bool { return b.prefix == "fleet1:" }},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Open(u)
		if err != nil {
			t.Errorf("Open(%q): %v", tc.url, err)
			continue
		}
		if mb := b.(*Backend); !tc.check(mb) {
			t.Errorf("Open(%q) = %+v", tc.url, *mb)
		}
	}
}
