package handlers

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulksvc"
)

// waitParam is the query parameter with which a client waits for a bulk
// to finish: POST /api/v1/bulk?wait=30s, GET /api/v1/bulk/{id}?wait=30s.
const waitParam = "wait"

// wait reads the wait parameter: a Go duration (30s, 1m) or whole seconds
// (30), from 0 (no wait) to the server's MAX_WAIT.
func (h *Bulks) wait(q url.Values) (time.Duration, error) {
	values := q[waitParam]
	if len(values) == 0 {
		return 0, nil
	}
	if len(values) > 1 {
		return 0, newError(http.StatusBadRequest, waitParam, "The wait parameter must be given at most once.")
	}
	v := values[0]
	d, err := time.ParseDuration(v)
	if n, nerr := strconv.Atoi(v); nerr == nil {
		d, err = time.Duration(n)*time.Second, nil
		if n < 0 || n > int(h.maxWait/time.Second) {
			d = -1 // out of range, before a multiplication that would overflow
		}
	}
	if err != nil || d < 0 || d > h.maxWait {
		return 0, newError(http.StatusBadRequest, waitParam, fmt.Sprintf(
			"The wait parameter must be a duration from 0 to %s, such as 30s (or a whole number of seconds).", seconds(h.maxWait)))
	}
	return d, nil
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
	ctx := c.Request().Context()
	read := func() (b models.Bulk, err error) {
		err = work(ctx, h.timeout, func(ctx context.Context) (err error) {
			b, err = h.bulks.Bulk(ctx, organization(c).ID, id)
			return err
		})
		return b, err
	}
	if h.waiter == nil || d <= 0 {
		return read()
	}
	// Watch first, then read: an end between the two is not missed.
	watch := h.waiter.Watch(id)
	defer watch.Stop()
	b, err := read()
	if err != nil || b.Status.Finished() {
		return b, err
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-watch.Done(): // finished, or the server is shutting down
	case <-timer.C:
	case <-ctx.Done():
		return b, nil // the client is gone: the answer goes nowhere, and nothing failed
	}
	return read()
}

// answerFinished answers 200 with the finished bulk, as GET shows it, and
// the first page of its results, as GET …/results gives it:
// {"data": <bulk>, "results": <page>}.
func (h *Bulks) answerFinished(c echo.Context, b models.Bulk) error {
	view, err := marshalPlain(envelope{bulksvc.NewView(b)})
	if err != nil {
		return err
	}
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	w.WriteHeader(http.StatusOK)
	w.Write(bytes.TrimSuffix(bytes.TrimSuffix(view, []byte("\n")), []byte("}"))) // {"data":<bulk>
	w.Write([]byte(`,"results":`))
	h.writeResults(c, w, b, 1, defaultPerPage)
	w.Write([]byte("}\n"))
	return nil
}
