package main

import "syscall"

// childAttr ties a spawned bulkd to this process: if bulkbench dies without
// stopping it, the kernel stops it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
