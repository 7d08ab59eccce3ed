package handlers

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/page"
)

// List lists the organization's bulks, newest first, a page at a time:
// GET /api/v1/bulk answers a page.List of bulks, each as GET
// /api/v1/bulk/{id} shows it.
func (h *Bulks) List(c echo.Context) error {
	p, err := listParams(c)
	if err != nil {
		return err
	}
	found, err := within(c.Request().Context(), h.timeout, func(ctx context.Context) (bulksvc.BulkPage, error) {
		return h.bulks.List(ctx, organization(c).ID, p)
	})
	if err != nil {
		return err
	}
	v := page.List[bulksvc.View]{Data: make([]bulksvc.View, len(found.Bulks))}
	for i, b := range found.Bulks {
		v.Data[i] = bulksvc.NewView(b)
	}
	if found.Next != "" {
		v.Links.Next = link("/api/v1/bulk", append(listFilters(p), "limit", strconv.Itoa(p.Limit), "cursor", found.Next)...)
	}
	return respond(c, http.StatusOK, v)
}

// listParams reads the query of GET /api/v1/bulk: status, created_after,
// created_before, limit and cursor.
func listParams(c echo.Context) (bulksvc.ListParams, error) {
	q, err := readQuery(c, "status", "created_after", "created_before", "limit", "cursor")
	if err != nil {
		return bulksvc.ListParams{}, err
	}
	p := bulksvc.ListParams{Limit: q.int("limit", bulksvc.ListSize.Default, 1, bulksvc.ListSize.Max), Cursor: q.cursor()}
	if v, ok := q.get("status"); ok {
		if p.Statuses, ok = listStatuses(v); !ok {
			q.fail("status", "The status parameter must be one or more of pending, processing, completed, failed and canceled, separated by commas.")
		}
	}
	p.CreatedAfter, p.CreatedBefore = listTime(q, "created_after"), listTime(q, "created_before")
	return p, q.err()
}

// listStatuses reads a comma-separated list of statuses, each named once.
func listStatuses(v string) ([]string, bool) {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if !slices.Contains(bulksvc.Statuses, s) {
			return nil, false
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, true
}

// listTime reads an RFC 3339 timestamp. A "+" of an offset that was not
// percent-encoded reaches the server as a space; it is read as the "+" the
// client meant, since a timestamp has no space of its own.
func listTime(q *query, name string) *time.Time {
	v, ok := q.get(name)
	if !ok {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, strings.Replace(v, " ", "+", 1))
	if err != nil {
		q.fail(name, "The "+name+" parameter must be an RFC 3339 timestamp, such as 2026-11-23T11:08:42Z.")
		return nil
	}
	return &t
}

// listFilters are the filters of p as a next link writes them: statuses
// joined by commas, times in UTC.
func listFilters(p bulksvc.ListParams) []string {
	var pairs []string
	if len(p.Statuses) > 0 {
		pairs = append(pairs, "status", strings.Join(p.Statuses, ","))
	}
	if p.CreatedAfter != nil {
		pairs = append(pairs, "created_after", p.CreatedAfter.UTC().Format(time.RFC3339Nano))
	}
	if p.CreatedBefore != nil {
		pairs = append(pairs, "created_before", p.CreatedBefore.UTC().Format(time.RFC3339Nano))
	}
	return pairs
}
