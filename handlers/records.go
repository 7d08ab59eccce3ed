package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/pkg/records"
	"github.com/bulkd/bulkd/pkg/store"
)

// Records serves the records API: /api/v1/locations, /customers and
// /debt_accounts, and /api/v1/batch.
type Records struct {
	records      *records.Service
	timeout      time.Duration
	maxBodyBytes int64
	log          *slog.Logger
}

// resource is the resource of a records route, its first path segment
// after /api/v1/.
func resource(c echo.Context) string {
	p := strings.TrimPrefix(c.Path(), "/api/v1/")
	r, _, _ := strings.Cut(p, "/")
	return r
}

// recordID reads the :id of a records route; an id that is no UUID names
// no record.
func recordID(c echo.Context, res string) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return uuid.Nil, recordError(res, store.ErrNotFound)
	}
	return id, nil
}

type recordView struct {
	Data any `json:"data"`
}

// Get answers one record, with its ETag; If-None-Match naming it is 304.
func (h *Records) Get(c echo.Context) error {
	if _, err := queryParams(c); err != nil {
		return err
	}
	res := resource(c)
	id, err := recordID(c, res)
	if err != nil {
		return err
	}
	var rec records.Record
	err = work(c.Request().Context(), h.timeout, func(ctx context.Context) (err error) {
		rec, err = h.records.Get(ctx, organization(c).ID, res, id)
		return err
	})
	if err != nil {
		return recordError(res, err)
	}
	c.Response().Header().Set("ETag", rec.ETag())
	if inm := c.Request().Header.Get("If-None-Match"); inm != "" && etagListed(inm, rec.ETag()) {
		return c.NoContent(http.StatusNotModified)
	}
	return h.answer(c, http.StatusOK, rec)
}

func (h *Records) answer(c echo.Context, status int, rec records.Record) error {
	b, err := marshalPlain(recordView{Data: rec})
	if err != nil {
		return err
	}
	return c.JSONBlob(status, b)
}

// etagListed tells whether a list of entity tags (If-None-Match) names
// etag, compared weakly as RFC 9110 says for If-None-Match.
func etagListed(list, etag string) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// recordError maps the records service's errors to answers that name the
// resource.
func recordError(res string, err error) error {
	name, _ := records.Singular(res)
	var (
		invalid *records.ValidationError
		pre     *records.PreconditionError
		inUse   *records.InUseError
	)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return newError(http.StatusNotFound, "id", "The "+name+" was not found.")
	case errors.As(err, &invalid):
		return &Error{Status: http.StatusUnprocessableEntity, Message: invalid.Error(), Errors: invalid.Messages}
	case errors.As(err, &pre):
		return newError(http.StatusPreconditionFailed, "If-Match",
			fmt.Sprintf("The %s has changed since it was read: its current version is %d (ETag %s); read it again and retry.",
				name, pre.Version, pre.Current))
	case errors.As(err, &inUse):
		return newError(http.StatusConflict, inUse.What, fmt.Sprintf(
			"The %s has %d %s; delete them first, or add ?cascade=true to delete them with it.",
			name, inUse.Count, strings.ReplaceAll(inUse.What, "_", " ")))
	}
	return err
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

// listFilters are the filters of each resource's list, in the order the
// next link writes them.
var listFilters = map[string][]string{
	records.Locations:    {"external_id"},
	records.Customers:    {"external_id", "email", "location_id", "bulk_id"},
	records.DebtAccounts: {"customer_id", "external_id", "parent_id", "bulk_id"},
}

type recordListView struct {
	Data  []records.Record `json:"data"`
	Links linksView        `json:"links"`
}

