package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/keys"
	"github.com/dogpile-go/dogpile/region"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// server is the redis-server the package's tests share; each test keeps to a prefix of its own.
var server *testserver.Redis

func TestMain(m *testing.M) {
	runIfProcess()
	dir, err := os.MkdirTemp("", "dogpile-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server, err = testserver.NewRedis(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	quietRedis()
	code := m.Run()
	// The server's own goroutines (its process's Wait) end with it: stop it before looking for
	// goroutines the tool left behind.
	server.Close()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// created is when every entry of these tests was made (the regions' clock), and now when the
// tool runs: entries are 90s old.
var (
	created = time.Date(2026, 11, 22, 16, 0, 0, 0, time.UTC)
	now     = created.Add(90 * time.Second)
)

// result is one run of the tool.
type result struct {
	stdout, stderr string
	code           int
}

// dogpile runs the tool with args at now.
func dogpile(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := &cli{stdout: &stdout, stderr: &stderr, now: func() time.Time { return now }}
	code := c.run(t.Context(), args)
	return result{stdout.String(), stderr.String(), code}
}

func (r result) want(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
}

func (r result) contains(t *testing.T, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(r.stdout+r.stderr, p) {
			t.Errorf("output lacks %q\nstdout:\n%s\nstderr:\n%s", p, r.stdout, r.stderr)
		}
	}
}

// redisURL returns the URL of the shared server under a prefix of t's own, and the prefix.
func redisURL(t *testing.T) (string, string) {
	t.Helper()
	prefix := "test:" + strings.ReplaceAll(t.Name(), "/", ":") + ":" + strconv.FormatUint(rand.Uint64(), 36) + ":"
	return "redis://" + server.Addr + "/0?prefix=" + prefix, prefix
}

type user struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

var errNoUser = errors.New("no such user")

// newRegion returns a region on the backend of rawURL whose entries are created at created.
func newRegion(t *testing.T, rawURL string, opts ...region.Option) *region.Region {
	t.Helper()
	opts = append(opts, region.WithClock(func() time.Time { return created }),
		region.WithNegativeCaching(errNoUser, time.Hour))
	r := region.New("cli-test", opts...)
	b, err := backends.Open(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Configure(b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// fill stores Ada under users|i:42 and a cached "not found" under users|i:7.
func fill(t *testing.T, r *region.Region) {
	t.Helper()
	v := region.NewView[user](r)
	if err := v.Set(t.Context(), "users|i:42", user{ID: 42, Name: "Ada"}); err != nil {
		t.Fatal(err)
	}
	_, err := v.GetOrCreate(t.Context(), "users|i:7", func(context.Context) (user, error) { return user{}, errNoUser })
	if !errors.Is(err, errNoUser) {
		t.Fatalf("GetOrCreate: %v, want errNoUser", err)
	}
}

func rawClient(t *testing.T) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: server.Addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestGetRedis(t *testing.T) {
	u, _ := redisURL(t)
	fill(t, newRegion(t, u))

	r := dogpile(t, "get", "-raw", u, "users|i:42")
	r.want(t, exitOK)
	want := `key:         users|i:42
created:     2026-11-22T16:00:00Z (age 1m30s)
creation:    time unknown
size:        42 bytes (20-byte header, 22-byte payload)
flags:       none
format:      version 2
storage ttl: none (kept until deleted or evicted)
payload (JSON):
{
  "id": 42,
  "name": "Ada"
}
`
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
	if r.stderr != "" {
		t.Errorf("stderr: %s", r.stderr)
	}
}

func TestGetNegative(t *testing.T) {
	u, _ := redisURL(t)
	fill(t, newRegion(t, u))
	r := dogpile(t, "get", "-raw", u, "users|i:7")
	r.want(t, exitOK)
	r.contains(t, "flags:       negative: cached not found\n", "payload:     empty\n", "size:        20 bytes")
}

func TestGetMangled(t *testing.T) {
	u, _ := redisURL(t)
	fill(t, newRegion(t, u, region.WithKeyMangler(keys.Chain(keys.Prefix("v2:"), keys.SHA1))))
	stored := keys.SHA1("v2:users|i:42")

	r := dogpile(t, "get", "-raw", "-mangle", "prefix=v2:,sha1", u, "users|i:42")
	r.want(t, exitOK)
	r.contains(t, "key:         users|i:42\nstored as:   "+stored+"\n", `"name": "Ada"`)

	// Unmangled, the key is not there; the stored key itself is.
	r = dogpile(t, "get", "-raw", u, "users|i:42")
	r.want(t, exitFailure)
	r.contains(t, `key "users|i:42" not found in redis://`, "-mangle sha1")
	dogpile(t, "get", "-raw", u, stored).want(t, exitOK)

	r = dogpile(t, "get", "-raw", "-mangle", "md5", u, "users|i:42")
	r.want(t, exitUsage)
	r.contains(t, `unknown step "md5"`)
}

func TestGetJSON(t *testing.T) {
	u, _ := redisURL(t)
	fill(t, newRegion(t, u))
	// Flags after the arguments too.
	r := dogpile(t, "get", "-raw", u, "users|i:42", "-json")
	r.want(t, exitOK)
	var got getResult
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v in %s", err, r.stdout)
	}
	if !got.Found || got.Version != 2 || got.Created != "2026-11-22T16:00:00Z" || got.AgeNs != int64(90*time.Second) ||
		got.Negative || got.Size != 42 || got.PayloadSize != 22 || got.StorageTTL == nil || *got.StorageTTL != -1 {
		t.Errorf("got %+v", got)
	}
	var payload user
	if err := json.Unmarshal(got.Payload, &payload); err != nil || payload != (user{42, "Ada"}) {
		t.Errorf("payload %s: %v", got.Payload, err)
	}

	r = dogpile(t, "get", "-raw", "-json", u, "users|i:7")
	r.want(t, exitOK)
	got = getResult{}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || !got.Negative || got.Flags != backends.FlagNegative {
		t.Errorf("negative: %+v, %v", got, err)
	}

	r = dogpile(t, "get", "-raw", "-json", u, "users|i:1")
	r.want(t, exitFailure)
	got = getResult{}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Found || got.Key != "users|i:1" {
		t.Errorf("missing: %+v, %v", got, err)
	}
}

func TestGetRaw(t *testing.T) {
	u, _ := redisURL(t)
	fill(t, newRegion(t, u))
	r := dogpile(t, "get", "-raw", "-payload", u, "users|i:42")
	r.want(t, exitOK)
	if r.stdout != `{"id":42,"name":"Ada"}` {
		t.Errorf("stdout %q", r.stdout)
	}
}

func TestGetPayloadKinds(t *testing.T) {
	u, prefix := redisURL(t)
	c := rawClient(t)
	set := func(key string, payload []byte) {
		raw := backends.EncodeEntry(backends.Entry{Created: created.UnixNano(), Delta: int64(1500 * time.Millisecond), Flags: 0x80, Payload: payload})
		if err := c.Set(t.Context(), prefix+key, raw, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	set("text", []byte("hello, world"))
	set("gob", []byte{0x0c, 0xff, 0x81, 0x02, 0x01, 0x00})
	set("big", bytes.Repeat([]byte{0xfe}, 1000))

	r := dogpile(t, "get", "-raw", u, "text")
	r.want(t, exitOK)
	r.contains(t, "payload (text, not JSON):\n\"hello, world\"\n", "creation:    took 1.5s\n",
		"flags:       unknown bits 0x80", "storage ttl: 1h0m0s left")
	r = dogpile(t, "get", "-raw", u, "gob")
	r.want(t, exitOK)
	r.contains(t, "payload (binary", "0c ff 81 02 01 00")
	r = dogpile(t, "get", "-raw", u, "big")
	r.want(t, exitOK)
	r.contains(t, "(744 more bytes)")
}

func TestGetMalformed(t *testing.T) {
	u, prefix := redisURL(t)
	c := rawClient(t)
	if err := c.Set(t.Context(), prefix+"garbage", "not an entry at all", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(t.Context(), prefix+"short", "dp", 0).Err(); err != nil {
		t.Fatal(err)
	}
	future := backends.EncodeEntry(backends.Entry{Created: 1})
	future[2] = 9 // a format version from the future
	if err := c.Set(t.Context(), prefix+"v9", future, 0).Err(); err != nil {
		t.Fatal(err)
	}

	r := dogpile(t, "get", "-raw", u, "garbage")
	r.want(t, exitFailure)
	r.contains(t, "size:        19 bytes\n", "malformed:   backends: malformed entry: bad magic", `"not an entry at all"`,
		`dogpile get: key "garbage" holds 19 bytes that are not a dogpile entry`, "a region reads it as a miss")
	dogpile(t, "get", "-raw", u, "short").contains(t, "shorter than the 12-byte header")
	dogpile(t, "get", "-raw", u, "v9").contains(t, "format version 9")

	r = dogpile(t, "get", "-raw", "-payload", u, "garbage")
	r.want(t, exitFailure)
	if r.stdout != "not an entry at all" {
		t.Errorf("-raw stdout %q", r.stdout)
	}
	r = dogpile(t, "get", "-raw", "-json", u, "garbage")
	r.want(t, exitFailure)
	var got getResult
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Malformed == "" || string(got.PayloadBase64) != "not an entry at all" {
		t.Errorf("-json: %+v, %v", got, err)
	}

	// A key of another Redis type is a backend error, not a miss.
	if err := c.RPush(t.Context(), prefix+"list", "x").Err(); err != nil {
		t.Fatal(err)
	}
	r = dogpile(t, "get", "-raw", u, "list")
	r.want(t, exitFailure)
	r.contains(t, "WRONGTYPE")
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "Commands:"},
		{[]string{"help"}, exitOK, "invalidate"},
		{[]string{"-h"}, exitOK, "Exit status"},
		{[]string{"help", "get"}, exitOK, "-mangle steps"},
		{[]string{"help", "invalidate"}, exitOK, "-all-prefixes"},
		{[]string{"help", "nope"}, exitUsage, `unknown command "nope"`},
		{[]string{"get", "-h"}, exitOK, "Usage: dogpile get [flags] [<backend-url>] (-fn <namespace> <argument>... | -raw <key>)"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"get", "redis://127.0.0.1:1"}, exitUsage, "how is the key written? -fn"},
		{[]string{"get", "-raw", "redis://127.0.0.1:1"}, exitUsage, "-raw takes one key, got 0 argument(s)"},
		{[]string{"get", "-raw", "redis://127.0.0.1:1", "a", "b"}, exitUsage, "-raw takes one key, got 2 argument(s)"},
		{[]string{"get", "-raw", "-fn", "users.Load", "redis://127.0.0.1:1", "a"}, exitUsage, "-fn and -raw: give one"},
		{[]string{"get", "-fn", "users|Load", "redis://127.0.0.1:1", "a"}, exitUsage, "invalid namespace"},
		{[]string{"get", "-fn", "users.Load", "-types", "int", "redis://127.0.0.1:1", "a"}, exitUsage, `argument 1 ("a"): not a int`},
		{[]string{"get", "-fn", "users.Load", "-types", "int,string", "redis://127.0.0.1:1", "1"}, exitUsage, "names 2 type(s) for 1 argument(s)"},
		{[]string{"get", "-fn", "users.Load", "-types", "uuid", "redis://127.0.0.1:1", "1"}, exitUsage, `unknown type "uuid"`},
		{[]string{"get", "-bogus", "redis://127.0.0.1:1", "a"}, exitUsage, "flag provided but not defined: -bogus"},
		{[]string{"stats"}, exitUsage, "no backend: give -config <file> -region <name>, or a backend URL first"},
		{[]string{"get", "-config", "app.yaml", "-raw", "k"}, exitUsage, "-config needs -region"},
		{[]string{"get", "-raw", "redis://127.0.0.1:1", ""}, exitUsage, "empty key"},
		{[]string{"get", "-raw", "%zz://x", "k"}, exitUsage, "invalid URL"},
		{[]string{"get", "-raw", "127.0.0.1:6379", "k"}, exitUsage, "invalid URL"},
		{[]string{"get", "-raw", "localhost", "k"}, exitUsage, "the URL has no scheme"},
		{[]string{"get", "-raw", "mongodb://x", "k"}, exitUsage, `unknown backend "mongodb" (registered: file, memcached, memory, null, redis, redis+cluster, redis+sentinel, rediss, rediss+cluster, rediss+sentinel`},
		{[]string{"get", "-raw", "redis://h/0?prefx=a", "k"}, exitUsage, "unexpected option: prefx"},
		{[]string{"stats", "memcached://"}, exitUsage, "no server in the URL"},
		{[]string{"invalidate", "redis://127.0.0.1:1"}, exitUsage, "nothing to invalidate"},
		{[]string{"invalidate", "-raw", "-dry-run", "redis://127.0.0.1:1", "k"}, exitUsage, "go with -match"},
		{[]string{"invalidate", "-match", "*", "redis://127.0.0.1:1", "k"}, exitUsage, "-match takes no keys"},
		{[]string{"invalidate", "-hard", "redis://127.0.0.1:1"}, exitUsage, "-hard and -soft invalidate a region: name it with -region"},
		{[]string{"invalidate", "-hard", "-soft", "-region", "users", "redis://127.0.0.1:1"}, exitUsage, "one mode"},
		{[]string{"invalidate", "-hard", "-region", "users", "redis://127.0.0.1:1", "k"}, exitUsage, "no keys"},
	} {
		r := dogpile(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
			t.Errorf("dogpile %q: exit %d, want %d and %q in\n%s%s", tc.args, r.code, tc.code, tc.want, r.stdout, r.stderr)
		}
	}
}

// TestNoPassword checks that no output shows the URL's password, whatever goes wrong.
func TestNoPassword(t *testing.T) {
	closed := closedPort(t)
	for _, args := range [][]string{
		{"get", "-raw", "redis://:s3cret@127.0.0.1:" + closed + "/0?dialer_retries=1&max_retries=-1", "k"},
		{"get", "-raw", "redis://admin:s3cret@127.0.0.1:" + closed + "/0?bogus=1", "k"},
		{"get", "-raw", "redis://s3cret@127.0.0.1:" + closed + "/99999999999", "k"},
		{"get", "-raw", "rediss://:s3cret@127.0.0.1:" + closed + "/0?dialer_retries=1&max_retries=-1&dial_timeout=100ms", "k"},
		{"delete", "-raw", "redis://:s3cret@127.0.0.1:" + closed + "/0?dialer_retries=1&max_retries=-1", "k"},
		{"stats", "redis://:s3cret@127.0.0.1:" + closed + "/0?dialer_retries=1&max_retries=-1&prefix=p:"},
		{"stats", "memcached://s3cret@127.0.0.1:" + closed},
		{"get", "-raw", "redis+cluster://:s3cret@127.0.0.1:" + closed + "?addr=127.0.0.1:" + closed + "&dialer_retries=1&max_retries=-1", "k"},
		{"get", "-raw", "redis+sentinel://:s3cret@127.0.0.1:" + closed + "?master_name=m&password=s3cret&dialer_retries=1&max_retries=-1", "k"},
		{"get", "-raw", "rediss+sentinel://:s3cret@127.0.0.1:" + closed + "/0?bogus=1&password=s3cret", "k"},
		{"get", "-raw", "nope://:s3cret@host", "k"},
		{"get", "-raw", "redis://:s3cret@[::1", "k"},
		// A password parameter, which backends.Open quoted with the URL.
		{"get", "-raw", "redis://127.0.0.1:" + closed + "/0?password=s3cret", "k"},
		{"get", "-raw", "redis://127.0.0.1:" + closed + "/0?sentinel_password=s3cret&prefix=p:", "k"},
		{"stats", "memcached://127.0.0.1:" + closed + "?password=s3cret"},
		{"stats", "file:///nonexistent?password=s3cret"},
		{"invalidate", "-match", "*", "redis://127.0.0.1:" + closed + "/0?password=s3cret"},
		{"get", "-raw", "memory://?password=s3cret%zz", "k"}, // a query that does not parse: not even the escape
		// URLs that do not parse, whose parse error quoted part of them.
		{"get", "-raw", "redis://:s3cret", "k"},                             // "@host" forgotten: not a port
		{"delete", "-raw", "redis://admin:s3cret", "k"},                     // likewise
		{"get", "-raw", "redis://:s3#cret@127.0.0.1:" + closed + "/0", "k"}, // '#' unescaped in the password
		{"invalidate", "-raw", "redis://u:s3cret@ho st/0", "k"},
	} {
		r := dogpile(t, args...)
		if r.code == exitOK {
			t.Errorf("dogpile %q: exit 0", args)
		}
		if out := r.stdout + r.stderr; strings.Contains(out, "s3cret") || strings.Contains(out, "cret") || strings.Contains(out, "%zz") {
			t.Errorf("dogpile %q shows the password:\n%s%s", args, r.stdout, r.stderr)
		}
	}
	// A server that answers (it has no password, and takes one): stats shows the URL, without
	// its user information.
	r := dogpile(t, "stats", "redis://:s3cret@"+server.Addr+"/0?prefix=p:&dial_timeout=1s")
	r.contains(t, "backend: redis://"+server.Addr+"/0?prefix=p:\n")
	if strings.Contains(r.stdout+r.stderr, "s3cret") {
		t.Errorf("stats shows the password:\n%s%s", r.stdout, r.stderr)
	}
}

func TestRedisDown(t *testing.T) {
	r := dogpile(t, "get", "-raw", "redis://127.0.0.1:"+closedPort(t)+"/0?dialer_retries=1&max_retries=-1", "k")
	r.want(t, exitFailure)
	r.contains(t, "connection refused")
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	return port
}

func TestDelete(t *testing.T) {
	u, prefix := redisURL(t)
	fill(t, newRegion(t, u))
	r := dogpile(t, "delete", "-raw", u, "users|i:42")
	r.want(t, exitOK)
	if r.stdout != "deleted \"users|i:42\" (it existed)\n"+
		"not announced (no -region): processes with a local cache serve the old value until it ages out of it\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	if n := rawClient(t).Exists(t.Context(), prefix+"users|i:42").Val(); n != 0 {
		t.Errorf("the key is still there")
	}
	r = dogpile(t, "delete", "-raw", "-json", u, "users|i:42")
	r.want(t, exitOK)
	if r.stdout != `{"key":"users|i:42","stored_as":"users|i:42","existed":false,"announced":false}`+"\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	dogpile(t, "get", "-raw", u, "users|i:42").want(t, exitFailure)
	dogpile(t, "get", "-raw", u, "users|i:7").want(t, exitOK) // untouched

	// A key that starts with '-' after "--".
	rawClient(t).Set(t.Context(), prefix+"-odd", "x", 0)
	r = dogpile(t, "delete", "-raw", u, "--", "-odd")
	r.want(t, exitOK)
	r.contains(t, `deleted "-odd" (it existed)`)
}

func TestInvalidateKeys(t *testing.T) {
	u, _ := redisURL(t)
	rg := newRegion(t, u, region.WithKeyMangler(keys.SHA1))
	fill(t, rg)
	r := dogpile(t, "invalidate", "-raw", "-mangle", "sha1", u, "users|i:42", "users|i:7", "users|i:1")
	r.want(t, exitOK)
	r.contains(t,
		`deleted "users|i:42" (stored as "`+keys.SHA1("users|i:42")+`") (it existed)`,
		`deleted "users|i:1" (stored as "`+keys.SHA1("users|i:1")+`") (it was absent)`,
		"3 key(s) deleted, 2 of them held an entry")
	v := region.NewView[user](rg)
	if _, ok, err := v.Get(t.Context(), "users|i:42"); ok || err != nil {
		t.Errorf("Get after invalidate: %v, %v", ok, err)
	}
}

func TestInvalidateMatch(t *testing.T) {
	u, prefix := redisURL(t)
	rg := newRegion(t, u)
	v := region.NewView[user](rg)
	for i := range 30 {
		key := "users|i:" + strconv.Itoa(i)
		if i%3 == 0 {
			key = "orders|i:" + strconv.Itoa(i)
		}
		if err := v.Set(t.Context(), key, user{ID: i}); err != nil {
			t.Fatal(err)
		}
	}
	// A held lock under users: left alone.
	locker, _ := backends.As[backends.Locker](rg.Backend())
	l, ok, err := locker.TryLock(t.Context(), "users|i:1", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock: %v %v", ok, err)
	}
	defer l.Unlock(context.Background())
	// Keys of another prefix that would match the pattern without it: left alone.
	other := rawClient(t)
	other.Set(t.Context(), "elsewhere:users|i:1", "x", time.Minute)

	r := dogpile(t, "invalidate", "-match", "users|*", "-dry-run", u)
	r.want(t, exitOK)
	r.contains(t, `would delete "users|i:1"`, `would delete 20 key(s) matching "users|*"`)
	if n := len(other.Keys(t.Context(), globEscape(prefix)+"users|*").Val()); n != 20 {
		t.Errorf("dry run: %d keys left, want 20", n)
	}

	r = dogpile(t, "invalidate", "-match", "users|*", "-limit", "5", "-json", u)
	r.want(t, exitOK)
	var got invalidated
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Count != 5 || len(got.Deleted) != 5 {
		t.Errorf("-limit 5: %+v %v", got, err)
	}
	r = dogpile(t, "invalidate", "-match", "users|*", u)
	r.want(t, exitOK)
	r.contains(t, `deleted 15 key(s) matching "users|*"`)
	if n := other.Exists(t.Context(), prefix+"\x00lock\x00users|i:1", "elsewhere:users|i:1").Val(); n != 2 {
		t.Errorf("the lock or the other prefix's key was deleted")
	}
	if keys := other.Keys(t.Context(), globEscape(prefix)+"*").Val(); len(keys) != 11 {
		t.Errorf("%d keys left, want 10 orders and the lock: %q", len(keys), keys)
	}

	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil { // a (new, empty) file cache
		t.Fatal(err)
	}
	r = dogpile(t, "invalidate", "-match", "*", "file://"+dir)
	r.want(t, exitUsage)
	r.contains(t, "-match works on Redis only")
}

func TestStatsRedis(t *testing.T) {
	u, prefix := redisURL(t)
	rg := newRegion(t, u, region.WithStorageTTL(time.Hour))
	fill(t, rg)
	locker, _ := backends.As[backends.Locker](rg.Backend())
	l, _, err := locker.TryLock(t.Context(), "users|i:1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(context.Background())
	rawClient(t).RPush(t.Context(), prefix+"a-list", "x")
	rawClient(t).Set(t.Context(), prefix+"forever", "x", 0)

	r := dogpile(t, "stats", u)
	r.want(t, exitOK)
	r.contains(t, "backend: redis://"+server.Addr+"/0?prefix="+prefix+"\n",
		"redis_version:", "used_memory_human:", "maxmemory_policy:", "keyspace db0:",
		fmt.Sprintf("keys under prefix %q (all of them):", prefix),
		"values:     3, 63 bytes (1 without a TTL)", "locks held: 1", "other:      1 keys of another Redis type")

	r = dogpile(t, "stats", "-limit", "2", "-json", u)
	r.want(t, exitOK)
	var got statsResult
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Redis == nil {
		t.Fatalf("%v in %s", err, r.stdout)
	}
	if got.Redis.Scanned != 2 || got.Redis.Complete || got.Redis.Info["redis_version"] == "" {
		t.Errorf("-limit 2: %+v", got.Redis)
	}
}

func TestFile(t *testing.T) {
	dir := t.TempDir()
	u := "file://" + dir
	fill(t, newRegion(t, u, region.WithStorageTTL(time.Hour)))

	r := dogpile(t, "get", "-raw", u, "users|i:42")
	r.want(t, exitOK)
	r.contains(t, "created:     2026-11-22T16:00:00Z (age 1m30s)", `"name": "Ada"`)
	if strings.Contains(r.stdout, "storage ttl") {
		t.Errorf("the file backend does not tell its TTL:\n%s", r.stdout)
	}
	r = dogpile(t, "stats", u)
	r.want(t, exitOK)
	r.contains(t, "directory:  "+dir, "entries:    2, ")
	// An entry whose storage TTL passed is counted as expired.
	r = dogpile(t, "stats", "-json", u)
	var got statsResult
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.File == nil || got.File.Entries != 2 || got.File.Expired != 0 {
		t.Errorf("stats -json: %+v %v", got.File, err)
	}
	// Bounds in the URL are not applied: opening a bounded backend would evict entries over them.
	r = dogpile(t, "stats", u+"?max_entries=1&fsync=false")
	r.want(t, exitOK)
	r.contains(t, "entries:    2, ")
	dogpile(t, "delete", "-raw", u, "users|i:42").contains(t, "(it existed)")
	dogpile(t, "get", "-raw", u, "users|i:42").want(t, exitFailure)
	dogpile(t, "stats", u).contains(t, "entries:    1, ")

	// A directory that does not exist is a failure, and is not created.
	missing := filepath.Join(dir, "typo")
	r = dogpile(t, "get", "-raw", "file://"+missing, "k")
	r.want(t, exitFailure)
	r.contains(t, "no such file or directory")
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("the tool created %s", missing)
	}
	dogpile(t, "get", "-raw", "file://"+dir+"?max_sise=1", "k").want(t, exitUsage)
}

func TestInProcessBackends(t *testing.T) {
	for _, u := range []string{"memory://", "null://"} {
		r := dogpile(t, "get", "-raw", u, "k")
		r.want(t, exitFailure)
		r.contains(t, "a new process, such as this one, has none to inspect")
		dogpile(t, "delete", "-raw", u, "k").want(t, exitFailure)
		dogpile(t, "delete", "-region", "users", "-raw", u, "k").contains(t, "none to inspect")
		dogpile(t, "invalidate", "-raw", u, "k").want(t, exitFailure)
		r = dogpile(t, "stats", u)
		r.want(t, exitOK)
		r.contains(t, "backend: "+strings.TrimSuffix(u, "//"), "nothing to inspect")
	}
}

func TestMemcached(t *testing.T) {
	m := testserver.StartMemcached(t)
	u := "memcached://" + m.Addr + "?prefix=cli:"
	fill(t, newRegion(t, u))
	r := dogpile(t, "get", "-raw", u, "users|i:42")
	r.want(t, exitOK)
	r.contains(t, `"name": "Ada"`)
	r = dogpile(t, "stats", u+"&timeout=1s")
	r.want(t, exitOK)
	r.contains(t, "server "+m.Addr+":", "curr_items:", "limit_maxbytes:", "cannot list keys")
	dogpile(t, "invalidate", "-raw", u, "users|i:42", "users|i:7").contains(t, "2 key(s) deleted, 2 of them held an entry")

	// One server of two down: reported, not fatal; both down: a failure.
	down := "127.0.0.1:" + closedPort(t)
	r = dogpile(t, "stats", "memcached://"+m.Addr+","+down)
	r.want(t, exitOK)
	r.contains(t, "server "+down+":\n  error:")
	dogpile(t, "stats", "memcached://"+down).want(t, exitFailure)
}

func TestParseMangler(t *testing.T) {
	long := strings.Repeat("x", 41)
	for _, tc := range []struct{ spec, key, want string }{
		{"", "k", "k"},
		{"none", "k", "k"},
		{"sha1", "k", keys.SHA1("k")},
		{"prefix=app:", "k", "app:k"},
		{"prefix=a=b", "k", "a=bk"},
		{"sha1,prefix=app:", "k", "app:" + keys.SHA1("k")},
		{"sha1-over=40", "k", "k"},
		{"sha1-over=40", long, keys.SHA1(long)},
	} {
		m, err := parseMangler(tc.spec)
		got := tc.key
		if m != nil {
			got = m(tc.key)
		}
		if err != nil || got != tc.want {
			t.Errorf("parseMangler(%q)(%q) = %q, %v; want %q", tc.spec, tc.key, got, err, tc.want)
		}
	}
	for _, spec := range []string{"sha256", "sha1=1", "prefix", "sha1-over=x", "sha1-over=-1", "sha1,,prefix=a"} {
		if _, err := parseMangler(spec); err == nil {
			t.Errorf("parseMangler(%q): no error", spec)
		}
	}
}

// A tool that only looks does not write: stats, get and delete on an existing directory that is no
// cache (a typo one level up: file:///var/cache for file:///var/cache/app, or $HOME) create no
// data/, locks/ or evict.lock in it.
func TestStatsWritesNothingIntoADirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := dogpile(t, "stats", "file://"+dir)
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 1 {
		t.Errorf("stats on a directory that is no cache (exit %d, %q) left it holding %q; want only notes.txt", r.code, r.stdout, names)
	}
}

// On a Redis Cluster the CLI's redis:// URL reaches one node, whose SCAN lists that node's keys
// only and which refuses an UNLINK of keys of many slots, and a redis+cluster:// URL's SCAN
// reaches one node too: stats and invalidate -match refuse a Cluster, with a message that says
// why, and delete nothing.
func TestClusterNodeIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := testserver.StartCluster(t)
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs()})
	defer cc.Close()
	b := redis.New(cc, redis.WithPrefix("app:"))
	ctx := t.Context()
	for i := range 60 {
		if err := b.Set(ctx, "k"+strconv.Itoa(i), []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	masters, err := c.Masters(ctx)
	if err != nil || len(masters) != 3 {
		t.Fatalf("masters: %v %v", masters, err)
	}
	// A node of a Cluster, and the Cluster through a redis+cluster URL, are refused, with a
	// message that says why, for stats and invalidate -match alike; nothing is deleted.
	for _, u := range []string{"redis://" + masters[0].Addr + "/0?prefix=app:", "redis+cluster://" + masters[0].Addr + "?prefix=app:"} {
		r := dogpile(t, "stats", "-json", u)
		if r.code != exitFailure || !strings.Contains(r.stderr, "Redis Cluster") {
			t.Errorf("stats on %s: exit %d, stderr %q; want a failure naming the Cluster", u, r.code, r.stderr)
		}
		r = dogpile(t, "invalidate", "-match", "k*", u)
		left := 0
		for i := range 60 {
			if _, err := b.Get(ctx, "k"+strconv.Itoa(i)); err == nil {
				left++
			}
		}
		if r.code != exitFailure || left != 60 || !strings.Contains(r.stderr, "Redis Cluster") {
			t.Errorf("invalidate -match on %s: exit %d, %d of 60 keys left\nstdout: %s\nstderr: %s", u, r.code, left, r.stdout, r.stderr)
		}
	}
}
