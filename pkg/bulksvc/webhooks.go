package bulksvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/webhook"
)

// RecentDeliveries is how many deliveries GET /api/v1/webhook shows.
const RecentDeliveries = 20

// SecretOverlap is how long a secret replaced by a rotation keeps signing
// deliveries beside the new one: a day for the organization to deploy the
// new secret to its receiver, during which a receiver that still has the
// old one verifies every delivery, as does one that has the new one.
const SecretOverlap = 24 * time.Hour

// ReasonGone is why an endpoint that answered 410 Gone is disabled, as its
// client reads it, and why its deliveries were given up.
const ReasonGone = "The endpoint answered 410 Gone: the webhook is disabled until it is PUT again."

// ErrWebhookDisabled is a delivery's endpoint that is disabled: nothing is
// sent to it until it is PUT again.
var ErrWebhookDisabled = errors.New("bulksvc: the webhook is disabled")

// ErrWebhooksOff is returned when the server has no key to seal secrets
// with (WEBHOOK_SECRET_KEY): webhooks cannot be registered nor sent.
var ErrWebhooksOff = errors.New("bulksvc: webhooks are not configured on this server")

// Webhooks manages the organizations' endpoints: one each, with a secret
// shown to the client only when it is made.
type Webhooks struct {
	store  *store.Store
	sealer *webhook.Sealer // nil: webhooks are off
	policy webhook.Policy
	log    *slog.Logger
}

