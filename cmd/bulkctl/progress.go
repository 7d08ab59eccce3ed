package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/bulkd/bulkd/pkg/client"
)

// progress counts a file's rows as they are submitted and imported, and
// shows it: a live bar on a terminal, a line every so often otherwise.
type progress struct {
	file                       string
	total                      int64
	waiting                    bool // rows count as done when imported, not when submitted
	submitted, bulks           atomic.Int64
	imported, failed, notTaken atomic.Int64
	start                      time.Time
	stopped                    chan struct{}
	done                       sync.WaitGroup
}

func (c *cli) newProgress(ctx context.Context, file string, total int, waiting bool) *progress {
	p := &progress{file: file, total: int64(total), waiting: waiting, start: time.Now(), stopped: make(chan struct{})}
	if c.terminal {
		bars := mpb.NewWithContext(ctx, mpb.WithOutput(c.stderr), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond))
		bar := bars.AddBar(p.total, mpb.PrependDecorators(decor.Name(file+" ")),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return " " + p.line() })))
		p.done.Go(func() {
			t := time.NewTicker(150 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					bar.SetCurrent(p.current())
				case <-p.stopped:
					bar.SetCurrent(p.current())
					if !bar.Completed() {
						bar.Abort(false)
					}
					bars.Wait()
					return
				}
			}
		})
		return p
	}
	p.done.Go(func() {
		t := time.NewTicker(c.progressEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				fmt.Fprintf(c.stderr, "bulkctl: %s: %s\n", file, p.line())
			case <-p.stopped:
				fmt.Fprintf(c.stderr, "bulkctl: %s: %s\n", file, p.line())
				return
			}
		}
	})
	return p
}

// current is how many rows are done: imported or failed when waiting,
// else submitted.
func (p *progress) current() int64 {
	if p.waiting {
		return p.imported.Load() + p.failed.Load() + p.notTaken.Load()
	}
	return p.submitted.Load()
}

// line is the progress in words: rows submitted, imported, failed, the
// rate and what is left.
func (p *progress) line() string {
	s := fmt.Sprintf("submitted %d/%d rows (%d bulks)", p.submitted.Load(), p.total, p.bulks.Load())
	if p.waiting {
		s += fmt.Sprintf(", imported %d, failed %d", p.imported.Load(), p.failed.Load()+p.notTaken.Load())
	}
	done, elapsed := p.current(), time.Since(p.start)
	if done > 0 && elapsed > 0 {
		rate := float64(done) / elapsed.Seconds()
		s += fmt.Sprintf(", %.0f rows/s", rate)
		if left := p.total - done; left > 0 {
			s += ", ETA " + time.Duration(float64(left)/rate*float64(time.Second)).Round(time.Second).String()
		}
	}
	return s
}

// stop writes the last state and ends the display.
func (p *progress) stop() {
	close(p.stopped)
	p.done.Wait()
}

// waiter follows a file's accepted bulks until each has finished. It reads
// them in the order of the input, a few unfinished ones each round (the
// queue imports them about in that order), so that its reads stay few
// however many bulks there are.
type waiter struct {
	cl       *client.Client
	prog     *progress
	mu       sync.Mutex
	open     []bulkEntry // accepted, not seen finished, in index order
	closed   bool        // no more bulks will be added
	wake     chan struct{}
	finished []*client.Bulk
}

// aheadOpen is how many unfinished bulks one round reads, and pollEvery
// the pause after a round that left some unfinished: about 4 reads a
// second while bulks import, well under the API's default rate limit.
const (
	aheadOpen = 4
	pollEvery = time.Second
)

func newWaiter(cl *client.Client, prog *progress) *waiter {
	return &waiter{cl: cl, prog: prog, wake: make(chan struct{}, 1)}
}

func (w *waiter) add(e bulkEntry) {
	w.mu.Lock()
	i, _ := slices.BinarySearchFunc(w.open, e.Index, func(a bulkEntry, index int) int { return a.Index - index })
	w.open = slices.Insert(w.open, i, e)
	w.mu.Unlock()
	w.signal()
}

// close says that every bulk that will be added has been.
func (w *waiter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.signal()
}

func (w *waiter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run reads the bulks until every one has finished and no more will come,
// or ctx ends.
func (w *waiter) run(ctx context.Context) error {
	for {
		w.mu.Lock()
		open, closed := slices.Clone(w.open), w.closed
		w.mu.Unlock()
		if closed && len(open) == 0 {
			return nil
		}
		unfinished := 0
		for _, e := range open {
			if unfinished == aheadOpen {
				break
			}
			b, err := w.cl.GetBulk(ctx, e.BulkID)
			if err != nil {
				if ctx.Err() != nil {
					return nil // the submission stopped: it tells why
				}
				return fmt.Errorf("bulk %s: %w", e.BulkID, err)
			}
			if !b.Status.Finished() {
				unfinished++
				continue
			}
			w.mu.Lock()
			w.open = slices.DeleteFunc(w.open, func(o bulkEntry) bool { return o.Index == e.Index })
			w.finished = append(w.finished, b)
			w.mu.Unlock()
			w.prog.imported.Add(int64(b.RowsSucceeded))
			w.prog.failed.Add(int64(b.RowsFailed))
			w.prog.notTaken.Add(int64(b.Count - b.RowsSucceeded - b.RowsFailed))
		}
		if unfinished > 0 || len(open) == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(pollEvery):
			case <-w.wake:
				if unfinished > 0 {
					// New bulks are no reason to read sooner than the pause.
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(pollEvery):
					}
				}
			}
		}
	}
}
