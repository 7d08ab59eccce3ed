// Package workers runs bulkd's queue tasks: the import of a bulk and the
// notification email, plus the reconciler that re-queues bulks whose task
// never reached Redis.
package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/workers/tasks"
)

// Notifications is where a finished bulk's email is queued.
type Notifications interface {
	EnqueueNotification(ctx context.Context, bulkID uuid.UUID) error
}

// Importer handles bulk:import tasks.
type Importer struct {
	store  *store.Store
	notify Notifications
	log    *slog.Logger
}

// NewImporter returns an import task handler.
func NewImporter(s *store.Store, notify Notifications, log *slog.Logger) *Importer {
	return &Importer{store: s, notify: notify, log: log}
}

// ProcessTask implements asynq.Handler.
func (im *Importer) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParsePayload(t)
	if err != nil {
		return err
	}
	return im.Import(ctx, p.BulkID)
}

// Import validates a bulk's rows, writes what is valid, records each row's
// errors, completes the bulk and queues its notification. It is safe to run
// again on the same bulk, whether it was interrupted or had finished.
func (im *Importer) Import(ctx context.Context, id uuid.UUID) error {
	b, err := im.store.StartBulk(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("import bulk %s: %w", id, errors.Join(err, asynq.SkipRetry))
	}
	if err != nil {
		return fmt.Errorf("import bulk %s: %w", id, err)
	}
	if b.Status == models.StatusProcessing {
		started := time.Now()
		raw, err := im.store.BulkRows(ctx, id)
		if err != nil {
			return fmt.Errorf("import bulk %s: %w", id, err)
		}
		rows := bulk.ParseRows(raw, time.Now().UTC().Truncate(24*time.Hour))
		res, err := im.store.Import(ctx, b, rows)
		if err != nil {
			return fmt.Errorf("import bulk %s: %w", id, err)
		}
		b = res.Bulk
		im.log.InfoContext(ctx, "bulk imported", "bulk_id", id, "organization_id", b.OrganizationID,
			"rows", b.Count, "rows_succeeded", b.RowsSucceeded, "rows_failed", b.RowsFailed,
			"duration_ms", time.Since(started).Milliseconds())
	}
	// A retry after a crash between commit and enqueue lands here too: queue
	// the notification of any finished bulk; its TaskID keeps it single.
	if b.Status == models.StatusCompleted || b.Status == models.StatusFailed {
		if err := im.notify.EnqueueNotification(ctx, id); err != nil {
			return fmt.Errorf("import bulk %s: %w", id, err)
		}
	}
	return nil
}

// ReasonRetriesExhausted is the failure_reason of a bulk whose import failed
// on every attempt.
const ReasonRetriesExhausted = "The import could not be completed after several attempts; please submit the bulk again."

// FailExhausted is the asynq error handler: when an import has used its last
// retry, the bulk is marked failed with a reason the client can read, and the
// organization is told.
func (im *Importer) FailExhausted(ctx context.Context, t *asynq.Task, taskErr error) {
	if t.Type() != tasks.TypeImport {
		return
	}
	retried, ok := exhausted(ctx, taskErr)
	if !ok {
		return
	}
	p, err := tasks.ParsePayload(t)
	if err != nil {
		return
	}
	im.log.ErrorContext(ctx, "bulk import failed for good", "bulk_id", p.BulkID, "retried", retried, "err", taskErr)
	ctx = context.WithoutCancel(ctx)
	if err := im.store.FailBulk(ctx, p.BulkID, ReasonRetriesExhausted); err != nil {
		im.log.ErrorContext(ctx, "mark bulk failed", "bulk_id", p.BulkID, "err", err)
		return
	}
	if err := im.notify.EnqueueNotification(ctx, p.BulkID); err != nil {
		im.log.ErrorContext(ctx, "queue failure notification", "bulk_id", p.BulkID, "err", err)
	}
}
