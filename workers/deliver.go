package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/logattr"
	"github.com/bulkd/bulkd/pkg/mailer"
	"github.com/bulkd/bulkd/pkg/metrics"
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
	metrics  *metrics.Metrics
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
	Metrics *metrics.Metrics // counts the attempts; nil records nowhere
}

// NewDeliverer returns the delivery task handler.
func NewDeliverer(cfg DelivererConfig) *Deliverer {
	m := metrics.Or(cfg.Metrics)
	m.StartDeliveries(store.ChannelEmail, tasks.NotificationMaxRetry+1)
	m.StartDeliveries(store.ChannelWebhook, tasks.WebhookMaxRetry+1)
	return &Deliverer{store: cfg.Store, bulks: cfg.Bulks, mail: cfg.Mail, webhooks: cfg.Webhooks, reports: cfg.Reports,
		client: cfg.Webhooks.Policy().Client(), baseURL: cfg.BaseURL, log: cfg.Log, metrics: m}
}

// ProcessTask implements asynq.Handler. Every line logged in the delivery
// names it, its bulk and organization, and the attempt.
func (d *Deliverer) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParseDeliveryPayload(t)
	if err != nil {
		return err
	}
	ctx = taskContext(ctx, slog.Any("delivery_id", p.DeliveryID))
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
	ctx = logattr.With(ctx, slog.Any("bulk_id", claim.Bulk.ID), slog.Any("organization_id", claim.Bulk.OrganizationID))
	// The attempt starts with its claim (Postgres's clock), which is what
	// orders it against the webhook's disabling; its duration is this
	// process's own measure.
	start := time.Now()
	o := outcome{attempt: store.Attempt{StartedAt: claim.At}}
	switch claim.Delivery.Channel {
	case store.ChannelEmail:
		o.err = d.email(ctx, claim)
		o.attempt.StatusCode, _ = mailer.SMTPCode(o.err)
		if mailer.Permanent(o.err) {
			o.end = &ending{attempted: true, reason: o.err.Error(), failed: true}
		}
	case store.ChannelWebhook:
		o = d.webhook(ctx, claim, o)
	default:
		o.err = errors.Join(fmt.Errorf("no such channel %q", claim.Delivery.Channel), asynq.SkipRetry)
	}
	o.attempt.Duration = time.Since(start)
	if o.err != nil {
		o.attempt.Error = o.err.Error() // senders' errors carry no address, URL, body or secret
	}
	d.observe(ctx, claim.Delivery.Channel, o)
	// Record the outcome even if the task's context ended meanwhile.
	finishCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if o.end != nil {
		return d.giveUp(ctx, finishCtx, claim, o)
	}
	if o.err != nil {
		// Without this line a refused delivery retries silently for hours.
		d.log.WarnContext(ctx, "delivery not made", attrs(ctx, claim, o)...)
	}
	if err := d.store.FinishDelivery(finishCtx, claim, o.attempt, o.err == nil); err != nil {
		// ErrClaimLost included: another worker holds the delivery now.
		return fmt.Errorf("delivery %s: %w", claim.Delivery.ID, err)
	}
	if o.err != nil {
		return fmt.Errorf("delivery %s: %w", claim.Delivery.ID, o.err)
	}
	d.log.InfoContext(ctx, "delivery made", "delivery_id", claim.Delivery.ID, "bulk_id", claim.Bulk.ID,
		"organization_id", claim.Bulk.OrganizationID, "channel", claim.Delivery.Channel, "event", claim.Delivery.Event)
	return nil
}

// observe counts the attempt by its outcome: made, to retry, or the
// delivery's end without being made (for good, or out of retries).
func (d *Deliverer) observe(ctx context.Context, channel string, o outcome) {
	retried, _ := asynq.GetRetryCount(ctx)
	outcome := metrics.OutcomeDelivered
	switch {
	case o.end != nil:
		outcome = metrics.OutcomeAbandoned
	case o.err != nil:
		outcome = metrics.OutcomeRetrying
		if _, last := exhausted(ctx, o.err); last {
			outcome = metrics.OutcomeAbandoned
		}
	}
	d.metrics.ObserveDelivery(channel, outcome, retried+1)
}

// outcome is what an attempt at a delivery came to.
type outcome struct {
	attempt store.Attempt
	failure webhook.Failure // the kind of a webhook attempt's failure
	err     error           // nil: made
	end     *ending         // not nil: the delivery ends here, not made
}

// ending is a delivery that ends without being made, whatever retries it
// has left: an SMTP server refused the recipient or the message for good,
// the endpoint answered that it is gone, or the webhook was removed or
// disabled before this attempt.
type ending struct {
	attempted bool   // an attempt was made, to record
	reason    string // the delivery's last error, as its client reads it
	// failed marks a failure, said at ERROR and archived in the queue for its
	// admin to see, as opposed to the client's own doing (its endpoint said
	// it is gone, it removed the webhook), which was said once already, for
	// all its deliveries, and is only a DEBUG line here.
	failed bool
}

// errGivenUp marks the error of a task whose delivery was given up and said
// so: the error handler need not do either again.
var errGivenUp = errors.New("the delivery was given up")

