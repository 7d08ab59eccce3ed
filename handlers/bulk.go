package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
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
	RowsSucceeded int `json:"rows_succeeded"`
	RowsFailed    int `json:"rows_failed"`
	// RecordsWritten says what is stored, since a row with errors may still
	// have written its location, customer and some accounts.
	RecordsWritten recordsView `json:"records_written"`
	FailureReason  *string     `json:"failure_reason,omitempty"`
	CreatedAt      time.Time   `json:"created_at"`
	StartedAt      *time.Time  `json:"started_at"`
	CompletedAt    *time.Time  `json:"completed_at"`
}

// recordsView counts the records a bulk's import wrote, by table.
type recordsView struct {
	Locations    int `json:"locations"`
	Customers    int `json:"customers"`
	DebtAccounts int `json:"debt_accounts"`
}

type envelope struct {
	Data any `json:"data"`
}

// Idempotency-Key lets a client retry a submission safely: a retry with the
// same key and body answers with the first bulk instead of creating another.
const (
	headerIdempotencyKey   = "Idempotency-Key"
	headerIdempotentReplay = "Idempotent-Replayed"
	maxIdempotencyKeyLen   = 255
)

// Create stores a submission and queues its import: 202 with the bulk id.
// With an Idempotency-Key that this organization used in the last 24 hours
// for the same body, it answers as the first time, creating nothing.
func (h *Bulks) Create(c echo.Context) error {
	key, err := idempotencyKey(c.Request().Header.Get(headerIdempotencyKey))
	if err != nil {
		return err
	}
	var body io.Reader = http.MaxBytesReader(c.Response(), c.Request().Body, h.maxBodyBytes)
	bodyHash := sha256.New()
	if key != "" { // a retry must send the same bytes: hash them as they stream by
		body = io.TeeReader(body, bodyHash)
	}
	rows, err := bulk.DecodeSubmission(body)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	org := organization(c)
	var b models.Bulk
	if key == "" {
		b, err = h.store.CreateBulk(ctx, org.ID, rows)
	} else {
		var replayed bool
		b, replayed, err = h.store.CreateBulkOnce(ctx, org.ID, store.IdempotencyKey{Key: key, RequestHash: bodyHash.Sum(nil)}, rows)
		if replayed {
			c.Response().Header().Set(headerIdempotentReplay, "true")
		}
	}
	if err != nil {
		return err
	}
	if b.Status == models.StatusPending {
		// The bulk is durable now; if Redis is down or slow, the reconciler
		// queues it later, so the client is not kept waiting on Redis. A replay
		// queues it again, harmlessly, in case the first attempt could not.
		enqueueCtx, cancel := context.WithTimeout(ctx, enqueueTimeout)
		defer cancel()
		if err := h.queue.EnqueueImport(enqueueCtx, b.ID); err != nil {
			h.log.WarnContext(ctx, "bulk stored but not queued; the reconciler will queue it", "bulk_id", b.ID, "err", err)
		}
	}
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/bulk/"+b.ID.String())
	// A replay repeats the first answer; GET shows how the bulk has moved on.
	return c.JSON(http.StatusAccepted, envelope{acceptedView{BulkID: b.ID, Count: b.Count, Status: models.StatusPending}})
}

// idempotencyKey checks the Idempotency-Key header; "" means none was sent.
func idempotencyKey(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	notVisibleASCII := func(r rune) bool { return r <= ' ' || r > '~' }
	if len(v) > maxIdempotencyKeyLen || strings.ContainsFunc(v, notVisibleASCII) {
		return "", newError(http.StatusBadRequest, headerIdempotencyKey,
			fmt.Sprintf("The %s header must be 1 to %d visible ASCII characters, such as a UUID.", headerIdempotencyKey, maxIdempotencyKeyLen))
	}
	return v, nil
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
		RecordsWritten: recordsView{Locations: b.LocationsWritten, Customers: b.CustomersWritten, DebtAccounts: b.DebtAccountsWritten},
		CreatedAt:      b.CreatedAt, StartedAt: b.StartedAt, CompletedAt: b.CompletedAt,
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
