package main

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/internal/testserver"
	"github.com/dogpile-go/dogpile/region"
	goredis "github.com/redis/go-redis/v9"
)

// mixedServer is a Redis database shared with other programs: what it holds besides the
// library's entries, and the entries.
type mixedServer struct {
	url     string          // the database, without a prefix
	client  *goredis.Client // on the same database
	theirs  []string        // keys no pattern delete may touch (the held lock included)
	ours    []string        // the entries, under "app:" and "other:"
	allKeys int
}

// newMixedServer starts a Redis of its own (a pattern without prefix reaches every key of a
// database) and fills it: a list, a hash, a plain string, two strings that start like an entry
// and are not one, entries of two regions (prefixes "app:" and "other:"), one of them under a
// key that is not UTF-8, and a held lock of the "app:" region.
func newMixedServer(t *testing.T) *mixedServer {
	t.Helper()
	ctx := t.Context()
	srv := testserver.StartRedis(t)
	m := &mixedServer{url: "redis://" + srv.Addr + "/0"}
	m.client = goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = m.client.Close() })

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(m.client.RPush(ctx, "queue:jobs", "a", "b").Err())
	must(m.client.HSet(ctx, "session:42", "user", "ada").Err())
	must(m.client.Set(ctx, "config:colour", "blue", 0).Err())
	// Magic "dp", then a format version that does not exist; and version 2 cut short of its
	// 20-byte header.
	must(m.client.Set(ctx, "dpkg:status", "dp\x07 installed, not a dogpile entry", 0).Err())
	must(m.client.Set(ctx, "app:dp-short", "dp\x02\x00123456789", 0).Err())
	// Under the region's lock mark, but not a token.
	must(m.client.Set(ctx, "app:\x00lock\x00forged", "not a token", 0).Err())
	m.theirs = []string{"queue:jobs", "session:42", "config:colour", "dpkg:status", "app:dp-short", "app:\x00lock\x00forged"}

	for _, prefix := range []string{"app:", "other:"} {
		rg := newRegion(t, m.url+"?prefix="+prefix)
		v := region.NewView[user](rg)
		for i := range 3 {
			key := "users|i:" + strconv.Itoa(i)
			must(v.Set(ctx, key, user{ID: i}))
			m.ours = append(m.ours, prefix+key)
		}
		if prefix == "app:" {
			must(v.Set(ctx, "bin|\xff\xfe", user{ID: 99}))
			m.ours = append(m.ours, "app:bin|\xff\xfe")
			locker, _ := backends.As[backends.Locker](rg.Backend())
			l, ok, err := locker.TryLock(ctx, "users|i:1", time.Minute)
			if err != nil || !ok {
				t.Fatalf("TryLock: %v %v", ok, err)
			}
			t.Cleanup(func() { _ = l.Unlock(context.Background()) })
			m.theirs = append(m.theirs, "app:\x00lock\x00users|i:1")
		}
	}
	m.allKeys = len(m.theirs) + len(m.ours)
	if n := m.client.DBSize(ctx).Val(); n != int64(m.allKeys) {
		t.Fatalf("the server holds %d keys, want %d: %q", n, m.allKeys, m.client.Keys(ctx, "*").Val())
	}
	return m
}

// left returns which of keys the server still holds.
func (m *mixedServer) left(t *testing.T, keys []string) []string {
	t.Helper()
	var out []string
	for _, k := range keys {
		if m.client.Exists(t.Context(), k).Val() == 1 {
			out = append(out, k)
		}
	}
	return out
}

