package bulksvc

import (
	"context"
	"errors"
	"fmt"

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
