package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/pkg/page"
	"github.com/bulkd/bulkd/pkg/records"
)

// Records serves the records API: /api/v1/locations, /customers and
// /debt_accounts, and /api/v1/batch.
type Records struct {
	records      *records.Service
	timeout      time.Duration
	maxBodyBytes int64
	log          *slog.Logger
}

// recordRoutes adds the records API's routes.
func recordRoutes(e *echo.Echo, get func(string, echo.HandlerFunc, ...echo.MiddlewareFunc), api []echo.MiddlewareFunc, h *Records) {
	for _, res := range []string{records.Locations, records.Customers, records.DebtAccounts} {
		get("/api/v1/"+res, h.List, api...)
		get("/api/v1/"+res+"/:id", h.Get, api...)
		e.DELETE("/api/v1/"+res+"/:id", h.Delete, api...)
		e.PATCH("/api/v1/"+res+"/:id", h.Patch, api...)
	}
	get("/api/v1/customers/:id/debt_accounts", h.List, api...)
	e.POST("/api/v1/batch", h.Batch, api...)
}

// resource is the resource of a records route, its first path segment
// after /api/v1/.
func resource(c echo.Context) string {
	r, _, _ := strings.Cut(strings.TrimPrefix(c.Path(), "/api/v1/"), "/")
	return r
}

// Get answers one record, with its ETag; If-None-Match naming it is 304.
func (h *Records) Get(c echo.Context) error {
	if err := noQuery(c); err != nil {
		return err
	}
	id, err := pathID(c)
	if err != nil {
		return err
	}
	rec, err := within(c.Request().Context(), h.timeout, func(ctx context.Context) (records.Record, error) {
		return h.records.Get(ctx, organization(c).ID, resource(c), id)
	})
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", rec.ETag())
	if records.NotModified(c.Request().Header.Get("If-None-Match"), rec) {
		return c.NoContent(http.StatusNotModified)
	}
	return respond(c, http.StatusOK, envelope{rec})
}

// List answers a page of records, newest first, as a page.List. Under
// /customers/{id}/debt_accounts it lists that customer's accounts.
func (h *Records) List(c echo.Context) error {
	res, p := resource(c), records.ListParams{}
	if c.Param("id") != "" { // /customers/{id}/debt_accounts
		id, err := pathID(c)
		if err != nil {
			return err
		}
		res, p.Customer = records.DebtAccounts, &id
	}
	filters := records.Filters(res, p.Customer != nil)
	q, err := readQuery(c, append(filters, "limit", "cursor")...)
	if err != nil {
		return err
	}
	p.Filters, p.Cursor = q.pick(filters...), q.cursor()
	p.Limit = q.int("limit", records.ListSize.Default, 1, records.ListSize.Max)
	if err := q.err(); err != nil {
		return err
	}
	found, err := within(c.Request().Context(), h.timeout, func(ctx context.Context) (records.Page, error) {
		return h.records.List(ctx, organization(c).ID, res, p)
	})
	if err != nil {
		return err
	}
	v := page.List[records.Record]{Data: found.Records}
	if found.Next != "" {
		var pairs []string
		for _, name := range filters {
			if value, ok := p.Filters[name]; ok {
				pairs = append(pairs, name, value)
			}
		}
		v.Links.Next = link(c.Request().URL.Path, append(pairs, "limit", strconv.Itoa(p.Limit), "cursor", found.Next)...)
	}
	return respond(c, http.StatusOK, v)
}

// Delete deletes one record: 204, 409 when others depend on it (unless
// ?cascade=true), 412 when If-Match is stale.
func (h *Records) Delete(c echo.Context) error {
	q, err := readQuery(c, "cascade")
	if err != nil {
		return err
	}
	cascade := q.bool("cascade")
	if err := q.err(); err != nil {
		return err
	}
	id, err := pathID(c)
	if err != nil {
		return err
	}
	err = work(c.Request().Context(), h.timeout, func(ctx context.Context) error {
		return h.records.Delete(ctx, organization(c).ID, resource(c), id, c.Request().Header.Get("If-Match"), cascade)
	})
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// Patch applies a JSON Patch (RFC 6902) or a JSON Merge Patch (RFC 7386)
// to one record: 200 with the record (unchanged when the patch changes
// nothing), 415 for another Content-Type, 422 naming what the import's rules
// refuse, 412 when If-Match is stale.
func (h *Records) Patch(c echo.Context) error {
	if err := noQuery(c); err != nil {
		return err
	}
	kind, err := patchKind(c.Request().Header.Get(echo.HeaderContentType))
	if err != nil {
		return err
	}
	id, err := pathID(c)
	if err != nil {
		return err
	}
	patch, err := readBody(c, h.maxBodyBytes)
	if err != nil {
		return err
	}
	rec, err := within(c.Request().Context(), h.timeout, func(ctx context.Context) (records.Record, error) {
		rec, _, err := h.records.Patch(ctx, organization(c).ID, resource(c), id, c.Request().Header.Get("If-Match"), kind, patch)
		return rec, err
	})
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", rec.ETag())
	return respond(c, http.StatusOK, envelope{rec})
}

// Batch runs 1 to records.MaxBatchOperations operations (patch, delete,
// create), each as its single request would, and answers 200 with each
// one's outcome and status in the order of the operations, as
// records.BatchAnswer. Only a batch that is not one (not JSON, no
// operations, too many) is refused whole, before anything is done.
func (h *Records) Batch(c echo.Context) error {
	if err := noQuery(c); err != nil {
		return err
	}
	var req struct {
		Operations []json.RawMessage `json:"operations"`
	}
	if err := readObject(c, h.maxBodyBytes, &req, "The request body must be one JSON object with an operations list."); err != nil {
		return err
	}
	var timedOut bool
	outcomes, err := within(c.Request().Context(), h.timeout, func(ctx context.Context) ([]records.Outcome, error) {
		out, err := h.records.Batch(ctx, organization(c).ID, req.Operations)
		timedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
		return out, err
	})
	if err != nil {
		return err
	}
	v := records.BatchAnswer{Results: make([]records.BatchResult, len(outcomes))}
	for i, o := range outcomes {
		v.Results[i] = h.result(c, i, o, timedOut)
		if o.Err != nil {
			v.ErrorCount++
		} else {
			v.SuccessCount++
		}
	}
	return respond(c, http.StatusOK, v)
}

// result is the result of operation i, with the status and answer its
// single request would give; timedOut says that the batch ran out of time,
// which is what made an operation fail with a server error.
func (h *Records) result(c echo.Context, i int, o records.Outcome, timedOut bool) records.BatchResult {
	r := records.BatchResult{Operation: o.Op.Operation, Resource: o.Op.Resource, ID: o.Op.ID}
	if o.Err == nil {
		r.Outcome, r.Status, r.Object = "success", http.StatusOK, o.Record
		switch {
		case o.Created:
			r.Status, r.ID = http.StatusCreated, records.IDOf(o.Record).String()
		case o.Record == nil:
			r.Status = http.StatusNoContent
		}
		return r
	}
	name, _ := records.Singular(o.Op.Resource)
	e := answer(o.Err, name, "operation")
	if e.Status >= 500 {
		h.log.ErrorContext(c.Request().Context(), "batch operation failed", "operation", i, "err", o.Err)
		if timedOut {
			e = timeoutError(h.timeout) // as its single request would answer: it ran out of time
		}
	}
	r.Outcome, r.Status, r.ErrorMessage, r.Errors = "error", e.Status, e.Message, e.Errors
	return r
}
