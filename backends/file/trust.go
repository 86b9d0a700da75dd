package file

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dogpile-go/dogpile/backends"
)

// fileStat is what the backend needs of a file's stat: enough to tell a regular file from
// anything else, a file from another, and whose it is.
type fileStat struct {
	dev, ino uint64
	typ      fs.FileMode // fs.ModeType bits; 0 for a regular file
	perm     uint32      // permission, setuid, setgid and sticky bits
	uid      uint32
	size     int64
	mtime    int64 // Unix nanoseconds
}

func (s fileStat) regular() bool { return s.typ == 0 }

func (s fileStat) same(o fileStat) bool { return s.dev == o.dev && s.ino == o.ino }

// kind names a file type in errors.
func (s fileStat) kind() string {
	switch {
	case s.typ == 0:
		return "a regular file"
	case s.typ&fs.ModeSymlink != 0:
		return "a symbolic link"
	case s.typ&fs.ModeDir != 0:
		return "a directory"
	case s.typ&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case s.typ&fs.ModeSocket != 0:
		return "a socket"
	case s.typ&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file"
}

// checkDir returns an error, naming path and the fix, unless st (the stat of the directory at
// path) is a directory that belongs to the process's user and that neither its group nor others
// may write. A directory others may write is a directory where they may plant entries, links or
// FIFOs; a directory of another user is that user's to fill.
func checkDir(path string, st fileStat) error {
	if st.typ&fs.ModeDir == 0 {
		return fmt.Errorf("%s is %s, not a directory", path, st.kind())
	}
	if uid := processUID(); st.uid != uid {
		return fmt.Errorf("cache directory %s belongs to uid %d, not to this process's uid %d; use a directory of your own (or chown %d %s)",
			path, st.uid, uid, uid, path)
	}
	if st.perm&0o022 != 0 {
		who := "others"
		if st.perm&0o002 == 0 {
			who = "its group"
		}
		return fmt.Errorf("cache directory %s is writable by %s (mode %#o); chmod 700 %s, or use a directory of your own",
			path, who, st.perm, path)
	}
	return nil
}

// openTree makes dir (with its parents) if it is missing, opens it and its subdirectories data/
// and locks/ (making them), and checks each with checkDir. dir itself may be a link, or lie
// under one: it is followed, and its target is checked. data/ and locks/ must be directories,
// not links. It returns the descriptors of data/ and locks/ and the open dir/evict.lock.
func openTree(dir string) (dataFD, lockFD int, evict *os.File, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return -1, -1, nil, err
	}
	top, err := openDirPath(dir)
	if err != nil {
		return -1, -1, nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer closeFD(top)
	st, err := statFD(top)
	if err != nil {
		return -1, -1, nil, &os.PathError{Op: "fstat", Path: dir, Err: err}
	}
	if err := checkDir(dir, st); err != nil {
		return -1, -1, nil, err
	}
	var fds []int
	fail := func(err error) (int, int, *os.File, error) {
		for _, fd := range fds {
			closeFD(fd)
		}
		return -1, -1, nil, err
	}
	for _, name := range []string{"data", "locks"} {
		p := filepath.Join(dir, name)
		if err := mkdirAt(top, name); err != nil && !errors.Is(err, fs.ErrExist) {
			return fail(&os.PathError{Op: "mkdir", Path: p, Err: err})
		}
		fd, err := openDirAt(top, name)
		if err != nil {
			if st, serr := statAt(top, name); serr == nil && st.typ&fs.ModeDir == 0 {
				return fail(fmt.Errorf("%s is %s, not a directory; remove it and the backend makes a new one", p, st.kind()))
			}
			return fail(&os.PathError{Op: "open", Path: p, Err: err})
		}
		fds = append(fds, fd)
		st, err := statFD(fd)
		if err != nil {
			return fail(&os.PathError{Op: "fstat", Path: p, Err: err})
		}
		if err := checkDir(p, st); err != nil {
			return fail(err)
		}
	}
	f, err := openRegular(top, "evict.lock", filepath.Join(dir, "evict.lock"))
	if err != nil {
		return fail(err)
	}
	return fds[0], fds[1], f, nil
}

// openRegular opens (creating it) the lock file name in dfd, whose path is p, and checks that it
// is a regular file.
func openRegular(dfd int, name, p string) (*os.File, error) {
	fd, err := openLockAt(dfd, name)
	if err != nil {
		if st, serr := statAt(dfd, name); serr == nil && !st.regular() {
			return nil, fmt.Errorf("%s is %s: %w", p, st.kind(), errNotRegular)
		}
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	st, err := statFD(fd)
	if err != nil {
		closeFD(fd)
		return nil, &os.PathError{Op: "fstat", Path: p, Err: err}
	}
	if !st.regular() {
		closeFD(fd)
		return nil, fmt.Errorf("%s is %s: %w", p, st.kind(), errNotRegular)
	}
	return os.NewFile(uintptr(fd), p), nil
}

// errNotRegular is wrapped by the errors of files found under the directory that are not regular
// files (links, FIFOs, devices, directories) where the backend keeps one.
var errNotRegular = fmt.Errorf("%w: not a regular file", backends.ErrMalformed)
