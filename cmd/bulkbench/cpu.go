package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/bulkd/bulkd/pkg/procstat"
)

// cpuSplit is how the machine's CPU time (every core) was spent while the
// load ran, from /proc: Postgres (every postgres process of the machine, the
// exited backends counted through the postmaster's children's time, so
// other users of the same server are in it), bulkd's processes, bulkbench
// itself, anything else, and idle. Shares of the whole, 0 to 1.
type cpuSplit struct {
	Seconds   float64 `json:"cpu_seconds"` // machine time in all: wall × cores
	Postgres  float64 `json:"postgres"`
	API       float64 `json:"bulkd_api"`
	Workers   float64 `json:"bulkd_workers"`
	Bulkbench float64 `json:"bulkbench"`
	Other     float64 `json:"other"`
	Idle      float64 `json:"idle"`
}

func (u cpuSplit) String() string {
	return fmt.Sprintf("Postgres %.0f%%, bulkd api %.0f%%, workers %.0f%%, bulkbench %.0f%%, other %.0f%%, idle %.0f%% (of %.0f CPU-seconds)",
		u.Postgres*100, u.API*100, u.Workers*100, u.Bulkbench*100, u.Other*100, u.Idle*100, u.Seconds)
}

// cpuReading is the cumulative CPU time, in clock ticks, of what cpuSplit
// splits.
type cpuReading struct {
	busy, idle        int64
	postgres          int64
	api, workers, own int64
}

// readCPU reads the machine's and the processes' CPU time; ok is false
// without /proc.
func readCPU(procs []watched) (r cpuReading, ok bool) {
	if r.busy, r.idle, ok = procstat.MachineCPU(); !ok {
		return r, false
	}
	for _, pid := range procstat.Processes() {
		if name, _ := procstat.Command(pid); name == "postgres" {
			self, children, _ := procstat.ProcessCPU(pid)
			r.postgres += self + children
		}
	}
	for _, p := range procs {
		self, _, _ := procstat.ProcessCPU(p.pid)
		if p.name == "api" {
			r.api += self
		} else if strings.HasPrefix(p.name, "worker") {
			r.workers += self
		}
	}
	r.own, _, _ = procstat.ProcessCPU(os.Getpid())
	return r, true
}

// split is the CPU time spent between two readings.
func (r cpuReading) split(to cpuReading) *cpuSplit {
	total := float64((to.busy - r.busy) + (to.idle - r.idle))
	if total <= 0 {
		return nil
	}
	share := func(d int64) float64 { return round(float64(d)/total, 3) }
	pg, api, wk, own := to.postgres-r.postgres, to.api-r.api, to.workers-r.workers, to.own-r.own
	other := (to.busy - r.busy) - pg - api - wk - own
	return &cpuSplit{Seconds: round(total/100, 1), Postgres: share(pg), API: share(api), Workers: share(wk),
		Bulkbench: share(own), Other: share(max(other, 0)), Idle: share(to.idle - r.idle)}
}
