package clienttest

import "syscall"

// childAttr makes the server die with the test binary, so that a test
// killed half-way leaves no bulkd behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
