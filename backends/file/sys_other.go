//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package file

import "errors"

// Where there is no flock, New refuses to make a backend (see flock_other.go); these stand in for
// the directory-relative calls of sys_unix.go so that the package compiles, and are never reached.

func openDirPath(string) (int, error)      { return -1, errors.ErrUnsupported }
func openDirAt(int, string) (int, error)   { return -1, errors.ErrUnsupported }
func openReadAt(int, string) (int, error)  { return -1, errors.ErrUnsupported }
func openLockAt(int, string) (int, error)  { return -1, errors.ErrUnsupported }
func createAt(int, string) (int, error)    { return -1, errors.ErrUnsupported }
func mkdirAt(int, string) error            { return errors.ErrUnsupported }
func unlinkAt(int, string) error           { return errors.ErrUnsupported }
func renameAt(int, string, string) error   { return errors.ErrUnsupported }
func statAt(int, string) (fileStat, error) { return fileStat{}, errors.ErrUnsupported }
func statFD(int) (fileStat, error)         { return fileStat{}, errors.ErrUnsupported }
func readFD(int, []byte) (int, error)      { return 0, errors.ErrUnsupported }
func closeFD(int)                          {}
func processUID() uint32                   { return 0 }
