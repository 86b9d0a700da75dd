package memcached_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/backendtest"
	"github.com/dogpile-go/dogpile/backends/memcached"
	"github.com/dogpile-go/dogpile/internal/counting"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/memo"
	"github.com/dogpile-go/dogpile/region"
	"go.uber.org/goleak"
)

// server is the memcached (-I 2m) the package's tests share; each test keeps to keys under a
// prefix of its own (uniquePrefix). Tests that stop a server, or need several, start their own.
var server *testserver.Memcached

// serverItemSize is the item size limit of the test servers (-I 2m).
const serverItemSize = 2 << 20

func TestMain(m *testing.M) {
	var err error
	server, err = testserver.NewMemcached()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		server.Close()
		os.Exit(code)
	}))
}

// newClient returns a client of the given servers (the shared one without any), whose idle
// connections are closed when tb ends.
func newClient(tb testing.TB, addrs ...string) *memcache.Client {
	tb.Helper()
	if len(addrs) == 0 {
		addrs = []string{server.Addr}
	}
	c := memcache.New(addrs...)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// uniquePrefix returns a key prefix of tb's own on the shared server.
func uniquePrefix(tb testing.TB) string {
	name := strings.NewReplacer("/", ":", " ", "_").Replace(tb.Name())
	return "test:" + name + ":" + strconv.FormatUint(rand.Uint64(), 36) + ":"
}

// hashed is the memcached key of a key the backend cannot send as it is.
func hashed(prefix, key string) string {
	sum := sha1.Sum([]byte(key))
	return prefix + "sha1:" + hex.EncodeToString(sum[:])
}

func TestConformance(t *testing.T) {
	client := newClient(t)
	for _, tc := range []struct {
		name string
		opts []memcached.Option
	}{
		{"default", nil},
		{"default_ttl", []memcached.Option{memcached.WithDefaultTTL(time.Hour)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backendtest.Run(t, func(t *testing.T) backends.Backend {
				// The suite stores 1 MiB values: the servers run with -I 2m.
				opts := []memcached.Option{memcached.WithPrefix(uniquePrefix(t)), memcached.WithMaxItemSize(serverItemSize)}
				return memcached.New(client, append(opts, tc.opts...)...)
			})
		})
	}
}

// TestConformancePool runs the suite on a client of three servers, which picks a server per key:
// multi-key operations and locks must work whichever server a key lands on.
func TestConformancePool(t *testing.T) {
	a, b := testserver.StartMemcached(t), testserver.StartMemcached(t)
	client := newClient(t, server.Addr, a.Addr, b.Addr)
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		return memcached.New(client, memcached.WithPrefix(uniquePrefix(t)), memcached.WithMaxItemSize(serverItemSize))
	})
}

