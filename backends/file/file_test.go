package file_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/backendtest"
	"github.com/dogpile-go/dogpile/backends/file"
	"go.uber.org/goleak"
)

// childEnv switches the test binary into a child process of a cross-process test (see runChild).
const childEnv = "DOGPILE_FILE_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	goleak.VerifyTestMain(m)
}

// runChild is the body of a child process: "write DIR KEY VALUE" sets KEY and exits; "lock DIR
// KEY" takes the lock KEY, prints "locked" and waits to be killed.
func runChild(mode string) int {
	args := strings.Split(mode, "\x1f")
	b, err := file.New(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx := context.Background()
	switch args[0] {
	case "write":
		if err := b.Set(ctx, args[2], []byte(args[3]), 0); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case "lock":
		_, ok, err := b.TryLock(ctx, args[2], time.Hour)
		if err != nil || !ok {
			fmt.Fprintln(os.Stderr, "trylock:", ok, err)
			return 1
		}
		fmt.Println("locked")
		select {} // until killed
	}
	return 2
}

// child returns a command running the test binary as a child in mode (fields joined by US,
// 0x1f: an environment variable cannot hold NUL).
func child(t *testing.T, fields ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join(fields, "\x1f"))
	return cmd
}

func newBackend(t testing.TB, dir string, opts ...file.Option) *file.Backend {
	t.Helper()
	b, err := file.New(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// entryPath is where the package documentation says key's entry lives.
func entryPath(dir, key string) string {
	sum := sha256.Sum256([]byte(key))
	h := hex.EncodeToString(sum[:])
	return filepath.Join(dir, "data", h[:2], h[2:])
}

// encodeFile builds an entry file as the package documentation describes it.
func encodeFile(expires int64, key string, value []byte) []byte {
	var rest []byte
	rest = binary.BigEndian.AppendUint64(rest, uint64(expires))
	rest = binary.BigEndian.AppendUint32(rest, uint32(len(key)))
	rest = append(rest, key...)
	rest = append(rest, value...)
	return sealFile(rest)
}

// sealFile puts the magic and the CRC-32C of rest in front of rest.
func sealFile(rest []byte) []byte {
	buf := []byte("dpf1")
	buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(rest, crc32.MakeTable(crc32.Castagnoli)))
	return append(buf, rest...)
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []file.Option
	}{
		{"default", nil},
		{"nofsync_bounded", []file.Option{file.WithFsync(false), file.WithMaxSize(1 << 30), file.WithMaxEntries(1 << 20)}},
		{"default_ttl", []file.Option{file.WithDefaultTTL(time.Hour)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backendtest.Run(t, func(t *testing.T) backends.Backend {
				b, err := file.New(t.TempDir(), tc.opts...)
				if err != nil {
					t.Fatal(err)
				}
				return b
			})
		})
	}
}

