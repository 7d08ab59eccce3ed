package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"gorm.io/gorm"

	"github.com/bulkd/bulkd/models"
)

// ErrNotRetryable is returned by RetryBulk for a bulk that did not fail:
// only a failed bulk can be retried. It carries the bulk.
type ErrNotRetryable struct{ Bulk models.Bulk }

func (e ErrNotRetryable) Error() string {
	return "store: the bulk is " + string(e.Bulk.Status) + "; only a failed bulk can be retried"
}

// ReasonRetried is the last error of a delivery that was still to be made
// when its bulk was retried: the news it carried no longer holds.
const ReasonRetried = "The bulk was retried before this was delivered."

// RetryBulk puts a failed bulk back to pending, as it was when it was
// submitted: its failure reason, start and end, counts and any stored
// result are cleared, its rows as submitted and its options (and the day
// its dates are checked against, its creation) stay. The deliveries that
// told of the failure are superseded: the retried bulk's end is told anew
// (see recordDeliveries), and one not made yet is given up.
//
// prepare runs in the transaction, once the bulk is known to be failed and
// its rows to be there, before anything changes: an error from it leaves
// the bulk as it was (the service clears the failed import's task from the
// queue there). A bulk that is not failed is ErrNotRetryable, one whose rows
// were erased ErrReportExpired, an unknown id ErrNotFound.
func (s *Store) RetryBulk(ctx context.Context, id uuid.UUID, prepare func() error) (models.Bulk, error) {
	err := withTx(ctx, s.pool.Begin, func(tx pgx.Tx) error {
		var (
			orgID   pgtype.UUID
			status  models.BulkStatus
			count   int
			expired pgtype.Timestamptz
			stored  int
		)
		// The bulk is named by its id alone: its organization is read first,
		// so that the row lock is taken by the whole key (a distributed
		// Postgres locks rows in single-shard statements). The lock keeps a
		// second retry, or the eraser, from acting on the bulk until this
		// one commits.
		err := tx.QueryRow(ctx, `SELECT organization_id FROM bulks WHERE id = $1`, pgUUID(id)).Scan(&orgID)
		if err == nil {
			err = tx.QueryRow(ctx, `SELECT status, count, report_expired_at,
				       (SELECT count(*) FROM bulk_rows r WHERE r.organization_id = b.organization_id AND r.bulk_id = b.id)
				  FROM bulks b WHERE organization_id = $1 AND id = $2 FOR NO KEY UPDATE`, orgID, pgUUID(id)).
				Scan(&status, &count, &expired, &stored)
		}
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return fmt.Errorf("read bulk: %w", err)
		case status != models.StatusFailed:
			return errNotRetryable
		case expired.Valid:
			return errRowsErased
		case stored != count:
			return fmt.Errorf("the bulk has %d of its %d rows", stored, count)
		}
		if err := prepare(); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE bulks SET status = 'pending', failure_reason = NULL, started_at = NULL, completed_at = NULL,
			        rows_succeeded = 0, rows_failed = 0, rows_created = 0, rows_updated = 0, rows_unchanged = 0,
			        locations_written = 0, customers_written = 0, debt_accounts_written = 0, rolled_back = false,
			        updated_at = clock_timestamp()
			 WHERE organization_id = $2 AND id = $1`, pgUUID(id), orgID); err != nil {
			return fmt.Errorf("reset bulk: %w", err)
		}
		// A failed import wrote nothing (it is one transaction), but a
		// result left by anything else would be taken for the new attempt's.
		if _, err := tx.Exec(ctx, `DELETE FROM bulk_results WHERE organization_id = $2 AND bulk_id = $1`, pgUUID(id), orgID); err != nil {
			return fmt.Errorf("clear results: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE deliveries SET superseded_at = clock_timestamp(), claimed_at = NULL, target = NULL,
			        abandoned_at = CASE WHEN delivered_at IS NULL THEN coalesce(abandoned_at, clock_timestamp()) ELSE abandoned_at END,
			        last_error = CASE WHEN delivered_at IS NULL AND abandoned_at IS NULL THEN $2 ELSE last_error END
			 WHERE organization_id = $3 AND bulk_id = $1 AND superseded_at IS NULL`, pgUUID(id), ReasonRetried, orgID); err != nil {
			return fmt.Errorf("supersede deliveries: %w", err)
		}
		return nil
	})
	var b models.Bulk
	switch {
	case errors.Is(err, errNotRetryable), errors.Is(err, errRowsErased), err == nil:
		if err := s.db.WithContext(ctx).Take(&b, "id = ?", id).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return models.Bulk{}, ErrNotFound
			}
			return models.Bulk{}, errorf("store: retry bulk: reload: %w", err)
		}
	case errors.Is(err, ErrNotFound):
		return models.Bulk{}, ErrNotFound
	default:
		return models.Bulk{}, errorf("store: retry bulk %s: %w", id, err)
	}
	switch {
	case errors.Is(err, errNotRetryable):
		return models.Bulk{}, ErrNotRetryable{Bulk: b}
	case errors.Is(err, errRowsErased):
		return models.Bulk{}, ErrReportExpired{Bulk: b}
	}
	return b, nil
}

// Reasons a retry rolls back, named with the bulk once it is read again.
var (
	errNotRetryable = errors.New("not failed")
	errRowsErased   = errors.New("rows erased")
)
