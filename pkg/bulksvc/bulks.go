// Package bulksvc is bulkd's service layer: the policy of submitting and
// importing bulks, over the store and the task queue. The HTTP handlers, the
// queue workers, the tests and the benchmarks all call it, so the import
// pipeline is written once.
package bulksvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/store"
)

// EnqueueTimeout bounds how long a submission waits for the queue: the bulk
// is durable in Postgres by then, and the reconciler queues it if Redis is
// down or slow, so the client is not kept waiting on Redis.
const EnqueueTimeout = time.Second

// Queue is where the service queues work (workers/tasks.Queue in bulkd).
// Enqueuing a task that is queued already is success.
type Queue interface {
	EnqueueImport(ctx context.Context, bulkID uuid.UUID) error
	// EnqueueDelivery queues a delivery of the outbox on its channel.
	EnqueueDelivery(ctx context.Context, deliveryID uuid.UUID, channel string) error
	// CancelImport removes a bulk's import task if it waits in the queue.
	CancelImport(ctx context.Context, bulkID uuid.UUID) error
}

// Service submits and imports bulks.
type Service struct {
	store *store.Store
	queue Queue
	log   *slog.Logger
}

// New returns the service. A nil queue queues nothing, for tests and
// benchmarks that run the import step alone.
func New(s *store.Store, q Queue, log *slog.Logger) *Service {
	return &Service{store: s, queue: q, log: log}
}

// Submission is one POST /api/v1/bulk: the rows as submitted and, when the
// client sent an Idempotency-Key, the key and a hash of the request.
type Submission struct {
	OrganizationID uuid.UUID
	Options        bulk.Options
	Rows           []json.RawMessage
	IdempotencyKey *store.IdempotencyKey // its RequestHash covers the options and the body
}

// Submitted is the outcome of a submission. Replayed says that an earlier
// submission with the same idempotency key created the bulk.
type Submitted struct {
	Bulk     models.Bulk
	Replayed bool
}

// Submit stores a submission durably and queues its import. If the queue
// cannot be reached within EnqueueTimeout, the bulk stays pending for the
// reconciler and the submission still succeeds. A replay queues the bulk
// again, harmlessly, in case the first attempt could not.
func (s *Service) Submit(ctx context.Context, sub Submission) (Submitted, error) {
	var (
		out Submitted
		err error
	)
	out.Bulk, out.Replayed, err = s.store.CreateBulk(ctx, store.NewBulk(sub))
	if err != nil {
		return Submitted{}, err
	}
	if out.Bulk.Status == models.StatusPending && s.queue != nil {
		enqueueCtx, cancel := context.WithTimeout(ctx, EnqueueTimeout)
		defer cancel()
		if err := s.queue.EnqueueImport(enqueueCtx, out.Bulk.ID); err != nil {
			s.log.WarnContext(ctx, "bulk stored but not queued; the reconciler will queue it", "bulk_id", out.Bulk.ID, "err", err)
		}
	}
	return out, nil
}

// ErrNotFound is returned by Import for a bulk that does not exist: retrying
// cannot help.
var ErrNotFound = store.ErrNotFound

