// Package procstat reads what Linux's /proc says of a process's memory and
// of the machine, for bulkbench's report and the memory tests. Elsewhere
// (no /proc) every read says it could not.
package procstat

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// Memory returns a process's resident set size (VmRSS) and its peak, the
// high-water mark (VmHWM), in bytes; ok is false when the process is gone
// or the system has no /proc.
func Memory(pid int) (rss, peak int64, ok bool) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, found := strings.Cut(sc.Text(), ":")
		if !found || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			continue
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	return rss, peak, rss > 0
}

// Field reads the value of the first "name: value" line of a /proc file
// (/proc/cpuinfo, /proc/meminfo).
func Field(path, name string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}
