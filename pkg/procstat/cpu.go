package procstat

import (
	"os"
	"strconv"
	"strings"
)

// ProcessCPU returns the CPU time a process has used (user + system) and
// the time of its children that it has waited for (cutime + cstime), in
// clock ticks (USER_HZ, 100 a second on Linux); ok is false when the process
// is gone or the system has no /proc. Postgres's postmaster counts its exited
// backends in children, so its children's time covers connections that came
// and went.
func ProcessCPU(pid int) (self, children int64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name is in parentheses and may hold spaces: the fields
	// that follow start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	// After the name: state(0) ppid … utime(11) stime(12) cutime(13) cstime(14).
	if len(f) < 15 {
		return 0, 0, false
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k], 10, 64); return v }
	return n(11) + n(12), n(13) + n(14), true
}

// Command returns a process's command name (/proc/PID/comm).
func Command(pid int) (string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// Processes lists the ids of the running processes.
func Processes() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// MachineCPU returns the CPU time of the whole machine, all cores summed,
// in clock ticks: busy (user, nice, system, irq, softirq, steal) and idle
// (idle, iowait).
func MachineCPU() (busy, idle int64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	name, v, _ := strings.Cut(line, " ")
	if name != "cpu" {
		return 0, 0, false
	}
	f := strings.Fields(v)
	if len(f) < 8 {
		return 0, 0, false
	}
	n := func(k int) int64 { x, _ := strconv.ParseInt(f[k], 10, 64); return x }
	// user nice system idle iowait irq softirq steal
	return n(0) + n(1) + n(2) + n(5) + n(6) + n(7), n(3) + n(4), true
}
