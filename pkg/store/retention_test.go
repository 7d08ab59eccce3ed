package store_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// endedAgo moves a bulk's end (and its creation, for an unfinished one)
// back by d, as if it had happened that long ago.
func (e env) endedAgo(t *testing.T, id uuid.UUID, d time.Duration) {
	t.Helper()
	if _, err := e.Conn.Exec(ctx, `UPDATE bulks SET completed_at = completed_at - make_interval(secs => $2),
		created_at = created_at - make_interval(secs => $2) WHERE id = $1`, id, d.Seconds()); err != nil {
		t.Fatal(err)
	}
}

// stored counts a bulk's rows as submitted and its results.
func (e env) stored(t *testing.T, id uuid.UUID) (rows, results int) {
	t.Helper()
	return e.Count(t, `SELECT count(*) FROM bulk_rows WHERE bulk_id = $1`, id),
		e.Count(t, `SELECT count(*) FROM bulk_results WHERE bulk_id = $1`, id)
}

// failedBulk stores n copies of the seed's row as a bulk and fails it.
func (e env) failedBulk(t *testing.T, n int) models.Bulk {
	t.Helper()
	rows := make([]json.RawMessage, n)
	for i := range rows {
		rows[i] = testenv.SeedRows(t)[0]
	}
	b, _, err := e.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: e.org.ID, Rows: rows})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.FailBulk(ctx, b.ID, "The import could not be completed."); err != nil {
		t.Fatal(err)
	}
	return e.bulk(t, b.ID)
}

