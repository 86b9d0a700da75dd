//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package file_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/file"
)

// The tests of this file put hostile things where the backend keeps its files, as another
// program (or a user with the same uid, or root) could: links out of the directory, a FIFO, a
// file too large to be an entry, a directory others may write. Each says what it guards.

// cacheDir returns a new directory for a backend (not yet made) and another, outside it, that
// links may point to.
func cacheDir(t *testing.T) (dir, outside string) {
	t.Helper()
	parent := t.TempDir()
	outside = filepath.Join(parent, "outside")
	if err := os.Mkdir(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(parent, "cache"), outside
}

// assertEmpty fails if dir holds anything.
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("%s was written through a link: %s", dir, e.Name())
	}
}

// TestFanoutSymlinkNotFollowed: a fan-out directory (data/<2 hex digits>) replaced by a link to a
// directory outside the cache: a Set of a key under it must not write outside, and a Get must not
// read an entry planted there.
func TestFanoutSymlinkNotFollowed(t *testing.T) {
	ctx := t.Context()
	dir, outside := cacheDir(t)
	b := newBackend(t, dir)
	const key = "k"
	p := entryPath(dir, key)
	sub := filepath.Dir(p)
	if err := os.RemoveAll(sub); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, sub); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, key, []byte("v"), 0); err == nil {
		t.Error("Set through a linked fan-out directory succeeded")
	}
	if _, err := b.SetIfNotNewer(ctx, key, stamped(1), 0); err == nil {
		t.Error("SetIfNotNewer through a linked fan-out directory succeeded")
	}
	assertEmpty(t, outside)
	// An entry planted outside, valid for the key, is not read through the link.
	if err := os.WriteFile(filepath.Join(outside, filepath.Base(p)), encodeFile(0, key, []byte("planted")), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := b.Get(ctx, key); err == nil {
		t.Errorf("Get through a linked fan-out directory = %q; want an error", v)
	}
	if m, err := b.GetMulti(ctx, []string{key}); len(m) != 0 {
		t.Errorf("GetMulti through a linked fan-out directory = %q, %v; want nothing", m, err)
	}
	if err := b.Evict(); err != nil {
		t.Errorf("Evict with a linked fan-out directory: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(outside, filepath.Base(p))); err != nil {
		t.Errorf("the planted file outside was touched: %v", err)
	}
}

// TestEntrySymlinkNotFollowed: an entry file replaced by a link to a file outside the cache that
// holds a valid entry for the key is not read (a miss reported as a malformed entry); the link is
// removed, not its target, and a later Set replaces the link, not the target.
func TestEntrySymlinkNotFollowed(t *testing.T) {
	ctx := t.Context()
	dir, outside := cacheDir(t)
	b := newBackend(t, dir)
	const key = "k"
	if err := b.Set(ctx, key, []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	p := entryPath(dir, key)
	target := filepath.Join(outside, "target")
	planted := encodeFile(0, key, []byte("planted"))
	if err := os.WriteFile(target, planted, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
	v, err := b.Get(ctx, key)
	if err == nil {
		t.Fatalf("Get of a linked entry = %q; want an error", v)
	}
	if !errors.Is(err, backends.ErrMalformed) {
		t.Errorf("Get of a linked entry: %v; want an error wrapping backends.ErrMalformed", err)
	}
	if fi, err := os.Lstat(p); err == nil {
		t.Errorf("the link is still there (%v)", fi.Mode())
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, key, []byte("mine"), 0); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(target); err != nil || string(got) != string(planted) {
		t.Errorf("the link's target was changed: %q, %v", got, err)
	}
	if v, err := b.Get(ctx, key); err != nil || string(v) != "mine" {
		t.Errorf("Get after a Set over the link = %q, %v", v, err)
	}
}

// TestLockFileSymlinkNotFollowed: lock files (TryLock's stripes and the write stripes) replaced by
// links to paths outside the cache are not created or opened through the link.
func TestLockFileSymlinkNotFollowed(t *testing.T) {
	ctx := t.Context()
	dir, outside := cacheDir(t)
	b := newBackend(t, dir)
	const key = "k"
	sum := sha256.Sum256([]byte(key))
	tryStripe := binary.BigEndian.Uint32(sum[:4]) % 65536
	writeStripe := binary.BigEndian.Uint32(sum[4:8]) % 4096
	for _, name := range []string{fmt.Sprint(tryStripe, ".lock"), fmt.Sprint("w", writeStripe, ".lock")} {
		if err := os.Symlink(filepath.Join(outside, name), filepath.Join(dir, "locks", name)); err != nil {
			t.Fatal(err)
		}
	}
	if l, ok, err := b.TryLock(ctx, key, time.Minute); err == nil {
		if ok {
			_ = l.Unlock(ctx)
		}
		t.Error("TryLock on a linked stripe file succeeded")
	}
	if err := b.Set(ctx, key, []byte("v"), 0); err == nil {
		t.Error("Set with a linked write stripe file succeeded")
	}
	assertEmpty(t, outside)
}

// TestFIFOEntryDoesNotBlock: a FIFO where an entry file goes, with no writer, does not block Get
// in open(2), whatever its context says: it is opened without blocking, seen not to be a regular
// file, and is a miss reported as a malformed entry, at once.
func TestFIFOEntryDoesNotBlock(t *testing.T) {
	dir, _ := cacheDir(t)
	b := newBackend(t, dir)
	const key = "k"
	if err := b.Set(t.Context(), key, []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	p := entryPath(dir, key)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	type result struct {
		err     error
		elapsed time.Duration
	}
	for _, op := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Get", func(ctx context.Context) error { _, err := b.Get(ctx, key); return err }},
		{"GetMulti", func(ctx context.Context) error {
			m, err := b.GetMulti(ctx, []string{key})
			if err == nil && len(m) != 0 {
				err = errors.New("found a value")
			}
			return err
		}},
		{"SetIfNotNewer", func(ctx context.Context) error { _, err := b.SetIfNotNewer(ctx, key, stamped(1), 0); return err }},
	} {
		// SetIfNotNewer replaces the FIFO: put it back.
		if fi, err := os.Lstat(p); err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
			_ = os.Remove(p)
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			err := op.call(ctx)
			done <- result{err, time.Since(start)}
		}()
		select {
		case r := <-done:
			t.Logf("%s on a FIFO: %v after %v", op.name, r.err, r.elapsed)
			if r.elapsed > time.Second {
				t.Errorf("%s on a FIFO took %v with a 200ms deadline", op.name, r.elapsed)
			}
			if op.name == "Get" && !errors.Is(r.err, backends.ErrMalformed) {
				t.Errorf("Get on a FIFO: %v; want an error wrapping backends.ErrMalformed", r.err)
			}
		case <-time.After(5 * time.Second):
			// Open the FIFO for writing: that ends the reader's blocked open, so that the
			// goroutine ends and the test fails instead of hanging.
			if w, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
				_ = w.Close()
			}
			<-done
			t.Errorf("%s on a FIFO entry blocked for %v with a 200ms deadline", op.name, time.Since(start))
		}
		cancel()
	}
	// Evict reads the head of entry files: not a FIFO's.
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Evict() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Evict with a FIFO entry: %v", err)
		}
	case <-time.After(5 * time.Second):
		if w, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			_ = w.Close()
		}
		<-done
		t.Error("Evict blocked on a FIFO entry")
	}
}