// TestKeys stores values under keys memcached cannot take as they are: every one round-trips,
// distinct keys stay distinct, locks on them work, and each lands under the memcached key the
// package documentation promises (the key as it is, or its hash).
func TestKeys(t *testing.T) {
	ctx := t.Context()
	client := newClient(t)
	for _, prefix := range []string{"", uniquePrefix(t)} {
		t.Run("prefix="+strconv.Quote(prefix), func(t *testing.T) {
			b := memcached.New(client, memcached.WithPrefix(prefix))
			run := strconv.FormatUint(rand.Uint64(), 36) // keys of this run only, even without a prefix
			fit := 250 - len(prefix)                     // the longest key sent as it is
			at := func(n int) string { return run + strings.Repeat("k", n-len(run)) }
			cases := []struct {
				name, key string
				asIs      bool // sent as prefix+key
			}{
				{"plain", run + "ns|i64:42", true},
				{"exactly 250 bytes in all", at(fit), true},
				{"251 bytes in all", at(fit + 1), false},
				{"300 bytes", at(300), false},
				{"space", run + "ns|s3:a b", false},
				{"only spaces", run + "   ", false},
				{"tab", run + "a\tb", false},
				{"newline", run + "a\r\nget x", false},
				{"control characters", run + "\x01\x02\x1f", false},
				{"DEL", run + "a\x7fb", false},
				{"NUL bytes", run + "a\x00b", false},
				{"another NUL", run + "a\x00\x00b", false},
				{"unicode", run + "ключ-鍵-🔑", true},
				{"unicode 300 bytes", run + strings.Repeat("é", 150), false},
				{"invalid UTF-8", run + "\xff\xfe", true},
				{"looks hashed", "sha1:" + run, false},
				// The memcached key of another case, written out: must not meet it.
				{"hash of space, as a key", strings.TrimPrefix(hashed(prefix, run+"ns|s3:a b"), prefix), false},
			}
			if prefix == "" {
				cases = append(cases, struct {
					name, key string
					asIs      bool
				}{"empty", "", false})
			}
			for _, tc := range cases {
				if err := b.Set(ctx, tc.key, []byte("value of "+tc.name), 0); err != nil {
					t.Fatalf("%s: Set(%q): %v", tc.name, tc.key, err)
				}
			}
			t.Cleanup(func() {
				for _, tc := range cases {
					_ = b.Delete(context.Background(), tc.key)
				}
			})
			for _, tc := range cases {
				got, err := b.Get(ctx, tc.key)
				if err != nil || string(got) != "value of "+tc.name {
					t.Errorf("%s: Get(%q) = %q, %v; want %q", tc.name, tc.key, got, err, "value of "+tc.name)
				}
				mk := hashed(prefix, tc.key)
				if tc.asIs {
					mk = prefix + tc.key
				}
				if it, err := client.Get(mk); err != nil || string(it.Value) != "value of "+tc.name {
					t.Errorf("%s: the value is not under the memcached key %q: %v", tc.name, mk, err)
				}
			}

			// GetMulti finds each under its own key.
			keys := make([]string, len(cases))
			for i, tc := range cases {
				keys[i] = tc.key
			}
			m, err := b.GetMulti(ctx, keys)
			if err != nil || len(m) != len(cases) {
				t.Fatalf("GetMulti = %d values, %v; want %d", len(m), err, len(cases))
			}
			for _, tc := range cases {
				if string(m[tc.key]) != "value of "+tc.name {
					t.Errorf("%s: GetMulti[%q] = %q", tc.name, tc.key, m[tc.key])
				}
			}

			// Locks: the lock name gets a suffix, which must not push it over the limit.
			for _, tc := range cases {
				lock, ok, err := b.TryLock(ctx, tc.key, 10*time.Second)
				if err != nil || !ok {
					t.Fatalf("%s: TryLock(%q) = %v, %v", tc.name, tc.key, ok, err)
				}
				if _, ok, err := b.TryLock(ctx, tc.key, 10*time.Second); err != nil || ok {
					t.Fatalf("%s: second TryLock(%q) = %v, %v; want not taken", tc.name, tc.key, ok, err)
				}
				if err := lock.Unlock(ctx); err != nil {
					t.Fatalf("%s: Unlock: %v", tc.name, err)
				}
			}

			if err := b.DeleteMulti(ctx, keys); err != nil {
				t.Fatal(err)
			}
			if m, err := b.GetMulti(ctx, keys); err != nil || len(m) != 0 {
				t.Fatalf("GetMulti after DeleteMulti = %d values, %v; want none", len(m), err)
			}
		})
	}
}