// TestLayout pins the file format: an entry written by the backend is the bytes the package
// documentation describes, at the path it names, and such bytes written by hand read back.
func TestLayout(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	b := newBackend(t, dir)
	if err := b.Set(ctx, "k", []byte("value"), 0); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(entryPath(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	if want := encodeFile(0, "k", []byte("value")); string(got) != string(want) {
		t.Fatalf("entry file = %q, want %q", got, want)
	}
	p := entryPath(dir, "by hand")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).UnixNano()
	if err := os.WriteFile(p, encodeFile(exp, "by hand", []byte("v2")), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := b.Get(ctx, "by hand"); err != nil || string(v) != "v2" {
		t.Fatalf("Get of a hand-written entry = %q, %v", v, err)
	}
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, "k", []byte("kept"), 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := b.Get(ctx, "k"); err == nil || errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Get after Close = %v; want an error that is not a miss", err)
	}
	b2 := newBackend(t, dir)
	if v, err := b2.Get(ctx, "k"); err != nil || string(v) != "kept" {
		t.Fatalf("Get after reopening = %q, %v; want %q", v, err, "kept")
	}
}

// TestReopenProcess writes a value from another process, which exits; this one reads it.
func TestReopenProcess(t *testing.T) {
	dir := t.TempDir()
	if out, err := child(t, "write", dir, "from child", "child value").CombinedOutput(); err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	b := newBackend(t, dir)
	if v, err := b.Get(t.Context(), "from child"); err != nil || string(v) != "child value" {
		t.Fatalf("Get = %q, %v; want the child's value", v, err)
	}
}

// TestLockHolderKilled: a process that holds a lock (with a timeout of an hour) is killed; the
// kernel drops its flock, and another takes the lock at once.
func TestLockHolderKilled(t *testing.T) {
	dir := t.TempDir()
	b := newBackend(t, dir)
	cmd := child(t, "lock", dir, "k")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("child said %q, %v; want locked", line, err)
	}
	if _, ok, err := b.TryLock(t.Context(), "k", time.Minute); err != nil || ok {
		t.Fatalf("TryLock while the child holds the lock = %v, %v; want not taken", ok, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // the process is gone, and with it its descriptors
	start := time.Now()
	lock, ok, err := b.TryLock(t.Context(), "k", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock after the holder was killed = %v, %v; want taken at once", ok, err)
	}
	t.Logf("taken %v after the holder's death", time.Since(start))
	_ = lock.Unlock(t.Context())
}

// TestLockTimerAndStaleUnlock: a lock freed by its timer and taken by another holder stays with
// that holder however often the first one unlocks, even once the first one's descriptor number
// has been given to other files.
func TestLockTimerAndStaleUnlock(t *testing.T) {
	ctx := t.Context()
	b := newBackend(t, t.TempDir())
	stale, ok, err := b.TryLock(ctx, "k", 10*time.Millisecond)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	var cur backends.Lock
	deadline := time.Now().Add(5 * time.Second)
	for cur == nil {
		if time.Now().After(deadline) {
			t.Fatal("the lock did not free itself after its timeout")
		}
		time.Sleep(5 * time.Millisecond)
		if l, ok, err := b.TryLock(ctx, "k", time.Minute); err != nil {
			t.Fatal(err)
		} else if ok {
			cur = l
		}
	}
	for range 3 {
		if err := stale.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := b.TryLock(ctx, "k", time.Minute); ok {
			t.Fatal("a stale holder's Unlock released the current holder's lock")
		}
	}
	if err := cur.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if l, ok, err := b.TryLock(ctx, "k", time.Minute); err != nil || !ok {
		t.Fatalf("TryLock after Unlock = %v, %v", ok, err)
	} else {
		_ = l.Unlock(ctx)
	}
	if _, _, err := b.TryLock(ctx, "k", 0); err == nil {
		t.Fatal("TryLock with timeout 0: no error")
	}
}

// TestBadFiles: entry files cut short, filled with garbage, or holding another key read as misses
// and are removed.
func TestBadFiles(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	b := newBackend(t, dir)
	full := encodeFile(0, "k", []byte("a value long enough to cut"))
	cases := []struct {
		name    string
		content []byte
	}{
		{"empty", nil},
		{"short header", full[:10]},
		{"cut in the key", full[:16]},
		{"garbage", []byte(strings.Repeat("\xff garbage \x00", 100))},
		{"wrong magic", append([]byte("dpf2"), full[4:]...)},
		{"cut in the value", full[:len(full)-3]},
		{"a byte flipped", func() []byte { c := slices.Clone(full); c[len(c)-5] ^= 1; return c }()},
		{"bad checksum", func() []byte { c := slices.Clone(full); c[5] ^= 0xff; return c }()},
		{"key length past the end", encodeFile(0, strings.Repeat("k", 40), nil)[:30]},
		{"huge key length", sealFile(append(make([]byte, 8), 0xff, 0xff, 0xff, 0xff, 'k'))},
		{"key length past the end, sealed", sealFile(append(make([]byte, 8), 0, 0, 0, 9, 'k'))},
		{"another key", encodeFile(0, "not k", []byte("foreign"))},
		{"another key of the same length", encodeFile(0, "K", []byte("foreign"))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := b.Set(ctx, "k", []byte("good"), 0); err != nil {
				t.Fatal(err)
			}
			p := entryPath(dir, "k")
			if err := os.WriteFile(p, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			if v, err := b.Get(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
				t.Fatalf("Get = %q, %v; want a miss", v, err)
			}
			if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the bad file is still there: %v", err)
			}
			if m, err := b.GetMulti(ctx, []string{"k"}); err != nil || len(m) != 0 {
				t.Fatalf("GetMulti = %v, %v; want empty", m, err)
			}
		})
	}
	// A truncation of a real entry, as a crash of the disk might leave it.
	if err := b.Set(ctx, "k", []byte("good value"), 0); err != nil {
		t.Fatal(err)
	}
	p := entryPath(dir, "k")
	if err := os.Truncate(p, 20); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Get of a truncated entry = %v; want a miss", err)
	}
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the truncated file is still there: %v", err)
	}
}

