package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/mailer"
	"github.com/bulkd/bulkd/pkg/report"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/webhook"
	"github.com/bulkd/bulkd/workers/tasks"
)

// Leases: how long a worker may hold a delivery's claim before another may
// take it over; longer than the task's timeout, so that a slow but live
// sender is never doubled.
const (
	emailLease   = 2 * tasks.NotificationTimeout
	webhookLease = 2 * tasks.WebhookTimeout
)

// Deliverer handles the outbox's delivery tasks, one type per channel: each
// delivery is made once, whatever retries or duplicate tasks happen (it is
// claimed in Postgres first), and every attempt is recorded.
type Deliverer struct {
	store    *store.Store
	bulks    *bulksvc.Service
	mail     mailer.Sender
	webhooks *bulksvc.Webhooks
	reports  *report.Links
	client   *http.Client
	baseURL  string
	log      *slog.Logger
}

// DelivererConfig is what a Deliverer needs.
type DelivererConfig struct {
	Store    *store.Store
	Bulks    *bulksvc.Service // reads the errors an email shows
	Mail     mailer.Sender
	Webhooks *bulksvc.Webhooks
	// Reports signs the email's link to the report page; nil leaves the
	// link out (and the email points at the API instead).
	Reports *report.Links
	BaseURL string // prefixes the API's errors URL in the email
	Log     *slog.Logger
}

// NewDeliverer returns the delivery task handler.
func NewDeliverer(cfg DelivererConfig) *Deliverer {
	return &Deliverer{store: cfg.Store, bulks: cfg.Bulks, mail: cfg.Mail, webhooks: cfg.Webhooks, reports: cfg.Reports,
		client: cfg.Webhooks.Policy().Client(), baseURL: cfg.BaseURL, log: cfg.Log}
}

// ProcessTask implements asynq.Handler.
func (d *Deliverer) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParseDeliveryPayload(t)
	if err != nil {
		return err
	}
	lease := emailLease
	if t.Type() == tasks.TypeWebhookDelivery {
		lease = webhookLease
	}
	claim, err := d.store.ClaimDelivery(ctx, p.DeliveryID, lease)
	switch {
	case errors.Is(err, store.ErrDelivered):
		return nil // made already, or given up
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("delivery %s: %w", p.DeliveryID, errors.Join(err, asynq.SkipRetry))
	case err != nil:
		// ErrDeliveryBusy included: the claim's holder may have died, so
		// retry; after the lease this task takes over.
		return fmt.Errorf("delivery %s: %w", p.DeliveryID, err)
	}
	attempt := store.Attempt{StartedAt: time.Now()}
	var sendErr error
	switch claim.Delivery.Channel {
	case store.ChannelEmail:
		sendErr = d.email(ctx, claim)
	case store.ChannelWebhook:
		attempt.StatusCode, sendErr = d.webhook(ctx, claim)
	default:
		sendErr = errors.Join(fmt.Errorf("no such channel %q", claim.Delivery.Channel), asynq.SkipRetry)
	}
	attempt.Duration = time.Since(attempt.StartedAt)
	if sendErr != nil {
		attempt.Error = sendErr.Error() // senders' errors carry no address, body or secret
		// Without this line a refused delivery retries silently for hours.
		retried, _ := asynq.GetRetryCount(ctx)
		code, enhanced := mailer.SMTPCode(sendErr)
		d.log.WarnContext(ctx, "delivery not made", "delivery_id", claim.Delivery.ID, "bulk_id", claim.Bulk.ID,
			"organization_id", claim.Bulk.OrganizationID, "channel", claim.Delivery.Channel, "attempt", retried+1,
			"status_code", attempt.StatusCode, "smtp_code", code, "smtp_status", enhanced, "err", sendErr)
	}
	// Record the outcome even if the task's context ended meanwhile.
	finishCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := d.store.FinishDelivery(finishCtx, claim, attempt, sendErr == nil); err != nil {
		// ErrClaimLost included: another worker holds the delivery now.
		return fmt.Errorf("delivery %s: %w", claim.Delivery.ID, err)
	}
	if sendErr != nil {
		return fmt.Errorf("delivery %s: %w", claim.Delivery.ID, sendErr)
	}
	d.log.InfoContext(ctx, "delivery made", "delivery_id", claim.Delivery.ID, "bulk_id", claim.Bulk.ID,
		"organization_id", claim.Bulk.OrganizationID, "channel", claim.Delivery.Channel, "event", claim.Delivery.Event)
	return nil
}