// List answers a page of records, newest first. Under
// /customers/{id}/debt_accounts it lists that customer's accounts.
func (h *Records) List(c echo.Context) error {
	res, path := resource(c), c.Request().URL.Path
	names := listFilters[res]
	var customer *uuid.UUID
	if c.Param("id") != "" { // /customers/{id}/debt_accounts
		id, err := recordID(c, records.Customers)
		if err != nil {
			return err
		}
		customer, res, names = &id, records.DebtAccounts, []string{"external_id", "parent_id", "bulk_id"}
	}
	q, err := queryParams(c, append(slices.Clone(names), "limit", "cursor")...)
	if err != nil {
		return err
	}
	p := records.ListParams{Filter: store.RecordFilter{CustomerID: customer}, Cursor: q.Get("cursor")}
	if p.Limit, err = intParam(q, "limit", records.DefaultListLimit, 1, records.MaxListLimit); err != nil {
		return err
	}
	for _, name := range names {
		v, ok := q[name]
		if !ok {
			continue
		}
		switch name {
		case "external_id":
			p.Filter.ExternalID = v[0]
		case "email":
			p.Filter.Email = v[0]
		default:
			id, err := uuid.Parse(v[0])
			if err != nil {
				return newError(http.StatusBadRequest, name, "The "+name+" parameter must be an id (a UUID).")
			}
			switch name {
			case "location_id":
				p.Filter.LocationID = &id
			case "customer_id":
				p.Filter.CustomerID = &id
			case "parent_id":
				p.Filter.ParentID = &id
			case "bulk_id":
				p.Filter.BulkID = &id
			}
		}
	}
	var page records.Page
	err = work(c.Request().Context(), h.timeout, func(ctx context.Context) (err error) {
		if customer != nil {
			if _, err := h.records.Get(ctx, organization(c).ID, records.Customers, *customer); err != nil {
				return recordError(records.Customers, err)
			}
		}
		page, err = h.records.List(ctx, organization(c).ID, res, p)
		return err
	})
	if errors.Is(err, records.ErrInvalidCursor) {
		return newError(http.StatusBadRequest, "cursor", "The cursor parameter must be a cursor from a links.next this organization was given for this list.")
	}
	if err != nil {
		return err
	}
	v := recordListView{Data: page.Records}
	if page.Next != "" {
		next := url.Values{}
		for _, name := range names {
			if vs, ok := q[name]; ok {
				next.Set(name, vs[0])
			}
		}
		next.Set("limit", strconv.Itoa(p.Limit))
		next.Set("cursor", page.Next)
		link := path + "?" + next.Encode()
		v.Links.Next = &link
	}
	b, err := marshalPlain(v)
	if err != nil {
		return err
	}
	return c.JSONBlob(http.StatusOK, b)
}

// Delete deletes one record: 204, 409 when others depend on it (unless
// ?cascade=true), 412 when If-Match is stale.
func (h *Records) Delete(c echo.Context) error {
	res := resource(c)
	q, err := queryParams(c, "cascade")
	if err != nil {
		return err
	}
	cascade := false
	switch q.Get("cascade") {
	case "", "false":
	case "true":
		cascade = true
	default:
		return newError(http.StatusBadRequest, "cascade", "The cascade parameter must be true or false.")
	}
	id, err := recordID(c, res)
	if err != nil {
		return err
	}
	err = work(c.Request().Context(), h.timeout, func(ctx context.Context) error {
		return h.records.Delete(ctx, organization(c).ID, res, id, c.Request().Header.Get("If-Match"), cascade)
	})
	if err != nil {
		return recordError(res, err)
	}
	return c.NoContent(http.StatusNoContent)
}

// Patch applies a JSON Patch (RFC 6902) or a JSON Merge Patch (RFC 7386)
// to one record: 200 with the record (unchanged when the patch changes
// nothing), 415 for another Content-Type, 422 naming what the import's rules
// refuse, 412 when If-Match is stale.
func (h *Records) Patch(c echo.Context) error {
	res := resource(c)
	if _, err := queryParams(c); err != nil {
		return err
	}
	var kind records.PatchKind
	mt, ok := utf8MediaType(c.Request().Header.Get(echo.HeaderContentType))
	if !ok {
		mt = ""
	}
	switch mt {
	case "application/json-patch+json":
		kind = records.JSONPatch
	case "application/merge-patch+json":
		kind = records.MergePatch
	default:
		return newError(http.StatusUnsupportedMediaType, "Content-Type",
			"The Content-Type must be application/json-patch+json (RFC 6902) or application/merge-patch+json (RFC 7386), in UTF-8.")
	}
	id, err := recordID(c, res)
	if err != nil {
		return err
	}
	body, err := readBody(c, h.maxBodyBytes)
	if err != nil {
		return err
	}
	var rec records.Record
	err = work(c.Request().Context(), h.timeout, func(ctx context.Context) (err error) {
		rec, _, err = h.records.Patch(ctx, organization(c).ID, res, id, c.Request().Header.Get("If-Match"), kind, body)
		return err
	})
	if err != nil {
		return recordError(res, err)
	}
	c.Response().Header().Set("ETag", rec.ETag())
	return h.answer(c, http.StatusOK, rec)
}

