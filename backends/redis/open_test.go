package redis_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/config"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/region"
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
		// Cluster and Sentinel parameters on a URL of one server name the scheme that takes them.
		{"redis://127.0.0.1:6379?addr=127.0.0.1:6380&addr=127.0.0.1:6381", "redis+cluster://"},
		{"rediss://127.0.0.1:6379?master_name=mymaster", "rediss+sentinel://"},
		{"redis+ring://127.0.0.1:6379", `unknown backend "redis+ring"`},
		{"redis+cluster://127.0.0.1:7000/1", "database 0"},
		{"redis+cluster://127.0.0.1:7000?master_name=m", "master_name"},
		{"redis+cluster://127.0.0.1:7000?addr=127.0.0.1", "addr"},
		{"redis+cluster://127.0.0.1:7000?addr=127.0.0.1:7001&prefix=a&prefix=b", "prefix"},
		{"redis+cluster://127.0.0.1:7000?skip_verify=true", "skip_verify"}, // without TLS, as go-redis's other forms
		{"rediss+cluster://127.0.0.1:7000?skip_verify=maybe", "skip_verify"},
		{"redis+cluster://127.0.0.1:7000?cluster_state_reload_interval=0s", "cluster_state_reload_interval"},
		{"redis+cluster://127.0.0.1:7000?default_ttl=forever", "default_ttl"},
		{"redis+cluster://127.0.0.1:7000#frag", "redis+cluster://"},
		{"redis+cluster://:hunter2@127.0.0.1:7000?colour=red", "colour"},
		{"redis+sentinel://127.0.0.1:26379", "master_name"},
		{"redis+sentinel://127.0.0.1:26379?master_name=m&master_name=n", "master_name"},
		{"redis+sentinel://127.0.0.1:26379/x?master_name=m", "database"},
		{"redis+sentinel://127.0.0.1:26379/mymaster/0", "master_name="},
		{"redis+sentinel://127.0.0.1:26379,127.0.0.1:26380?master_name=m", "addr="},
		{"redis+cluster://127.0.0.1:7000,127.0.0.1:7001", "addr="},
		{"redis+sentinel://127.0.0.1:26379?master_name=m&replica_only=true", "replica_only"},
		{"redis+sentinel://127.0.0.1:26379?master_name=m&route_by_latency=true", "route_by_latency"},
		{"redis+sentinel://127.0.0.1:26379?master_name=m&route_randomly=1", "route_randomly"},
		{"redis+sentinel://127.0.0.1:26379?master_name=m&cluster_state_reload_interval=1s", "cluster_state_reload_interval"},
		{"redis+sentinel://127.0.0.1:26379?master_name=m&dialer_retries=0", "dialer_retries"},
		{"redis+sentinel://127.0.0.1:26379?master_name=m&skip_verify=true", "skip_verify"},
		{"redis+sentinel://:hunter2@127.0.0.1:26379?master_name=m&password=hunter2&colour=red", "colour"},
		{"redis+sentinel://127.0.0.1:26379?master_name=m&password=hunter2%zz", "query"},
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

