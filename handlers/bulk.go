package handlers

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/workers/tasks"
)

// enqueueTimeout bounds how long a submission waits for Redis.
const enqueueTimeout = time.Second

// Bulks serves the bulk endpoints.
type Bulks struct {
	store        *store.Store
	queue        *tasks.Queue
	maxBodyBytes int64
	log          *slog.Logger
}

// acceptedView is the answer to a submission.
type acceptedView struct {
	BulkID uuid.UUID `json:"bulk_id"`
	Count  int       `json:"count"`
	Status string    `json:"status"`
}

// bulkView is a bulk as GET /api/v1/bulk/{id} shows it; times not reached
// yet are null.
type bulkView struct {
	acceptedView
	RowsSucceeded int        `json:"rows_succeeded"`
	RowsFailed    int        `json:"rows_failed"`
	FailureReason *string    `json:"failure_reason,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	StartedAt     *time.Time `json:"started_at"`
	CompletedAt   *time.Time `json:"completed_at"`
}

type envelope struct {
	Data any `json:"data"`
}

// Create stores a submission and queues its import: 202 with the bulk id.
func (h *Bulks) Create(c echo.Context) error {
	body := http.MaxBytesReader(c.Response(), c.Request().Body, h.maxBodyBytes)
	rows, err := bulk.DecodeSubmission(body)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	org := organization(c)
	b, err := h.store.CreateBulk(ctx, org.ID, rows)
	if err != nil {
		return err
	}
	// The bulk is durable now; if Redis is down or slow, the reconciler queues
	// it later, so the client is not kept waiting on Redis.
	enqueueCtx, cancel := context.WithTimeout(ctx, enqueueTimeout)
	defer cancel()
	if err := h.queue.EnqueueImport(enqueueCtx, b.ID); err != nil {
		h.log.WarnContext(ctx, "bulk stored but not queued; the reconciler will queue it", "bulk_id", b.ID, "err", err)
	}
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/bulk/"+b.ID.String())
	return c.JSON(http.StatusAccepted, envelope{acceptedView{BulkID: b.ID, Count: b.Count, Status: b.Status}})
}

// Get shows one bulk's progress.
func (h *Bulks) Get(c echo.Context) error {
	id, err := bulkID(c)
	if err != nil {
		return err
	}
	b, err := h.store.Bulk(c.Request().Context(), organization(c).ID, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, envelope{bulkView{
		acceptedView:  acceptedView{BulkID: b.ID, Count: b.Count, Status: b.Status},
		RowsSucceeded: b.RowsSucceeded, RowsFailed: b.RowsFailed, FailureReason: b.FailureReason,
		CreatedAt: b.CreatedAt, StartedAt: b.StartedAt, CompletedAt: b.CompletedAt,
	}})
}

type rowErrorsView struct {
	ID      int             `json:"id"`
	Payload json.RawMessage `json:"payload"`
	Errors  json.RawMessage `json:"errors"`
}

// Errors lists the failed rows of a bulk with their messages.
func (h *Bulks) Errors(c echo.Context) error {
	id, err := bulkID(c)
	if err != nil {
		return err
	}
	rows, err := h.store.BulkErrors(c.Request().Context(), organization(c).ID, id)
	if err != nil {
		return err
	}
	out := make([]rowErrorsView, len(rows))
	for i, r := range rows {
		out[i] = rowErrorsView{ID: r.Row, Payload: r.Payload, Errors: r.Errors}
	}
	return c.JSON(http.StatusOK, envelope{out})
}

// bulkID reads the {id} of the path; an id that is no UUID names no bulk.
func bulkID(c echo.Context) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return uuid.Nil, store.ErrNotFound
	}
	return id, nil
}

// organization is the organization of the request's API key, set by auth.
func organization(c echo.Context) models.Organization {
	org, _ := c.Get(orgKey).(models.Organization)
	return org
}
