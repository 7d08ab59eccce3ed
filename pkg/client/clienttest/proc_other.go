//go:build !linux

package clienttest

import "syscall"

// childAttr: only Linux can tie the server's life to the test binary's.
func childAttr() *syscall.SysProcAttr { return nil }
