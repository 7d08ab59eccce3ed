// Package workers runs bulkd's queue tasks: the import of a bulk and the
// notification email, plus the reconciler that re-queues bulks whose task
// never reached Redis.
package workers

import (
	"context"
	"errors"
	"log/slog"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/logattr"
	"github.com/bulkd/bulkd/workers/tasks"
)

// Importer handles bulk:import tasks: each runs the service's import
// pipeline.
type Importer struct {
	bulks *bulksvc.Service
	log   *slog.Logger
}

// NewImporter returns an import task handler.
func NewImporter(svc *bulksvc.Service, log *slog.Logger) *Importer {
	return &Importer{bulks: svc, log: log}
}

// ProcessTask implements asynq.Handler. Every line logged in the import
// names the bulk and the attempt (and, once the service has read it, the
// organization).
func (im *Importer) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParsePayload(t)
	if err != nil {
		return err
	}
	return im.Import(taskContext(ctx, slog.Any("bulk_id", p.BulkID)), p.BulkID)
}

// taskContext is the context of a task's run whose log lines name what it
// is about (attrs) and the task's attempt, counted from 1.
func taskContext(ctx context.Context, attrs ...slog.Attr) context.Context {
	retried, _ := asynq.GetRetryCount(ctx)
	return logattr.With(ctx, append(attrs, slog.Int("attempt", retried+1))...)
}

// Import runs the import of a bulk; a bulk that does not exist is not
// retried.
func (im *Importer) Import(ctx context.Context, id uuid.UUID) error {
	_, err := im.bulks.Import(ctx, id)
	switch {
	case errors.Is(err, bulksvc.ErrNotFound):
		return errors.Join(err, asynq.SkipRetry)
	case errors.Is(err, bulksvc.ErrNotItsTurn):
		// Back to the queue, without holding this slot and without counting
		// as a retry: another import of the organization comes first.
		return errors.Join(err, tasks.ErrGaveWay)
	}
	return err
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
	ctx = taskContext(context.WithoutCancel(ctx), slog.Any("bulk_id", p.BulkID))
	f, err := im.bulks.Fail(ctx, p.BulkID, ReasonRetriesExhausted)
	if f.OrganizationID != uuid.Nil {
		ctx = logattr.With(ctx, slog.Any("organization_id", f.OrganizationID))
	}
	im.log.ErrorContext(ctx, "bulk import failed for good", "bulk_id", p.BulkID, "retried", retried, "err", taskErr)
	if err != nil {
		im.log.ErrorContext(ctx, "mark bulk failed", "bulk_id", p.BulkID, "err", err)
	}
}