// TestMemoStringKeys runs memo keys that memcached cannot take as they are (a string argument with
// spaces and a newline, a long one) through a region: each is cached once and found again.
func TestMemoStringKeys(t *testing.T) {
	r := region.New("strings", region.WithExpiration(time.Hour))
	if err := r.Configure(memcached.New(newClient(t), memcached.WithPrefix(uniquePrefix(t)))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	calls := map[string]int{}
	h := memo.Func(r, func(_ context.Context, s string) (string, error) { calls[s]++; return "v:" + s, nil },
		memo.WithNamespace("greet"))
	ctx := context.Background()
	args := []string{"plain", "a b", "a  b", "line\nbreak", strings.Repeat("long ", 100), ""}
	for range 2 {
		for _, s := range args {
			if v, err := h.Call(ctx, s); err != nil || v != "v:"+s {
				t.Fatalf("Call(%q) = %q, %v", s, v, err)
			}
		}
	}
	for _, s := range args {
		if calls[s] != 1 {
			t.Errorf("Call(%q) ran the function %d times in two calls; want once", s, calls[s])
		}
	}
}

// TestMaxItemSize checks the item size rule against the server (-I 2m): a value that just fits
// under its key is stored, one byte more is refused before it is sent, and the server itself
// refuses that byte more, so the backend's figure is exact.
func TestMaxItemSize(t *testing.T) {
	ctx := t.Context()
	client, rec := counting.MemcachedClient(t, server.Addr)
	prefix := uniquePrefix(t)
	for _, tc := range []struct {
		name string
		opts []memcached.Option
		size int // the servers' -I, as the backend is told
	}{
		{"WithMaxItemSize(2<<20)", []memcached.Option{memcached.WithMaxItemSize(serverItemSize)}, serverItemSize},
		{"default 1MiB", nil, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := memcached.New(client, append([]memcached.Option{memcached.WithPrefix(prefix)}, tc.opts...)...)
			for _, key := range []string{"k", strings.Repeat("x", 240-len(prefix)), "a key with spaces"} {
				mk := prefix + key
				if strings.Contains(key, " ") {
					mk = hashed(prefix, key)
				}
				fits := tc.size - 59 - len(mk)
				t.Cleanup(func() { _ = b.Delete(context.Background(), key) })

				rec.Take()
				err := b.Set(ctx, key, make([]byte, fits+1), 0)
				if !errors.Is(err, backends.ErrTooLarge) {
					t.Fatalf("Set(%q, %d bytes): %v; want an error wrapping backends.ErrTooLarge", key, fits+1, err)
				}
				if msg := err.Error(); !strings.Contains(msg, strconv.Quote(key)) || !strings.Contains(msg, strconv.Itoa(fits+1)) {
					t.Errorf("Set(%q, %d bytes): error %q does not name the key and the size", key, fits+1, msg)
				}
				if trips := rec.Take(); len(trips) != 0 {
					t.Errorf("Set of a value too large sent %v; want nothing", trips)
				}
				if _, err := b.Get(ctx, key); !errors.Is(err, backends.ErrNotFound) {
					t.Errorf("Get(%q) after a refused Set: %v; want a miss", key, err)
				}

				value := bytes.Repeat([]byte{0xa5}, fits)
				if err := b.Set(ctx, key, value, 0); err != nil {
					t.Fatalf("Set(%q, %d bytes), the largest that fits: %v", key, fits, err)
				}
				if got, err := b.Get(ctx, key); err != nil || !bytes.Equal(got, value) {
					t.Fatalf("Get(%q) of the largest value = %d bytes, %v", key, len(got), err)
				}
				if tc.size == serverItemSize {
					// The server agrees that one byte more does not fit.
					err := client.Set(&memcache.Item{Key: mk, Value: make([]byte, fits+1)})
					if err == nil || !strings.Contains(err.Error(), "too large") {
						t.Errorf("the server took %d bytes under %q: %v; the overhead (59) is wrong", fits+1, mk, err)
					}
				}
			}
		})
	}
}

// TestTooLarge2MB is the case: a 2 MB value is refused with ErrTooLarge, nothing is
// stored, and SetMulti stores the items that fit beside it.
func TestTooLarge2MB(t *testing.T) {
	ctx := t.Context()
	b := memcached.New(newClient(t), memcached.WithPrefix(uniquePrefix(t)), memcached.WithMaxItemSize(serverItemSize))
	big := make([]byte, 2<<20)
	t.Cleanup(func() { _ = b.DeleteMulti(context.Background(), []string{"big", "small", "big2"}) })

	err := b.Set(ctx, "big", big, time.Hour)
	t.Logf("Set of 2 MiB: %v", err)
	if !errors.Is(err, backends.ErrTooLarge) || !strings.Contains(err.Error(), `"big"`) || !strings.Contains(err.Error(), "2097152") {
		t.Fatalf("Set of 2 MiB: %v; want an error wrapping backends.ErrTooLarge naming the key and the size", err)
	}
	if _, err := b.Get(ctx, "big"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Get after a refused Set: %v; want a miss", err)
	}

	err = b.SetMulti(ctx, map[string][]byte{"big": big, "small": []byte("s"), "big2": big}, time.Hour)
	if !errors.Is(err, backends.ErrTooLarge) || !strings.Contains(err.Error(), `"big"`) || !strings.Contains(err.Error(), `"big2"`) {
		t.Fatalf("SetMulti with two values of 2 MiB: %v; want ErrTooLarge naming both", err)
	}
	m, err := b.GetMulti(ctx, []string{"big", "small", "big2"})
	if err != nil || len(m) != 1 || string(m["small"]) != "s" {
		t.Fatalf("GetMulti after SetMulti = %q, %v; want only small", m, err)
	}
}