// TestKeysStayInside: keys that would be dangerous as paths round-trip, and every file the
// backend makes is inside its directory.
func TestKeysStayInside(t *testing.T) {
	ctx := t.Context()
	parent := t.TempDir()
	dir := filepath.Join(parent, "cache")
	b := newBackend(t, dir)
	keys := []string{
		"../../etc/passwd", "", strings.Repeat("x", 10<<10), strings.Repeat("\x00", 64), "a\x00b",
		"a/b", ".", "..", "/", "/etc/passwd", `..\..\windows`, "data", "locks/0.lock", "ключ 🔑", "\xff\xfe",
	}
	for i, k := range keys {
		if err := b.Set(ctx, k, []byte(fmt.Sprint("value ", i)), 0); err != nil {
			t.Fatalf("Set(%q): %v", k, err)
		}
		lock, ok, err := b.TryLock(ctx, k, time.Minute)
		if err != nil || !ok {
			t.Fatalf("TryLock(%q) = %v, %v", k, ok, err)
		}
		_ = lock.Unlock(ctx)
	}
	for i, k := range keys {
		if v, err := b.Get(ctx, k); err != nil || string(v) != fmt.Sprint("value ", i) {
			t.Fatalf("Get(%q) = %q, %v", k, v, err)
		}
	}
	entries := 0
	err := filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if p == parent {
			return nil
		}
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			t.Errorf("%s is outside the backend's directory", p)
		}
		if strings.HasPrefix(rel, "data"+string(filepath.Separator)) && d.Type().IsRegular() {
			entries++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if entries != len(keys) {
		t.Errorf("%d entry files, want %d (one per key)", entries, len(keys))
	}
	for _, k := range keys {
		if err := b.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Get(ctx, k); !errors.Is(err, backends.ErrNotFound) {
			t.Fatalf("Get(%q) after Delete = %v", k, err)
		}
	}
}

// dirTotals sums the sizes and counts the entry files under dir/data.
func dirTotals(t *testing.T, dir string) (size, n int64) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(dir, "data"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		size += info.Size()
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return size, n
}

