package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulks"
	"github.com/bulkd/bulkd/pkg/store"
)

// Pagination of GET /api/v1/bulk/{id}/results.
const (
	defaultPerPage = 100
	maxPerPage     = 1000
)

// resultsView is GET /api/v1/bulk/{id}/results: a page of rows in the order
// submitted, the bulk's status (a bulk not finished yet has no rows, which
// tells "nothing yet" from "nothing failed"), and the totals of the rows by
// status.
type resultsView struct {
	Data           []json.RawMessage `json:"data"` // as stored; written without re-encoding
	Status         string            `json:"status"`
	TotalRows      int               `json:"total_rows"`
	TotalCreated   int               `json:"total_created"`
	TotalUpdated   int               `json:"total_updated"`
	TotalUnchanged int               `json:"total_unchanged"`
	TotalErrors    int               `json:"total_errors"`
	Links          linksView         `json:"links"`
}

type linksView struct {
	Next *string `json:"next"`
}

// Results lists what the import did with every row, a page at a time.
func (h *Bulks) Results(c echo.Context) error {
	id, err := bulkID(c)
	if err != nil {
		return err
	}
	page, err := intParam(c, "page", 1, 1, 1<<31-1)
	if err != nil {
		return err
	}
	perPage, err := intParam(c, "per_page", defaultPerPage, 1, maxPerPage)
	if err != nil {
		return err
	}
	_, v, err := h.resultsPage(c, id, page, perPage)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, v)
}

// resultsPage reads the bulk and one page of its results, as GET
// /api/v1/bulk/{id}/results answers them.
func (h *Bulks) resultsPage(c echo.Context, id uuid.UUID, page, perPage int) (models.Bulk, resultsView, error) {
	var (
		b    models.Bulk
		rows []store.RowResult
	)
	err := work(c.Request().Context(), h.timeout, func(ctx context.Context) (err error) {
		b, rows, err = h.bulks.Results(ctx, organization(c).ID, id, bulks.Page{Number: page, Size: perPage})
		return err
	})
	if err != nil {
		return b, resultsView{}, err
	}
	v := resultsView{Data: make([]json.RawMessage, len(rows)), Status: b.Status, TotalRows: b.Count}
	for i, r := range rows {
		if !sendable(r.Result) {
			// One unreadable row must not make the whole page fail.
			h.log.WarnContext(c.Request().Context(), "a row's stored result cannot be read; answered as unreadable", "bulk_id", id, "row", r.Row)
			r.Result = fmt.Appendf(nil, `{"row":%d,"status":"failed","customer":null,"location":null,`+
				`"parent_debt_accounts":[],"debt_accounts":[],"errors":{"report":["The result of this row could not be read."]}}`, r.Row)
		}
		v.Data[i] = r.Result
	}
	if b.Status != models.StatusCompleted {
		return b, v, nil
	}
	v.TotalCreated, v.TotalUpdated, v.TotalUnchanged, v.TotalErrors = b.RowsCreated, b.RowsUpdated, b.RowsUnchanged, b.RowsFailed
	if page*perPage < v.TotalRows {
		next := fmt.Sprintf("/api/v1/bulk/%s/results?page=%d&per_page=%d", id, page+1, perPage)
		v.Links.Next = &next
	}
	return b, v, nil
}

// intParam reads a whole-number query parameter within [lo, hi]; absent, it
// is def.
func intParam(c echo.Context, name string, def, lo, hi int) (int, error) {
	s := c.QueryParam(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, newError(http.StatusBadRequest, name,
			fmt.Sprintf("The %s parameter must be a whole number from %d to %d.", name, lo, hi))
	}
	return n, nil
}

// writeJSON answers v as JSON without escaping &, < and > (a link's query
// reads as written, not as \u0026).
func writeJSON(c echo.Context, status int, v any) error {
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