// TestServerRefusesTooLarge tells the backend the item size is larger than the server's: the
// server's refusal is ErrTooLarge too, and the backend goes on working.
func TestServerRefusesTooLarge(t *testing.T) {
	ctx := t.Context()
	b := memcached.New(newClient(t), memcached.WithPrefix(uniquePrefix(t)), memcached.WithMaxItemSize(8<<20))
	err := b.Set(ctx, "k", make([]byte, 3<<20), 0)
	if !errors.Is(err, backends.ErrTooLarge) || !strings.Contains(err.Error(), `"k"`) {
		t.Fatalf("Set of 3 MiB on a -I 2m server: %v; want an error wrapping backends.ErrTooLarge", err)
	}
	if err := b.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatalf("Set after the server refused a value: %v", err)
	}
	_ = b.Delete(ctx, "k")
}

// TestTTL reads the expiry memcached holds for values set with various TTLs (mg <key> t), so
// that the conversion is checked against the server's reading of it: a relative time up to 30
// days, a Unix time beyond.
func TestTTL(t *testing.T) {
	ctx := t.Context()
	prefix := uniquePrefix(t)
	client := newClient(t)
	plain := memcached.New(client, memcached.WithPrefix(prefix))
	withDefault := memcached.New(client, memcached.WithPrefix(prefix), memcached.WithDefaultTTL(time.Hour))
	const day = 24 * time.Hour
	for _, tc := range []struct {
		name     string
		set      func(key string) error
		min, max int // remaining seconds; -1: no expiry
	}{
		{"none", func(k string) error { return plain.Set(ctx, k, []byte("v"), 0) }, -1, -1},
		{"90s", func(k string) error { return plain.Set(ctx, k, []byte("v"), 90*time.Second) }, 90, 91},
		{"1ms", func(k string) error { return plain.Set(ctx, k, []byte("v"), time.Millisecond) }, 1, 2},
		{"default", func(k string) error { return withDefault.Set(ctx, k, []byte("v"), 0) }, 3600, 3601},
		{"own_over_default", func(k string) error { return withDefault.Set(ctx, k, []byte("v"), time.Minute) }, 60, 61},
		{"multi_default", func(k string) error {
			return withDefault.SetMulti(ctx, map[string][]byte{k: []byte("v")}, 0)
		}, 3600, 3601},
		{"30_days", func(k string) error { return plain.Set(ctx, k, []byte("v"), 30*day) }, 30*86400 - 5, 30*86400 + 5},
		{"31_days", func(k string) error { return plain.Set(ctx, k, []byte("v"), 31*day) }, 31*86400 - 5, 31*86400 + 5},
		{"365_days", func(k string) error { return plain.Set(ctx, k, []byte("v"), 365*day) }, 365*86400 - 5, 365*86400 + 5},
		{"reset", func(k string) error {
			if err := plain.Set(ctx, k, []byte("v"), time.Minute); err != nil {
				return err
			}
			return plain.Set(ctx, k, []byte("v"), 0)
		}, -1, -1},
	} {
		if err := tc.set(tc.name); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		t.Cleanup(func() { _ = plain.Delete(context.Background(), tc.name) })
		ttl, ok := metaTTL(t, server.Addr, prefix+tc.name)
		if !ok || ttl < tc.min || ttl > tc.max {
			t.Errorf("%s: memcached holds it %v with a remaining TTL of %ds; want within [%d, %d]", tc.name, ok, ttl, tc.min, tc.max)
		}
	}
}