// TestOversizedEntryNotAllocated: an entry file far larger than any entry the backend writes (a
// sparse 1 GiB file: free on disk) is a miss and is never read into a buffer of its size; the
// file is left alone, since another process with a larger WithMaxValueSize may have written it.
func TestOversizedEntryNotAllocated(t *testing.T) {
	dir, _ := cacheDir(t)
	b := newBackend(t, dir)
	const key = "k"
	if err := b.Set(t.Context(), key, []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	p := entryPath(dir, key)
	if err := os.Truncate(p, 1<<30); err != nil {
		t.Fatal(err)
	}
	for _, op := range []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := b.Get(t.Context(), key); return err }},
		{"SetIfNotNewer", func() error { _, err := b.SetIfNotNewer(t.Context(), key, stamped(1), 0); return err }},
	} {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		err := op.call()
		elapsed := time.Since(start)
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s of a 1 GiB entry file: %v; %d bytes allocated in %v", op.name, err, alloc, elapsed)
		if alloc > 4<<20 {
			t.Errorf("%s of a 1 GiB entry file allocated %d bytes; want under 4 MiB", op.name, alloc)
		}
		if op.name == "Get" {
			if !errors.Is(err, backends.ErrNotFound) {
				t.Errorf("Get of a 1 GiB entry file: %v; want a miss", err)
			}
			if fi, err := os.Lstat(p); err != nil || fi.Size() != 1<<30 {
				t.Errorf("the oversized file was changed or removed by a read: %v", err)
			}
		}
	}
}