// listed returns the keys of the "deleted"/"would delete" lines of a run, unquoted.
func listed(t *testing.T, stdout, verb string) []string {
	t.Helper()
	var keys []string
	for _, line := range strings.Split(stdout, "\n") {
		q, ok := strings.CutPrefix(line, verb+" \"")
		if !ok || strings.Contains(line, " key(s) matching ") {
			continue
		}
		k, err := strconv.Unquote(`"` + q)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestInvalidateMatchRefusesUnprefixedPattern: on a URL without prefix, a pattern that starts with
// a wildcard reaches every key of the database; without -all-prefixes it is refused before
// anything is read or deleted.
func TestInvalidateMatchRefusesUnprefixedPattern(t *testing.T) {
	m := newMixedServer(t)
	for _, pattern := range []string{"*", "?ueue:*", "[a-z]*"} {
		for _, extra := range [][]string{nil, {"-dry-run"}} {
			args := append([]string{"invalidate", "-match", pattern}, extra...)
			r := dogpile(t, append(args, m.url)...)
			r.want(t, exitUsage)
			r.contains(t, "refusing -match", "no prefix=", "-all-prefixes")
		}
	}
	if n := m.client.DBSize(t.Context()).Val(); n != int64(m.allKeys) {
		t.Errorf("refused runs left %d keys of %d", n, m.allKeys)
	}
	// A literal start is a prefix, as is one in the URL: accepted without the flag.
	dogpile(t, "invalidate", "-match", "config:*", "-dry-run", m.url).want(t, exitOK)
	dogpile(t, "invalidate", "-match", "\\*x", "-dry-run", m.url).want(t, exitOK)
	dogpile(t, "invalidate", "-match", "*", "-dry-run", m.url+"?prefix=app:").want(t, exitOK)
}

// TestInvalidateMatchDeletesOnlyEntries: with -all-prefixes, "-match '*'" on a database shared
// with other programs deletes the library's entries, under every prefix, and nothing else: not a
// list, a hash, another program's string, a string that starts like an entry, a lock. -dry-run
// lists exactly those entries and deletes nothing; every run counts what it skipped.
func TestInvalidateMatchDeletesOnlyEntries(t *testing.T) {
	m := newMixedServer(t)
	want := slices.Sorted(slices.Values(m.ours))
	summary := "7 key(s) matching \"*\" under " + m.url + "; skipped 6 not dogpile entries, 1 lock(s)\n"

	r := dogpile(t, "invalidate", "-match", "*", "-all-prefixes", "-dry-run", m.url)
	r.want(t, exitOK)
	if got := listed(t, r.stdout, "would delete"); !slices.Equal(got, want) {
		t.Errorf("-dry-run lists %q, want %q\n%s", got, want, r.stdout)
	}
	r.contains(t, "would delete "+summary, `would delete "app:bin|\xff\xfe"`)
	if n := m.client.DBSize(t.Context()).Val(); n != int64(m.allKeys) {
		t.Errorf("-dry-run left %d keys of %d", n, m.allKeys)
	}

	r = dogpile(t, "invalidate", "-match", "*", "-all-prefixes", "-json", "-dry-run", m.url)
	r.want(t, exitOK)
	var res invalidated
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	if res.Count != 7 || res.Skipped == nil || *res.Skipped != (skipped{NotOurs: 6, Locks: 1}) {
		t.Errorf("-json: count %d, skipped %+v; want 7, 6 not ours and 1 lock", res.Count, res.Skipped)
	}
	for _, d := range res.Deleted {
		if strings.HasPrefix(d.Key, "app:bin|") && string(d.KeyBase64) != "app:bin|\xff\xfe" {
			t.Errorf("-json: the key that is not UTF-8 has key_base64 %q", d.KeyBase64)
		}
	}

	r = dogpile(t, "invalidate", "-match", "*", "-all-prefixes", m.url)
	r.want(t, exitOK)
	if got := listed(t, r.stdout, "deleted"); !slices.Equal(got, want) {
		t.Errorf("deleted %q, want %q\n%s", got, want, r.stdout)
	}
	r.contains(t, "deleted "+summary)
	if left := m.left(t, m.ours); len(left) != 0 {
		t.Errorf("entries left: %q", left)
	}
	if left := m.left(t, m.theirs); len(left) != len(m.theirs) {
		t.Errorf("deleted keys that are not entries: %d of %q left", len(left), m.theirs)
	}
}

// TestInvalidateMatchUnderPrefix: a URL's prefix bounds the pattern; the entries of another
// prefix and the keys that are not entries under it stay.
func TestInvalidateMatchUnderPrefix(t *testing.T) {
	m := newMixedServer(t)
	r := dogpile(t, "invalidate", "-match", "*", m.url+"?prefix=app:")
	r.want(t, exitOK)
	r.contains(t, "deleted 4 key(s) matching \"*\" under "+m.url+"?prefix=app:; skipped 2 not dogpile entries, 1 lock(s)\n")
	if left := m.left(t, m.ours); !slices.Equal(left, []string{"other:users|i:0", "other:users|i:1", "other:users|i:2"}) {
		t.Errorf("entries left: %q, want those of other:", left)
	}
	if left := m.left(t, m.theirs); len(left) != len(m.theirs) {
		t.Errorf("deleted keys that are not entries: %d of %q left", len(left), m.theirs)
	}
}

// TestUnlinkScriptChecksAgain: the delete checks each key again, atomically, so that a key
// changed since the check (another type, another value, even another entry) is left.
func TestUnlinkScriptChecksAgain(t *testing.T) {
	ctx := t.Context()
	_, prefix := redisURL(t)
	c := rawClient(t)
	header := func(created int64) string {
		return string(backends.EncodeEntry(backends.Entry{Created: created})[:backends.EntryHeaderSize])
	}
	keys := []string{prefix + "same", prefix + "now-a-list", prefix + "now-theirs", prefix + "newer", prefix + "gone"}
	for _, k := range keys[:4] {
		if err := c.Set(ctx, k, header(1)+"payload", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// What the check read was header(1) for each; then, before the delete:
	c.Del(ctx, keys[1])
	c.RPush(ctx, keys[1], "x")
	c.Set(ctx, keys[2], "their value", 0)
	c.Set(ctx, keys[3], header(2)+"payload", 0)
	args := []any{header(1), header(1), header(1), header(1), header(1)}
	got, err := unlinkScript.Run(ctx, c, keys, args...).Int64Slice()
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{1, 0, 0, 0, 0}; !slices.Equal(got, want) {
		t.Errorf("script answered %v, want %v", got, want)
	}
	if n := c.Exists(ctx, keys[1:4]...).Val(); n != 3 {
		t.Errorf("%d of the 3 changed keys left", n)
	}
}

// TestClassify: a key is an entry when it is a string whose header package backends reads, and
// a lock when its name has the lock mark and its value is a token; anything else is not ours.
func TestClassify(t *testing.T) {
	v2 := string(backends.EncodeEntry(backends.Entry{Created: 1, Payload: []byte("{}")}))
	v1 := "dp\x01\x00" + strings.Repeat("\x00", 8) // version 1: a 12-byte header
	token := "0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		key, typ, head string
		want           keyKind
	}{
		{"k", "string", v2, entryKey},
		{"k", "string", v2[:backends.EntryHeaderSize], entryKey},
		{"k", "string", v1, entryKey},
		{"k", "string", v2[:backends.EntryHeaderSize-1], notOurs}, // version 2, header cut short
		{"k", "string", "dp\x03" + v2[3:], notOurs},               // a version that does not exist
		{"k", "string", "DP" + v2[2:], notOurs},
		{"k", "string", "", notOurs},
		{"k", "string", "hello", notOurs},
		{"k", "list", "", notOurs},
		{"k", "hash", v2, notOurs},
		{"k", "none", "", notOurs},
		{"p:\x00lock\x00k", "string", token, lockKey},
		{"p:\x00lock\x00{p:k}k", "string", token, lockKey},
		{"p:\x00lock\x00k", "string", strings.ToUpper(token), notOurs},
		{"p:\x00lock\x00k", "string", token[:31], notOurs},
		{"p:\x00lock\x00k", "string", v2, notOurs}, // an entry under a lock's name is not ours either
		{"p:\x00lock\x00k", "list", token, notOurs},
	} {
		if got := classify(tc.key, tc.typ, []byte(tc.head)); got != tc.want {
			t.Errorf("classify(%q, %q, %q) = %d, want %d", tc.key, tc.typ, tc.head, got, tc.want)
		}
	}
}

func TestLiteralPrefix(t *testing.T) {
	for _, tc := range []struct{ glob, want string }{
		{"*", ""},
		{"?x", ""},
		{"[ab]*", ""},
		{"", ""},
		{"app:*", "app:"},
		{"users|i:?", "users|i:"},
		{`\*x*`, "*x"},
		{`a\[b[c]`, "a[b"},
		{`x\`, `x\`},
	} {
		if got := literalPrefix(tc.glob); got != tc.want {
			t.Errorf("literalPrefix(%q) = %q, want %q", tc.glob, got, tc.want)
		}
	}
}

// Two regions share a Redis database with nested prefixes ("P" and "P" + "users:"), a common layout
// (one prefix per app, one per region under it). A lock held by the inner region, the key
// "Pusers:\x00lock\x00k", starts with the outer URL's prefix but not with prefix+"\x00lock\x00":
// invalidate -match on the outer prefix leaves it alone (a second creator stays out), and stats
// does not count it as a value.
func TestInvalidateMatchSparesNestedRegionsLock(t *testing.T) {
	outer, prefix := redisURL(t)
	inner := strings.Replace(outer, "prefix="+prefix, "prefix="+prefix+"users:", 1)
	b, err := backends.Open(inner)
	if err != nil {
		t.Fatal(err)
	}
	defer b.(interface{ Close() error }).Close()
	locker, _ := backends.As[backends.Locker](b)
	l, ok, err := locker.TryLock(t.Context(), "k", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock: %v %v", ok, err)
	}
	defer l.Unlock(context.Background())
	lockKey := prefix + "users:\x00lock\x00k"
	rc := rawClient(t)
	if rc.Exists(t.Context(), lockKey).Val() != 1 {
		t.Fatalf("lock key %q not found; keys: %q", lockKey, rc.Keys(t.Context(), globEscape(prefix)+"*").Val())
	}

	r := dogpile(t, "stats", "-json", outer)
	r.want(t, exitOK)
	var st statsResult
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st.Redis.Locks != 1 || st.Redis.Keys != 0 {
		t.Errorf("stats under %q: %d values, %d locks; want 0 values and the 1 held lock", prefix, st.Redis.Keys, st.Redis.Locks)
	}

	r = dogpile(t, "invalidate", "-match", "users:*", outer)
	r.want(t, exitOK)
	if rc.Exists(t.Context(), lockKey).Val() != 1 {
		t.Errorf("invalidate -match deleted a held dogpile lock of the region under %q:\n%s", prefix+"users:", r.stdout)
	}
}

// A prefix with a byte that is not UTF-8 (prefix=%FF) is escaped byte by byte into the SCAN
// pattern, so stats counts its keys and invalidate -match deletes them.
func TestGlobEscapeNonUTF8Prefix(t *testing.T) {
	_, p := redisURL(t)
	prefix := p + "\xff:"
	u := "redis://" + server.Addr + "/0?prefix=" + url.QueryEscape(prefix)
	rc := rawClient(t)
	entry := backends.EncodeEntry(backends.Entry{Created: created.UnixNano(), Payload: []byte(`"x"`)})
	if err := rc.Set(t.Context(), prefix+"users|i:1", entry, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	r := dogpile(t, "invalidate", "-match", "users|*", u)
	r.want(t, exitOK)
	if rc.Exists(t.Context(), prefix+"users|i:1").Val() != 0 {
		t.Errorf("invalidate -match left the matching key under a non-UTF-8 prefix:\n%s", r.stdout)
	}
}
