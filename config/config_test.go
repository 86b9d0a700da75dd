package config_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/file"
	"github.com/dogpile-go/dogpile/backends/memcached"
	"github.com/dogpile-go/dogpile/backends/memory"
	_ "github.com/dogpile-go/dogpile/backends/null"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/config"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
)

var redisServer *testserver.Redis

func TestMain(m *testing.M) {
	if os.Getenv("CONFIG_TEST_CHILD") != "" {
		os.Exit(child())
	}
	var err error
	if redisServer, err = testserver.NewRedis(os.TempDir()); err != nil {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		os.Exit(1)
	}
	code := m.Run()
	redisServer.Close()
	os.Exit(code)
}

func newRegions(t *testing.T, names ...string) []*region.Region {
	var rs []*region.Region
	for _, n := range names {
		r := region.New(n)
		t.Cleanup(func() { _ = r.Close() })
		rs = append(rs, r)
	}
	return rs
}

// backendOf returns the type of the backend a region was configured with.
func backendOf(r *region.Region) string { return fmt.Sprintf("%T", r.Backend()) }

func TestConfigureURL(t *testing.T) {
	dir := t.TempDir()
	mc := testserver.StartMemcached(t)
	for _, tc := range []struct {
		url     string
		backend string
		err     string // a part of the error; "" for none
	}{
		{url: "memory://?max_entries=100000", backend: "*memory.Backend"},
		{url: "memory://?max_entries=100000&expiration=1m&lock_timeout=5s&jitter=0.1&early_refresh=1&stale_if_error=1h&background_refresh=2&failure_policy=closed&storage_ttl=2m", backend: "*memory.Backend"},
		{url: "redis://" + redisServer.Addr + "/0?prefix=app:&lock_timeout=5s", backend: "*redis.Backend"},
		{url: "memcached://" + mc.Addr + "," + mc.Addr + "?prefix=app:", backend: "*memcached.Backend"},
		{url: "file://" + dir + "?max_size=1GiB", backend: "*file.Backend"},
		{url: "null://", backend: "*null.Backend"},
		{url: "memory://?expiration=10x", err: "parameter expiration: \"10x\" is not a duration"},
		{url: "memory://?expiration=-1m", err: "negative duration"},
		{url: "memory://?lock_timeout=0s", err: "must be positive"},
		{url: "memory://?background_refresh=two", err: "not a whole number"},
		{url: "memory://?failure_policy=maybe", err: "want open or closed"},
		{url: "memory://?jitter=1", err: "[0, 1)"},
		{url: "memory://?early_refresh=-1", err: "non-negative"},
		{url: "memory://?expiration=1m&expiration=2m", err: "given 2 times"},
		{url: "memory://?expiration=10m&storage_ttl=1m", err: "must be longer than"},
		{url: "memory://?max_entrys=5", err: "max_entrys"},
		{url: "nosuch://x", err: "unknown backend"},
		{url: "redis://user:s3cret@" + redisServer.Addr + "?bogus=1", err: "bogus"},
		{url: "::not a url", err: "invalid URL"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			r := newRegions(t, "r")[0]
			err := r.ConfigureURL(tc.url)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := backendOf(r); got != tc.backend {
					t.Errorf("backend %s, want %s", got, tc.backend)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want one saying %q", err, tc.err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the password: %v", err)
			}
			if r.Configured() {
				t.Error("a failed ConfigureURL configured the region")
			}
		})
	}
}