func (e env) bulk(t *testing.T, id uuid.UUID) models.Bulk {
	t.Helper()
	b, err := e.Store.Bulk(ctx, e.org.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Retention erases the rows as submitted and the results of the bulks that
// ended more than the retention ago, and nothing else: a younger bulk keeps
// its own, an unfinished one however old keeps its rows, and an erased
// bulk keeps its status, counts and options, and the records it imported.
func TestEraseReportsOfBulksPastTheRetention(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	old := e.submitAndImport(t, e.org.ID, testenv.SeedRows(t))
	oldFailed := e.failedBulk(t, 2)
	young := e.submitAndImport(t, e.org.ID, testenv.SeedRows(t)) // every account taken: rows with errors
	pending, _, err := e.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: e.org.ID, Rows: testenv.SeedRows(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uuid.UUID{old.ID, oldFailed.ID, pending.ID} {
		e.endedAgo(t, id, 2*time.Hour)
	}
	records := e.Count(t, `SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM debt_accounts) + (SELECT count(*) FROM locations)`)

	got, err := e.Store.EraseReports(ctx, time.Hour, store.DefaultEraseBatch)
	if err != nil {
		t.Fatal(err)
	}
	// old: its row and its result; oldFailed: its 2 rows and no result.
	if want := (store.Erased{Bulks: 2, Rows: 4}); got != want {
		t.Errorf("EraseReports: %+v, want %+v", got, want)
	}
	for _, b := range []models.Bulk{old, oldFailed} {
		if rows, results := e.stored(t, b.ID); rows+results != 0 {
			t.Errorf("bulk past the retention still has %d rows and %d results", rows, results)
		}
		after := e.bulk(t, b.ID)
		if after.ReportExpiredAt == nil {
			t.Errorf("erased bulk has no report_expired_at")
		}
		if after.Status != b.Status || after.Count != b.Count || after.RowsSucceeded != b.RowsSucceeded || after.RowsFailed != b.RowsFailed ||
			after.DebtAccountsWritten != b.DebtAccountsWritten || after.Mode != b.Mode || !after.CompletedAt.Before(*b.CompletedAt) {
			t.Errorf("erased bulk changed:\n  before %+v\n  after  %+v", b, after)
		}
	}
	if rows, results := e.stored(t, young.ID); rows != 1 || results != 1 || e.bulk(t, young.ID).ReportExpiredAt != nil {
		t.Errorf("a bulk within the retention has %d rows and %d results, want its 1 and 1", rows, results)
	}
	if rows, _ := e.stored(t, pending.ID); rows != 1 {
		t.Errorf("an unfinished bulk lost its rows: %d left", rows)
	}
	if n := e.Count(t, `SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM debt_accounts) + (SELECT count(*) FROM locations)`); n != records {
		t.Errorf("%d records after the erasure, %d before", n, records)
	}
	if len(e.errorsReport(t, e.org.ID, young.ID)) < 100 {
		t.Errorf("the younger bulk's errors report is gone: %s", e.errorsReport(t, e.org.ID, young.ID))
	}

	// Done: a second pass finds nothing.
	if got, err := e.Store.EraseReports(ctx, time.Hour, store.DefaultEraseBatch); err != nil || got != (store.Erased{}) {
		t.Errorf("second EraseReports: %+v, %v", got, err)
	}
}

// A batch erases the bulks that ended first, as many as fit in its rows,
// and always at least one, so that a bulk larger than a batch is erased
// too; the next batch goes on from there.
func TestEraseReportsInBoundedBatches(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var bulks []models.Bulk
	for i := range 4 {
		b := e.failedBulk(t, 3)
		e.endedAgo(t, b.ID, time.Duration(10-i)*time.Hour) // the first ended first
		bulks = append(bulks, b)
	}
	erased := func(want ...int) {
		t.Helper()
		for i, b := range bulks {
			rows, _ := e.stored(t, b.ID)
			if isErased := rows == 0; isErased != (i < len(want)) {
				t.Errorf("bulk %d: %d rows left", i, rows)
			}
		}
	}
	for _, step := range []struct {
		batch  store.EraseBatch
		bulks  int
		erased int // bulks erased so far, oldest first
	}{
		{store.EraseBatch{Bulks: 10, Rows: 5}, 1, 1},    // 3 rows fit, 6 do not
		{store.EraseBatch{Bulks: 10, Rows: 2}, 1, 2},    // no bulk fits: one all the same
		{store.EraseBatch{Bulks: 1, Rows: 1000}, 1, 3},  // one bulk at most
		{store.EraseBatch{Bulks: 10, Rows: 1000}, 1, 4}, // the rest
		{store.EraseBatch{Bulks: 10, Rows: 1000}, 0, 4}, // nothing left
	} {
		got, err := e.Store.EraseReports(ctx, time.Hour, step.batch)
		if err != nil || got.Bulks != step.bulks || got.Rows != int64(3*step.bulks) {
			t.Errorf("EraseReports(%+v): %+v, %v; want %d bulks", step.batch, got, err, step.bulks)
		}
		erased(make([]int, step.erased)...)
	}
}

// A failed bulk retried is pending again as it was submitted, its rows
// kept; its deliveries of the failure are superseded (one not made yet is
// given up, keeping no address), and its new end is told anew.
func TestRetryBulk(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	failed := e.failedBulk(t, 1)
	outbox, err := e.Store.PendingDeliveries(ctx, failed.ID)
	if err != nil || len(outbox) != 1 || outbox[0].Event != store.EventFailed {
		t.Fatalf("deliveries of the failure: %+v, %v", outbox, err)
	}

	// prepare's error leaves the bulk failed.
	errQueue := errors.New("the queue is out of reach")
	if _, err := e.Store.RetryBulk(ctx, failed.ID, func() error { return errQueue }); !errors.Is(err, errQueue) {
		t.Errorf("RetryBulk whose prepare fails: %v", err)
	}
	if b := e.bulk(t, failed.ID); b.Status != models.StatusFailed || b.FailureReason == nil {
		t.Errorf("bulk after a retry that could not prepare: %+v", b)
	}

	b, err := e.Store.RetryBulk(ctx, failed.ID, func() error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if b.Status != models.StatusPending || b.FailureReason != nil || b.StartedAt != nil || b.CompletedAt != nil ||
		!b.CreatedAt.Equal(failed.CreatedAt) || b.Count != 1 {
		t.Errorf("retried bulk: %+v", b)
	}
	if rows, _ := e.stored(t, b.ID); rows != 1 {
		t.Errorf("retried bulk has %d rows", rows)
	}
	var (
		abandoned, superseded, hasTarget bool
		lastError                        string
	)
	if err := e.Conn.QueryRow(ctx, `SELECT abandoned_at IS NOT NULL, superseded_at IS NOT NULL, target IS NOT NULL, last_error
		FROM deliveries WHERE id = $1`, outbox[0].ID).Scan(&abandoned, &superseded, &hasTarget, &lastError); err != nil {
		t.Fatal(err)
	}
	if !abandoned || !superseded || hasTarget || lastError != store.ReasonRetried {
		t.Errorf("the failure's email not made yet: abandoned %v, superseded %v, target kept %v, last error %q", abandoned, superseded, hasTarget, lastError)
	}

	// The new end has a delivery of its own, to the address of now.
	done := e.ImportBulk(t, b.ID)
	outbox, err = e.Store.PendingDeliveries(ctx, done.ID)
	if err != nil || len(outbox) != 1 || outbox[0].Event != store.EventCompleted || outbox[0].Target != "ops@acme.example" {
		t.Errorf("deliveries of the retried bulk's end: %+v, %v", outbox, err)
	}
	if done.Status != models.StatusCompleted || done.RowsSucceeded != 1 {
		t.Errorf("retried bulk after its import: %+v", done)
	}
	if n := e.Count(t, `SELECT count(*) FROM deliveries WHERE bulk_id = $1`, done.ID); n != 2 {
		t.Errorf("%d deliveries, want the failure's and the completion's", n)
	}

	// Only a failed bulk, with its rows.
	var notFailed store.ErrNotRetryable
	if _, err := e.Store.RetryBulk(ctx, done.ID, func() error { return nil }); !errors.As(err, &notFailed) || notFailed.Bulk.Status != models.StatusCompleted {
		t.Errorf("RetryBulk of a completed bulk: %v", err)
	}
	erased := e.failedBulk(t, 1)
	e.endedAgo(t, erased.ID, 2*time.Hour)
	if _, err := e.Store.EraseReports(ctx, time.Hour, store.DefaultEraseBatch); err != nil {
		t.Fatal(err)
	}
	var expired store.ErrReportExpired
	if _, err := e.Store.RetryBulk(ctx, erased.ID, func() error { t.Error("prepared the retry of an erased bulk"); return nil }); !errors.As(err, &expired) ||
		expired.Bulk.ReportExpiredAt == nil {
		t.Errorf("RetryBulk of a bulk whose rows were erased: %v", err)
	}
	if b := e.bulk(t, erased.ID); b.Status != models.StatusFailed {
		t.Errorf("erased bulk after a refused retry: %s", b.Status)
	}
	if _, err := e.Store.RetryBulk(ctx, uuid.New(), func() error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RetryBulk of no bulk: %v", err)
	}
}

// A delivery keeps its target (an address) only while it is to be made:
// made, given up after its retries, or given up at once, it has none; and
// the database refuses to end one that would keep it.
func TestEndedDeliveriesKeepNoTarget(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	delivery := func() store.Claim {
		t.Helper()
		b := e.submitAndImport(t, e.org.ID, testenv.SeedRows(t))
		outbox, err := e.Store.PendingDeliveries(ctx, b.ID)
		if err != nil || len(outbox) != 1 || outbox[0].Target != "ops@acme.example" {
			t.Fatalf("deliveries: %+v, %v", outbox, err)
		}
		c, err := e.Store.ClaimDelivery(ctx, outbox[0].ID, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	made, failed, refused, retried := delivery(), delivery(), delivery(), delivery()
	if err := e.Store.FinishDelivery(ctx, made, store.Attempt{StartedAt: time.Now()}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.AbandonDelivery(ctx, failed.Delivery.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.Store.GiveUpDelivery(ctx, refused, &store.Attempt{StartedAt: time.Now(), StatusCode: 550, Error: "550 5.1.1"}, "550 5.1.1"); err != nil {
		t.Fatal(err)
	}
	// A failed attempt with retries left keeps the address for the next one.
	if err := e.Store.FinishDelivery(ctx, retried, store.Attempt{StartedAt: time.Now(), Error: "451"}, false); err != nil {
		t.Fatal(err)
	}
	if n := e.Count(t, `SELECT count(*) FROM deliveries WHERE target IS NOT NULL`); n != 1 {
		t.Errorf("%d deliveries keep their target, want only the one to retry", n)
	}
	if n := e.Count(t, `SELECT count(*) FROM deliveries WHERE target IS NOT NULL AND id = $1`, retried.Delivery.ID); n != 1 {
		t.Errorf("the delivery to retry lost its target")
	}
	if n := e.Count(t, `SELECT count(*) FROM deliveries d JOIN delivery_attempts a ON a.delivery_id = d.id
		WHERE a.error LIKE '%@%' OR d.last_error LIKE '%@%'`); n != 0 {
		t.Errorf("%d attempts or deliveries name an address", n)
	}
	recent, err := e.Store.RecentDeliveries(ctx, e.org.ID, store.ChannelEmail, 10)
	if err != nil || len(recent) != 4 {
		t.Errorf("RecentDeliveries: %d, %v", len(recent), err)
	}
	if _, err := e.Conn.Exec(ctx, `UPDATE deliveries SET delivered_at = now() WHERE id = $1`, retried.Delivery.ID); err == nil {
		t.Errorf("the database let a delivery end with its target")
	}
}

// BenchmarkEraseReports2000Rows is one batch of the eraser at its default
// size: two finished 1000-row bulks, their 2000 submitted rows and 2000
// results deleted, in one transaction.
func BenchmarkEraseReports2000Rows(b *testing.B) {
	db := testenv.NewDatabase(b)
	org, err := db.Store.CreateOrganization(ctx, "Bench", "ops@bench.example")
	if err != nil {
		b.Fatal(err)
	}
	rows := benchRows(b, 0)
	for b.Loop() {
		b.StopTimer()
		for range 2 {
			bk, _, err := db.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: org.ID, Rows: rows})
			if err != nil {
				b.Fatal(err)
			}
			// Finished two days ago, with a result per row the size of the row.
			if _, err := db.Conn.Exec(ctx, `WITH done AS (UPDATE bulks SET status = 'completed', completed_at = now() - interval '2 days'
				WHERE id = $1 RETURNING id)
				INSERT INTO bulk_results (organization_id, bulk_id, row, status, result)
				SELECT r.organization_id, r.bulk_id, r.row, 'created', r.payload
				FROM bulk_rows r JOIN done ON done.id = r.bulk_id`, bk.ID); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		got, err := db.Store.EraseReports(ctx, time.Hour, store.DefaultEraseBatch)
		if err != nil || got.Bulks != 2 || got.Rows != 4000 {
			b.Fatalf("EraseReports: %+v, %v", got, err)
		}
	}
}

// The eraser's locks never hold up an import: with a batch's statements
// run and not yet committed (the bulk's row locked, its rows and results
// deleted), another bulk of the same organization imports to the end.
func TestEraseBatchDoesNotBlockImports(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	old := e.submitAndImport(t, e.org.ID, testenv.SeedRows(t))
	tx, err := e.Conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	for _, sql := range []string{
		`SELECT id FROM bulks WHERE id = $1 FOR NO KEY UPDATE`,
		`UPDATE bulks SET report_expired_at = clock_timestamp(), updated_at = clock_timestamp() WHERE id = $1`,
		`DELETE FROM bulk_rows WHERE bulk_id = $1`,
		`DELETE FROM bulk_results WHERE bulk_id = $1`,
	} {
		if _, err := tx.Exec(ctx, sql, old.ID); err != nil {
			t.Fatal(err)
		}
	}
	next, _, err := e.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: e.org.ID, Rows: testenv.SeedRows(t)})
	if err != nil {
		t.Fatal(err)
	}
	type imported struct {
		b   models.Bulk
		err error
	}
	done := make(chan imported, 1)
	go func() {
		b, err := bulksvc.New(e.Store, nil, slog.New(slog.DiscardHandler), nil).Import(ctx, next.ID)
		done <- imported{b, err}
	}()
	select {
	case got := <-done:
		if got.err != nil || got.b.Status != models.StatusCompleted {
			t.Errorf("import beside an erase batch: %+v, %v", got.b, got.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("an import waited for the eraser's transaction")
	}
}