// TestSizeBound: 10,000 writes of 100 B to 20 KB, about 100 MB in all, into a directory bounded
// to 5 MiB.
func TestSizeBound(t *testing.T) {
	const maxSize = 5 << 20
	ctx := t.Context()
	dir := t.TempDir()
	b := newBackend(t, dir, file.WithMaxSize(maxSize), file.WithFsync(false))
	r := rand.New(rand.NewPCG(1, 2))
	value := make([]byte, 20_000)
	for i := range 10_000 {
		n := 100 + r.IntN(len(value)-100+1)
		// Some keys are written again: overwrites must not inflate the count.
		k := fmt.Sprint("key-", r.IntN(8_000))
		if err := b.Set(ctx, k, value[:n], 0); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 0 {
			if size, _ := dirTotals(t, dir); size > maxSize+20_100 {
				t.Fatalf("after %d writes: %d bytes on disk, bound %d", i, size, maxSize)
			}
		}
	}
	size, n := dirTotals(t, dir)
	if size > maxSize {
		t.Fatalf("%d bytes on disk, bound %d", size, maxSize)
	}
	if size < maxSize/2 {
		t.Fatalf("%d bytes on disk: eviction removed far more than needed for a bound of %d", size, maxSize)
	}
	t.Logf("%d entries, %d bytes", n, size)
	// The newest entry survives; the oldest do not.
	if _, err := b.Get(ctx, fmt.Sprint("key-", r.IntN(8_000))); err != nil && !errors.Is(err, backends.ErrNotFound) {
		t.Fatal(err)
	}
}

