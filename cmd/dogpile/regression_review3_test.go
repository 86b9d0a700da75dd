package main

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/redis"
	"github.com/dogpile-go/dogpile/internal/testserver"
	goredis "github.com/redis/go-redis/v9"
)

// Two regions share a Redis database with nested prefixes ("P" and "P" + "users:"), a common
// layout (one prefix per app, one per region under it). A lock held by the inner region is a
// key "Pusers:\x00lock\x00k": it starts with the outer URL's prefix but not with
// prefix+"\x00lock\x00", so invalidate -match on the outer prefix deletes it (letting a second
// creator in), and stats counts it as a value.
func TestReview3InvalidateMatchDeletesNestedRegionsLock(t *testing.T) {
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

// "A tool that only looks must not remove entries", and open refuses a missing directory so that
// a typo leaves no empty cache behind; but any existing directory (a typo one level up:
// file:///var/cache for file:///var/cache/app, or $HOME) gets data/, locks/ and evict.lock
// created in it by stats, get or delete, and stats reports "entries: 0" as if it were a cache.
func TestReview3StatsWritesIntoAnyDirectory(t *testing.T) {
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

// globEscape ranges over runes: a prefix with a byte that is not UTF-8 (prefix=%FF) becomes
// U+FFFD (3 bytes) in the SCAN pattern, which then matches nothing: stats reports 0 keys and
// invalidate -match deletes nothing, exit 0.
func TestReview3GlobEscapeNonUTF8Prefix(t *testing.T) {
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

// On a Redis Cluster the CLI's redis:// URL reaches one node: SCAN lists that node's keys only,
// yet stats says it counted "all of them" (Complete), and invalidate -match sends one UNLINK for
// keys of many slots, which the node refuses (CROSSSLOT) after deleting nothing, or deletes a
// third of the prefix and exits 0. The cluster lock key (prefix+"\x00lock\x00{prefix+key}"+key)
// is not the problem: it keeps the lock mark after the prefix.
func TestReview3ClusterNode(t *testing.T) {
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
	u := "redis://" + masters[0].Addr + "/0?prefix=app:"
	// The fix: a node of a Cluster is refused, with a message that says why, for stats and
	// invalidate -match alike; nothing is deleted.
	r := dogpile(t, "stats", "-json", u)
	if r.code != exitFailure || !strings.Contains(r.stderr, "Redis Cluster") {
		t.Errorf("stats on a cluster node: exit %d, stderr %q; want a failure naming the Cluster", r.code, r.stderr)
	}
	r = dogpile(t, "invalidate", "-match", "k*", u)
	left := 0
	for i := range 60 {
		if _, err := b.Get(ctx, "k"+strconv.Itoa(i)); err == nil {
			left++
		}
	}
	if r.code != exitFailure || left != 60 || !strings.Contains(r.stderr, "Redis Cluster") {
		t.Errorf("invalidate -match on a cluster node: exit %d, %d of 60 keys left\nstdout: %s\nstderr: %s", r.code, left, r.stdout, r.stderr)
	}
}
