package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/report"
)

// Bulks serves the bulk endpoints.
type Bulks struct {
	bulks        *bulksvc.Service
	maxBodyBytes int64
	timeout      time.Duration   // of each phase of the server's work; 0: none
	waiter       *bulksvc.Waiter // hears that bulks finished; nil: a wait only reads
	maxWait      time.Duration   // the longest ?wait= allowed
	log          *slog.Logger
	waiting      prometheus.Gauge // the requests waiting now
}

// submitParams are the query parameters of POST /api/v1/bulk: the import's
// options and the wait.
var submitParams = append(slices.Clone(bulk.OptionNames), waitParam)

// Create stores a submission and queues its import: 202 with the bulk id.
// With an Idempotency-Key that this organization used in the last 24 hours
// for the same request, it answers as the first time, creating nothing.
func (h *Bulks) Create(c echo.Context) error {
	sub, wait, err := h.submission(c)
	if err != nil {
		return err
	}
	// The body is read: from here on the time is the server's own.
	done, err := within(c.Request().Context(), h.timeout, func(ctx context.Context) (bulksvc.Submitted, error) {
		return h.bulks.Submit(ctx, sub)
	})
	if err != nil {
		return err
	}
	if done.Replayed {
		c.Response().Header().Set(headerIdempotentReplay, "true")
	}
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/bulk/"+done.Bulk.ID.String())
	if wait > 0 && h.answeredFinished(c, done.Bulk, wait) {
		return nil
	}
	// A replay repeats the first answer; GET shows how the bulk has moved on.
	return respond(c, http.StatusAccepted, envelope{bulksvc.Accepted{BulkID: done.Bulk.ID, Count: done.Bulk.Count, Status: models.StatusPending}})
}

// submission reads a POST /api/v1/bulk: its options and wait, its
// Idempotency-Key and its body, a JSON array of rows.
func (h *Bulks) submission(c echo.Context) (bulksvc.Submission, time.Duration, error) {
	req := c.Request()
	if err := jsonContentType(req.Header.Get(echo.HeaderContentType)); err != nil {
		return bulksvc.Submission{}, 0, err
	}
	q, err := readQuery(c, submitParams...)
	if err != nil {
		return bulksvc.Submission{}, 0, err
	}
	wait := h.wait(q)
	if err := q.err(); err != nil {
		return bulksvc.Submission{}, 0, err
	}
	opts, err := bulk.ParseOptions(q.pick(bulk.OptionNames...))
	if err != nil {
		return bulksvc.Submission{}, 0, err
	}
	key, err := idempotencyKey(req.Header.Get(headerIdempotencyKey))
	if err != nil {
		return bulksvc.Submission{}, 0, err
	}
	in, err := body(c, h.maxBodyBytes)
	if err != nil {
		return bulksvc.Submission{}, 0, err
	}
	sub, err := bulksvc.ReadSubmission(organization(c).ID, opts, key, skipBOM(in))
	return sub, wait, err
}

// Get shows one bulk's progress. With ?wait=, it first waits that long
// for the bulk to finish, and a finished bulk comes with the first page of
// its results.
func (h *Bulks) Get(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	q, err := readQuery(c, waitParam)
	if err != nil {
		return err
	}
	wait := h.wait(q)
	if err := q.err(); err != nil {
		return err
	}
	b, err := h.await(c, id, wait)
	if err != nil {
		return err
	}
	if wait > 0 && b.Status.Finished() {
		return h.answerFinished(c, b)
	}
	return respond(c, http.StatusOK, envelope{bulksvc.NewView(b)})
}

// Cancel cancels a pending or processing bulk and answers it as GET shows
// it, with canceled_at; a finished one is 409 with its status.
func (h *Bulks) Cancel(c echo.Context) error {
	if err := noQuery(c); err != nil {
		return err
	}
	id, err := pathID(c)
	if err != nil {
		return err
	}
	b, err := within(c.Request().Context(), h.timeout, func(ctx context.Context) (models.Bulk, error) {
		return h.bulks.Cancel(ctx, organization(c).ID, id)
	})
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, envelope{bulksvc.NewView(b)})
}

// Errors lists the failed rows of a bulk with their messages, as
// bulksvc.ErrorsPage: the report is written as it is read, a page of rows
// at a time, so that a large one is never held whole. A bulk whose report
// retention erased is 410, in either form.
func (h *Bulks) Errors(c echo.Context) error {
	if err := noQuery(c); err != nil {
		return err
	}
	id, err := pathID(c)
	if err != nil {
		return err
	}
	ctx, org := c.Request().Context(), organization(c).ID
	b, err := h.reportBulk(c, id)
	if err != nil {
		return err
	}
	if wantsCSV(c) {
		w := streamCSV(c, "bulk-"+id.String()+"-errors.csv")
		out := report.ErrorsCSV(w)
		if err := h.bulks.ErrorLines(ctx, org, id, out.Error); err != nil {
			h.log.WarnContext(ctx, "errors report cut short", "bulk_id", id, "err", err)
			return nil
		}
		return out.Flush()
	}
	p := beginPage(stream(c))
	for after := 0; ; {
		rows, err := within(ctx, h.timeout, func(ctx context.Context) ([]bulksvc.ErrorRow, error) {
			return h.bulks.Errors(ctx, org, id, after)
		})
		if err != nil {
			h.log.WarnContext(ctx, "errors report cut short", "bulk_id", id, "after_row", after, "err", err)
			return nil
		}
		for _, r := range rows {
			_ = p.add(r)
		}
		if len(rows) < bulksvc.ErrorsPageSize {
			break
		}
		after = rows[len(rows)-1].ID
	}
	_ = p.end(bulksvc.ErrorsStatus{Status: b.Status})
	_, _ = c.Response().Write([]byte("\n"))
	return nil
}