// TestOpenCluster: a redis+cluster URL is go-redis's Cluster URL (ParseClusterURL): the host and
// every addr are seed nodes, the user information authenticates to them, go-redis's parameters
// reach the client; the backend's own parameters work as on redis://, and the backend is
// backends.Partitioned.
func TestOpenCluster(t *testing.T) {
	for _, tc := range []struct {
		url   string
		check func(o *goredis.ClusterOptions) bool
	}{
		{"redis+cluster://127.0.0.1:7000?addr=127.0.0.1:7001&addr=127.0.0.1:7002", func(o *goredis.ClusterOptions) bool {
			return slices.Equal(o.Addrs, []string{"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"}) &&
				o.TLSConfig == nil && o.Password == "" &&
				o.ClusterStateReloadInterval == redis.DefaultClusterStateReloadInterval
		}},
		{"redis+cluster://u:p%40ss@127.0.0.1:7000/0?addr=127.0.0.1:7001&prefix=%7Bapp%7D:&default_ttl=1h", func(o *goredis.ClusterOptions) bool {
			return o.Username == "u" && o.Password == "p@ss" && len(o.Addrs) == 2
		}},
		{"redis+cluster://cache:7000?dial_timeout=2s&read_only=true&max_redirects=5&dialer_retries=1&dialer_retry_timeout=10ms", func(o *goredis.ClusterOptions) bool {
			return o.Addrs[0] == "cache:7000" && o.DialTimeout == 2*time.Second && o.ReadOnly && o.MaxRedirects == 5 &&
				o.DialerRetries == 1 && o.DialerRetryTimeout == 10*time.Millisecond
		}},
		{"redis+cluster://cache?cluster_state_reload_interval=1s", func(o *goredis.ClusterOptions) bool {
			return o.Addrs[0] == "cache:6379" && o.ClusterStateReloadInterval == time.Second
		}},
		{"rediss+cluster://cache.example.com:7000", func(o *goredis.ClusterOptions) bool {
			return o.TLSConfig != nil && o.TLSConfig.ServerName == "cache.example.com" &&
				o.TLSConfig.MinVersion == tls.VersionTLS12 && !o.TLSConfig.InsecureSkipVerify
		}},
		{"rediss+cluster://cache.example.com:7000?skip_verify=true", func(o *goredis.ClusterOptions) bool {
			return o.TLSConfig != nil && o.TLSConfig.InsecureSkipVerify
		}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			b, err := backends.Open(tc.url)
			if err != nil {
				t.Fatalf("Open(%q): %v", tc.url, err)
			}
			rb := b.(*redis.Backend)
			defer rb.Close()
			client, ok := rb.Client().(*goredis.ClusterClient)
			if !ok {
				t.Fatalf("Open(%q) made a %T; want a *goredis.ClusterClient", tc.url, rb.Client())
			}
			if o := client.Options(); !tc.check(o) || !o.ContextTimeoutEnabled {
				t.Errorf("Open(%q): client options %+v", tc.url, o)
			}
			if !rb.Partitioned() {
				t.Errorf("Open(%q): Partitioned() = false; want true, as for any ClusterClient", tc.url)
			}
		})
	}
}

// TestOpenSentinel: a redis+sentinel URL is go-redis's failover URL (ParseFailoverURL): the user
// information authenticates to the sentinels, username and password to the master, and the
// client is a FailoverClient, one master, not partitioned. The sentinels and master_name reach
// it too: TestSentinelURLFollowsTheMaster checks them on a real setup.
func TestOpenSentinel(t *testing.T) {
	for _, tc := range []struct {
		url   string
		check func(o *goredis.Options) bool
	}{
		{"redis+sentinel://127.0.0.1:26379?master_name=mymaster&addr=127.0.0.1:26380", func(o *goredis.Options) bool {
			return o.DB == 0 && o.Password == "" && o.TLSConfig == nil
		}},
		{"redis+sentinel://:sentinelpw@127.0.0.1:26379/2?master_name=mymaster&username=app&password=masterpw&prefix=app:", func(o *goredis.Options) bool {
			return o.DB == 2 && o.Username == "app" && o.Password == "masterpw"
		}},
		{"redis+sentinel://127.0.0.1:26379?master_name=m&db=3&dial_timeout=2s&pool_size=7&dialer_retries=1&default_ttl=1h", func(o *goredis.Options) bool {
			return o.DB == 3 && o.DialTimeout == 2*time.Second && o.PoolSize == 7 && o.DialerRetries == 1
		}},
		{"rediss+sentinel://sentinel.example.com:26379?master_name=m&skip_verify=true", func(o *goredis.Options) bool {
			return o.TLSConfig != nil && o.TLSConfig.ServerName == "sentinel.example.com" && o.TLSConfig.InsecureSkipVerify
		}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			b, err := backends.Open(tc.url)
			if err != nil {
				t.Fatalf("Open(%q): %v", tc.url, err)
			}
			rb := b.(*redis.Backend)
			defer rb.Close()
			client, ok := rb.Client().(*goredis.Client)
			if !ok {
				t.Fatalf("Open(%q) made a %T; want the *goredis.Client of NewFailoverClient", tc.url, rb.Client())
			}
			if o := client.Options(); !tc.check(o) || !o.ContextTimeoutEnabled {
				t.Errorf("Open(%q): client options %+v", tc.url, o)
			}
			if rb.Partitioned() {
				t.Errorf("Open(%q): Partitioned() = true; want false: one master holds every key", tc.url)
			}
		})
	}
}

