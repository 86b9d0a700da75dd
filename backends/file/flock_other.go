//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package file

import (
	"errors"
	"os"
)

// flockSupported is false where the syscall package has no flock: New refuses to make a backend
// there rather than offer a Locker that does not lock.
const flockSupported = false

func tryFlock(*os.File) (bool, error) { return false, errors.ErrUnsupported }

func unflock(*os.File) error { return errors.ErrUnsupported }
