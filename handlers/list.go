package handlers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/pkg/bulksvc"
)

// listView is GET /api/v1/bulk: a page of the organization's bulks, newest
// first, each as GET /api/v1/bulk/{id} shows it.
type listView struct {
	Data  []bulksvc.View `json:"data"`
	Links linksView      `json:"links"`
}

// linksView points at the next page; Next is nil on the last.
type linksView struct {
	Next *string `json:"next"`
}

// The query parameters of GET /api/v1/bulk, in the order errors and the
// next link name them.
var listParamNames = []string{"status", "created_after", "created_before", "limit", "cursor"}

// List lists the organization's bulks, newest first, a page at a time.
func (h *Bulks) List(c echo.Context) error {
	q, err := queryValues(c)
	if err != nil {
		return err
	}
	p, err := listParams(q)
	if err != nil {
		return err
	}
	var page bulksvc.BulkPage
	err = work(c.Request().Context(), h.timeout, func(ctx context.Context) (err error) {
		page, err = h.bulks.List(ctx, organization(c).ID, p)
		return err
	})
	if errors.Is(err, bulksvc.ErrInvalidCursor) {
		return newError(http.StatusBadRequest, "cursor",
			"The cursor parameter must be a cursor from a links.next this organization was given.")
	}
	if err != nil {
		return err
	}
	v := listView{Data: make([]bulksvc.View, len(page.Bulks))}
	for i, b := range page.Bulks {
		v.Data[i] = bulksvc.NewView(b)
	}
	if page.Next != "" {
		next := nextListLink(p, page.Next)
		v.Links.Next = &next
	}
	b, err := marshalPlain(v)
	if err != nil {
		return err
	}
	return c.JSONBlob(http.StatusOK, b)
}

// listParams reads the query of GET /api/v1/bulk. Every parameter that is
// unknown, repeated or not valid is named in the one 400 answer, so that a
// client fixes them all at once.
func listParams(q url.Values) (bulksvc.ListParams, error) {
	p := bulksvc.ListParams{Limit: bulksvc.DefaultListLimit}
	bad := &Error{Status: http.StatusBadRequest, Errors: map[string][]string{}}
	fail := func(name, msg string) {
		if bad.Message == "" {
			bad.Message = msg
		}
		bad.Errors[name] = append(bad.Errors[name], msg)
	}
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(listParamNames, name) {
			fail(name, "The "+name+" parameter is unknown; the parameters are status, created_after, created_before, limit and cursor.")
		}
	}
	for _, name := range listParamNames {
		values, ok := q[name]
		if !ok {
			continue
		}
		if len(values) > 1 {
			msg := "The " + name + " parameter must be given at most once."
			if name == "status" {
				msg = "The status parameter must be given at most once; separate several statuses with commas."
			}
			fail(name, msg)
			continue
		}
		v := values[0]
		switch name {
		case "status":
			statuses, ok := listStatuses(v)
			if !ok {
				fail(name, "The status parameter must be one or more of pending, processing, completed, failed and canceled, separated by commas.")
			}
			p.Statuses = statuses
		case "created_after", "created_before":
			t, ok := listTime(v)
			if !ok {
				fail(name, "The "+name+" parameter must be an RFC 3339 timestamp, such as 2026-11-23T11:08:42Z.")
			}
			if name == "created_after" {
				p.CreatedAfter = &t
			} else {
				p.CreatedBefore = &t
			}
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > bulksvc.MaxListLimit {
				fail(name, fmt.Sprintf("The limit parameter must be a whole number from 1 to %d.", bulksvc.MaxListLimit))
			}
			p.Limit = n
		case "cursor":
			if v == "" {
				fail(name, "The cursor parameter must be a cursor from a links.next this organization was given.")
			}
			p.Cursor = v
		}
	}
	if len(bad.Errors) > 0 {
		return bulksvc.ListParams{}, bad
	}
	return p, nil
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
func listTime(v string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, strings.Replace(v, " ", "+", 1))
	return t, err == nil
}

// nextListLink is the link to the page after the one read with p: the same
// filters and limit, and the cursor. Its values need no escaping: statuses
// are letters and commas, times are written in UTC (digits, "-", ":", ".",
// "T", "Z") and the cursor is base64url.
func nextListLink(p bulksvc.ListParams, cursor string) string {
	var q []string
	if len(p.Statuses) > 0 {
		q = append(q, "status="+strings.Join(p.Statuses, ","))
	}
	if p.CreatedAfter != nil {
		q = append(q, "created_after="+p.CreatedAfter.UTC().Format(time.RFC3339Nano))
	}
	if p.CreatedBefore != nil {
		q = append(q, "created_before="+p.CreatedBefore.UTC().Format(time.RFC3339Nano))
	}
	q = append(q, "limit="+strconv.Itoa(p.Limit), "cursor="+cursor)
	return "/api/v1/bulk?" + strings.Join(q, "&")
}