// TestRedactURLForms: backends.Redact, which errors and logs use, hides the passwords of every
// form: the user information (a Sentinel URL's is the sentinels' password) and the password
// parameter (a Sentinel URL's master password).
func TestRedactURLForms(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"redis+cluster://app:hunter2@127.0.0.1:7000?addr=127.0.0.1:7001&addr=127.0.0.1:7002&prefix=a:",
			"redis+cluster://xxxxx@127.0.0.1:7000?addr=127.0.0.1:7001&addr=127.0.0.1:7002&prefix=a:"},
		{"rediss+cluster://:hunter2@cache:7000",
			"rediss+cluster://xxxxx@cache:7000"},
		{"redis+sentinel://:hunter2@10.0.0.1:26379/0?master_name=m&addr=10.0.0.2:26379&username=app&password=hunter3",
			"redis+sentinel://xxxxx@10.0.0.1:26379/0?master_name=m&addr=10.0.0.2:26379&username=app&password=xxxxx"},
		{"rediss+sentinel://10.0.0.1:26379?password=hunter3&master_name=m",
			"rediss+sentinel://10.0.0.1:26379?password=xxxxx&master_name=m"},
	} {
		if got := backends.Redact(tc.url); got != tc.want {
			t.Errorf("Redact(%q)\n = %q\nwant %q", tc.url, got, tc.want)
		}
		// And Open's errors show the URL so.
		bad := tc.url + "?colour=red"
		if strings.Contains(tc.url, "?") {
			bad = tc.url + "&colour=red"
		}
		_, err := backends.Open(bad)
		if err == nil || !strings.Contains(err.Error(), "xxxxx") || strings.Contains(err.Error(), "hunter") {
			t.Errorf("Open(%q) error %v; want the URL redacted", bad, err)
		}
	}
}

// TestClusterURLServesRegions opens a real six-node Cluster from a redis+cluster URL that names
// three of its nodes, by every way a URL is accepted, and reads back through each region what
// it set, from the Cluster.
func TestClusterURLServesRegions(t *testing.T) {
	c := testserver.StartCluster(t)
	addrs := c.Addrs()
	rawURL := "redis+cluster://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2] + "&dial_timeout=2s"
	direct := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = direct.Close() })
	urlEverywhere(t, rawURL, true, func(ctx context.Context, key string) error {
		return direct.Get(ctx, key).Err()
	})
}

