package client

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Webhook is the organization's endpoint. Secret is set only in the answer
// that made it (the first PutWebhook, RotateWebhookSecret): keep it to
// verify deliveries. Deliveries, the most recent first, come with
// GetWebhook.
type Webhook struct {
	URL        string            `json:"url"`
	Secret     string            `json:"secret,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
	Deliveries []WebhookDelivery `json:"deliveries,omitempty"`
}

// WebhookDelivery is one event sent (or being sent) to the endpoint.
type WebhookDelivery struct {
	ID          string           `json:"id"` // the webhook-id header the endpoint received
	BulkID      string           `json:"bulk_id"`
	Event       string           `json:"event"`  // bulk.completed, bulk.failed, bulk.canceled
	Status      string           `json:"status"` // pending, delivered, abandoned
	CreatedAt   time.Time        `json:"created_at"`
	DeliveredAt *time.Time       `json:"delivered_at"`
	Attempts    []WebhookAttempt `json:"attempts"`
}

// WebhookAttempt is one attempt of a delivery; StatusCode is nil when no
// answer came, Error nil when nothing went wrong.
type WebhookAttempt struct {
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	StatusCode *int      `json:"status_code"`
	DurationMS int64     `json:"duration_ms"`
	Error      *string   `json:"error"`
}

// WebhookEvent is the body the endpoint receives: Type is bulk.completed,
// bulk.failed or bulk.canceled, Data the bulk as GetBulk shows it.
type WebhookEvent struct {
	Type string `json:"type"`
	Data Bulk   `json:"data"`
}

// PutWebhook registers the organization's endpoint, or moves it to url
// (keeping its secret).
func (c *Client) PutWebhook(ctx context.Context, url string) (*Webhook, error) {
	body, err := json.Marshal(map[string]string{"url": url})
	if err != nil {
		return nil, err
	}
	return c.webhook(ctx, request{method: http.MethodPut, path: "/api/v1/webhook", body: body,
		contentType: "application/json", retry: retryAlways})
}

// GetWebhook reads the endpoint and its recent deliveries.
func (c *Client) GetWebhook(ctx context.Context) (*Webhook, error) {
	return c.webhook(ctx, request{method: http.MethodGet, path: "/api/v1/webhook", retry: retryAlways})
}

// RotateWebhookSecret gives the endpoint a new secret and answers it. A
// retry after a lost answer rotates again, which leaves the secret the
// last answer carries as the valid one.
func (c *Client) RotateWebhookSecret(ctx context.Context) (*Webhook, error) {
	return c.webhook(ctx, request{method: http.MethodPost, path: "/api/v1/webhook/rotate", retry: retryAlways})
}

// DeleteWebhook removes the endpoint.
func (c *Client) DeleteWebhook(ctx context.Context) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/api/v1/webhook", retry: retryIfUndone}, nil)
	return err
}

func (c *Client) webhook(ctx context.Context, req request) (*Webhook, error) {
	var out envelope[Webhook]
	if _, err := c.do(ctx, req, &out); err != nil {
		return nil, err
	}
	return &out.Data, nil
}
