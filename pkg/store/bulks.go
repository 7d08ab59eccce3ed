package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"gorm.io/gorm"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulk"
)

// unfinished is the SQL condition that a bulk has not finished, its status
// pending or processing: the negation of models.BulkStatus.Finished, in the
// one spelling every query uses (the partial indexes on unfinished bulks are
// defined by the same condition).
const unfinished = "status IN ('" + string(models.StatusPending) + "', '" + string(models.StatusProcessing) + "')"

// NewBulk is a submission to store: its organization, its options and its
// rows as submitted, and the client's idempotency key when it sent one.
type NewBulk struct {
	OrganizationID uuid.UUID
	Options        bulk.Options
	Rows           []json.RawMessage
	IdempotencyKey *IdempotencyKey
}

// IdempotencyKey names a submission that the client may send more than once:
// the client's Idempotency-Key and a hash of the request body.
type IdempotencyKey struct {
	Key         string
	RequestHash []byte
}

// IdempotencyKeyTTL is how long a key keeps answering with its first bulk.
const IdempotencyKeyTTL = 24 * time.Hour

// ErrIdempotencyKeyReused is returned when an organization sends a key it used
// within IdempotencyKeyTTL with a different request body.
var ErrIdempotencyKeyReused = errors.New("store: idempotency key used before with a different request")

// CreateBulk stores a submission, the bulk and every row as submitted, in one
// transaction: once it returns, the bulk survives any crash or queue outage.
//
// With an idempotency key, the first submission with the key creates the
// bulk; a later one with the same request hash returns that bulk and
// replayed true, creating nothing; a later one with another hash is
// ErrIdempotencyKeyReused. Concurrent submissions with one key wait for each
// other, so exactly one bulk is created.
func (s *Store) CreateBulk(ctx context.Context, nb NewBulk) (b models.Bulk, replayed bool, err error) {
	return s.createBulk(ctx, nb)
}

// errKeyTaken rolls back a submission whose idempotency key has a bulk already.
type errKeyTaken struct {
	bulkID      uuid.UUID
	requestHash []byte
}

func (errKeyTaken) Error() string { return "idempotency key taken" }

func (s *Store) createBulk(ctx context.Context, nb NewBulk) (models.Bulk, bool, error) {
	orgID, key, rows, opts := nb.OrganizationID, nb.IdempotencyKey, nb.Rows, nb.Options
	if opts.Mode == "" {
		opts.Mode = bulk.ModeCreate
	}
	id, err := uuid.NewV7() // time-ordered: new bulks land at the end of the index
	if err != nil {
		return models.Bulk{}, false, errorf("store: create bulk: id: %w", err)
	}
	b := models.Bulk{ID: id, OrganizationID: orgID, Status: models.StatusPending, Count: len(rows),
		Mode: string(opts.Mode), Atomic: opts.Atomic, ValidateOnly: opts.ValidateOnly, Strict: opts.Strict}
	err = withTx(ctx, s.pool.Begin, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx,
			`INSERT INTO bulks (id, organization_id, status, count, mode, atomic, validate_only, strict)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING created_at, updated_at`,
			pgUUID(b.ID), pgUUID(orgID), b.Status, b.Count, b.Mode, b.Atomic, b.ValidateOnly, b.Strict).Scan(&b.CreatedAt, &b.UpdatedAt)
		if err != nil {
			return fmt.Errorf("insert bulk: %w", err)
		}
		if key != nil {
			if err := claimIdempotencyKey(ctx, tx, orgID, *key, b.ID); err != nil {
				return err
			}
		}
		org := pgUUID(orgID)
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"bulk_rows"}, []string{"organization_id", "bulk_id", "row", "payload"},
			pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
				return []any{org, pgUUID(b.ID), i + 1, []byte(rows[i])}, nil
			}))
		if err != nil {
			return fmt.Errorf("copy rows: %w", err)
		}
		return nil
	})
	var taken errKeyTaken
	switch {
	case errors.As(err, &taken):
		if !bytes.Equal(taken.requestHash, key.RequestHash) {
			return models.Bulk{}, false, ErrIdempotencyKeyReused
		}
		first, err := s.Bulk(ctx, orgID, taken.bulkID)
		if err != nil {
			return models.Bulk{}, false, errorf("store: create bulk: replay: %w", err)
		}
		return first, true, nil
	case err != nil:
		return models.Bulk{}, false, errorf("store: create bulk: %w", err)
	}
	return b, false, nil
}

