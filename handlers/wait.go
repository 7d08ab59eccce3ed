package handlers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/jsonscan"
)

// waitParam is the query parameter with which a client waits for a bulk
// to finish: POST /api/v1/bulk?wait=30s, GET /api/v1/bulk/{id}?wait=30s.
const waitParam = "wait"

// wait reads the wait parameter: a Go duration (30s, 1m) or whole seconds
// (30), from 0 (no wait) to the server's MAX_WAIT.
func (h *Bulks) wait(q *query) time.Duration {
	v, ok := q.get(waitParam)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(v)
	if n, nerr := strconv.Atoi(v); nerr == nil {
		d, err = time.Duration(n)*time.Second, nil
		if n < 0 || n > int(h.maxWait/time.Second) {
			d = -1 // out of range, before a multiplication that would overflow
		}
	}
	if err != nil || d < 0 || d > h.maxWait {
		q.fail(waitParam, fmt.Sprintf(
			"The wait parameter must be a duration from 0 to %s, such as 30s (or a whole number of seconds).", seconds(h.maxWait)))
		return 0
	}
	return d
}

// seconds writes a duration as the client would send it: 60s, not 1m0s.
func seconds(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// await waits up to d for the organization's bulk id to finish and returns
// it as it is then. The wait holds no database connection and starts no
// goroutine: the request's own goroutine sleeps until the process's Waiter
// hears that the bulk finished, or the wait runs out; only the reads before
// and after it use the pool, each within the request timeout.
func (h *Bulks) await(c echo.Context, id uuid.UUID, d time.Duration) (models.Bulk, error) {
	if h.waiter == nil || d <= 0 {
		return h.bulk(c, id)
	}
	// Watch first, then read: an end between the two is not missed.
	watch := h.waiter.Watch(id)
	defer watch.Stop()
	b, err := h.bulk(c, id)
	if err != nil || b.Status.Finished() {
		return b, err
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	h.waiting.Inc()
	defer h.waiting.Dec()
	select {
	case <-watch.Done(): // finished, or the server is shutting down
	case <-timer.C:
	case <-c.Request().Context().Done():
		return b, nil // the client is gone: the answer goes nowhere, and nothing failed
	}
	return h.bulk(c, id)
}

// answeredFinished waits up to d for a stored bulk to finish and, if it
// did, answers it finished. If the reads of the wait fail, the bulk is
// still stored: false, for the 202 it has earned, never an error that
// invites a duplicate.
func (h *Bulks) answeredFinished(c echo.Context, b models.Bulk, d time.Duration) bool {
	waited, err := h.await(c, b.ID, d)
	if err == nil && waited.Status.Finished() {
		if err = h.answerFinished(c, waited); err == nil || c.Response().Committed {
			return true
		}
	}
	if err != nil {
		h.log.WarnContext(c.Request().Context(), "waiting for a stored bulk failed; answered 202", "bulk_id", b.ID, "err", err)
	}
	return false
}

// answerFinished answers 200 with the finished bulk and the first page of
// its results, as bulksvc.FinishedView: {"data": <bulk>, "results": <page>}.
// A bulk whose results retention erased is answered without them: its
// report_expired_at says why.
func (h *Bulks) answerFinished(c echo.Context, b models.Bulk) error {
	if b.ReportExpiredAt != nil {
		return respond(c, http.StatusOK, envelope{bulksvc.NewView(b)})
	}
	view, err := jsonscan.Marshal(bulksvc.NewView(b))
	if err != nil {
		return err
	}
	w := stream(c)
	_, _ = io.WriteString(w, `{"data":`)
	_, _ = w.Write(view)
	_, _ = io.WriteString(w, `,"results":`)
	h.writeResults(c, w, b, 1, bulksvc.ResultsSize.Default)
	_, _ = io.WriteString(w, "}\n")
	return nil
}

// bulk reads one of the organization's bulks within the request timeout.
func (h *Bulks) bulk(c echo.Context, id uuid.UUID) (models.Bulk, error) {
	return within(c.Request().Context(), h.timeout, func(ctx context.Context) (models.Bulk, error) {
		return h.bulks.Bulk(ctx, organization(c).ID, id)
	})
}

// reportBulk reads one of the organization's bulks whose report is to be
// read (bulksvc.ReportBulk) within the request timeout.
func (h *Bulks) reportBulk(c echo.Context, id uuid.UUID) (models.Bulk, error) {
	return within(c.Request().Context(), h.timeout, func(ctx context.Context) (models.Bulk, error) {
		return h.bulks.ReportBulk(ctx, organization(c).ID, id)
	})
}
