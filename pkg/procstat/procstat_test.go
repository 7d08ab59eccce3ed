package procstat_test

import (
	"os"
	"runtime"
	"testing"

	"github.com/bulkd/bulkd/pkg/procstat"
)

// A running process's resident memory and its peak are read, the peak
// never below it; a process that does not exist is not.
func TestMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	t.Parallel()
	rss, peak, ok := procstat.Memory(os.Getpid())
	if !ok || rss <= 0 || peak < rss {
		t.Errorf("Memory(self) = %d, %d, %v; want a resident size and a peak at least as large", rss, peak, ok)
	}
	if _, _, ok := procstat.Memory(-1); ok {
		t.Error("Memory of no process says ok")
	}
}

func TestField(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	t.Parallel()
	if v, ok := procstat.Field("/proc/meminfo", "MemTotal"); !ok || v == "" || v[len(v)-2:] != "kB" {
		t.Errorf("MemTotal = %q, %v", v, ok)
	}
	if _, ok := procstat.Field("/proc/meminfo", "NoSuchField"); ok {
		t.Error("a field that is not there was found")
	}
}

// The machine's and this process's CPU time are read and only grow; a
// process that does not exist is not read.
func TestCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	t.Parallel()
	busy, idle, ok := procstat.MachineCPU()
	if !ok || busy <= 0 || idle < 0 {
		t.Fatalf("MachineCPU() = %d, %d, %v", busy, idle, ok)
	}
	self, _, ok := procstat.ProcessCPU(os.Getpid())
	if !ok {
		t.Fatal("ProcessCPU(self) not ok")
	}
	for x := 0; x < 200_000_000; x++ { // some CPU time to count
		_ = x * x
	}
	self2, _, _ := procstat.ProcessCPU(os.Getpid())
	busy2, idle2, _ := procstat.MachineCPU()
	if self2 < self || busy2 < busy || idle2 < idle {
		t.Errorf("CPU times went back: self %d→%d, busy %d→%d, idle %d→%d", self, self2, busy, busy2, idle, idle2)
	}
	if c, ok := procstat.Command(os.Getpid()); !ok || c == "" {
		t.Errorf("Command(self) = %q, %v", c, ok)
	}
	if _, _, ok := procstat.ProcessCPU(-1); ok {
		t.Error("ProcessCPU of no process says ok")
	}
}