// claimIdempotencyKey records that key belongs to bulkID, or returns
// errKeyTaken when a live submission holds it. A concurrent transaction
// inserting the same key makes this one wait for its outcome.
func claimIdempotencyKey(ctx context.Context, tx pgx.Tx, orgID uuid.UUID, key IdempotencyKey, bulkID uuid.UUID) error {
	_, err := tx.Exec(ctx,
		`DELETE FROM idempotency_keys WHERE organization_id = $1 AND key = $2 AND created_at < now() - make_interval(secs => $3)`,
		pgUUID(orgID), key.Key, IdempotencyKeyTTL.Seconds())
	if err != nil {
		return fmt.Errorf("expire idempotency key: %w", err)
	}
	tag, err := tx.Exec(ctx,
		`INSERT INTO idempotency_keys (organization_id, key, request_hash, bulk_id) VALUES ($1, $2, $3, $4)
		 ON CONFLICT DO NOTHING`, pgUUID(orgID), key.Key, key.RequestHash, pgUUID(bulkID))
	if err != nil {
		return fmt.Errorf("insert idempotency key: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var taken errKeyTaken
	var first pgtype.UUID
	err = tx.QueryRow(ctx, `SELECT bulk_id, request_hash FROM idempotency_keys WHERE organization_id = $1 AND key = $2`,
		pgUUID(orgID), key.Key).Scan(&first, &taken.requestHash)
	if err != nil {
		return fmt.Errorf("read idempotency key: %w", err)
	}
	taken.bulkID = first.Bytes
	return taken
}

// DeleteExpiredIdempotencyKeys forgets keys older than IdempotencyKeyTTL and
// returns how many it deleted.
func (s *Store) DeleteExpiredIdempotencyKeys(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)`,
		IdempotencyKeyTTL.Seconds())
	if err != nil {
		return 0, errorf("store: delete expired idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Bulk returns one of the organization's bulks; another organization's bulk
// is ErrNotFound.
func (s *Store) Bulk(ctx context.Context, orgID, id uuid.UUID) (models.Bulk, error) {
	var b models.Bulk
	err := s.db.WithContext(ctx).Take(&b, "id = ? AND organization_id = ?", id, orgID).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return models.Bulk{}, ErrNotFound
	}
	if err != nil {
		return models.Bulk{}, errorf("store: get bulk: %w", err)
	}
	return b, nil
}

// RowErrors is the errors report of one failed row.
type RowErrors struct {
	Row     int
	Payload json.RawMessage // the row as submitted
	Errors  json.RawMessage // the sections of bulk.RowErrors
}

// BulkErrors returns the errors report of the organization's bulk: at most
// limit of its failed rows after row number after, in order. A bulk not
// imported yet has none.
func (s *Store) BulkErrors(ctx context.Context, orgID, id uuid.UUID, after, limit int) ([]RowErrors, error) {
	if _, err := s.Bulk(ctx, orgID, id); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx,
		`SELECT r.row, p.payload, r.errors FROM bulk_results r JOIN bulk_rows p USING (organization_id, bulk_id, row)
		 WHERE r.organization_id = $4 AND r.bulk_id = $1 AND r.status = 'failed' AND r.row > $2 ORDER BY r.row LIMIT $3`,
		pgUUID(id), after, limit, pgUUID(orgID))
	if err != nil {
		return nil, errorf("store: bulk errors: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (RowErrors, error) {
		var r RowErrors
		err := row.Scan(&r.Row, &r.Payload, &r.Errors)
		return r, err
	})
	if err != nil {
		return nil, errorf("store: bulk errors: %w", err)
	}
	return out, nil
}

// RowResult is the stored result of one row: JSON of a bulk.ResultRow.
type RowResult struct {
	Row    int
	Result json.RawMessage
}

// BulkResults returns the stored results of rows offset+1 to offset+limit of
// one of the organization's bulks, in order; another organization's bulk
// has none.
func (s *Store) BulkResults(ctx context.Context, orgID, id uuid.UUID, offset, limit int) ([]RowResult, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT row, result FROM bulk_results WHERE organization_id = $4 AND bulk_id = $1 AND row > $2 ORDER BY row LIMIT $3`,
		pgUUID(id), offset, limit, pgUUID(orgID))
	if err != nil {
		return nil, errorf("store: bulk results: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[RowResult])
	if err != nil {
		return nil, errorf("store: bulk results: %w", err)
	}
	return out, nil
}

// StartBulk marks a pending bulk as processing and returns it. A bulk already
// processing (a retry) is returned as it is; one that has finished is returned
// unchanged too, for the caller to skip.
func (s *Store) StartBulk(ctx context.Context, id uuid.UUID) (models.Bulk, error) {
	var b models.Bulk
	err := s.db.WithContext(ctx).Raw(
		`UPDATE bulks SET status = 'processing', started_at = coalesce(started_at, now()), updated_at = now()
		 WHERE id = ? AND `+unfinished+` RETURNING *`, id).Scan(&b).Error
	if err != nil {
		return models.Bulk{}, errorf("store: start bulk: %w", err)
	}
	if b.ID != uuid.Nil {
		return b, nil
	}
	if err := s.db.WithContext(ctx).Take(&b, "id = ?", id).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return models.Bulk{}, ErrNotFound
		}
		return models.Bulk{}, errorf("store: start bulk: %w", err)
	}
	return b, nil
}

