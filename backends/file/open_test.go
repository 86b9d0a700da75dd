package file_test

import (
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dogpile-go/dogpile/backends"
	"github.com/dogpile-go/dogpile/backends/file"
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	good := []string{
		"file://" + dir,
		"file://" + dir + "/sub",
		"file://localhost" + dir,
		"file://" + dir + "?max_size=1GiB&max_entries=100000&fsync=false&default_ttl=24h",
		"file://" + dir + "?max_size=5MB",
		"file://" + dir + "?max_size=512kib",
		"file://" + dir + "?max_size=4096",
		"file://" + dir + "?max_size=10B",
		"file://" + dir + "?fsync=true",
		"file://" + dir + "?max_entries=0&max_size=0",
		"file://" + dir + "?max_value_size=1MiB",
	}
	for _, u := range good {
		b, err := backends.Open(u)
		if err != nil {
			t.Errorf("Open(%q): %v", u, err)
			continue
		}
		if _, ok := b.(*file.Backend); !ok {
			t.Errorf("Open(%q) = %T", u, b)
		}
		if _, err := b.Get(t.Context(), "k"); err == nil {
			t.Errorf("Open(%q): Get on an empty directory found something", u)
		}
		_ = b.(io.Closer).Close()
	}
	bad := []struct{ url, want string }{
		{"file://" + dir + "?max_size=1XB", "max_size"},
		{"file://" + dir + "?max_size=-1", "max_size"},
		{"file://" + dir + "?max_size=GiB", "max_size"},
		{"file://" + dir + "?max_size=99999999999999GiB", "max_size"},
		{"file://" + dir + "?max_value_size=0", "max_value_size"},
		{"file://" + dir + "?max_entries=many", "max_entries"},
		{"file://" + dir + "?max_entries=-3", "max_entries"},
		{"file://" + dir + "?fsync=maybe", "fsync"},
		{"file://" + dir + "?default_ttl=1d", "default_ttl"},
		{"file://" + dir + "?default_ttl=-1s", "default_ttl"},
		{"file://" + dir + "?maxsize=1GiB&colour=blue", `["colour" "maxsize"]`},
		{"file://" + dir + "?max_size=1&max_size=2", "given 2 times"},
		{"file://otherhost" + dir, "no host"},
		{"file://user@" + dir, "no host"},
		{"file://", "no directory"},
		{"file://" + filepath.Join(dir, "a\x00b"), ""},
	}
	for _, tc := range bad {
		b, err := backends.Open(tc.url)
		if err == nil {
			_ = b.(io.Closer).Close()
			t.Errorf("Open(%q) succeeded", tc.url)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q) = %v; want an error naming %s", tc.url, err, tc.want)
		}
	}
	// The scheme must be "file" when Open is called directly.
	if _, err := file.Open(&url.URL{Scheme: "memory", Path: dir}); err == nil {
		t.Error("file.Open of a memory URL succeeded")
	}
}

func TestOpenRelative(t *testing.T) {
	t.Chdir(t.TempDir())
	b, err := backends.Open("file:rel/cache?max_entries=10")
	if err != nil {
		t.Fatal(err)
	}
	defer b.(io.Closer).Close()
	if got := b.(*file.Backend).Dir(); got != filepath.Join("rel", "cache") {
		t.Fatalf("Dir() = %q", got)
	}
}
