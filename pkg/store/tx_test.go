package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// The store's one condition for an unfinished bulk, as Postgres evaluates
// it, says of every status what models.BulkStatus.Finished says.
func TestUnfinishedAgreesWithFinished(t *testing.T) {
	t.Parallel()
	db := testenv.NewDatabase(t)
	for _, s := range []models.BulkStatus{models.StatusPending, models.StatusProcessing,
		models.StatusCompleted, models.StatusFailed, models.StatusCanceled} {
		var unfinished bool
		if err := db.Conn.QueryRow(ctx, `SELECT `+store.Unfinished+` FROM (VALUES ($1::text)) AS bulks (status)`,
			string(s)).Scan(&unfinished); err != nil {
			t.Fatal(err)
		}
		if unfinished == s.Finished() {
			t.Errorf("%s: the SQL says unfinished %v, Finished() says %v", s, unfinished, s.Finished())
		}
	}
}

// A transaction commits what its function did when it returns nil, and
// nothing of it when it returns an error (returned as it is) or panics; in
// each case its connection goes back to the pool with no transaction open.
func TestWithTx(t *testing.T) {
	t.Parallel()
	db := testenv.NewDatabase(t)
	insert := func(name string) func(pgx.Tx) error {
		return func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO organizations (name, notify_email) VALUES ($1, 'ops@example.com')`, name)
			return err
		}
	}
	stored := func(name string) bool {
		return db.Count(t, `SELECT count(*) FROM organizations WHERE name = $1`, name) == 1
	}

	if err := db.Store.WithTx(ctx, insert("committed")); err != nil || !stored("committed") {
		t.Errorf("nil from the function: %v, stored %v; want committed", err, stored("committed"))
	}

	errBoom := errors.New("boom")
	err := db.Store.WithTx(ctx, func(tx pgx.Tx) error {
		if err := insert("failed")(tx); err != nil {
			return err
		}
		return errBoom
	})
	if err != errBoom || stored("failed") {
		t.Errorf("an error from the function: %v, stored %v; want the error itself, rolled back", err, stored("failed"))
	}

	func() {
		defer func() {
			if recover() == nil {
				t.Error("the function's panic did not go through")
			}
		}()
		_ = db.Store.WithTx(ctx, func(tx pgx.Tx) error {
			if err := insert("panicked")(tx); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	if stored("panicked") {
		t.Error("a panicking function's insert was committed")
	}
	if n := db.Count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`); n != 0 {
		t.Errorf("%d connections left in a transaction", n)
	}
}

// The records API's transactions (GORM) commit or roll back as the pgx
// ones do.
func TestInTxRollsBackOnError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	errBoom := errors.New("boom")
	for _, tc := range []struct {
		externalID string
		fnErr      error
		stored     int
	}{{"kept", nil, 1}, {"rolled-back", errBoom, 0}} {
		err := e.Store.InTx(ctx, e.org.ID, true, func(tx *store.Store) error {
			if err := tx.CreateRecord(ctx, &models.Location{ID: uuid.New(), OrganizationID: e.org.ID, ExternalID: tc.externalID}); err != nil {
				return err
			}
			return tc.fnErr
		})
		if !errors.Is(err, tc.fnErr) || (tc.fnErr == nil) != (err == nil) {
			t.Errorf("%s: InTx returned %v, want %v", tc.externalID, err, tc.fnErr)
		}
		if n := e.Count(t, `SELECT count(*) FROM locations WHERE external_id = $1`, tc.externalID); n != tc.stored {
			t.Errorf("%s: %d locations stored, want %d", tc.externalID, n, tc.stored)
		}
	}
}

// Two transactions that lock one organization take turns, whether they
// are imports (pgx) or records API writes (GORM): the second waits until
// the first ends. Transactions locking two organizations do not wait for
// each other.
func TestLockOrganization(t *testing.T) {
	t.Parallel()
	db := testenv.NewDatabase(t)
	orgA, orgB := uuid.New(), uuid.New()

	// holder holds orgA's lock until release is closed.
	held, holderDone := make(chan struct{}), make(chan error, 1)
	releasing := make(chan struct{})
	release := sync.OnceFunc(func() { close(releasing) })
	t.Cleanup(release) // a failed check must not leave the holder waiting
	go func() {
		holderDone <- db.Store.WithTx(ctx, func(tx pgx.Tx) error {
			if err := store.LockOrganization(ctx, tx, orgA); err != nil {
				return err
			}
			close(held)
			<-releasing
			return nil
		})
	}()
	<-held

	// waits tells, once either is so, whether n lock requests of this
	// database wait, or done is closed.
	waits := func(n int, done <-chan struct{}) bool {
		t.Helper()
		for {
			select {
			case <-done:
				return false
			default:
			}
			if db.Count(t, `SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
				WHERE d.datname = current_database() AND l.locktype = 'advisory' AND NOT l.granted`) >= n {
				return true
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	lockers := []struct {
		name string
		lock func(orgID uuid.UUID, locked chan<- struct{}) error
	}{
		{"import", func(orgID uuid.UUID, locked chan<- struct{}) error {
			return db.Store.WithTx(ctx, func(tx pgx.Tx) error {
				err := store.LockOrganization(ctx, tx, orgID)
				close(locked)
				return err
			})
		}},
		{"records", func(orgID uuid.UUID, locked chan<- struct{}) error {
			return db.Store.InTx(ctx, orgID, true, func(*store.Store) error {
				close(locked)
				return nil
			})
		}},
	}
	errs := make(chan error, 2*len(lockers))
	for _, l := range lockers {
		done := make(chan struct{})
		go func() { errs <- l.lock(orgB, done) }()
		if waits(1, done) {
			t.Fatalf("%s of another organization waits for the lock held on the first", l.name)
		}
		if err := <-errs; err != nil {
			t.Fatalf("%s of another organization: %v", l.name, err)
		}
	}

	// Both kinds of transaction of orgA wait for the holder, one after the
	// other.
	for i, l := range lockers {
		done := make(chan struct{})
		go func() { errs <- l.lock(orgA, done) }()
		if !waits(i+1, done) {
			t.Fatalf("%s of the same organization locked while another transaction held the lock", l.name)
		}
	}
	release()
	if err := <-holderDone; err != nil {
		t.Fatal(err)
	}
	for range lockers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