// ImportTurn tells whether a bulk may import now: nil when no import of
// its organization holds the organization's lock (or the bulk is finished,
// and its import only queues again what it has left to deliver),
// ErrNotItsTurn when one does, ErrNotFound for no bulk. It takes no lock:
// Import tries the lock itself; this is the cheap look that lets a bulk give
// way before it is even marked processing. It returns the bulk's
// organization, which the import's log lines name.
func (s *Store) ImportTurn(ctx context.Context, id uuid.UUID) (orgID uuid.UUID, err error) {
	var (
		finished, locked bool
		org              pgtype.UUID
	)
	err = s.pool.QueryRow(ctx, `SELECT b.organization_id, NOT b.`+unfinished+`,
		EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
		        AND classid = $2::int4::oid AND objid = hashtext(b.organization_id::text)::oid)
		FROM bulks b WHERE b.id = $1`, pgUUID(id), importLockClass).Scan(&org, &finished, &locked)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return uuid.Nil, ErrNotFound
	case err != nil:
		return uuid.Nil, errorf("store: import turn of bulk %s: %w", id, err)
	case finished || !locked:
		return org.Bytes, nil
	}
	return org.Bytes, ErrNotItsTurn
}

// NextInLine returns the oldest unfinished bulks of the organization of
// bulk ended, at most n, oldest first: those whose turn to import comes
// next.
func (s *Store) NextInLine(ctx context.Context, ended uuid.UUID, n int) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, `SELECT n.id FROM bulks e JOIN bulks n ON n.organization_id = e.organization_id
		WHERE e.id = $1 AND n.`+unfinished+` ORDER BY n.created_at, n.id LIMIT $2`, pgUUID(ended), n)
	if err != nil {
		return nil, errorf("store: the bulks after %s: %w", ended, err)
	}
	ids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (uuid.UUID, error) {
		var id pgtype.UUID
		err := r.Scan(&id)
		return uuid.UUID(id.Bytes), err
	})
	if err != nil {
		return nil, errorf("store: the bulks after %s: %w", ended, err)
	}
	return ids, nil
}