// NewWebhooks returns the endpoints' manager; a nil sealer turns webhooks
// off.
func NewWebhooks(s *store.Store, sealer *webhook.Sealer, policy webhook.Policy, log *slog.Logger) *Webhooks {
	return &Webhooks{store: s, sealer: sealer, policy: policy, log: log}
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
	URL    string `json:"url"`
	Secret string `json:"secret,omitempty"`
	// PreviousSecretExpiresAt, while a secret replaced by a rotation still
	// signs beside the new one, is when it stops.
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
	// Disabled: the endpoint answered 410 Gone, at DisabledAt, for the
	// reason DisabledReason; no event is sent until it is PUT again.
	Disabled       bool            `json:"disabled"`
	DisabledAt     *time.Time      `json:"disabled_at,omitempty"`
	DisabledReason string          `json:"disabled_reason,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
	Deliveries     *[]DeliveryView `json:"deliveries,omitempty"`
}

// DeliveryView is one recent delivery and its attempts.
type DeliveryView struct {
	ID          uuid.UUID  `json:"id"` // the webhook-id the endpoint received
	BulkID      uuid.UUID  `json:"bulk_id"`
	Event       string     `json:"event"`
	Status      string     `json:"status"` // see DeliveryStatus
	CreatedAt   time.Time  `json:"created_at"`
	DeliveredAt *time.Time `json:"delivered_at"`
	// LastError is why it is not made yet, or why it was given up; null
	// once it is delivered.
	LastError *string       `json:"last_error"`
	Attempts  []AttemptView `json:"attempts"`
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
	DeliveryAbandoned = "abandoned" // given up: retries ran out, or the endpoint was removed or disabled
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
	v := WebhookView{URL: e.URL, Secret: e.Secret, Disabled: e.DisabledAt != nil, DisabledAt: e.DisabledAt,
		DisabledReason: e.DisabledReason, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
	if until, ok := previousUntil(e.Webhook, time.Now()); ok {
		v.PreviousSecretExpiresAt = &until
	}
	if !withDeliveries {
		return v
	}
	deliveries := make([]DeliveryView, len(e.Deliveries))
	for i, d := range e.Deliveries {
		dv := DeliveryView{ID: d.ID, BulkID: d.BulkID, Event: d.Event, Status: DeliveryStatus(d.Delivery), CreatedAt: d.CreatedAt,
			DeliveredAt: d.DeliveredAt, LastError: d.LastError, Attempts: make([]AttemptView, len(d.Attempts))}
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
// (keeping its secrets); an endpoint that was disabled is enabled again.
// The URL must pass the policy. Of concurrent first registrations one makes
// the endpoint and answers its secret; the others move it, as a later one
// would.
func (w *Webhooks) Put(ctx context.Context, orgID uuid.UUID, url string) (e Endpoint, created bool, err error) {
	if w.sealer == nil {
		return Endpoint{}, false, ErrWebhooksOff
	}
	if err := w.policy.CheckURL(ctx, url); err != nil {
		return Endpoint{}, false, err
	}
	e.Webhook, err = w.store.UpdateWebhook(ctx, orgID, url)
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
	e.Webhook, err = w.store.UpdateWebhook(ctx, orgID, url)
	return e, false, err
}

// Rotate gives the organization's endpoint a new secret. The one it
// replaces keeps signing beside it for SecretOverlap (deliveries carry
// both signatures), then the new one signs alone.
func (w *Webhooks) Rotate(ctx context.Context, orgID uuid.UUID) (Endpoint, error) {
	if w.sealer == nil {
		return Endpoint{}, ErrWebhooksOff
	}
	secret, sealed, err := w.newSecret()
	if err != nil {
		return Endpoint{}, err
	}
	hook, err := w.store.RotateWebhookSecret(ctx, orgID, sealed)
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
// are given up. The client's action is one INFO line, however many
// deliveries it gives up.
func (w *Webhooks) Delete(ctx context.Context, orgID uuid.UUID) error {
	abandoned, err := w.store.DeleteWebhook(ctx, orgID)
	if err != nil {
		return err
	}
	w.log.InfoContext(ctx, "webhook removed", "organization_id", orgID, "deliveries_abandoned", abandoned)
	return nil
}

// Target is where a delivery goes now: the endpoint's URL and the secrets
// that sign it, the current one first, then the one it replaced while that
// one is within SecretOverlap of the rotation. ErrWebhookDisabled when the
// endpoint is disabled, store.ErrNotFound when it was removed.
func (w *Webhooks) Target(ctx context.Context, orgID uuid.UUID) (url string, secrets []string, err error) {
	if w.sealer == nil {
		return "", nil, ErrWebhooksOff
	}
	hook, err := w.store.Webhook(ctx, orgID)
	if err != nil {
		return "", nil, err
	}
	if hook.DisabledAt != nil {
		return "", nil, ErrWebhookDisabled
	}
	sealed := [][]byte{hook.Secret}
	if _, ok := previousUntil(hook, time.Now()); ok {
		sealed = append(sealed, hook.PreviousSecret)
	}
	for _, s := range sealed {
		secret, err := w.sealer.Open(s)
		if err != nil {
			return "", nil, fmt.Errorf("bulksvc: webhook of organization %s: %w", orgID, err)
		}
		secrets = append(secrets, secret)
	}
	return hook.URL, secrets, nil
}

// previousUntil is when the secret a rotation replaced stops signing, and
// whether it still signs at now.
func previousUntil(hook store.Webhook, now time.Time) (time.Time, bool) {
	if hook.RotatedAt == nil || hook.PreviousSecret == nil {
		return time.Time{}, false
	}
	until := hook.RotatedAt.Add(SecretOverlap)
	return until, now.Before(until)
}

// Gone disables the organization's endpoint at url, which answered a
// delivery 410 Gone (its receiver says it is gone for good, RFC 9110
// section 15.5.11): its pending deliveries are given up and no event is
// recorded for it until it is PUT again, said in one WARN line (without the
// URL, which may carry a token). An endpoint moved since the attempt is left
// alone.
func (w *Webhooks) Gone(ctx context.Context, orgID uuid.UUID, url string) error {
	disabled, abandoned, err := w.store.DisableWebhook(ctx, orgID, url, ReasonGone)
	if err != nil {
		return err
	}
	if disabled {
		w.log.WarnContext(ctx, "webhook disabled: its endpoint answered 410 Gone", "organization_id", orgID,
			"deliveries_abandoned", abandoned)
	}
	return nil
}

// Policy is the endpoints' policy, for the deliverer's client.
func (w *Webhooks) Policy() webhook.Policy { return w.policy }