// Import is the import pipeline, the one entry point that workers, tests and
// benchmarks call: it marks the bulk processing, loads its rows, parses and
// validates them, plans and writes them with the results of every row in one
// transaction, completes the bulk and queues its notification. It is safe to
// run again on the same bulk, whether an earlier run was interrupted or
// finished: a finished bulk is left as it is (its notification is queued
// again, which the task id keeps single).
func (s *Service) Import(ctx context.Context, id uuid.UUID) (models.Bulk, error) {
	b, err := s.store.StartBulk(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return models.Bulk{}, fmt.Errorf("bulksvc: import %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return models.Bulk{}, fmt.Errorf("bulksvc: import %s: %w", id, err)
	}
	if b.Status == models.StatusProcessing {
		started := time.Now()
		raw, err := s.store.BulkRows(ctx, id)
		if err != nil {
			return models.Bulk{}, fmt.Errorf("bulksvc: import %s: %w", id, err)
		}
		opts := ImportOptions(b)
		res, err := s.store.Import(ctx, b, bulk.ParseRows(raw, opts), opts)
		if err != nil {
			return models.Bulk{}, fmt.Errorf("bulksvc: import %s: %w", id, err)
		}
		b = res.Bulk
		s.log.InfoContext(ctx, "bulk imported", "bulk_id", id, "organization_id", b.OrganizationID,
			"rows", b.Count, "rows_succeeded", b.RowsSucceeded, "rows_failed", b.RowsFailed,
			"duration_ms", time.Since(started).Milliseconds())
	}
	// A retry after a crash between commit and enqueue lands here too: queue
	// the deliveries of any finished bulk still to make; their task ids keep
	// them single.
	if b.Status.Finished() {
		if err := s.queueDeliveries(ctx, id); err != nil {
			return b, fmt.Errorf("bulksvc: import %s: %w", id, err)
		}
	}
	return b, nil
}

// queueDeliveries queues the tasks of a bulk's deliveries still to make.
func (s *Service) queueDeliveries(ctx context.Context, bulkID uuid.UUID) error {
	if s.queue == nil {
		return nil
	}
	pending, err := s.store.PendingDeliveries(ctx, bulkID)
	if err != nil {
		return err
	}
	for _, d := range pending {
		if err := s.queue.EnqueueDelivery(ctx, d.ID, d.Channel); err != nil {
			return err
		}
	}
	return nil
}

// ErrNotCancelable is a cancel of a bulk that has finished; it carries the
// bulk.
type ErrNotCancelable = store.ErrNotCancelable

// Cancel cancels one of the organization's bulks that is pending (its task
// leaves the queue) or processing (the import stops at its next check and
// rolls back, so that nothing of it is written). A bulk that has finished is
// ErrNotCancelable. The cancel is told by webhook, not by email; the bulk
// is never imported after it.
func (s *Service) Cancel(ctx context.Context, orgID, id uuid.UUID) (models.Bulk, error) {
	b, err := s.store.CancelBulk(ctx, orgID, id)
	if err != nil {
		return models.Bulk{}, err
	}
	if s.queue != nil {
		// Best effort within the enqueue timeout: an import task left in the
		// queue finds the bulk canceled and does nothing.
		queueCtx, cancel := context.WithTimeout(ctx, EnqueueTimeout)
		defer cancel()
		if err := s.queue.CancelImport(queueCtx, id); err != nil {
			s.log.WarnContext(ctx, "canceled bulk's task not removed from the queue; it will find the bulk canceled", "bulk_id", id, "err", err)
		}
		if err := s.queueDeliveries(queueCtx, id); err != nil {
			s.log.WarnContext(ctx, "canceled bulk's webhook not queued; the reconciler will queue it", "bulk_id", id, "err", err)
		}
	}
	return b, nil
}

// ImportOptions are the options a bulk's import runs with: those it was
// submitted with, and as the day that bounds its dates (a date of birth must
// be before it) the day it was submitted, so that every attempt of its
// import, whenever it runs, validates the same way.
func ImportOptions(b models.Bulk) bulk.Options {
	return bulk.Options{
		Mode: bulk.Mode(b.Mode), Atomic: b.Atomic, ValidateOnly: b.ValidateOnly, Strict: b.Strict,
		Today: b.CreatedAt.UTC().Truncate(24 * time.Hour),
	}
}

// Fail marks an unfinished bulk failed with a reason the client reads, and
// queues the deliveries that tell of it. A finished bulk is left as it is.
func (s *Service) Fail(ctx context.Context, id uuid.UUID, reason string) error {
	if err := s.store.FailBulk(ctx, id, reason); err != nil {
		return fmt.Errorf("bulksvc: fail %s: %w", id, err)
	}
	if err := s.queueDeliveries(ctx, id); err != nil {
		return fmt.Errorf("bulksvc: fail %s: %w", id, err)
	}
	return nil
}

// Bulk returns one of the organization's bulks; another organization's is
// store.ErrNotFound.
func (s *Service) Bulk(ctx context.Context, orgID, id uuid.UUID) (models.Bulk, error) {
	return s.store.Bulk(ctx, orgID, id)
}

// ErrorsPageSize is how many failed rows Errors reads at a time.
const ErrorsPageSize = 100

// Errors returns the errors report of the bulk's failed rows after row
// number after, in order, ErrorsPageSize at most: a caller reads a large
// report a page at a time, never all of it at once.
func (s *Service) Errors(ctx context.Context, orgID, id uuid.UUID, after int) ([]store.RowErrors, error) {
	return s.store.BulkErrors(ctx, orgID, id, after, ErrorsPageSize)
}

// ResultsChunk is how many rows' results a caller reads at a time.
const ResultsChunk = 100

// Results returns the stored results of rows offset+1 to offset+limit of a
// bulk the caller has read (Bulk) as the organization's, in order.
func (s *Service) Results(ctx context.Context, id uuid.UUID, offset, limit int) ([]store.RowResult, error) {
	return s.store.BulkResults(ctx, id, offset, limit)
}