// TestTTLLastsAtLeastTTL sets values with a TTL of 1s at four points of memcached's one-second
// clock tick and checks that each is still there a little under a second later. (An expiry of 1,
// a plain rounding up, lives between 0 and 1 second: this fails for most of the four.)
func TestTTLLastsAtLeastTTL(t *testing.T) {
	ctx := t.Context()
	b := memcached.New(newClient(t), memcached.WithPrefix(uniquePrefix(t)))
	type probe struct {
		key string
		set time.Time
	}
	var probes []probe
	for i := range 4 {
		key := "k" + strconv.Itoa(i)
		if err := b.Set(ctx, key, []byte("v"), time.Second); err != nil {
			t.Fatal(err)
		}
		probes = append(probes, probe{key, time.Now()})
		time.Sleep(250 * time.Millisecond)
	}
	for _, p := range probes {
		time.Sleep(time.Until(p.set.Add(950 * time.Millisecond)))
		if _, err := b.Get(ctx, p.key); err != nil {
			t.Errorf("Get(%q) %v after Set with ttl=1s: %v; want the value", p.key, time.Since(p.set).Round(time.Millisecond), err)
		}
	}
	// And it does go: within ttl + 2s, and a little for memcached's clock event to run.
	time.Sleep(time.Until(probes[len(probes)-1].set.Add(2500 * time.Millisecond)))
	for _, p := range probes {
		if _, err := b.Get(ctx, p.key); !errors.Is(err, backends.ErrNotFound) {
			t.Errorf("Get(%q) %v after Set with ttl=1s: %v; want a miss", p.key, time.Since(p.set).Round(time.Millisecond), err)
		}
	}
}

