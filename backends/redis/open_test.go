package redis_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/redis"
	goredis "github.com/redis/go-redis/v9"
)

func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		url   string
		check func(o *goredis.Options) bool
	}{
		{"redis://127.0.0.1:6379/0", func(o *goredis.Options) bool {
			return o.Addr == "127.0.0.1:6379" && o.DB == 0 && o.Password == "" && o.TLSConfig == nil
		}},
		{"redis://localhost", func(o *goredis.Options) bool { return o.Addr == "localhost:6379" && o.DB == 0 }},
		{"redis://:s3cret@127.0.0.1:6379/2", func(o *goredis.Options) bool {
			return o.Password == "s3cret" && o.Username == "" && o.DB == 2
		}},
		{"redis://app:p%40ss@127.0.0.1:6379/1", func(o *goredis.Options) bool {
			return o.Username == "app" && o.Password == "p@ss" && o.DB == 1
		}},
		{"rediss://cache.example.com:6380/0", func(o *goredis.Options) bool {
			return o.Addr == "cache.example.com:6380" && o.TLSConfig != nil &&
				o.TLSConfig.ServerName == "cache.example.com" && !o.TLSConfig.InsecureSkipVerify
		}},
		{"rediss://cache.example.com:6380?skip_verify=true", func(o *goredis.Options) bool {
			return o.TLSConfig != nil && o.TLSConfig.InsecureSkipVerify
		}},
		{"redis://127.0.0.1:6379/3?prefix=app:&default_ttl=1h", func(o *goredis.Options) bool { return o.DB == 3 }},
		{"redis://127.0.0.1:6379?dial_timeout=2s&read_timeout=500ms&pool_size=7&prefix=%7Bapp%7D:", func(o *goredis.Options) bool {
			return o.DialTimeout == 2*time.Second && o.ReadTimeout == 500*time.Millisecond && o.PoolSize == 7
		}},
		{"redis://[::1]:6379?default_ttl=0s", func(o *goredis.Options) bool { return o.Addr == "[::1]:6379" }},
	} {
		t.Run(tc.url, func(t *testing.T) {
			b, err := backends.Open(tc.url)
			if err != nil {
				t.Fatalf("Open(%q): %v", tc.url, err)
			}
			defer b.(*redis.Backend).Close()
			client, ok := b.(*redis.Backend).Client().(*goredis.Client)
			if !ok {
				t.Fatalf("Open(%q) made a %T; want a *goredis.Client", tc.url, b.(*redis.Backend).Client())
			}
			if o := client.Options(); !tc.check(o) {
				t.Errorf("Open(%q): client options %+v", tc.url, o)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // in the error
	}{
		{"redis://127.0.0.1:6379/0?colour=red", "colour"},
		{"redis://127.0.0.1:6379/0?default_ttl=forever", "default_ttl"},
		{"redis://127.0.0.1:6379/0?default_ttl=-1s", "default_ttl"},
		{"redis://127.0.0.1:6379/0?dial_timeout=soon", "dial_timeout"},
		{"redis://127.0.0.1:6379/0?pool_size=many", "pool_size"},
		{"redis://127.0.0.1:6379/abc", "database"},
		{"redis://127.0.0.1:6379/1/2", "path"},
		{"redis://127.0.0.1:6379/0?prefix=a&prefix=b", "prefix"},
		{"redis://127.0.0.1:6379/0#frag", "redis://"},
		{"redis:opaque", "redis://"},
		{"redis://:hunter2@127.0.0.1:6379/0?colour=red", "colour"}, // and no password in it
		{"redis://127.0.0.1:6379/0?password=hunter2", "password"},  // go-redis takes it from the user part only
		{"redis://127.0.0.1:6379/0?password=hunter2%zz", "query"},  // nor part of it, from an escape error
	} {
		t.Run(tc.url, func(t *testing.T) {
			b, err := backends.Open(tc.url)
			if err == nil {
				_ = b.(*redis.Backend).Close()
				t.Fatalf("Open(%q): no error", tc.url)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open(%q) error %q; want it to mention %q", tc.url, err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "%zz") {
				t.Errorf("Open(%q) error %q shows the password", tc.url, err)
			}
		})
	}
}

// TestOpenServer opens a backend on the shared server and checks the backend's own parameters
// and that Close closes the client Open made.
func TestOpenServer(t *testing.T) {
	ctx := t.Context()
	prefix := uniquePrefix(t)
	b, err := backends.Open("redis://" + server.Addr + "/0?prefix=" + prefix + "&default_ttl=1h&dial_timeout=1s")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	client := newClient(t)
	defer client.Del(ctx, prefix+"k")
	if v, err := client.Get(ctx, prefix+"k").Result(); err != nil || v != "v" {
		t.Fatalf("GET %sk = %q, %v; want the value under the prefix", prefix, v, err)
	}
	if ttl, err := client.PTTL(ctx, prefix+"k").Result(); err != nil || ttl < 59*time.Minute || ttl > time.Hour {
		t.Fatalf("PTTL %sk = %v, %v; want about default_ttl=1h", prefix, ttl, err)
	}
	rb := b.(*redis.Backend)
	if err := rb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rb.Client().Ping(ctx).Err(); !errors.Is(err, goredis.ErrClosed) {
		t.Fatalf("Ping on the client of a closed backend from Open: %v; want %v", err, goredis.ErrClosed)
	}
}

// TestClusterIsPartitioned: a backend on a ClusterClient or a Ring spreads keys over several
// servers (backends.Partitioned); one on a single-node client does not.
func TestClusterIsPartitioned(t *testing.T) {
	for name, tc := range map[string]struct {
		client goredis.UniversalClient
		want   bool
	}{
		"single":  {goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"}), false},
		"cluster": {goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}}), true},
		"ring":    {goredis.NewRing(&goredis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}}), true},
	} {
		b := redis.New(tc.client, redis.WithCloseClient())
		if got := b.Partitioned(); got != tc.want {
			t.Errorf("%s: Partitioned() = %v, want %v", name, got, tc.want)
		}
		_ = b.Close()
	}
}

// A URL can make a down Redis fail at once: dialer_retries, which go-redis's ParseURL does not
// know, is honoured, so with one dial attempt and a retry backoff of 2s a Get against a refused
// port returns within 1s.
func TestOpenCanFailFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: connection refused

	b, err := backends.Open("redis://" + addr + "/0?dialer_retries=1&dialer_retry_timeout=2s&max_retries=-1")
	if err != nil {
		t.Fatal(err)
	}
	defer b.(interface{ Close() error }).Close()
	start := time.Now()
	_, err = b.Get(t.Context(), "k")
	if elapsed := time.Since(start); err == nil || elapsed > time.Second {
		t.Fatalf("Get with Redis down = %v after %v; want an error from a single dial", err, elapsed.Round(time.Millisecond))
	}
	for _, bad := range []string{"dialer_retries=0", "dialer_retries=x", "dialer_retry_timeout=0s", "dialer_retry_timeout=x"} {
		if _, err := backends.Open("redis://" + addr + "/0?" + bad); err == nil {
			t.Errorf("Open accepted %s", bad)
		}
	}
}
