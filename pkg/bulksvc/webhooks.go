package bulksvc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/webhook"
)

// RecentDeliveries is how many deliveries GET /api/v1/webhook shows.
const RecentDeliveries = 20

// ErrWebhooksOff is returned when the server has no key to seal secrets
// with (WEBHOOK_SECRET_KEY): webhooks cannot be registered nor sent.
var ErrWebhooksOff = errors.New("bulksvc: webhooks are not configured on this server")

// Webhooks manages the organizations' endpoints: one each, with a secret
// shown to the client only when it is made.
type Webhooks struct {
	store  *store.Store
	sealer *webhook.Sealer // nil: webhooks are off
	policy webhook.Policy
}

// NewWebhooks returns the endpoints' manager; a nil sealer turns webhooks
// off.
func NewWebhooks(s *store.Store, sealer *webhook.Sealer, policy webhook.Policy) *Webhooks {
	return &Webhooks{store: s, sealer: sealer, policy: policy}
}

// Endpoint is an organization's endpoint as its client sees it. Secret is
// set only when it was made by this call.
type Endpoint struct {
	store.Webhook
	Secret     string
	Deliveries []store.DeliveryWithAttempts
}

// WebhookView is an endpoint as its client sees it: the secret only when
// the request made it, the recent deliveries only when it asked for them.
type WebhookView struct {
	URL        string          `json:"url"`
	Secret     string          `json:"secret,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
	Deliveries *[]DeliveryView `json:"deliveries,omitempty"`
}

// DeliveryView is one recent delivery and its attempts.
type DeliveryView struct {
	ID          uuid.UUID     `json:"id"` // the webhook-id the endpoint received
	BulkID      uuid.UUID     `json:"bulk_id"`
	Event       string        `json:"event"`
	Status      string        `json:"status"` // see DeliveryStatus
	CreatedAt   time.Time     `json:"created_at"`
	DeliveredAt *time.Time    `json:"delivered_at"`
	Attempts    []AttemptView `json:"attempts"`
}

// AttemptView is one attempt of a delivery; StatusCode is null when no
// answer came, Error when it was delivered.
type AttemptView struct {
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	StatusCode *int      `json:"status_code"`
	DurationMS int64     `json:"duration_ms"`
	Error      *string   `json:"error"`
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"   // still to make, or being retried
	DeliveryDelivered = "delivered" // the endpoint took it
	DeliveryAbandoned = "abandoned" // given up: retries ran out, or the endpoint was removed
)

// DeliveryStatus is where a delivery stands.
func DeliveryStatus(d store.Delivery) string {
	switch {
	case d.DeliveredAt != nil:
		return DeliveryDelivered
	case d.AbandonedAt != nil:
		return DeliveryAbandoned
	}
	return DeliveryPending
}

// View shows the endpoint; withDeliveries, its recent deliveries too.
func (e Endpoint) View(withDeliveries bool) WebhookView {
	v := WebhookView{URL: e.URL, Secret: e.Secret, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
	if !withDeliveries {
		return v
	}
	deliveries := make([]DeliveryView, len(e.Deliveries))
	for i, d := range e.Deliveries {
		dv := DeliveryView{ID: d.ID, BulkID: d.BulkID, Event: d.Event, Status: DeliveryStatus(d.Delivery), CreatedAt: d.CreatedAt,
			DeliveredAt: d.DeliveredAt, Attempts: make([]AttemptView, len(d.Attempts))}
		for j, a := range d.Attempts {
			av := AttemptView{Attempt: a.Number, At: a.StartedAt, DurationMS: a.Duration.Milliseconds()}
			if a.StatusCode != 0 {
				av.StatusCode = &a.StatusCode
			}
			if a.Error != "" {
				av.Error = &a.Error
			}
			dv.Attempts[j] = av
		}
		deliveries[i] = dv
	}
	v.Deliveries = &deliveries
	return v
}

// Put registers the organization's endpoint, or moves it to another URL
// (keeping its secret). The URL must pass the policy. Of concurrent first
// registrations one makes the endpoint and answers its secret; the others
// move it, as a later one would.
func (w *Webhooks) Put(ctx context.Context, orgID uuid.UUID, url string) (e Endpoint, created bool, err error) {
	if w.sealer == nil {
		return Endpoint{}, false, ErrWebhooksOff
	}
	if err := w.policy.CheckURL(ctx, url); err != nil {
		return Endpoint{}, false, err
	}
	e.Webhook, err = w.store.UpdateWebhook(ctx, orgID, url, nil)
	if !errors.Is(err, store.ErrNotFound) {
		return e, false, err
	}
	secret, sealed, err := w.newSecret()
	if err != nil {
		return Endpoint{}, false, err
	}
	if e.Webhook, created, err = w.store.CreateWebhook(ctx, orgID, url, sealed); err != nil || created {
		e.Secret = secret
		return e, created, err
	}
	e.Webhook, err = w.store.UpdateWebhook(ctx, orgID, url, nil)
	return e, false, err
}

// Rotate gives the organization's endpoint a new secret; the old one signs
// nothing from now on.
func (w *Webhooks) Rotate(ctx context.Context, orgID uuid.UUID) (Endpoint, error) {
	if w.sealer == nil {
		return Endpoint{}, ErrWebhooksOff
	}
	secret, sealed, err := w.newSecret()
	if err != nil {
		return Endpoint{}, err
	}
	hook, err := w.store.UpdateWebhook(ctx, orgID, "", sealed)
	if err != nil {
		return Endpoint{}, err
	}
	return Endpoint{Webhook: hook, Secret: secret}, nil
}

// newSecret makes a secret and seals it for storage.
func (w *Webhooks) newSecret() (secret string, sealed []byte, err error) {
	if secret, err = webhook.NewSecret(); err != nil {
		return "", nil, err
	}
	sealed, err = w.sealer.Seal(secret)
	return secret, sealed, err
}

// Get returns the organization's endpoint and its recent deliveries, each
// with its attempts.
func (w *Webhooks) Get(ctx context.Context, orgID uuid.UUID) (Endpoint, error) {
	hook, err := w.store.Webhook(ctx, orgID)
	if err != nil {
		return Endpoint{}, err
	}
	recent, err := w.store.RecentDeliveries(ctx, orgID, store.ChannelWebhook, RecentDeliveries)
	return Endpoint{Webhook: hook, Deliveries: recent}, err
}

// Delete removes the organization's endpoint; its deliveries not made yet
// are given up.
func (w *Webhooks) Delete(ctx context.Context, orgID uuid.UUID) error {
	return w.store.DeleteWebhook(ctx, orgID)
}

// Target is where a delivery goes now: the endpoint's URL and its secret.
func (w *Webhooks) Target(ctx context.Context, orgID uuid.UUID) (url, secret string, err error) {
	if w.sealer == nil {
		return "", "", ErrWebhooksOff
	}
	hook, err := w.store.Webhook(ctx, orgID)
	if err != nil {
		return "", "", err
	}
	if secret, err = w.sealer.Open(hook.Secret); err != nil {
		return "", "", fmt.Errorf("bulksvc: webhook of organization %s: %w", orgID, err)
	}
	return hook.URL, secret, nil
}

// Policy is the endpoints' policy, for the deliverer's client.
func (w *Webhooks) Policy() webhook.Policy { return w.policy }