func TestRoundTrips(t *testing.T) {
	ctx := t.Context()
	a := testserver.StartMemcached(t)
	client, rec := counting.MemcachedClient(t, server.Addr, a.Addr)
	b := memcached.New(client, memcached.WithPrefix(uniquePrefix(t)))

	const n = 100
	keys := make([]string, n)
	items := make(map[string][]byte, n)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
		if i%10 != 0 { // every tenth key stays absent
			items[keys[i]] = []byte(strings.Repeat("v", 200) + strconv.Itoa(i))
		}
	}
	t.Cleanup(func() { _ = b.DeleteMulti(context.Background(), keys) })

	rec.Take()
	if err := b.SetMulti(ctx, items, time.Hour); err != nil {
		t.Fatal(err)
	}
	if trips := rec.Take(); len(trips) != len(items) || counting.Count(trips, "set") != len(items) {
		t.Errorf("SetMulti of %d keys: %d round trips %v; want one set each", len(items), len(trips), trips)
	}
	// Both servers hold some of the keys, or the rest proves nothing.
	for _, addr := range []string{server.Addr, a.Addr} {
		if s := stats(t, addr); s["curr_items"] == "0" {
			t.Fatalf("server %s holds no item", addr)
		}
	}

	gets := func(addr string) (before int) { n, _ := strconv.Atoi(stats(t, addr)["cmd_get"]); return n }
	before := gets(server.Addr) + gets(a.Addr)
	m, err := b.GetMulti(ctx, append(slices.Clone(keys), keys[:10]...)) // and 10 duplicates
	if err != nil {
		t.Fatal(err)
	}
	trips := rec.Take()
	t.Logf("GetMulti of 100 keys on 2 servers: %v", trips)
	if len(trips) != 2 || trips[0].Addr == trips[1].Addr || trips[0].Cmd != "gets" || trips[1].Cmd != "gets" ||
		trips[0].Keys+trips[1].Keys != n {
		t.Errorf("GetMulti of %d keys on 2 servers: round trips %v; want one gets per server naming %d keys in all", n, trips, n)
	}
	if got := gets(server.Addr) + gets(a.Addr) - before; got != n {
		t.Errorf("GetMulti of %d keys: the servers counted %d keys fetched (cmd_get)", n, got)
	}
	if len(m) != len(items) {
		t.Fatalf("GetMulti: %d keys found, want %d", len(m), len(items))
	}
	for k, v := range items {
		if !bytes.Equal(m[k], v) {
			t.Fatalf("GetMulti: %q = %q, want %q", k, m[k], v)
		}
	}

	if _, err := b.Get(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "k0"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Get of an absent key: %v; want ErrNotFound", err)
	}
	if trips := rec.Take(); len(trips) != 2 || counting.Count(trips, "gets") != 2 || trips[0].Keys != 1 || trips[1].Keys != 1 {
		t.Errorf("a Get hit and a Get miss: round trips %v; want one gets of one key each", trips)
	}

	if err := b.DeleteMulti(ctx, keys); err != nil {
		t.Fatal(err)
	}
	if trips := rec.Take(); len(trips) != n || counting.Count(trips, "delete") != n {
		t.Errorf("DeleteMulti of %d keys: %d round trips; want one delete each", n, len(trips))
	}

	// No keys, no I/O.
	if _, err := b.GetMulti(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.SetMulti(ctx, nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteMulti(ctx, []string{}); err != nil {
		t.Fatal(err)
	}
	if trips := rec.Take(); len(trips) != 0 {
		t.Errorf("multi operations on no keys sent %v", trips)
	}
}

// TestGetMultiManyLongKeys sends one gets line of 1000 keys of 250 bytes (a quarter of a
// megabyte), which memcached must read as one command.
func TestGetMultiManyLongKeys(t *testing.T) {
	ctx := t.Context()
	prefix := uniquePrefix(t)
	b := memcached.New(newClient(t), memcached.WithPrefix(prefix))
	keys := make([]string, 1000)
	items := make(map[string][]byte)
	for i := range keys {
		keys[i] = strconv.Itoa(i) + ":" + strings.Repeat("k", 250-len(prefix)-len(strconv.Itoa(i))-1)
		if i%3 == 0 {
			items[keys[i]] = []byte(strconv.Itoa(i))
		}
	}
	t.Cleanup(func() { _ = b.DeleteMulti(context.Background(), keys) })
	if err := b.SetMulti(ctx, items, time.Minute); err != nil {
		t.Fatal(err)
	}
	m, err := b.GetMulti(ctx, keys)
	if err != nil || len(m) != len(items) {
		t.Fatalf("GetMulti of 1000 keys of 250 bytes = %d values, %v; want %d", len(m), err, len(items))
	}
}

func TestServerDown(t *testing.T) {
	srv := testserver.StartMemcached(t)
	client := newClient(t, srv.Addr)
	client.Timeout = 200 * time.Millisecond
	b := memcached.New(client)
	ctx := t.Context()
	if err := b.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	held, ok, err := b.TryLock(ctx, "held", time.Minute)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}

	srv.Stop()
	ops := []struct {
		name string
		run  func() error
	}{
		{"Get", func() error { _, err := b.Get(ctx, "k"); return err }},
		{"Set", func() error { return b.Set(ctx, "k", []byte("v"), 0) }},
		{"Delete", func() error { return b.Delete(ctx, "k") }},
		{"GetMulti", func() error { _, err := b.GetMulti(ctx, []string{"k", "l"}); return err }},
		{"SetMulti", func() error { return b.SetMulti(ctx, map[string][]byte{"k": []byte("v"), "l": nil}, 0) }},
		{"DeleteMulti", func() error { return b.DeleteMulti(ctx, []string{"k", "l"}) }},
		{"TryLock", func() error { _, _, err := b.TryLock(ctx, "k", time.Second); return err }},
		{"Unlock", func() error { return held.Unlock(ctx) }},
	}
	for _, op := range ops {
		start := time.Now()
		err := op.run()
		elapsed := time.Since(start)
		t.Logf("%s with memcached stopped: %v after %v", op.name, err, elapsed.Round(time.Millisecond))
		if err == nil {
			t.Errorf("%s with memcached stopped: no error", op.name)
		} else if errors.Is(err, backends.ErrNotFound) {
			t.Errorf("%s with memcached stopped: %v, which is a miss; want a failure", op.name, err)
		} else if !strings.HasPrefix(err.Error(), "memcached: ") {
			t.Errorf("%s with memcached stopped: %v; want the error wrapped with the backend's name", op.name, err)
		}
		if elapsed > time.Second {
			t.Errorf("%s with memcached stopped took %v; want a prompt failure (timeout 200ms)", op.name, elapsed)
		}
	}

	// Back up (empty: memcached keeps nothing): the backend works again at once, since the failed
	// calls above dropped the connections the client kept.
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, "k", []byte("again"), 0); err != nil {
		t.Fatalf("Set after memcached restarted: %v", err)
	}
	if v, err := b.Get(ctx, "k"); err != nil || string(v) != "again" {
		t.Fatalf("Get after memcached restarted = %q, %v; want %q", v, err, "again")
	}
	if _, ok, err := b.TryLock(ctx, "held", time.Minute); err != nil || !ok {
		t.Fatalf("TryLock after memcached restarted = %v, %v; want taken (the old lock went with the server)", ok, err)
	}
}

