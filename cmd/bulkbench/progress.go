package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// The progress line on stderr, on a terminal only: bulks accepted and
// completed, rows/s, the time elapsed and left.

// status redraws the progress line, on a terminal only.
func (b *bench) status(line string) {
	if b.cfg.quiet || !b.cfg.stderrIsTerminal {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprint(b.stderr, "\r\x1b[K"+line)
	b.bar = true
}

func (b *bench) clearStatus() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar {
		fmt.Fprint(b.stderr, "\r\x1b[K")
		b.bar = false
	}
}

// showProgress draws the progress bar until ctx ends.
func (b *bench) showProgress(ctx context.Context, prog *progress) {
	if b.cfg.quiet || !b.cfg.stderrIsTerminal {
		return
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			b.clearStatus()
			return
		case <-t.C:
		}
		b.status(progressLine(prog, time.Now()))
	}
}

// progressLine is one line of progress: bulks accepted and completed, rows/s
// so far, elapsed time and the time left at that rate.
func progressLine(prog *progress, now time.Time) string {
	const width = 24
	frac := prog.fraction()
	filled := int(frac * width)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	if filled < width {
		bar = bar[:filled] + ">" + bar[filled+1:]
	}
	var elapsed time.Duration
	if s := prog.started.Load(); s != 0 {
		elapsed = now.Sub(time.Unix(0, s))
	}
	rowsPerSec := rate(float64(prog.completedRows.Load()), elapsed)
	eta := "--:--"
	if rowsPerSec > 0 {
		eta = clock(time.Duration(float64(prog.rows-prog.completedRows.Load()) / rowsPerSec * float64(time.Second)))
	}
	return fmt.Sprintf("[%s] %3.0f%%  accepted %d/%d  completed %d/%d  %s rows/s  %s  ETA %s",
		bar, frac*100, prog.accepted.Load(), prog.bulks, prog.completed.Load(), prog.bulks,
		thousands(int64(rowsPerSec)), clock(elapsed), eta)
}

// clock formats a duration as m:ss or h:mm:ss.
func clock(d time.Duration) string {
	s := int64(d.Round(time.Second).Seconds())
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