type batchResultView struct {
	Operation    string              `json:"operation"`
	Resource     string              `json:"resource"`
	ID           string              `json:"id,omitempty"`
	Outcome      string              `json:"outcome"`
	Status       int                 `json:"status"`
	Object       records.Record      `json:"object,omitempty"`
	ErrorMessage string              `json:"error_message,omitempty"`
	Errors       map[string][]string `json:"errors,omitempty"`
}

type batchView struct {
	SuccessCount int               `json:"success_count"`
	ErrorCount   int               `json:"error_count"`
	Results      []batchResultView `json:"results"`
}

// Batch runs 1 to records.MaxBatchOperations operations (patch, delete,
// create), each as its single request would, and answers 200 with each
// one's outcome and status in the order of the operations. Only a batch
// that is not one (not JSON, no operations, too many) is refused whole,
// before anything is done.
func (h *Records) Batch(c echo.Context) error {
	if _, err := queryParams(c); err != nil {
		return err
	}
	if err := jsonContentType(c.Request().Header.Get(echo.HeaderContentType)); err != nil {
		return err
	}
	body, err := readBody(c, h.maxBodyBytes)
	if err != nil {
		return err
	}
	var req struct {
		Operations *[]json.RawMessage `json:"operations"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err = dec.Decode(&req)
	if err == nil {
		if _, end := dec.Token(); end != io.EOF {
			err = errors.New("data after the object")
		}
	}
	if err != nil {
		return newError(http.StatusBadRequest, "body",
			"The request body must be one JSON object with an operations list.")
	}
	if req.Operations == nil {
		return newError(http.StatusUnprocessableEntity, "operations", "The operations field is required.")
	}
	if n := len(*req.Operations); n < 1 || n > records.MaxBatchOperations {
		return newError(http.StatusUnprocessableEntity, "operations",
			fmt.Sprintf("The operations field must have between 1 and %d operations; it has %d.", records.MaxBatchOperations, n))
	}
	var outcomes []records.Outcome
	var timedOut bool
	_ = work(c.Request().Context(), h.timeout, func(ctx context.Context) error {
		outcomes = h.records.Batch(ctx, organization(c).ID, *req.Operations)
		timedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
		return nil
	})
	v := batchView{Results: make([]batchResultView, len(outcomes))}
	for i, o := range outcomes {
		r := batchResultView{Operation: o.Op.Operation, Resource: o.Op.Resource, ID: o.Op.ID}
		if o.Err != nil {
			e := batchError(o)
			if e.Status >= 500 {
				h.log.ErrorContext(c.Request().Context(), "batch operation failed", "request_id",
					c.Response().Header().Get(echo.HeaderXRequestID), "operation", i, "err", o.Err)
				if timedOut {
					// As its single request would answer: it ran out of time.
					e = timeoutError(h.timeout)
				}
			}
			r.Outcome, r.Status, r.ErrorMessage, r.Errors = "error", e.Status, e.Message, e.Errors
			v.ErrorCount++
		} else {
			r.Outcome, r.Status, r.Object = "success", http.StatusOK, o.Record
			switch {
			case o.Created:
				r.Status = http.StatusCreated
				r.ID = recordIDOf(o.Record)
			case o.Record == nil:
				r.Status = http.StatusNoContent
			}
			v.SuccessCount++
		}
		v.Results[i] = r
	}
	b, err := marshalPlain(v)
	if err != nil {
		return err
	}
	return c.JSONBlob(http.StatusOK, b)
}

// batchError is the answer the single request of an operation would give
// for its error.
func batchError(o records.Outcome) *Error {
	var bad *records.MalformedError
	if errors.As(o.Err, &bad) {
		return newError(http.StatusBadRequest, "operation", bad.Message)
	}
	res := o.Op.Resource
	if _, ok := records.Singular(res); !ok {
		res = records.Customers // only a shape error can name no resource
	}
	e := toError(recordError(res, o.Err))
	if len(e.Errors) == 0 {
		e = newError(e.Status, "operation", e.Message)
	}
	return e
}

func recordIDOf(r records.Record) string {
	switch v := r.(type) {
	case records.Location:
		return v.ID.String()
	case records.Customer:
		return v.ID.String()
	case records.DebtAccount:
		return v.ID.String()
	}
	return ""
}