// TestRestartWithIdleConnections restarts memcached while the client keeps idle connections to
// it, which the restart closed: the calls after it go through at once (the backend tries again on
// such a connection), so that a restart does not turn into a burst of errors, and of lock
// failures that let every process create.
func TestRestartWithIdleConnections(t *testing.T) {
	srv := testserver.StartMemcached(t)
	client, rec := counting.MemcachedClient(t, srv.Addr)
	client.MaxIdleConns = 3
	b := memcached.New(client)
	ctx := t.Context()
	// Three calls at once leave up to three idle connections.
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { _ = b.Set(ctx, "k", []byte("v"), 0) })
	}
	wg.Wait()
	t.Logf("%d connections dialed", rec.Dials())

	srv.Stop()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	for i, op := range []func() error{
		func() error { _, err := b.Get(ctx, "k"); return err }, // memcached kept nothing: a miss
		func() error { return b.Set(ctx, "k", []byte("v"), 0) },
		func() error {
			lock, ok, err := b.TryLock(ctx, "k", time.Minute)
			if err == nil && !ok {
				err = errors.New("not taken")
			}
			if err == nil {
				err = lock.Unlock(ctx)
			}
			return err
		},
	} {
		if err := op(); err != nil && !(i == 0 && errors.Is(err, backends.ErrNotFound)) {
			t.Errorf("call %d after a restart: %v; want it to go through", i, err)
		}
	}
}

// TestHung points the backend at a server that accepts connections and never answers: a call
// fails after the client's timeout, and is not a miss.
func TestHung(t *testing.T) {
	addr := testserver.Silent(t)
	client := newClient(t, addr)
	client.Timeout = 200 * time.Millisecond
	b := memcached.New(client)

	for name, op := range map[string]func() error{
		"Get":     func() error { _, err := b.Get(t.Context(), "k"); return err },
		"TryLock": func() error { _, _, err := b.TryLock(t.Context(), "k", time.Second); return err },
	} {
		start := time.Now()
		err := op()
		elapsed := time.Since(start)
		t.Logf("%s on a hung server: %v after %v", name, err, elapsed.Round(time.Millisecond))
		if err == nil || errors.Is(err, backends.ErrNotFound) {
			t.Fatalf("%s on a server that never answers: %v; want a failure that is not a miss", name, err)
		}
		if elapsed > time.Second {
			t.Fatalf("%s on a server that never answers took %v; want about the timeout (200ms)", name, elapsed)
		}
	}
}