// email sends the bulk's notification to the address recorded with the
// delivery.
func (d *Deliverer) email(ctx context.Context, claim store.Claim) error {
	b := claim.Bulk
	c := mailer.Completion{
		BulkID:              b.ID.String(),
		OrganizationName:    claim.Organization.Name,
		Status:              string(b.Status),
		Count:               b.Count,
		RowsSucceeded:       b.RowsSucceeded,
		RowsFailed:          b.RowsFailed,
		LocationsWritten:    b.LocationsWritten,
		CustomersWritten:    b.CustomersWritten,
		DebtAccountsWritten: b.DebtAccountsWritten,
		ErrorsURL:           d.baseURL + "/api/v1/bulk/" + b.ID.String() + "/errors",
	}
	if b.FailureReason != nil {
		c.Reason = *b.FailureReason
	}
	if d.reports != nil {
		now := time.Now()
		c.ReportURL, c.ReportExpires = d.reports.URL(b.OrganizationID, b.ID, now), d.reports.Expiry(now)
	}
	if b.RowsFailed > 0 {
		var err error
		if c.Errors, c.MoreErrors, err = d.bulks.FirstErrorLines(ctx, b.OrganizationID, b.ID, mailer.MaxErrors); err != nil {
			return fmt.Errorf("read the errors the email shows: %w", err)
		}
	}
	return d.mail.SendBulkNotification(ctx, claim.Delivery.Target, c)
}

// Event is the body of a webhook delivery: its type and the bulk as GET
// /api/v1/bulk/{id} shows it.
type Event struct {
	Type string       `json:"type"`
	Data bulksvc.View `json:"data"`
}

// webhook POSTs the event to the organization's endpoint, signed with its
// secret of now, with the delivery's id as webhook-id.
func (d *Deliverer) webhook(ctx context.Context, claim store.Claim) (status int, err error) {
	url, secret, err := d.webhooks.Target(ctx, claim.Delivery.OrganizationID)
	if errors.Is(err, store.ErrNotFound) {
		// The endpoint was removed after the event: nobody to tell.
		return 0, errors.Join(errors.New("the webhook was removed"), asynq.SkipRetry)
	}
	if err != nil {
		return 0, err
	}
	body, err := json.Marshal(Event{Type: claim.Delivery.Event, Data: bulksvc.NewView(claim.Bulk)})
	if err != nil {
		return 0, fmt.Errorf("encode event: %w", err)
	}
	a := webhook.Send(ctx, d.client, url, secret, webhook.Message{ID: claim.Delivery.ID.String(), Timestamp: time.Now(), Body: body})
	return a.StatusCode, a.Err
}

// Abandon gives a delivery up when its task has used its last retry, so that
// the reconciler does not queue it again, and says so at ERROR.
func (d *Deliverer) Abandon(ctx context.Context, t *asynq.Task, taskErr error, retried int) {
	p, err := tasks.ParseDeliveryPayload(t)
	if err != nil {
		return
	}
	d.log.ErrorContext(ctx, "delivery failed for good", "delivery_id", p.DeliveryID, "type", t.Type(), "retried", retried, "err", taskErr)
	if err := d.store.AbandonDelivery(context.WithoutCancel(ctx), p.DeliveryID); err != nil {
		d.log.ErrorContext(ctx, "mark delivery abandoned", "delivery_id", p.DeliveryID, "err", err)
	}
}
