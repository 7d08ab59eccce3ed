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
