package bulksvc_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// runWaiter runs a Waiter over db until the test ends, waiting until it
// listens.
func runWaiter(t *testing.T, db testenv.Database, recheck time.Duration) *bulksvc.Waiter {
	t.Helper()
	w := bulksvc.NewWaiter(db.Store, recheck, discard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for start := time.Now(); !w.Listening(); time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the waiter does not listen after 10 s")
		}
	}
	return w
}

// pendingBulk stores a bulk of the seed, not imported.
func pendingBulk(t *testing.T, db testenv.Database) uuid.UUID {
	t.Helper()
	org, err := db.Store.CreateOrganization(t.Context(), "Acme", "ops@acme.example")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := db.Store.CreateBulk(t.Context(), store.NewBulk{OrganizationID: org.ID, Rows: testenv.SeedRows(t)})
	if err != nil {
		t.Fatal(err)
	}
	return b.ID
}

// woken waits up to within for the watch to end.
func woken(w *bulksvc.Watch, within time.Duration) bool {
	select {
	case <-w.Done():
		return true
	default:
	}
	select {
	case <-w.Done():
		return true
	case <-time.After(within):
		return false
	}
}

// The import's transaction and FailBulk notify at commit: with a fallback
// too slow to matter (an hour), the notification alone wakes the waiter.
func TestWaiterHearsImportAndFailure(t *testing.T) {
	t.Parallel()
	db := testenv.NewDatabase(t)
	w := runWaiter(t, db, time.Hour)

	imported, failed, other := pendingBulk(t, db), pendingBulk(t, db), pendingBulk(t, db)
	wi, wf, wo := w.Watch(imported), w.Watch(failed), w.Watch(other)
	defer wi.Stop()
	defer wf.Stop()
	defer wo.Stop()

	db.ImportBulk(t, imported)
	if !woken(wi, 30*time.Second) {
		t.Fatal("an import's commit did not wake its waiter")
	}
	if _, err := db.Store.FailBulk(t.Context(), failed, "The import could not run."); err != nil {
		t.Fatal(err)
	}
	if !woken(wf, 30*time.Second) {
		t.Fatal("FailBulk did not wake its waiter")
	}
	// Another bulk's end wakes no one else (a short look: nothing is sent
	// for it, so there is nothing to wait for).
	if woken(wo, 100*time.Millisecond) {
		t.Error("the waiter of an unfinished bulk was woken")
	}
}

// A bulk finished without a notification (here: by a plain UPDATE, as when
// the listener was reconnecting or Postgres restarted) still wakes its
// waiter, through the shared recheck.
func TestWaiterFallbackWakesWhenTheNotificationIsLost(t *testing.T) {
	t.Parallel()
	db := testenv.NewDatabase(t)
	w := runWaiter(t, db, 200*time.Millisecond)
	id := pendingBulk(t, db)
	watch := w.Watch(id)
	defer watch.Stop()
	if _, err := db.Conn.Exec(t.Context(), `UPDATE bulks SET status = $2 WHERE id = $1`, id, models.StatusCompleted); err != nil {
		t.Fatal(err)
	}
	if !woken(watch, 30*time.Second) {
		t.Fatal("a bulk finished without a notification did not wake its waiter")
	}
}

// When the listening connection is killed, the waiter listens again on a
// new one and hears the next end; on reconnecting it checks the waited-for
// bulks, which finds one whose end was never announced.
func TestWaiterListensAgainAfterItsConnectionBreaks(t *testing.T) {
	t.Parallel()
	db := testenv.NewDatabase(t)
	w := runWaiter(t, db, time.Hour)
	const listening = `pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN "` + store.BulkFinishedChannel + `"'`
	if n := db.Count(t, `SELECT count(*) FROM `+listening); n != 1 {
		t.Fatalf("%d listening connections, want 1", n)
	}
	lost, later := pendingBulk(t, db), pendingBulk(t, db)
	wLost, wLater := w.Watch(lost), w.Watch(later)
	defer wLost.Stop()
	defer wLater.Stop()

	// A bulk finishes silently (its notification is lost), then the
	// listener's connection is killed. With the recheck an hour away, only
	// the check on reconnecting can wake its waiter.
	if _, err := db.Conn.Exec(t.Context(), `UPDATE bulks SET status = $2 WHERE id = $1`, lost, models.StatusFailed); err != nil {
		t.Fatal(err)
	}
	if woken(wLost, 100*time.Millisecond) {
		t.Fatal("woken without a notification, a reconnection or a recheck")
	}
	if _, err := db.Conn.Exec(t.Context(), `SELECT pg_terminate_backend(pid) FROM `+listening); err != nil {
		t.Fatal(err)
	}
	if !woken(wLost, 30*time.Second) {
		t.Fatal("reconnecting did not check the waited-for bulks")
	}
	if n := db.Count(t, `SELECT count(*) FROM `+listening); !w.Listening() || n != 1 {
		t.Fatalf("not listening again: listening %v, %d listening connections", w.Listening(), n)
	}
	db.ImportBulk(t, later)
	if !woken(wLater, 30*time.Second) {
		t.Fatal("the listener did not hear an import after reconnecting")
	}
}

// Stopping the waiter (shutdown) ends every watch at once, and later ones
// immediately, so that waiting requests answer and the server can stop.
func TestWaiterStopEndsEveryWatch(t *testing.T) {
	t.Parallel()
	db := testenv.NewDatabase(t)
	w := bulksvc.NewWaiter(db.Store, time.Hour, discard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	watch := w.Watch(uuid.New())
	cancel()
	<-done
	if !woken(watch, 10*time.Second) {
		t.Fatal("a watch outlived the waiter")
	}
	if !woken(w.Watch(uuid.New()), 0) {
		t.Fatal("a watch after the waiter stopped does not end at once")
	}
}