func TestEntriesBound(t *testing.T) {
	const maxEntries = 500
	ctx := t.Context()
	dir := t.TempDir()
	b := newBackend(t, dir, file.WithMaxEntries(maxEntries), file.WithFsync(false))
	for i := range 5_000 {
		if err := b.Set(ctx, fmt.Sprint("key-", i), []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, n := dirTotals(t, dir); n > maxEntries || n < maxEntries/2 {
		t.Fatalf("%d entries on disk, bound %d", n, maxEntries)
	}
	// The last written is kept: eviction goes oldest first.
	if v, err := b.Get(ctx, "key-4999"); err != nil || string(v) != "v" {
		t.Fatalf("newest entry: %q, %v", v, err)
	}
	// A new backend on a full directory counts what is there.
	for i := range 2 * maxEntries {
		if err := os.WriteFile(entryPath(dir, fmt.Sprint("extra-", i)), encodeFile(0, fmt.Sprint("extra-", i), nil), 0o600); err != nil {
			if err := os.MkdirAll(filepath.Dir(entryPath(dir, fmt.Sprint("extra-", i))), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(entryPath(dir, fmt.Sprint("extra-", i)), encodeFile(0, fmt.Sprint("extra-", i), nil), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	newBackend(t, dir, file.WithMaxEntries(maxEntries))
	if _, n := dirTotals(t, dir); n > maxEntries {
		t.Fatalf("after New on a directory over its bound: %d entries, bound %d", n, maxEntries)
	}
}

// TestExpiry: an expired entry is a miss on read and its file is removed; an eviction pass removes
// expired entries nobody reads. Runs on synctest's clock.
func TestExpiry(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b, err := file.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := b.Set(ctx, "read", []byte("v"), time.Second); err != nil {
			t.Fatal(err)
		}
		if err := b.Set(ctx, "unread", []byte("v"), time.Second); err != nil {
			t.Fatal(err)
		}
		if err := b.Set(ctx, "forever", []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
		if v, err := b.Get(ctx, "read"); err != nil || string(v) != "v" {
			t.Fatalf("Get before expiry = %q, %v", v, err)
		}
		time.Sleep(time.Second)
		if _, err := b.Get(ctx, "read"); !errors.Is(err, backends.ErrNotFound) {
			t.Fatalf("Get after expiry = %v; want a miss", err)
		}
		if _, err := os.Lstat(entryPath(dir, "read")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("expired entry file still there after a read: %v", err)
		}
		if err := b.Evict(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(entryPath(dir, "unread")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("expired entry file still there after Evict: %v", err)
		}
		if _, err := b.Get(ctx, "forever"); err != nil {
			t.Fatalf("entry without TTL: %v", err)
		}
	})
}

// TestReadOnly: a directory the process cannot write makes Set fail with an error that is not a
// miss (the region's failure policy takes it from there), and Get still answers.
func TestReadOnly(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	b := newBackend(t, dir)
	if err := b.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// chmod does not stop root: put a regular file where the key's subdirectory goes.
		sub := filepath.Dir(entryPath(dir, "blocked"))
		if err := os.RemoveAll(sub); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(sub, []byte("not a directory"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := b.Set(ctx, "blocked", []byte("v"), 0)
		if err == nil || errors.Is(err, backends.ErrNotFound) {
			t.Fatalf("Set under a file = %v; want an error that is not a miss", err)
		}
		t.Logf("as root: %v", err)
		return
	}
	sub := filepath.Dir(entryPath(dir, "k"))
	if err := os.Chmod(sub, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(sub, 0o700) })
	err := b.Set(ctx, "k", []byte("new"), 0)
	if err == nil || errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Set in a read-only directory = %v; want an error that is not a miss", err)
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Set error %v does not wrap fs.ErrPermission", err)
	}
	if v, err := b.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get in a read-only directory = %q, %v", v, err)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		dir  string
		opts []file.Option
	}{
		{"empty dir", "", nil},
		{"negative size", dir, []file.Option{file.WithMaxSize(-1)}},
		{"negative entries", dir, []file.Option{file.WithMaxEntries(-1)}},
		{"negative ttl", dir, []file.Option{file.WithDefaultTTL(-time.Second)}},
	} {
		if b, err := file.New(tc.dir, tc.opts...); err == nil {
			_ = b.Close()
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
	f := filepath.Join(dir, "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := file.New(filepath.Join(f, "cache")); err == nil {
		_ = b.Close()
		t.Error("New under a regular file succeeded")
	}
}

// Several backends (standing in for several processes) on one directory keep it near WithMaxEntries
// although each one's totals see only its own writes: a pass also runs after a tenth of a bound of
// a process's own writes, so N writers overshoot by N tenths at most.
func TestBoundAcrossBackends(t *testing.T) {
	const bound = 100
	dir := t.TempDir()
	var bs []*file.Backend
	for range 4 {
		bs = append(bs, newBackend(t, dir, file.WithMaxEntries(bound), file.WithFsync(false)))
	}
	for i := range bound {
		for j, b := range bs {
			if err := b.Set(t.Context(), fmt.Sprint("p", j, "-", i), []byte("v"), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, n := dirTotals(t, dir); n > bound+4*bound/10 {
		t.Errorf("%d entries on disk with WithMaxEntries(%d) shared by 4 backends; want at most %d", n, bound, bound+4*bound/10)
	}
}

// A TTL past the year 2262, beyond what UnixNano can hold, means never, as on memcached: the entry
// is not written already expired.
func TestHugeTTLNeverExpires(t *testing.T) {
	b := newBackend(t, t.TempDir())
	for _, ttl := range []time.Duration{math.MaxInt64, 250 * 365 * 24 * time.Hour} {
		if err := b.Set(t.Context(), "k", []byte("v"), ttl); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Get(t.Context(), "k"); errors.Is(err, backends.ErrNotFound) {
			t.Errorf("Set with ttl %v, then Get: a miss", ttl)
		}
	}
}

// Eviction removes the entries written longest ago first (the bound tests only count entries, so
// they do not pin the order).
func TestEvictionRemovesOldestFirst(t *testing.T) {
	dir := t.TempDir()
	unbounded := newBackend(t, dir, file.WithFsync(false))
	base := time.Now().Add(-time.Hour)
	for i := range 20 {
		key := fmt.Sprint("key-", i)
		if err := unbounded.Set(t.Context(), key, []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
		// Written i minutes after the first, whatever the file system's timestamp resolution.
		mtime := base.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(entryPath(dir, key), mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	// A bounded backend on the directory runs a pass at New: 20 entries, bound 10, down to 9.
	bounded := newBackend(t, dir, file.WithMaxEntries(10))
	for i := range 20 {
		_, err := bounded.Get(t.Context(), fmt.Sprint("key-", i))
		if kept := err == nil; kept != (i >= 11) {
			t.Errorf("key-%d (the %dth oldest) kept = %v (%v); want the 9 newest kept, the 11 oldest evicted", i, i+1, kept, err)
		}
	}
}