// TestMaxValueSize: values above WithMaxValueSize are refused by Set (ErrTooLarge), and an entry
// file holding one (written by hand) is a miss; one at the bound is stored and read back.
func TestMaxValueSize(t *testing.T) {
	ctx := t.Context()
	dir, _ := cacheDir(t)
	const bound = 1000
	b := newBackend(t, dir, file.WithMaxValueSize(bound))
	const key = "k"
	if err := b.Set(ctx, key, make([]byte, bound), 0); err != nil {
		t.Fatalf("Set of a value at the bound: %v", err)
	}
	if v, err := b.Get(ctx, key); err != nil || len(v) != bound {
		t.Fatalf("Get of a value at the bound = %d bytes, %v", len(v), err)
	}
	if err := b.Set(ctx, key, make([]byte, bound+1), 0); !errors.Is(err, backends.ErrTooLarge) {
		t.Errorf("Set of a value over the bound: %v; want an error wrapping backends.ErrTooLarge", err)
	}
	if _, err := b.SetIfNotNewer(ctx, key, backends.EncodeEntry(backends.Entry{Created: 1, Payload: make([]byte, bound)}), 0); !errors.Is(err, backends.ErrTooLarge) {
		t.Errorf("SetIfNotNewer of a value over the bound: %v; want an error wrapping backends.ErrTooLarge", err)
	}
	err := b.SetMulti(ctx, map[string][]byte{"small": []byte("v"), "big": make([]byte, bound+1)}, 0)
	if !errors.Is(err, backends.ErrTooLarge) {
		t.Errorf("SetMulti with a value over the bound: %v; want an error wrapping backends.ErrTooLarge", err)
	}
	if v, err := b.Get(ctx, "small"); err != nil || string(v) != "v" {
		t.Errorf("SetMulti did not store the item within the bound: %q, %v", v, err)
	}
	if err := os.WriteFile(entryPath(dir, key), encodeFile(0, key, make([]byte, bound+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, key); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Get of an entry file over the bound: %v; want a miss", err)
	}
	for _, n := range []int64{0, -1} {
		if b, err := file.New(t.TempDir(), file.WithMaxValueSize(n)); err == nil {
			_ = b.Close()
			t.Errorf("New with WithMaxValueSize(%d) succeeded", n)
		}
	}
}

// TestDirWritableByOthersRefused: a directory that another user may write (mode 0777, or 0770
// for a group) would let that user plant entries or links: New refuses it with an error that
// names the path and the fix. The same holds for its data/ and locks/ subdirectories.
func TestDirWritableByOthersRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		sub  string // "" for the directory itself
		mode os.FileMode
	}{
		{"others", "", 0o777},
		{"group", "", 0o770},
		{"sticky /tmp-like", "", 0o1777},
		{"data", "data", 0o777},
		{"locks", "locks", 0o757},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := cacheDir(t)
			newBackend(t, dir).Close()
			bad := filepath.Join(dir, tc.sub)
			if err := os.Chmod(bad, tc.mode); err != nil {
				t.Fatal(err)
			}
			b, err := file.New(dir)
			if err == nil {
				_ = b.Close()
				t.Fatalf("New on a directory with %s of mode %v succeeded", bad, tc.mode)
			}
			if msg := err.Error(); !strings.Contains(msg, bad) || !strings.Contains(msg, "chmod 700 "+bad) {
				t.Errorf("New: %v; want an error naming %s and the fix", err, bad)
			}
		})
	}
	// A directory of mode 0755 may be read by others, not written: it is accepted.
	dir, _ := cacheDir(t)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	newBackend(t, dir)
}

// TestDirOwnedByOtherUserRefused: a directory owned by another user is that user's to fill:
// New refuses it. Making one takes root (CI runs as root).
func TestDirOwnedByOtherUserRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another user needs root; CI runs as root")
	}
	const nobody = 65534
	for _, sub := range []string{"", "data"} {
		dir, _ := cacheDir(t)
		newBackend(t, dir).Close()
		bad := filepath.Join(dir, sub)
		if err := os.Chown(bad, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		b, err := file.New(dir)
		if err == nil {
			_ = b.Close()
			t.Fatalf("New on a directory with %s owned by uid %d succeeded", bad, nobody)
		}
		if msg := err.Error(); !strings.Contains(msg, bad) || !strings.Contains(msg, fmt.Sprint(nobody)) {
			t.Errorf("New: %v; want an error naming %s and its owner", err, bad)
		}
	}
}

// TestNewMakesPrivateDirs: directories the backend makes (the cache directory, data/, locks/,
// fan-out directories) have mode 0700.
func TestNewMakesPrivateDirs(t *testing.T) {
	dir, _ := cacheDir(t)
	b := newBackend(t, filepath.Join(dir, "a", "b"))
	if err := b.Set(t.Context(), "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "a"), b.Dir(), filepath.Join(b.Dir(), "data"),
		filepath.Join(b.Dir(), "locks"), filepath.Dir(entryPath(b.Dir(), "k"))} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v; want 0700", p, fi.Mode().Perm())
		}
	}
}

// TestTopLevelSymlinkFollowed: the directory given to New may be a link (as /var/cache may be);
// it is followed, and its target is checked as the directory itself would be.
func TestTopLevelSymlinkFollowed(t *testing.T) {
	parent := t.TempDir()
	good := filepath.Join(parent, "good")
	link := filepath.Join(parent, "link")
	if err := os.Mkdir(good, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, link)
	if err := b.Set(t.Context(), "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(entryPath(good, "k")); err != nil {
		t.Fatalf("the entry is not in the link's target: %v", err)
	}
	open := filepath.Join(parent, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	badLink := filepath.Join(parent, "badlink")
	if err := os.Symlink(open, badLink); err != nil {
		t.Fatal(err)
	}
	if b, err := file.New(badLink); err == nil {
		_ = b.Close()
		t.Fatal("New on a link to a directory of mode 0777 succeeded")
	}
}
