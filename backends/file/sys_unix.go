//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package file

import (
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// The backend reaches every file under its directory relative to a directory descriptor, one
// path component at a time, each opened with O_NOFOLLOW: a symbolic link anywhere below the
// directory given to New is an error, never followed. Files are opened with O_NONBLOCK, so that
// an open of a FIFO cannot block, and checked with fstat before they are read.

// openDirPath opens the directory at path, following links in it (the directory given to New).
func openDirPath(path string) (int, error) {
	return retry(func() (int, error) {
		return unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
}

// openDirAt opens the directory name in the directory dfd; a link is an error.
func openDirAt(dfd int, name string) (int, error) {
	return retry(func() (int, error) {
		return unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
}

// openReadAt opens name in dfd for reading, without following a link and without blocking.
func openReadAt(dfd int, name string) (int, error) {
	return retry(func() (int, error) {
		return unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	})
}

// openLockAt opens name in dfd for reading and writing, creating it with mode 0600, without
// following a link and without blocking.
func openLockAt(dfd int, name string) (int, error) {
	return retry(func() (int, error) {
		return unix.Openat(dfd, name, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
	})
}

// createAt creates name in dfd for writing, with mode 0600; it fails if name exists, even as a
// link.
func createAt(dfd int, name string) (int, error) {
	return retry(func() (int, error) {
		return unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	})
}

// mkdirAt makes the directory name in dfd, with mode 0700.
func mkdirAt(dfd int, name string) error {
	return ignoringEINTR(func() error { return unix.Mkdirat(dfd, name, 0o700) })
}

// unlinkAt removes name (not a directory) from dfd; a link is removed, not its target.
func unlinkAt(dfd int, name string) error {
	return ignoringEINTR(func() error { return unix.Unlinkat(dfd, name, 0) })
}

// renameAt renames from to to, both in dfd; a link at to is replaced, not followed.
func renameAt(dfd int, from, to string) error {
	return ignoringEINTR(func() error { return unix.Renameat(dfd, from, dfd, to) })
}

// statAt returns what lstat says of name in dfd.
func statAt(dfd int, name string) (fileStat, error) {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
		return fileStat{}, err
	}
	return toFileStat(&st), nil
}

// statFD returns what fstat says of fd.
func statFD(fd int) (fileStat, error) {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return fileStat{}, err
	}
	return toFileStat(&st), nil
}

// readFD reads from fd into p, as read(2) does.
func readFD(fd int, p []byte) (int, error) {
	for {
		n, err := unix.Read(fd, p)
		if err != unix.EINTR {
			return max(n, 0), err
		}
	}
}

// closeFD closes fd.
func closeFD(fd int) { _ = unix.Close(fd) }

// processUID is the user that owns what the process creates: its effective uid.
func processUID() uint32 { return uint32(os.Geteuid()) }

func toFileStat(st *unix.Stat_t) fileStat {
	var typ fs.FileMode
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		typ = fs.ModeDir
	case unix.S_IFLNK:
		typ = fs.ModeSymlink
	case unix.S_IFIFO:
		typ = fs.ModeNamedPipe
	case unix.S_IFSOCK:
		typ = fs.ModeSocket
	case unix.S_IFCHR:
		typ = fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		typ = fs.ModeDevice
	default:
		typ = fs.ModeIrregular
	}
	return fileStat{
		dev:   uint64(st.Dev),
		ino:   uint64(st.Ino),
		typ:   typ,
		perm:  uint32(st.Mode) & 0o7777,
		uid:   st.Uid,
		size:  st.Size,
		mtime: st.Mtim.Nano(),
	}
}

func retry(open func() (int, error)) (int, error) {
	for {
		fd, err := open()
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func ignoringEINTR(call func() error) error {
	for {
		if err := call(); err != unix.EINTR {
			return err
		}
	}
}
