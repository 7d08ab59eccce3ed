package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/report"
)

// Results lists what the import did with every row, a page at a time, as
// bulksvc.ResultsPage; 410 once retention has erased them.
func (h *Bulks) Results(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	q, err := readQuery(c, "page", "per_page")
	if err != nil {
		return err
	}
	page := q.int("page", 1, 1, 1<<31-1)
	perPage := q.int("per_page", bulksvc.ResultsSize.Default, 1, bulksvc.ResultsSize.Max)
	if err := q.err(); err != nil {
		return err
	}
	b, err := h.reportBulk(c, id)
	if err != nil {
		return err
	}
	if wantsCSV(c) {
		if _, paged := q.get("per_page"); !paged {
			perPage = bulksvc.ResultsSize.Max // every row: a bulk has at most 1000
		}
		return h.resultsCSV(c, b, page, perPage)
	}
	w := stream(c)
	h.writeResults(c, w, b, page, perPage)
	_, _ = io.WriteString(w, "\n")
	return nil
}

// writeResults writes a page of the bulk's results as GET …/results answers
// it. The rows are written as they are read, a chunk at a time, so that a
// page of large rows is never held whole; what follows them is known from
// the bulk. Once it has begun, a failure can only cut the answer short.
func (h *Bulks) writeResults(c echo.Context, w io.Writer, b models.Bulk, page, perPage int) {
	ctx, org := c.Request().Context(), organization(c).ID
	p := beginPage(w)
	if b.Status == models.StatusCompleted {
		for offset, end := (page-1)*perPage, min(page*perPage, b.Count); offset < end; offset += bulksvc.ResultsChunk {
			rows, err := within(ctx, h.timeout, func(ctx context.Context) ([]json.RawMessage, error) {
				return h.bulks.Results(ctx, org, b.ID, offset, min(bulksvc.ResultsChunk, end-offset))
			})
			if err != nil {
				h.log.WarnContext(ctx, "results cut short", "bulk_id", b.ID, "offset", offset, "err", err)
				return
			}
			for _, r := range rows {
				_ = p.add(r)
			}
		}
	}
	tail := bulksvc.NewResultsTotals(b)
	if b.Status == models.StatusCompleted && page*perPage < b.Count {
		tail.Links.Next = link(fmt.Sprintf("/api/v1/bulk/%s/results", b.ID), "page", strconv.Itoa(page+1), "per_page", strconv.Itoa(perPage))
	}
	_ = p.end(tail)
}

// resultsCSV writes a page of the bulk's results as CSV, a line per object
// (bulk.ResultLineColumns), as they are read.
func (h *Bulks) resultsCSV(c echo.Context, b models.Bulk, page, perPage int) error {
	ctx, org := c.Request().Context(), organization(c).ID
	out := report.NewCSV(streamCSV(c, "bulk-"+b.ID.String()+"-results.csv"), bulk.ResultLineColumns)
	if b.Status == models.StatusCompleted {
		for offset, end := (page-1)*perPage, min(page*perPage, b.Count); offset < end; offset += bulksvc.ResultsChunk {
			rows, err := within(ctx, h.timeout, func(ctx context.Context) ([]json.RawMessage, error) {
				return h.bulks.Results(ctx, org, b.ID, offset, min(bulksvc.ResultsChunk, end-offset))
			})
			if err != nil {
				h.log.WarnContext(ctx, "results cut short", "bulk_id", b.ID, "offset", offset, "err", err)
				return nil
			}
			for _, raw := range rows {
				var r bulk.ResultRow
				if err := json.Unmarshal(raw, &r); err != nil {
					return err // the service answers unreadable rows with a readable stand-in
				}
				for _, l := range r.Lines() {
					if err := out.Write(l.Record()); err != nil {
						return nil // the client is gone
					}
				}
			}
		}
	}
	return out.Flush()
}
