package main

import (
	"context"
	"sync"
	"time"

	"github.com/bulkd/bulkd/pkg/procstat"
)

// The memory of the processes measured: sampled every second while the
// load runs, against the share of the rows done, to show whether it grows
// with the work; the peaks read last.

// watched is a process whose memory is sampled.
type watched struct {
	name string
	pid  int
}

type memSample struct {
	fraction float64 // of the rows completed when taken
	rss      []int64 // per watched process; 0 when unreadable
}

// memSampler samples the resident memory of the watched processes every
// second, to show whether it grows with the work done.
type memSampler struct {
	procs   []watched
	mu      sync.Mutex
	samples []memSample
	peaks   []int64 // VmHWM, read last
}

func (m *memSampler) run(ctx context.Context, prog *progress) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		m.sample(prog.fraction())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *memSampler) sample(fraction float64) {
	s := memSample{fraction: fraction, rss: make([]int64, len(m.procs))}
	for i, p := range m.procs {
		s.rss[i], _, _ = procstat.Memory(p.pid)
	}
	m.mu.Lock()
	m.samples = append(m.samples, s)
	m.mu.Unlock()
}

// finish takes a last sample and the peaks, while the processes still run.
func (m *memSampler) finish(fraction float64) {
	m.sample(fraction)
	m.peaks = make([]int64, len(m.procs))
	for i, p := range m.procs {
		_, m.peaks[i], _ = procstat.Memory(p.pid)
	}
}
