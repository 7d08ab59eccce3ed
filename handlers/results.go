package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/store"
)

// Pagination of GET /api/v1/bulk/{id}/results.
const (
	defaultPerPage = 100
	maxPerPage     = 1000
)

// Results lists what the import did with every row, a page at a time.
func (h *Bulks) Results(c echo.Context) error {
	id, err := bulkID(c)
	if err != nil {
		return err
	}
	q, err := queryParams(c, "page", "per_page")
	if err != nil {
		return err
	}
	page, err := intParam(q, "page", 1, 1, 1<<31-1)
	if err != nil {
		return err
	}
	perPage, err := intParam(q, "per_page", defaultPerPage, 1, maxPerPage)
	if err != nil {
		return err
	}
	b, err := h.bulk(c, id)
	if err != nil {
		return err
	}
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	w.WriteHeader(http.StatusOK)
	h.writeResults(c, w, b, page, perPage)
	w.Write([]byte("\n"))
	return nil
}

// writeResults writes a page of the bulk's results as GET …/results answers
// it. The rows are written as they are read, a chunk at a time, so that a
// page of large rows is never held whole; what follows them is known from
// the bulk. Once it has begun, a failure can only cut the answer short.
func (h *Bulks) writeResults(c echo.Context, w io.Writer, b models.Bulk, page, perPage int) {
	ctx := c.Request().Context()
	w.Write([]byte(`{"data":[`))
	if b.Status == models.StatusCompleted {
		first := true
		for offset, end := (page-1)*perPage, min(page*perPage, b.Count); offset < end; offset += bulksvc.ResultsChunk {
			var rows []store.RowResult
			err := work(ctx, h.timeout, func(ctx context.Context) (err error) {
				rows, err = h.bulks.Results(ctx, b.ID, offset, min(bulksvc.ResultsChunk, end-offset))
				return err
			})
			if err != nil {
				h.log.WarnContext(ctx, "results cut short", "bulk_id", b.ID, "offset", offset, "err", err)
				return
			}
			for _, r := range rows {
				if !first {
					w.Write([]byte{','})
				}
				first = false
				if !sendable(r.Result) {
					// One unreadable row must not make the whole page fail.
					h.log.WarnContext(ctx, "a row's stored result cannot be read; answered as unreadable", "bulk_id", b.ID, "row", r.Row)
					r.Result = fmt.Appendf(nil, `{"row":%d,"status":"failed","customer":null,"location":null,`+
						`"parent_debt_accounts":[],"debt_accounts":[],"errors":{"report":["The result of this row could not be read."]}}`, r.Row)
				}
				w.Write(r.Result)
			}
		}
	}
	v := bulk.ResultsTotals{Status: string(b.Status), TotalRows: b.Count}
	if b.Status == models.StatusCompleted {
		v.TotalCreated, v.TotalUpdated, v.TotalUnchanged, v.TotalErrors = b.RowsCreated, b.RowsUpdated, b.RowsUnchanged, b.RowsFailed
		if page*perPage < b.Count {
			next := fmt.Sprintf("/api/v1/bulk/%s/results?page=%d&per_page=%d", b.ID, page+1, perPage)
			v.Links.Next = &next
		}
	}
	tail, _ := marshalPlain(v) // plain values: it cannot fail
	w.Write([]byte("],"))
	w.Write(bytes.TrimSuffix(tail[1:], []byte("\n"))) // the tail's members, after its opening brace
}

// queryParams reads the request's query parameters: those in allowed (none
// when it is empty), each given at most once; any other is refused, so that
// a misspelt or misplaced option is never silently ignored.
func queryParams(c echo.Context, allowed ...string) (url.Values, error) {
	q, err := queryValues(c)
	if err != nil {
		return nil, err
	}
	for name, values := range q {
		if !slices.Contains(allowed, name) {
			if len(allowed) == 0 {
				return nil, newError(http.StatusBadRequest, name, "The "+name+" parameter is unknown; this endpoint takes none.")
			}
			return nil, newError(http.StatusBadRequest, name,
				fmt.Sprintf("The %s parameter is unknown; the parameters are %s.", name, strings.Join(allowed, ", ")))
		}
		if len(values) > 1 {
			return nil, newError(http.StatusBadRequest, name, "The "+name+" parameter must be given at most once.")
		}
	}
	return q, nil
}

// queryValues parses the query string for a caller that checks the names
// itself. echo's own reading drops what it cannot parse (a ';' separator, a
// bad %-escape) without a word, which would turn ?atomic=true;strict=true
// into no option at all.
func queryValues(c echo.Context) (url.Values, error) {
	q, err := url.ParseQuery(c.Request().URL.RawQuery)
	if err != nil {
		return nil, newError(http.StatusBadRequest, "query",
			"The query string must be name=value pairs joined by &, with valid %-escapes.")
	}
	for name, values := range q {
		// A value reaches Postgres as text, which holds neither.
		for _, v := range values {
			if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
				return nil, newError(http.StatusBadRequest, name, "The "+name+" parameter must be UTF-8 text without NUL characters.")
			}
		}
	}
	return q, nil
}

// intParam reads a whole-number query parameter within [lo, hi]; absent, it
// is def.
func intParam(q url.Values, name string, def, lo, hi int) (int, error) {
	s := q.Get(name)
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

// marshalPlain encodes v as JSON with a final newline, without escaping &,
// < and > (a link's query reads as written, not as \u0026).
func marshalPlain(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return b.Bytes(), err
}
