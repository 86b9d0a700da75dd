package memcached_test

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/memcached"
)

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // in the error
	}{
		{"memcached://127.0.0.1:11211?colour=red", "colour"},
		{"memcached://127.0.0.1:11211?colour=red&prefix=a&size=1", `["colour" "size"]`},
		{"memcached://127.0.0.1:11211?default_ttl=forever", "default_ttl"},
		{"memcached://127.0.0.1:11211?default_ttl=-1s", "default_ttl"},
		{"memcached://127.0.0.1:11211?timeout=soon", "timeout"},
		{"memcached://127.0.0.1:11211?timeout=0s", "timeout"},
		{"memcached://127.0.0.1:11211?max_conns=many", "max_conns"},
		{"memcached://127.0.0.1:11211?max_conns=0", "max_conns"},
		{"memcached://127.0.0.1:11211?max_conns=-3", "max_conns"},
		{"memcached://127.0.0.1:11211?max_idle_conns=many", "max_idle_conns"},
		{"memcached://127.0.0.1:11211?max_idle_conns=0", "max_idle_conns"},
		{"memcached://127.0.0.1:11211?max_item_size=big", "max_item_size"},
		{"memcached://127.0.0.1:11211?max_item_size=2g", "max_item_size"},
		{"memcached://127.0.0.1:11211?max_item_size=100", "WithMaxItemSize"},
		{"memcached://127.0.0.1:11211?prefix=a&prefix=b", "prefix"},
		{"memcached://127.0.0.1:11211?prefix=my%20app", "WithPrefix"},
		{"memcached://127.0.0.1:11211?prefix=" + strings.Repeat("p", 206), "WithPrefix"},
		{"memcached://127.0.0.1:11211/0", "memcached://host"},
		{"memcached://user:secret@127.0.0.1:11211", "memcached://host"},
		{"memcached://127.0.0.1:11211?password=secret", "password"},
		{"memcached://127.0.0.1:11211?password=secret%zz", "query"},
		{"memcached://127.0.0.1:11211#frag", "memcached://host"},
		{"memcached:opaque", "memcached://host"},
		{"memcached://", "no server"},
		{"memcached://h1:0", `"h1:0"`},
		{"memcached://h1,,h2", `""`},
	} {
		t.Run(tc.url, func(t *testing.T) {
			b, err := backends.Open(tc.url)
			if err == nil {
				_ = b.(*memcached.Backend).Close()
				t.Fatalf("Open(%q): no error", tc.url)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open(%q) error %q; want it to mention %q", tc.url, err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "%zz") {
				t.Errorf("Open(%q) error %q shows the password", tc.url, err)
			}
		})
	}
}

// TestOpenDoesNoIO opens a backend on a host name that does not resolve: Open succeeds (no
// lookup), and the first call fails.
func TestOpenDoesNoIO(t *testing.T) {
	b, err := backends.Open("memcached://no-such-host.invalid:11211,127.0.0.1:1?timeout=200ms")
	if err != nil {
		t.Fatalf("Open: %v; want no error before the first call", err)
	}
	defer b.(*memcached.Backend).Close()
	if _, err := b.Get(t.Context(), "k"); err == nil {
		t.Fatal("Get on servers that do not exist: no error")
	}
}

// TestOpenServer opens a backend on the shared server and checks the backend's own parameters,
// and that Close closes the idle connections of the client Open made.
func TestOpenServer(t *testing.T) {
	ctx := t.Context()
	prefix := uniquePrefix(t)
	b, err := backends.Open("memcached://" + server.Addr + "?prefix=" + prefix + "&default_ttl=1h&timeout=1s&max_item_size=2m")
	if err != nil {
		t.Fatal(err)
	}
	mb := b.(*memcached.Backend)
	if err := b.Set(ctx, "k", make([]byte, 1<<20), 0); err != nil {
		t.Fatalf("Set of 1 MiB with max_item_size=2m: %v", err)
	}
	t.Cleanup(func() { _ = b.Delete(context.Background(), "k") })
	if ttl, ok := metaTTL(t, server.Addr, prefix+"k"); !ok || ttl < 3599 || ttl > 3601 {
		t.Fatalf("the value under %sk: present %v, TTL %ds; want about default_ttl=1h", prefix, ok, ttl)
	}
	if it, err := newClient(t).Get(prefix + "k"); err != nil || len(it.Value) != 1<<20 {
		t.Fatalf("the value is not under the prefix: %v", err)
	}

	// Count the dials from here: Close drops the idle connection, and the next call dials.
	dials := 0
	var d net.Dialer
	mb.Client().DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials++
		return d.DialContext(ctx, network, addr)
	}
	_ = mb.Client().Close() // forget the connection dialed before DialContext was set
	for range 2 {
		if _, err := b.Get(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	}
	if err := mb.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "k"); err != nil {
		t.Fatalf("Get after Close: %v; the client dials again", err)
	}
	if dials != 2 {
		t.Fatalf("%d dials for two Gets, a Close and a Get; want 2: Close of a backend from Open drops its idle connections", dials)
	}
}

// TestOpenPoolIsPartitioned: a URL with several servers makes a backend of several servers
// (backends.Partitioned), where regions keep their circuit breaker off; one server does not.
func TestOpenPoolIsPartitioned(t *testing.T) {
	for hosts, want := range map[string]bool{"127.0.0.1:1": false, "127.0.0.1:1,127.0.0.1:2": true} {
		b, err := backends.Open("memcached://" + hosts)
		if err != nil {
			t.Fatal(err)
		}
		if got := b.(backends.Partitioned).Partitioned(); got != want {
			t.Errorf("%s: Partitioned() = %v, want %v", hosts, got, want)
		}
		_ = b.(io.Closer).Close()
	}
}