func TestContextDone(t *testing.T) {
	client, rec := counting.MemcachedClient(t, server.Addr)
	b := memcached.New(client, memcached.WithPrefix(uniquePrefix(t)))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rec.Take()
	for name, op := range map[string]func() error{
		"Get":         func() error { _, err := b.Get(ctx, "k"); return err },
		"Set":         func() error { return b.Set(ctx, "k", []byte("v"), 0) },
		"Delete":      func() error { return b.Delete(ctx, "k") },
		"GetMulti":    func() error { _, err := b.GetMulti(ctx, []string{"k"}); return err },
		"SetMulti":    func() error { return b.SetMulti(ctx, map[string][]byte{"k": nil}, 0) },
		"DeleteMulti": func() error { return b.DeleteMulti(ctx, []string{"k"}) },
		"TryLock":     func() error { _, _, err := b.TryLock(ctx, "k", time.Second); return err },
	} {
		if err := op(); !errors.Is(err, context.Canceled) || errors.Is(err, backends.ErrNotFound) {
			t.Errorf("%s with a cancelled context: %v; want an error wrapping context.Canceled, not a miss", name, err)
		}
	}
	if trips := rec.Take(); len(trips) != 0 {
		t.Errorf("calls with a cancelled context sent %v; want nothing", trips)
	}
}

func TestClose(t *testing.T) {
	ctx := t.Context()
	client, rec := counting.MemcachedClient(t, server.Addr)
	b := memcached.New(client, memcached.WithPrefix(uniquePrefix(t)))
	_, _ = b.Get(ctx, "k")
	for range 2 {
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	_, _ = b.Get(ctx, "k")
	if n := rec.Dials(); n != 1 {
		t.Errorf("the client dialed %d times around the Close of a backend from New; want 1: its idle connection is the caller's", n)
	}
}

func TestNewPanics(t *testing.T) {
	client := newClient(t)
	for name, f := range map[string]func(){
		"nil client":           func() { memcached.New(nil) },
		"negative TTL":         func() { memcached.New(client, memcached.WithDefaultTTL(-time.Second)) },
		"prefix with a space":  func() { memcached.New(client, memcached.WithPrefix("my app:")) },
		"prefix with a NUL":    func() { memcached.New(client, memcached.WithPrefix("app\x00")) },
		"prefix of 206 bytes":  func() { memcached.New(client, memcached.WithPrefix(strings.Repeat("p", 206))) },
		"item size too small":  func() { memcached.New(client, memcached.WithMaxItemSize(309)) },
		"item size of nothing": func() { memcached.New(client, memcached.WithMaxItemSize(0)) },
		"no connections":       func() { memcached.New(client, memcached.WithMaxConns(0)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New with %s did not panic", name)
				}
			}()
			f()
		}()
	}
	// The limits themselves are fine.
	memcached.New(client, memcached.WithPrefix(strings.Repeat("p", 205)), memcached.WithMaxItemSize(310))
}

// ask sends one command to addr on a connection of its own and returns the reply's lines up to
// and including the first that is one of ends.
func ask(tb testing.TB, addr, cmd string, ends ...string) []string {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		tb.Fatal(err)
	}
	r := bufio.NewReader(c)
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			tb.Fatalf("%s on %s: %v", cmd, addr, err)
		}
		line = strings.TrimSuffix(line, "\r\n")
		lines = append(lines, line)
		for _, end := range ends {
			if line == end || strings.HasPrefix(line, end+" ") {
				return lines
			}
		}
	}
}

// stats returns a server's general statistics.
func stats(tb testing.TB, addr string) map[string]string {
	tb.Helper()
	m := make(map[string]string)
	for _, line := range ask(tb, addr, "stats", "END") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "STAT" {
			m[f[1]] = f[2]
		}
	}
	return m
}

// metaTTL returns the remaining TTL, in seconds, of the item under the memcached key mk (-1: no
// expiry), with the meta command mg; ok is false on a miss.
func metaTTL(tb testing.TB, addr, mk string) (ttl int, ok bool) {
	tb.Helper()
	lines := ask(tb, addr, "mg "+mk+" t", "HD", "EN")
	f := strings.Fields(lines[len(lines)-1])
	if f[0] == "EN" {
		return 0, false
	}
	for _, flag := range f[1:] {
		if strings.HasPrefix(flag, "t") {
			n, err := strconv.Atoi(flag[1:])
			if err != nil {
				tb.Fatalf("mg %s t: %q", mk, lines)
			}
			return n, true
		}
	}
	tb.Fatalf("mg %s t: %q", mk, lines)
	return 0, false
}
