//go:build !linux

package fleettest

import "os/exec"

// dieWithParent does nothing where the kernel cannot tie a child's life to its parent's; the
// tests' cleanups still kill the children.
func dieWithParent(*exec.Cmd) {}
