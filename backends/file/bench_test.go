package file_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/dogpile-go/dogpile/backends/file"
)

// The benchmarks put the backend beside bare file operations on the same bytes in one run, to keep
// its overhead honest: a Get should cost about what os.ReadFile of a 1 KB file costs, and a Set
// about what a write of a temporary file and a rename cost. The figures depend on the machine and
// its file system (t.TempDir, often tmpfs or overlayfs in containers) and belong in notes; rerun
// with
//
//	go test ./backends/file -run '^$' -bench . -benchmem -count 6

var value1K = bytes.Repeat([]byte("v"), 1024)

// BenchmarkGet1K is a hit on a 1 KB value: open, fstat, read, close, a CRC-32C of the file, and
// allocations for the path, the *os.File and the contents.
func BenchmarkGet1K(b *testing.B) {
	be := newBackend(b, b.TempDir())
	ctx := b.Context()
	if err := be.Set(ctx, "bench:get", value1K, 0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := be.Get(ctx, "bench:get"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBareReadFile1K(b *testing.B) {
	p := filepath.Join(b.TempDir(), "f")
	if err := os.WriteFile(p, value1K, 0o600); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := os.ReadFile(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGet1KParallel8 is BenchmarkGet1K from 8 goroutines per GOMAXPROCS, on 64 keys.
func BenchmarkGet1KParallel8(b *testing.B) {
	be := newBackend(b, b.TempDir())
	ctx := b.Context()
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = "bench:par:" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if err := be.Set(ctx, keys[i], value1K, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := be.Get(ctx, keys[i%len(keys)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkSet1K writes a 1 KB value over the same key: open and flock the key's write stripe,
// create a temporary file, two writes, fsync (fsync=true), close, rename, close the stripe. The
// stripe costs 7 allocations (about 270 bytes) and three syscalls, lost in the noise of the rest
// on the machines measured so far.
func BenchmarkSet1K(b *testing.B) {
	for _, bc := range []struct {
		name  string
		fsync bool
	}{{"fsync=true", true}, {"fsync=false", false}} {
		b.Run(bc.name, func(b *testing.B) {
			be := newBackend(b, b.TempDir(), file.WithFsync(bc.fsync))
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				if err := be.Set(ctx, "bench:set", value1K, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBareWriteRename1K is the same work done by hand: os.CreateTemp, a write, optionally
// fsync, close, rename.
func BenchmarkBareWriteRename1K(b *testing.B) {
	for _, bc := range []struct {
		name  string
		fsync bool
	}{{"fsync=true", true}, {"fsync=false", false}} {
		b.Run(bc.name, func(b *testing.B) {
			dir := b.TempDir()
			dst := filepath.Join(dir, "f")
			b.ReportAllocs()
			for b.Loop() {
				f, err := os.CreateTemp(dir, ".tmp-*")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := f.Write(value1K); err != nil {
					b.Fatal(err)
				}
				if bc.fsync {
					if err := f.Sync(); err != nil {
						b.Fatal(err)
					}
				}
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
				if err := os.Rename(f.Name(), dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
