//go:build !linux

package main

import "syscall"

// childAttr has nothing to set where there is no parent-death signal; the
// memory figures need Linux's /proc anyway.
func childAttr() *syscall.SysProcAttr { return nil }