func TestConfigureURLSettingsApply(t *testing.T) {
	r := newRegions(t, "r")[0]
	if err := r.ConfigureURL("memory://?expiration=1m&failure_policy=closed"); err != nil {
		t.Fatal(err)
	}
	v := region.NewView[string](r)
	ctx := t.Context()
	if err := v.Set(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := v.Get(ctx, "k", region.WithExpiration(time.Nanosecond)); ok {
		t.Error("a per-call expiration was not honoured")
	}
	if _, ok, _ := v.Get(ctx, "k"); !ok {
		t.Error("expiration=1m: a fresh value is missing")
	}
}

const doc = `
regions:
  users:
    backend: redis://%s/0
    arguments: {prefix: "app:"}
    expiration: 10m
    storage_ttl: 1h
    lock_timeout: 5s
    background_refresh: 2
    failure_policy: closed
    early_refresh: 1
    stale_if_error: 1h
    jitter: 0.1
  sessions:
    backend: memory://
    arguments: {max_entries: 100000}
`

func TestDocumentConfiguresManyRegions(t *testing.T) {
	for _, format := range []string{"yaml", "json"} {
		t.Run(format, func(t *testing.T) {
			data := fmt.Sprintf(doc, redisServer.Addr)
			if format == "json" {
				data = fmt.Sprintf(`{"regions": {"users": {"backend": "redis://%s/0", "arguments": {"prefix": "app:"}, "expiration": "10m"},
					"sessions": {"backend": "memory://", "arguments": {"max_entries": 100000}}}}`, redisServer.Addr)
			}
			d, err := config.Parse([]byte(data))
			if err != nil {
				t.Fatal(err)
			}
			rs := newRegions(t, "users", "sessions")
			if err := config.Configure(d, nil, rs...); err != nil {
				t.Fatal(err)
			}
			if backendOf(rs[0]) != "*redis.Backend" || backendOf(rs[1]) != "*memory.Backend" {
				t.Errorf("backends %s, %s", backendOf(rs[0]), backendOf(rs[1]))
			}
			// The prefix reached the Redis backend: a value is stored under app:.
			v := region.NewView[string](rs[0])
			if err := v.Set(t.Context(), "k-"+format, "v"); err != nil {
				t.Fatal(err)
			}
			rb, _ := backends.As[*redis.Backend](rs[0].Backend())
			if n, err := rb.Client().Exists(t.Context(), "app:k-"+format).Result(); err != nil || n != 1 {
				t.Errorf("app:k-%s exists: %d, %v", format, n, err)
			}
		})
	}
}

func TestDocumentErrorsNameTheField(t *testing.T) {
	mk := func(s string) string { return "regions:\n  users:\n" + s }
	for _, tc := range []struct {
		name, doc, env, err string
	}{
		{"unknown field", mk("    backend: memory://\n    expirtion: 1m\n"), "", `unknown field "expirtion"`},
		{"unknown top field", "region:\n  users: {}\n", "", `line 1: unknown field "region" (did you mean regions?)`},
		{"bad duration", mk("    backend: memory://\n    expiration: 10x\n"), "", "line 4: regions.users.expiration"},
		{"bad number", mk("    backend: memory://\n    jitter: 2\n"), "", "regions.users.jitter"},
		{"bad policy", mk("    backend: memory://\n    failure_policy: maybe\n"), "", "regions.users.failure_policy"},
		{"unknown backend", mk("    backend: nosuch://\n"), "", "regions.users.backend"},
		{"unknown argument", mk("    backend: memory://\n    arguments: {max_entrys: 5}\n"), "", "max_entrys"},
		{"argument of a bad type", mk("    backend: memory://\n    arguments: {max_entries: [1]}\n"), "", "line 4: regions.users.arguments.max_entries: want a string, number or boolean, not a list"},
		{"no backend", mk("    expiration: 1m\n"), "", "regions.users.backend: missing"},
		{"bad env duration", mk("    backend: memory://\n"), "DOGPILE_USERS_EXPIRATION=soon", "regions.users.expiration (from DOGPILE_USERS_EXPIRATION)"},
		{"bad env number", mk("    backend: memory://\n"), "DOGPILE_USERS_BACKGROUND_REFRESH=many", "regions.users.background_refresh"},
		{"storage shorter than expiration", mk("    backend: memory://\n    expiration: 1h\n    storage_ttl: 1m\n"), "", "regions.users"},
		{"not YAML", "regions: [\n", "", "config: line 1: invalid YAML"},
		{"not JSON", "{\"regions\": {\"users\": {\"backend\": \"memory://\" \"expiration\": \"1m\"}}}", "", "config: line 1: invalid JSON: invalid character '\"' after object key:value pair"},
		{"number for a whole number", mk("    backend: memory://\n    background_refresh: 1.5\n"), "", `line 4: regions.users.background_refresh: want a whole number, not "1.5"`},
		{"list for a duration", mk("    backend: memory://\n    expiration: [1m]\n"), "", "line 4: regions.users.expiration: want a single value, not a list"},
		{"key given twice", mk("    backend: memory://\n    backend: null://\n"), "", "line 4: regions.users.backend: given twice (also at line 3)"},
		{"regions not a mapping", "regions: [users]\n", "", "line 1: regions: want a mapping, not a list"},
		{"local cache over memory", mk("    backend: memory://\n    local_cache: 100\n    local_max_age: 1m\n"), "", "regions.users: region \"users\": configure: usage: region: invalid option: local_cache over a backend that keeps Go values"},
		{"local max age alone", mk("    backend: memory://?copy=true\n    local_max_age: 1m\n"), "", "local_max_age without local_cache"},
		{"bad env local cache", mk("    backend: memory://?copy=true\n    local_max_age: 1m\n"), "DOGPILE_USERS_LOCAL_CACHE=0", "regions.users.local_cache (from DOGPILE_USERS_LOCAL_CACHE)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A good second region: nothing may be configured when the first fails.
			rs := newRegions(t, "users", "other")
			env := map[string]string{"DOGPILE_OTHER_BACKEND": "memory://"}
			if k, v, ok := strings.Cut(tc.env, "="); ok {
				env[k] = v
			}
			d, err := config.Parse([]byte(tc.doc))
			if err == nil {
				err = config.Configure(d, func(k string) string { return env[k] }, rs...)
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want one naming %q", err, tc.err)
			}
			for _, r := range rs {
				if r.Configured() {
					t.Errorf("region %s configured though the document failed", r.Name())
				}
			}
		})
	}
}

