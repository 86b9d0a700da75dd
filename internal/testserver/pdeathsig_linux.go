package testserver

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the server when the test binary that started it dies, so
// that a binary killed by go test's timeout leaves no server running.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
