package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/bulkd/bulkd/models"
)

// Retention: the personal data a bulk brings (its rows as submitted, and
// the results and errors reports that repeat them) is kept for a while after
// the bulk ends, then erased, while the bulk's status, counts and options and
// the records it imported stay.

// ErrReportExpired is the answer for a bulk whose rows as submitted and
// results were erased, once the retention period after it ended had passed:
// its report (errors, results) cannot be read any more, nor can it be
// retried. It carries the bulk.
type ErrReportExpired struct{ Bulk models.Bulk }

func (e ErrReportExpired) Error() string {
	at := "?"
	if e.Bulk.ReportExpiredAt != nil {
		at = e.Bulk.ReportExpiredAt.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("store: the report of bulk %s expired on %s: its rows and results are erased", e.Bulk.ID, at)
}

// EraseBatch bounds one EraseReports transaction: at most Bulks bulks, and
// no more of them than fit in Rows submitted rows (each has its row and its
// result, so a batch deletes at most twice Rows table rows), except that a
// batch takes one bulk whatever its size.
type EraseBatch struct {
	Bulks int
	Rows  int
}

// DefaultEraseBatch is a batch that commits within tens of milliseconds,
// so that it never holds its locks or a transaction long: two 1000-row
// bulks erased (4000 table rows deleted) took 9 to 13 ms on the 2-core
// development machine (BenchmarkEraseReports2000Rows, 2026-12-03).
var DefaultEraseBatch = EraseBatch{Bulks: 200, Rows: 2000}

// Erased counts what EraseReports erased: the bulks whose report expired,
// and the rows (submitted rows and results) deleted with them.
type Erased struct {
	Bulks int
	Rows  int64
}

// EraseReports erases, in one short transaction, the rows as submitted and
// the stored results of the finished bulks that ended more than retention
// ago, oldest end first, as much as batch allows, and marks each bulk's
// report expired. The caller repeats it until it erases nothing.
//
// It takes no lock an import waits for: the bulks it erases have finished,
// so no import reads or writes their rows, and it locks their rows of bulks
// (skipping those another eraser or a retry holds) only until it commits.
// Several worker processes erasing at once share the work.
func (s *Store) EraseReports(ctx context.Context, retention time.Duration, batch EraseBatch) (Erased, error) {
	var out Erased
	err := withTx(ctx, s.pool.Begin, func(tx pgx.Tx) error {
		// FOR NO KEY UPDATE is the lock the UPDATE below takes anyway; unlike
		// FOR UPDATE it leaves the key share that a foreign key's check
		// takes free.
		rows, err := tx.Query(ctx, `SELECT organization_id, id, count FROM bulks
			WHERE report_expired_at IS NULL AND completed_at < now() - make_interval(secs => $1) AND NOT `+unfinished+`
			ORDER BY completed_at LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED`, retention.Seconds(), batch.Bulks)
		if err != nil {
			return fmt.Errorf("find expired bulks: %w", err)
		}
		type expired struct {
			OrganizationID, ID pgtype.UUID
			Count              int
		}
		found, err := pgx.CollectRows(rows, pgx.RowToStructByPos[expired])
		if err != nil {
			return fmt.Errorf("find expired bulks: %w", err)
		}
		var orgs, ids []pgtype.UUID
		for i, total := 0, 0; i < len(found) && (i == 0 || total+found[i].Count <= batch.Rows); i++ {
			orgs, ids, total = append(orgs, found[i].OrganizationID), append(ids, found[i].ID), total+found[i].Count
		}
		if len(ids) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE bulks SET report_expired_at = clock_timestamp(), updated_at = clock_timestamp()
			WHERE id = ANY($1)`, ids); err != nil {
			return fmt.Errorf("mark reports expired: %w", err)
		}
		// Each bulk's rows are one range of the table's key (organization_id,
		// bulk_id, row), probed pair by pair.
		for _, table := range []string{"bulk_rows", "bulk_results"} {
			tag, err := tx.Exec(ctx, `DELETE FROM `+table+` t USING unnest($1::uuid[], $2::uuid[]) AS e(organization_id, bulk_id)
				WHERE t.organization_id = e.organization_id AND t.bulk_id = e.bulk_id`, orgs, ids)
			if err != nil {
				return fmt.Errorf("erase %s: %w", table, err)
			}
			out.Rows += tag.RowsAffected()
		}
		out.Bulks = len(ids)
		return nil
	})
	if err != nil {
		return Erased{}, errorf("store: erase expired reports: %w", err)
	}
	return out, nil
}
