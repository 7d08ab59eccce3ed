package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/models"
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
	Data           []json.RawMessage `json:"data"`
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
	ctx := c.Request().Context()
	b, err := h.store.Bulk(ctx, organization(c).ID, id)
	if err != nil {
		return err
	}
	v := resultsView{Data: []json.RawMessage{}, Status: b.Status, TotalRows: b.Count}
	if b.Status != models.StatusCompleted {
		return c.JSON(http.StatusOK, v)
	}
	v.TotalCreated, v.TotalUpdated, v.TotalUnchanged, v.TotalErrors = b.RowsCreated, b.RowsUpdated, b.RowsUnchanged, b.RowsFailed
	offset := (page - 1) * perPage
	if offset < b.Count {
		if v.Data, err = h.store.BulkResults(ctx, b.ID, offset, perPage); err != nil {
			return err
		}
	}
	if offset+perPage < b.Count {
		next := fmt.Sprintf("/api/v1/bulk/%s/results?page=%d&per_page=%d", b.ID, page+1, perPage)
		v.Links.Next = &next
	}
	return c.JSON(http.StatusOK, v)
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