// TestSentinelURLFollowsTheMaster opens a real Sentinel setup from a redis+sentinel URL that
// names its sentinels and master_name, by every way a URL is accepted, checks that values land
// on the master the sentinels name, then fails the master over (SENTINEL FAILOVER) and checks
// that the backend's writes follow to the new master.
func TestSentinelURLFollowsTheMaster(t *testing.T) {
	s := testserver.StartSentinel(t)
	sentinels := s.Addrs()
	rawURL := "redis+sentinel://" + sentinels[0] + "?master_name=" + testserver.SentinelMaster +
		"&addr=" + sentinels[1] + "&addr=" + sentinels[2] + "&dial_timeout=2s"
	onMaster := func(ctx context.Context, key string) error {
		addr, err := s.MasterAddr(ctx)
		if err != nil {
			return err
		}
		direct := goredis.NewClient(&goredis.Options{Addr: addr})
		defer direct.Close()
		return direct.Get(ctx, key).Err()
	}
	v := urlEverywhere(t, rawURL, false, onMaster)

	ctx := t.Context()
	old, err := s.MasterAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sc := goredis.NewSentinelClient(&goredis.Options{Addr: sentinels[0]})
	err = sc.Failover(ctx, testserver.SentinelMaster).Err()
	_ = sc.Close()
	if err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		now, err := s.MasterAddr(ctx)
		if err == nil && now != old {
			t.Logf("the sentinels moved the master from %s to %s", old, now)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sentinels still name %s the master 20s after SENTINEL FAILOVER (%v)", old, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The old master turns replica and refuses writes until the client hears +switch-master:
	// a few writes may fail meanwhile.
	var lastErr error
	for start, tries := time.Now(), 1; time.Now().Before(deadline); tries++ {
		if lastErr = v.Set(ctx, "after", "x"); lastErr == nil {
			if lastErr = onMaster(ctx, "open:after"); lastErr == nil {
				t.Logf("a write reached the new master %v after the sentinels named it, at try %d", time.Since(start).Round(time.Millisecond), tries)
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("a write through the backend did not reach the new master: %v", lastErr)
}

// urlEverywhere configures one region from rawURL by each way a URL is accepted: backends.Open,
// region.ConfigureURL, a config document and DOGPILE_<REGION>_BACKEND, each with a prefix of its
// own (a backend parameter) and, where the way takes them, region parameters. Through each it
// sets a value, reads it back, and checks with stored (which returns nil when prefix+key is on
// the server) that it is stored under the prefix, and that the backend is, or is not,
// backends.Partitioned. It returns the view of the region opened with backends.Open, whose
// prefix is "open:".
func urlEverywhere(t *testing.T, rawURL string, partitioned bool, stored func(ctx context.Context, key string) error) *region.View[string] {
	t.Helper()
	ctx := t.Context()
	outer := t
	check := func(t *testing.T, r *region.Region, prefix string) *region.View[string] {
		t.Helper()
		p, ok := backends.As[backends.Partitioned](r.Backend())
		if !ok || p.Partitioned() != partitioned {
			t.Errorf("the backend is %T; want one whose Partitioned() is %v", r.Backend(), partitioned)
		}
		v := region.NewView[string](r)
		if err := v.Set(ctx, "k", "v of "+prefix); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := v.Get(ctx, "k"); err != nil || !ok || got != "v of "+prefix {
			t.Fatalf("Get after Set = %q, %v, %v; want %q", got, ok, err, "v of "+prefix)
		}
		if err := stored(ctx, prefix+"k"); err != nil {
			t.Fatalf("%sk is not on the server: %v", prefix, err)
		}
		return v
	}
	var opened *region.View[string]
	t.Run("backends.Open", func(t *testing.T) {
		b, err := backends.Open(rawURL + "&prefix=open:")
		if err != nil {
			t.Fatal(err)
		}
		r := region.New("open")
		outer.Cleanup(func() { _ = r.Close() }) // the returned view's
		if err := r.Configure(b); err != nil {
			_ = b.(*redis.Backend).Close()
			t.Fatal(err)
		}
		opened = check(t, r, "open:")
	})
	if opened == nil {
		t.FailNow()
	}
	t.Run("ConfigureURL", func(t *testing.T) {
		r := region.New("url")
		t.Cleanup(func() { _ = r.Close() })
		if err := r.ConfigureURL(rawURL + "&prefix=url:&lock_timeout=5s"); err != nil {
			t.Fatal(err)
		}
		check(t, r, "url:")
	})
	t.Run("config document", func(t *testing.T) {
		r := region.New("doc")
		t.Cleanup(func() { _ = r.Close() })
		d := config.Document{Regions: map[string]config.Region{
			"doc": {Backend: rawURL, Arguments: map[string]any{"prefix": "doc:"}},
		}}
		if err := config.Configure(d, nil, r); err != nil {
			t.Fatal(err)
		}
		check(t, r, "doc:")
	})
	t.Run("environment", func(t *testing.T) {
		r := region.New("env")
		t.Cleanup(func() { _ = r.Close() })
		env := map[string]string{config.EnvName("env", "backend"): rawURL + "&prefix=env:&lock_timeout=5s"}
		if err := config.Configure(config.Document{}, func(k string) string { return env[k] }, r); err != nil {
			t.Fatal(err)
		}
		check(t, r, "env:")
	})
	return opened
}
