package bulksvc

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/store"
)

// ErrNotRetryable is a retry of a bulk that did not fail; it carries the
// bulk.
type ErrNotRetryable = store.ErrNotRetryable

// Retry imports a failed bulk again, for an operator who has fixed what
// made it fail (`bulkd bulk retry`): the bulk goes back to pending, as it
// was submitted (the same rows, options and validation day), and its
// import is queued. When it ends, its organization is told again, by email
// and webhook: the deliveries of the failure stay as the record of what was
// told, and the new end has deliveries of its own.
//
// A bulk that is not failed is ErrNotRetryable, one whose rows retention
// erased ErrReportExpired (it cannot be imported again; its rows must be
// submitted again), an unknown id store.ErrNotFound.
func (s *Service) Retry(ctx context.Context, id uuid.UUID) (models.Bulk, error) {
	b, err := s.store.RetryBulk(ctx, id, func() error {
		if s.queue == nil {
			return nil
		}
		// The failed import's task, archived after its last retry, keeps
		// the bulk's task id taken, so that a new one would be refused as a
		// duplicate, and the reconciler would find the pending bulk's task
		// archived and fail it again. It goes first, while the bulk is still
		// failed: a queue out of reach leaves the bulk as it was.
		if err := s.queue.CancelImport(ctx, id); err != nil {
			return fmt.Errorf("clear the failed import's task: %w", err)
		}
		return nil
	})
	if err != nil {
		return models.Bulk{}, err
	}
	s.log.InfoContext(ctx, "bulk retried", "bulk_id", id, "organization_id", b.OrganizationID)
	if s.queue != nil {
		queueCtx, cancel := context.WithTimeout(ctx, EnqueueTimeout)
		defer cancel()
		if err := s.queue.EnqueueImport(queueCtx, id); err != nil {
			s.log.WarnContext(ctx, "retried bulk not queued; the reconciler will queue it", "bulk_id", id, "err", err)
		}
	}
	return b, nil
}