// TestLocalCacheFromDocumentAndEnvironment: local_cache and local_max_age are fields of documents
// and DOGPILE_<REGION>_LOCAL_CACHE, DOGPILE_<REGION>_LOCAL_MAX_AGE variables.
func TestLocalCacheFromDocumentAndEnvironment(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct{ name, doc, env string }{
		{"document", "regions:\n  users: {backend: \"memory://?copy=true\", local_cache: 100, local_max_age: 1m}\n", ""},
		{"environment", "regions:\n  users: {backend: \"memory://?copy=true\"}\n", "DOGPILE_USERS_LOCAL_CACHE=100 DOGPILE_USERS_LOCAL_MAX_AGE=30s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := config.Parse([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			env := map[string]string{}
			for _, kv := range strings.Fields(tc.env) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
			rs := newRegions(t, "users")
			if err := config.Configure(d, func(k string) string { return env[k] }, rs...); err != nil {
				t.Fatal(err)
			}
			// The backend copies: each of its reads decodes a new *string. The local tier keeps one.
			v := region.NewView[*string](rs[0])
			create := func(context.Context) (*string, error) { s := "v"; return &s, nil }
			first, err1 := v.GetOrCreate(ctx, "k", create)
			second, err2 := v.GetOrCreate(ctx, "k", create)
			if err1 != nil || err2 != nil || first != second {
				t.Errorf("the second call was not answered from a local tier (%v, %v)", err1, err2)
			}
		})
	}
}

func TestEnvironmentOverridesTheDocument(t *testing.T) {
	d, err := config.Parse([]byte(fmt.Sprintf(doc, redisServer.Addr)))
	if err != nil {
		t.Fatal(err)
	}
	rs := newRegions(t, "users", "sessions", "extra")
	env := map[string]string{
		config.EnvName("users", "backend"):    "memory://",
		config.EnvName("users", "expiration"): "1m",
		config.EnvName("extra", "backend"):    "null://",
	}
	if config.EnvName("users", "storage_ttl") != "DOGPILE_USERS_STORAGE_TTL" || config.EnvName("my-cache", "backend") != "DOGPILE_MY_CACHE_BACKEND" {
		t.Errorf("EnvName: %s, %s", config.EnvName("users", "storage_ttl"), config.EnvName("my-cache", "backend"))
	}
	if err := config.Configure(d, func(k string) string { return env[k] }, rs...); err != nil {
		t.Fatal(err)
	}
	if backendOf(rs[0]) != "*memory.Backend" || backendOf(rs[2]) != "*null.Backend" {
		t.Errorf("backends %s, %s; want the environment's", backendOf(rs[0]), backendOf(rs[2]))
	}
}

func TestLoadFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.yaml")
	if err := os.WriteFile(path, []byte("regions:\n  users:\n    backend: memory://\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRegions(t, "users")[0]
	if err := config.Load(path, r); err != nil {
		t.Fatal(err)
	}
	if !r.Configured() {
		t.Error("not configured")
	}
	if err := config.Load(filepath.Join(t.TempDir(), "missing.yaml"), newRegions(t, "users")[0]); err == nil {
		t.Error("a missing file: no error")
	}
}

// child is the program of TestSameBinaryMemoryAndRedis: memo code configured by config.Load from
// the environment alone. It prints the backend's type and whether the second call was a hit.
func child() int {
	cache := region.New("users", region.WithExpiration(time.Minute))
	var calls int
	users := memo.Func(cache, func(_ context.Context, id int64) (string, error) {
		calls++
		return fmt.Sprint("user ", id), nil
	}, memo.WithNamespace("users"))
	if err := config.Load("", cache); err != nil {
		fmt.Println(err)
		return 1
	}
	defer cache.Close()
	ctx := context.Background()
	id := time.Now().UnixNano() // a key no earlier run cached
	for range 2 {
		if _, err := users.Call(ctx, id); err != nil {
			fmt.Println(err)
			return 1
		}
	}
	fmt.Printf("%T calls=%d\n", cache.Backend(), calls)
	return 0
}

func TestSameBinaryMemoryAndRedis(t *testing.T) {
	for _, tc := range []struct{ backend, want string }{
		{"memory://", "*memory.Backend calls=1"},
		{"redis://" + redisServer.Addr + "/0?prefix=childtest:", "*redis.Backend calls=1"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "CONFIG_TEST_CHILD=1", "DOGPILE_USERS_BACKEND="+tc.backend)
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != tc.want {
			t.Errorf("DOGPILE_USERS_BACKEND=%s: %q, %v; want %q", tc.backend, out, err, tc.want)
		}
	}
}

// The blank imports above register every backend; these keep the named ones used.
var (
	_ = memory.New
	_ = memcached.New
	_ = file.Open
	_ = errors.New
)

// A whole-number argument of a million or more reaches the backend as a whole number ("1000000"),
// not as fmt.Sprint of the float64 that JSON decoding made of it ("1e+06").
func TestLargeNumericArgumentIsAWholeNumber(t *testing.T) {
	d, err := config.Parse([]byte("regions:\n  big:\n    backend: memory://\n    arguments: {max_entries: 1000000}\n"))
	if err != nil {
		t.Fatal(err)
	}
	rs := newRegions(t, "big")
	if err := config.Configure(d, nil, rs...); err != nil {
		t.Errorf("max_entries: 1000000: %v", err)
	}
}

// Configure is all or nothing, also when one of the regions is closed: the regions listed before it
// are not configured when its ConfigureWith fails with ErrClosed.
func TestClosedRegionConfiguresNone(t *testing.T) {
	d, err := config.Parse([]byte("regions:\n  a: {backend: \"memory://\"}\n  b: {backend: \"memory://\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	rs := newRegions(t, "a", "b")
	if err := rs[1].Close(); err != nil {
		t.Fatal(err)
	}
	err = config.Configure(d, nil, rs...)
	if err == nil {
		t.Fatal("configuring a closed region succeeded")
	}
	if rs[0].Configured() {
		t.Errorf("Configure failed (%v) but region a was configured: half-configured", err)
	}
	_ = region.ErrClosed
}

// The environment overrides the document, and the variable's URL carries its own parameters: a
// region parameter in DOGPILE_<REGION>_BACKEND's URL wins over the document's field.
func TestEnvBackendURLParamsWinOverDocument(t *testing.T) {
	ctx := t.Context()
	d, err := config.Parse([]byte("regions:\n  users: {backend: \"memory://\", expiration: 10m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	r := region.New("users", region.WithClock(func() time.Time { return time.Unix(0, now.Load()) }))
	defer r.Close()
	env := map[string]string{"DOGPILE_USERS_BACKEND": "memory://?expiration=1m"}
	if err := config.Configure(d, func(k string) string { return env[k] }, r); err != nil {
		t.Fatal(err)
	}
	v := region.NewView[string](r)
	if err := v.Set(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	now.Add(int64(2 * time.Minute))
	if _, ok, _ := v.Get(ctx, "k"); ok {
		t.Errorf("2 minutes after Set the value is fresh: the document's expiration (10m) won over the environment's URL (1m)")
	}
}

// Load reads the file DOGPILE_CONFIG names when given no path; a path given wins over it.
func TestLoadReadsTheFileTheEnvironmentNames(t *testing.T) {
	memoryDoc := writeFile(t, "memory.yaml", "regions:\n  users: {backend: memory://}\n")
	nullDoc := writeFile(t, "null.yaml", "regions:\n  users: {backend: null://}\n")
	for _, tc := range []struct {
		path, env, backend string
	}{
		{"", memoryDoc, "*memory.Backend"},
		{nullDoc, memoryDoc, "*null.Backend"},
		{nullDoc, "", "*null.Backend"},
	} {
		r := newRegions(t, "users")[0]
		if err := (config.Options{Env: []string{config.EnvFile + "=" + tc.env}}).Load(tc.path, r); err != nil {
			t.Fatal(err)
		}
		if got := backendOf(r); got != tc.backend {
			t.Errorf("Load(%q) with %s=%q: %s, want %s", tc.path, config.EnvFile, tc.env, got, tc.backend)
		}
	}
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	err := config.Options{Env: []string{"DOGPILE_CONFIG=" + missing}}.Load("", newRegions(t, "users")...)
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("DOGPILE_CONFIG naming a missing file: %v", err)
	}
}
