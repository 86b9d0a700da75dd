package fleettest

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the child when the parent dies, so that a parent killed by
// go test's timeout leaves no child running.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