// BulkRows returns the rows of one of the organization's bulks as
// submitted, in order.
func (s *Store) BulkRows(ctx context.Context, orgID, id uuid.UUID) ([]json.RawMessage, error) {
	rows, err := s.pool.Query(ctx, `SELECT payload FROM bulk_rows WHERE organization_id = $2 AND bulk_id = $1 ORDER BY row`,
		pgUUID(id), pgUUID(orgID))
	if err != nil {
		return nil, errorf("store: bulk rows: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[json.RawMessage])
	if err != nil {
		return nil, errorf("store: bulk rows: %w", err)
	}
	return out, nil
}

// Failed is what FailBulk did: whether it failed the bulk (false: the bulk
// had finished already, or does not exist), the bulk's organization (also
// of a bulk that had finished: the caller's lines name it) and, when it
// failed it, its mode.
type Failed struct {
	Failed         bool
	OrganizationID uuid.UUID
	Mode           string
}

// FailBulk marks an unfinished bulk as failed with a reason the client
// reads, and records the deliveries that tell of it, in one transaction.
func (s *Store) FailBulk(ctx context.Context, id uuid.UUID, reason string) (Failed, error) {
	var f Failed
	err := withTx(ctx, s.pool.Begin, func(tx pgx.Tx) error {
		var (
			dry   bool
			orgID uuid.UUID
		)
		err := tx.QueryRow(ctx,
			`UPDATE bulks SET status = 'failed', failure_reason = $2, completed_at = clock_timestamp(), updated_at = clock_timestamp()
			 WHERE id = $1 AND `+unfinished+` RETURNING organization_id, validate_only, mode`, pgUUID(id), reason).Scan(&orgID, &dry, &f.Mode)
		if errors.Is(err, pgx.ErrNoRows) { // finished already, or no such bulk
			err = tx.QueryRow(ctx, `SELECT organization_id FROM bulks WHERE id = $1`, pgUUID(id)).Scan(&orgID)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			f.OrganizationID = orgID
			return err
		}
		if err != nil {
			return err
		}
		if err := recordDeliveries(ctx, tx, orgID, id, EventFailed, !dry); err != nil {
			return err
		}
		f.Failed, f.OrganizationID = true, orgID
		return notifyFinished(ctx, tx, id)
	})
	if err != nil {
		return Failed{}, errorf("store: fail bulk: %w", err)
	}
	return f, nil
}

// ErrNotCancelable is returned by CancelBulk for a bulk that has finished:
// completed, failed or canceled already. It carries the bulk.
type ErrNotCancelable struct{ Bulk models.Bulk }

func (e ErrNotCancelable) Error() string {
	return "store: the bulk is " + string(e.Bulk.Status) + ", not cancelable"
}

// CancelBulk cancels one of the organization's bulks that is pending or
// processing, and records the webhook delivery that tells of it (canceled
// bulks are not emailed), in one transaction. An import running meanwhile
// sees the status at its next check and rolls back: the bulk is never
// completed after this.
func (s *Store) CancelBulk(ctx context.Context, orgID, id uuid.UUID) (models.Bulk, error) {
	var (
		b        models.Bulk
		canceled bool
	)
	err := withTx(ctx, s.pool.Begin, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx,
			`UPDATE bulks SET status = 'canceled', canceled_at = clock_timestamp(), completed_at = clock_timestamp(), updated_at = clock_timestamp()
			 WHERE id = $1 AND organization_id = $2 AND `+unfinished, pgUUID(id), pgUUID(orgID))
		if err != nil {
			return err
		}
		if canceled = tag.RowsAffected() == 1; canceled {
			if err := recordDeliveries(ctx, tx, orgID, id, EventCanceled, false); err != nil {
				return err
			}
			return notifyFinished(ctx, tx, id) // a client waiting on it is answered
		}
		return nil
	})
	if err != nil {
		return models.Bulk{}, errorf("store: cancel bulk: %w", err)
	}
	if b, err = s.Bulk(ctx, orgID, id); err != nil {
		return models.Bulk{}, err
	}
	if !canceled {
		return models.Bulk{}, ErrNotCancelable{Bulk: b} // finished, or canceled before
	}
	return b, nil
}

// UnfinishedBulks lists bulks pending or processing whose status has not
// changed for olderThan, oldest first: their import task may have been lost.
func (s *Store) UnfinishedBulks(ctx context.Context, olderThan time.Duration, limit int) ([]uuid.UUID, error) {
	return s.bulkIDs(ctx, "unfinished bulks", limit,
		unfinished+" AND updated_at < ?", time.Now().Add(-olderThan))
}

func (s *Store) bulkIDs(ctx context.Context, what string, limit int, where string, args ...any) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	err := s.db.WithContext(ctx).Model(&models.Bulk{}).Where(where, args...).
		Order("updated_at").Limit(limit).Pluck("id", &ids).Error
	if err != nil {
		return nil, errorf("store: %s: %w", what, err)
	}
	return ids, nil
}