// giveUp ends the claimed delivery as o.end says: its attempt recorded and
// the delivery abandoned with its reason, in one transaction. A failure is
// logged at ERROR, once, and returned so that the queue archives the task
// without retrying it (SkipRetry), marked so that the error handler does
// not abandon and log it a second time.
func (d *Deliverer) giveUp(ctx, finishCtx context.Context, claim store.Claim, o outcome) error {
	var attempt *store.Attempt
	if o.end.attempted {
		attempt = &o.attempt
	}
	if err := d.store.GiveUpDelivery(finishCtx, claim, attempt, o.end.reason); err != nil {
		return fmt.Errorf("delivery %s: %w", claim.Delivery.ID, err)
	}
	if !o.end.failed {
		d.log.DebugContext(ctx, "delivery given up", attrs(ctx, claim, o)...)
		return nil
	}
	d.log.ErrorContext(ctx, "delivery failed for good", attrs(ctx, claim, o)...) // as when its retries run out
	return fmt.Errorf("delivery %s: %w", claim.Delivery.ID, errors.Join(o.err, errGivenUp, asynq.SkipRetry))
}

// attrs are what a line about an attempt at the claimed delivery says: the
// ids, the channel, the attempt, the SMTP codes or the HTTP status and the
// kind of failure, never an address, a URL or a host.
func attrs(ctx context.Context, claim store.Claim, o outcome) []any {
	retried, _ := asynq.GetRetryCount(ctx)
	a := []any{"delivery_id", claim.Delivery.ID, "bulk_id", claim.Bulk.ID, "organization_id", claim.Bulk.OrganizationID,
		"channel", claim.Delivery.Channel, "attempt", retried + 1}
	switch claim.Delivery.Channel {
	case store.ChannelEmail:
		code, enhanced := mailer.SMTPCode(o.err)
		a = append(a, "smtp_code", code, "smtp_status", enhanced)
	case store.ChannelWebhook:
		a = append(a, "status_code", o.attempt.StatusCode, "failure", string(o.failure))
	}
	switch {
	case o.err != nil:
		a = append(a, "err", o.err)
	case o.end != nil:
		a = append(a, "reason", o.end.reason)
	}
	return a
}

// email sends the bulk's notification to the address recorded with the
// delivery.
func (d *Deliverer) email(ctx context.Context, claim store.Claim) error {
	b := claim.Bulk
	c := mailer.Completion{
		BulkID:              b.ID.String(),
		DeliveryID:          claim.Delivery.ID.String(),
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
// secrets of now (two while a rotation's overlap lasts), with the
// delivery's id as webhook-id. An endpoint removed or disabled since the
// event ends the delivery without an attempt, quietly: the client's DELETE
// or the endpoint's 410 said so already, once. A 410 Gone disables the
// endpoint.
func (d *Deliverer) webhook(ctx context.Context, claim store.Claim, o outcome) outcome {
	orgID := claim.Delivery.OrganizationID
	url, secrets, err := d.webhooks.Target(ctx, orgID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		o.end = &ending{reason: store.ReasonWebhookRemoved}
		return o
	case errors.Is(err, bulksvc.ErrWebhookDisabled):
		o.end = &ending{reason: store.ReasonWebhookDisabled}
		return o
	case err != nil:
		o.err = err
		return o
	}
	body, err := json.Marshal(Event{Type: claim.Delivery.Event, Data: bulksvc.NewView(claim.Bulk)})
	if err != nil {
		o.err = fmt.Errorf("encode event: %w", err)
		return o
	}
	a := webhook.Send(ctx, d.client, url, secrets, webhook.Message{ID: claim.Delivery.ID.String(), Timestamp: time.Now(), Body: body})
	o.attempt.StatusCode, o.failure, o.err = a.StatusCode, a.Failure, a.Err
	if a.StatusCode == http.StatusGone {
		if err := d.webhooks.Gone(ctx, orgID, url); err != nil {
			o.err = errors.Join(o.err, err) // retried: the next attempt gets 410 again
			return o
		}
		// Gone said it in its WARN line, once for every delivery it gave up.
		o.end = &ending{attempted: true, reason: bulksvc.ReasonGone}
	}
	return o
}

// Abandon gives a delivery up when its task has used its last retry, so that
// the reconciler does not queue it again, and says so at ERROR; a delivery
// that its task gave up itself (giveUp) was abandoned and logged already.
func (d *Deliverer) Abandon(ctx context.Context, t *asynq.Task, taskErr error, retried int) {
	p, err := tasks.ParseDeliveryPayload(t)
	if err != nil || errors.Is(taskErr, errGivenUp) {
		return
	}
	ctx = taskContext(context.WithoutCancel(ctx), slog.Any("delivery_id", p.DeliveryID))
	abandoned, err := d.store.AbandonDelivery(ctx, p.DeliveryID)
	if abandoned.ID != uuid.Nil {
		ctx = logattr.With(ctx, slog.Any("bulk_id", abandoned.BulkID), slog.Any("organization_id", abandoned.OrganizationID))
	}
	d.log.ErrorContext(ctx, "delivery failed for good", "delivery_id", p.DeliveryID, "type", t.Type(), "retried", retried, "err", taskErr)
	if err != nil {
		d.log.ErrorContext(ctx, "mark delivery abandoned", "delivery_id", p.DeliveryID, "err", err)
	}
}
