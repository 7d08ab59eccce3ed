package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/pkg/mailer"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/workers/tasks"
)

// notifyLease is how long a worker may hold a notification claim before
// another may take it over: longer than the task's timeout, so a slow but
// live sender is never doubled.
const notifyLease = 2 * tasks.NotificationTimeout

// Notifier handles email:bulk_completed tasks: one email per finished bulk,
// whatever retries or duplicate tasks happen.
type Notifier struct {
	store   *store.Store
	sender  mailer.Sender
	baseURL string
	log     *slog.Logger
}

// NewNotifier returns a notification task handler. baseURL prefixes the
// errors URL in the email.
func NewNotifier(s *store.Store, sender mailer.Sender, baseURL string, log *slog.Logger) *Notifier {
	return &Notifier{store: s, sender: sender, baseURL: baseURL, log: log}
}

// ProcessTask implements asynq.Handler.
func (n *Notifier) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParsePayload(t)
	if err != nil {
		return err
	}
	claim, err := n.store.ClaimNotification(ctx, p.BulkID, notifyLease)
	switch {
	case errors.Is(err, store.ErrAlreadyNotified), errors.Is(err, store.ErrNotFinished), errors.Is(err, store.ErrNotNotified):
		return nil // sent already; or not finished, and finishing queues it again
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("notify bulk %s: %w", p.BulkID, errors.Join(err, asynq.SkipRetry))
	case err != nil:
		// ErrNotificationBusy included: the claim's holder may have died, so
		// retry; after the lease this task takes over.
		return fmt.Errorf("notify bulk %s: %w", p.BulkID, err)
	}
	b := claim.Bulk
	c := mailer.Completion{
		BulkID:              b.ID.String(),
		OrganizationName:    claim.Organization.Name,
		Status:              b.Status,
		Count:               b.Count,
		RowsSucceeded:       b.RowsSucceeded,
		RowsFailed:          b.RowsFailed,
		LocationsWritten:    b.LocationsWritten,
		CustomersWritten:    b.CustomersWritten,
		DebtAccountsWritten: b.DebtAccountsWritten,
		ErrorsURL:           n.baseURL + "/api/v1/bulk/" + b.ID.String() + "/errors",
	}
	if b.FailureReason != nil {
		c.Reason = *b.FailureReason
	}
	sendErr := n.sender.SendBulkNotification(ctx, claim.Organization.NotifyEmail, c)
	if sendErr != nil {
		// Without this line a refused recipient retries silently for hours.
		// The sender's error never carries the address; the SMTP codes say
		// why (5xx: the server will keep refusing until the address is fixed).
		retried, _ := asynq.GetRetryCount(ctx)
		code, enhanced := mailer.SMTPCode(sendErr)
		n.log.WarnContext(ctx, "bulk notification not delivered",
			"bulk_id", b.ID, "organization_id", b.OrganizationID, "attempt", retried+1,
			"smtp_code", code, "smtp_status", enhanced, "err", sendErr)
	}
	// Record the outcome even if the task's context ended meanwhile.
	finishCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := n.store.FinishNotification(finishCtx, b.ID, sendErr == nil); err != nil {
		return fmt.Errorf("notify bulk %s: %w", b.ID, err)
	}
	if sendErr != nil {
		return fmt.Errorf("notify bulk %s: %w", b.ID, sendErr)
	}
	n.log.InfoContext(ctx, "bulk notification sent", "bulk_id", b.ID, "organization_id", b.OrganizationID)
	return nil
}
