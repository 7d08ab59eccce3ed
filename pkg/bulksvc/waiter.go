package bulksvc

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/store"
)

// DefaultRecheckInterval is how often a Waiter checks, while anyone waits,
// whether a waited-for bulk finished without its notification being heard.
const DefaultRecheckInterval = 2 * time.Second

// Waiter tells the requests of one API process that the bulks they wait for
// have finished. It holds one listening connection to Postgres, which every
// transaction that finishes a bulk notifies at commit, and wakes the waiters
// of that bulk: a waiting request holds no database connection and runs no
// goroutine of its own. Notifications can be lost (while the listener
// reconnects, or when Postgres restarts), so while anyone waits one shared
// ticker also checks every waited-for bulk in a single query.
type Waiter struct {
	store   *store.Store
	recheck time.Duration
	log     *slog.Logger

	mu      sync.Mutex
	waiting map[uuid.UUID][]chan struct{}
	stopped bool // Run has returned: a new watch ends at once
	// listening reports whether the listener is connected, for tests and logs.
	listening bool
}

// NewWaiter returns a Waiter; recheck is the interval of the fallback check
// (0: DefaultRecheckInterval). Nothing is heard until Run runs.
func NewWaiter(s *store.Store, recheck time.Duration, log *slog.Logger) *Waiter {
	if recheck <= 0 {
		recheck = DefaultRecheckInterval
	}
	return &Waiter{store: s, recheck: recheck, log: log, waiting: map[uuid.UUID][]chan struct{}{}}
}

// Watch is one request's interest in one bulk's end.
type Watch struct {
	w  *Waiter
	id uuid.UUID
	ch chan struct{}
}

// Watch starts watching bulk id. Its Done channel is closed once the bulk
// may have finished (the caller reads the bulk to know) or when the Waiter
// stops. The caller must read the bulk after calling Watch, not before, so
// that an end between the two is not missed, and call Stop when done.
func (w *Waiter) Watch(id uuid.UUID) *Watch {
	ch := make(chan struct{})
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		close(ch)
	} else {
		w.waiting[id] = append(w.waiting[id], ch)
	}
	return &Watch{w: w, id: id, ch: ch}
}

// Done is closed when the watched bulk may have finished.
func (wt *Watch) Done() <-chan struct{} { return wt.ch }

// Stop ends the watch; it may be called after Done was closed.
func (wt *Watch) Stop() {
	w := wt.w
	w.mu.Lock()
	defer w.mu.Unlock()
	chans := w.waiting[wt.id]
	for i, ch := range chans {
		if ch == wt.ch {
			chans = append(chans[:i], chans[i+1:]...)
			break
		}
	}
	if len(chans) == 0 {
		delete(w.waiting, wt.id)
	} else {
		w.waiting[wt.id] = chans
	}
}

// wake closes the Done channels of every watch of id.
func (w *Waiter) wake(id uuid.UUID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wakeLocked(id)
}

func (w *Waiter) wakeLocked(id uuid.UUID) {
	for _, ch := range w.waiting[id] {
		close(ch)
	}
	delete(w.waiting, id)
}

// waitedIDs lists the bulks someone waits for.
func (w *Waiter) waitedIDs() []uuid.UUID {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make([]uuid.UUID, 0, len(w.waiting))
	for id := range w.waiting {
		ids = append(ids, id)
	}
	return ids
}

// Listening tells whether the listener is connected and listening.
func (w *Waiter) Listening() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.listening
}

func (w *Waiter) setListening(v bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.listening = v
}

// Run listens and rechecks until ctx ends, then wakes every waiter (so that
// requests in flight answer with the bulk as it is and the server can shut
// down) and every later Watch at once.
func (w *Waiter) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); w.listen(ctx) }()
	go func() { defer wg.Done(); w.recheckLoop(ctx) }()
	wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	for id := range w.waiting {
		w.wakeLocked(id)
	}
}

// listen keeps the one listening connection, reconnecting with a backoff
// from 100 ms doubling to 10 s when it breaks.
func (w *Waiter) listen(ctx context.Context) {
	const minBackoff, maxBackoff = 100 * time.Millisecond, 10 * time.Second
	backoff := minBackoff
	for ctx.Err() == nil {
		err := w.store.ListenFinished(ctx, func() {
			w.setListening(true)
			backoff = minBackoff
			// What finished while the listener was down was not heard.
			w.check(ctx)
		}, w.wake)
		w.setListening(false)
		if err == nil {
			return
		}
		w.log.WarnContext(ctx, "bulk notifications lost; listening again", "retry_in", backoff.String(), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// recheckLoop is the fallback for lost notifications: while anyone waits,
// one query every interval wakes the waiters of the bulks that finished.
func (w *Waiter) recheckLoop(ctx context.Context) {
	t := time.NewTicker(w.recheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.check(ctx)
		}
	}
}

// check wakes the waiters of every waited-for bulk that has finished.
func (w *Waiter) check(ctx context.Context) {
	ids := w.waitedIDs()
	if len(ids) == 0 {
		return
	}
	finished, err := w.store.FinishedBulks(ctx, ids)
	if err != nil {
		if ctx.Err() == nil {
			w.log.WarnContext(ctx, "check of waited-for bulks failed; retrying at the next tick", "err", err)
		}
		return
	}
	for _, id := range finished {
		w.wake(id)
	}
}
