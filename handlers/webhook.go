package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/pkg/bulksvc"
)

// Webhooks serves the organization's endpoint: PUT, GET, DELETE
// /api/v1/webhook and POST /api/v1/webhook/rotate, each answering a
// bulksvc.WebhookView.
type Webhooks struct {
	webhooks *bulksvc.Webhooks
	timeout  time.Duration
}

// Put registers the organization's endpoint (its secret is answered once)
// or moves it to another URL.
func (h *Webhooks) Put(c echo.Context) error {
	if err := noQuery(c); err != nil {
		return err
	}
	raw, err := readBody(c, 16<<10)
	if err != nil {
		return err
	}
	var body struct {
		URL *string `json:"url"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return newError(http.StatusBadRequest, "body", `The request body must be a JSON object: {"url": "https://…"}.`)
	}
	if body.URL == nil || *body.URL == "" {
		return newError(http.StatusUnprocessableEntity, "url", "The url field is required.")
	}
	e, err := within(c.Request().Context(), h.timeout, func(ctx context.Context) (bulksvc.Endpoint, error) {
		e, _, err := h.webhooks.Put(ctx, organization(c).ID, *body.URL)
		return e, err
	})
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, envelope{e.View(false)})
}

// Rotate gives the endpoint a new secret, answered once.
func (h *Webhooks) Rotate(c echo.Context) error {
	if err := noQuery(c); err != nil {
		return err
	}
	e, err := within(c.Request().Context(), h.timeout, func(ctx context.Context) (bulksvc.Endpoint, error) {
		return h.webhooks.Rotate(ctx, organization(c).ID)
	})
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, envelope{e.View(false)})
}

// Get shows the endpoint and its recent deliveries with every attempt.
func (h *Webhooks) Get(c echo.Context) error {
	if err := noQuery(c); err != nil {
		return err
	}
	e, err := within(c.Request().Context(), h.timeout, func(ctx context.Context) (bulksvc.Endpoint, error) {
		return h.webhooks.Get(ctx, organization(c).ID)
	})
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, envelope{e.View(true)})
}

// Delete removes the endpoint.
func (h *Webhooks) Delete(c echo.Context) error {
	if err := noQuery(c); err != nil {
		return err
	}
	err := work(c.Request().Context(), h.timeout, func(ctx context.Context) error {
		return h.webhooks.Delete(ctx, organization(c).ID)
	})
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
