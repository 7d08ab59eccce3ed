package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// BulkFinishedChannel is the Postgres notification channel on which every
// transaction that finishes a bulk (completed, failed, canceled) announces
// its id, so that API processes answer clients waiting for it without
// polling.
const BulkFinishedChannel = "bulkd_bulk_finished"

// notifyFinished announces, on BulkFinishedChannel, that tx finishes the
// bulk. Postgres delivers the notification when tx commits, and never if it
// rolls back, so a listener never hears of an end that did not happen.
func notifyFinished(ctx context.Context, tx pgx.Tx, id uuid.UUID) error {
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, BulkFinishedChannel, id.String()); err != nil {
		return fmt.Errorf("notify bulk finished: %w", err)
	}
	return nil
}

// ListenFinished listens on BulkFinishedChannel on a connection of its own,
// outside the pool, so that listening never takes a connection that requests
// need. It calls ready once listening (notifications sent before that are not
// heard) and finished with the id of every bulk that finishes, until ctx ends
// (it returns nil) or the connection breaks (it returns the error; the caller
// reconnects).
func (s *Store) ListenFinished(ctx context.Context, ready func(), finished func(uuid.UUID)) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return errorf("store: listen: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{BulkFinishedChannel}.Sanitize()); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return errorf("store: listen: %w", err)
	}
	ready()
	for {
		n, err := conn.WaitForNotification(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return errorf("store: listen: %w", err)
		}
		id, err := uuid.Parse(n.Payload)
		if err != nil {
			continue // not one of ours: every sender writes a bulk id
		}
		finished(id)
	}
}

// FinishedBulks returns those of ids whose bulk has finished (completed,
// failed or canceled), in one query whatever their number: the check that
// wakes waiters whose notification was lost.
func (s *Store) FinishedBulks(ctx context.Context, ids []uuid.UUID) ([]uuid.UUID, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT id FROM bulks WHERE id = ANY($1) AND NOT `+unfinished, ids)
	if err != nil {
		return nil, errorf("store: finished bulks: %w", err)
	}
	finished, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, errorf("store: finished bulks: %w", err)
	}
	return finished, nil
}
