package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/webhook"
)

// Webhooks serves the organization's endpoint: PUT, GET, DELETE
// /api/v1/webhook and POST /api/v1/webhook/rotate.
type Webhooks struct {
	webhooks *bulksvc.Webhooks
	timeout  time.Duration
}

// webhookView is the endpoint as its client sees it; the secret only when it
// was made by this request.
type webhookView struct {
	URL        string          `json:"url"`
	Secret     string          `json:"secret,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
	Deliveries *[]deliveryView `json:"deliveries,omitempty"`
}

// deliveryView is one recent delivery and its attempts.
type deliveryView struct {
	ID          uuid.UUID     `json:"id"` // the webhook-id the endpoint received
	BulkID      uuid.UUID     `json:"bulk_id"`
	Event       string        `json:"event"`
	Status      string        `json:"status"` // pending, delivered, abandoned
	CreatedAt   time.Time     `json:"created_at"`
	DeliveredAt *time.Time    `json:"delivered_at"`
	Attempts    []attemptView `json:"attempts"`
}

type attemptView struct {
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	StatusCode *int      `json:"status_code"`
	DurationMS int64     `json:"duration_ms"`
	Error      *string   `json:"error"`
}

func newWebhookView(e bulksvc.Endpoint) webhookView {
	return webhookView{URL: e.URL, Secret: e.Secret, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
}

// Put registers the organization's endpoint (its secret is answered once)
// or moves it to another URL.
func (h *Webhooks) Put(c echo.Context) error {
	var body struct {
		URL *string `json:"url"`
	}
	if _, err := queryParams(c); err != nil {
		return err
	}
	raw, err := readBody(c, 16<<10)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return newError(http.StatusBadRequest, "body", `The request body must be a JSON object: {"url": "https://…"}.`)
	}
	if body.URL == nil || *body.URL == "" {
		return newError(http.StatusUnprocessableEntity, "url", "The url field is required.")
	}
	var e bulksvc.Endpoint
	err = work(c.Request().Context(), h.timeout, func(ctx context.Context) (err error) {
		e, _, err = h.webhooks.Put(ctx, organization(c).ID, *body.URL)
		return err
	})
	if err != nil {
		return webhookError(err)
	}
	return c.JSON(http.StatusOK, envelope{newWebhookView(e)})
}

// Rotate gives the endpoint a new secret, answered once.
func (h *Webhooks) Rotate(c echo.Context) error {
	if _, err := queryParams(c); err != nil {
		return err
	}
	var e bulksvc.Endpoint
	err := work(c.Request().Context(), h.timeout, func(ctx context.Context) (err error) {
		e, err = h.webhooks.Rotate(ctx, organization(c).ID)
		return err
	})
	if err != nil {
		return webhookError(err)
	}
	return c.JSON(http.StatusOK, envelope{newWebhookView(e)})
}

// Get shows the endpoint and its recent deliveries with every attempt.
func (h *Webhooks) Get(c echo.Context) error {
	if _, err := queryParams(c); err != nil {
		return err
	}
	var e bulksvc.Endpoint
	err := work(c.Request().Context(), h.timeout, func(ctx context.Context) (err error) {
		e, err = h.webhooks.Get(ctx, organization(c).ID)
		return err
	})
	if err != nil {
		return webhookError(err)
	}
	v := newWebhookView(e)
	deliveries := make([]deliveryView, len(e.Deliveries))
	for i, d := range e.Deliveries {
		dv := deliveryView{ID: d.ID, BulkID: d.BulkID, Event: d.Event, Status: "pending", CreatedAt: d.CreatedAt,
			DeliveredAt: d.DeliveredAt, Attempts: make([]attemptView, len(d.Attempts))}
		switch {
		case d.DeliveredAt != nil:
			dv.Status = "delivered"
		case d.AbandonedAt != nil:
			dv.Status = "abandoned"
		}
		for j, a := range d.Attempts {
			av := attemptView{Attempt: a.Number, At: a.StartedAt, DurationMS: a.Duration.Milliseconds()}
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
	return c.JSON(http.StatusOK, envelope{v})
}

// Delete removes the endpoint.
func (h *Webhooks) Delete(c echo.Context) error {
	if _, err := queryParams(c); err != nil {
		return err
	}
	err := work(c.Request().Context(), h.timeout, func(ctx context.Context) error {
		return h.webhooks.Delete(ctx, organization(c).ID)
	})
	if err != nil {
		return webhookError(err)
	}
	return c.NoContent(http.StatusNoContent)
}

// webhookError names the endpoint's own errors.
func webhookError(err error) error {
	var urlErr *webhook.URLError
	switch {
	case errors.As(err, &urlErr):
		return newError(http.StatusUnprocessableEntity, "url", urlErr.Reason)
	case errors.Is(err, bulksvc.ErrWebhooksOff):
		return newError(http.StatusNotImplemented, "webhook",
			"Webhooks are not configured on this server (its WEBHOOK_SECRET_KEY is not set).")
	case errors.Is(err, store.ErrNotFound):
		return newError(http.StatusNotFound, "webhook", "The organization has no webhook; PUT one first.")
	}
	return err
}
