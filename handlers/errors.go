package handlers

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/page"
	"github.com/bulkd/bulkd/pkg/records"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/webhook"
)

// Error is a request-level error as clients see it:
// {"message": "...", "errors": {"<field>": ["..."]}}.
type Error struct {
	Status  int                 `json:"-"`
	Message string              `json:"message"`
	Errors  map[string][]string `json:"errors,omitempty"`
}

func (e *Error) Error() string { return e.Message }

func newError(status int, field, msg string) *Error {
	return &Error{Status: status, Message: msg, Errors: map[string][]string{field: {msg}}}
}

// errorHandler answers every error a handler returns, as the table (answer)
// says for the resource of its route. Anything the table does not know is a
// 500 whose details stay in the log, with the request's id.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		e := answer(err, subject(c.Path()), "request")
		if e.Status >= 500 {
			log.ErrorContext(c.Request().Context(), "request failed", "err", err)
		}
		if e.Status == http.StatusServiceUnavailable {
			c.Response().Header().Set("Retry-After", "5")
		}
		// A guard that set its own challenge keeps it: the queue UI's Basic
		// one is what makes a browser prompt for the password.
		if e.Status == http.StatusUnauthorized && c.Response().Header().Get(echo.HeaderWWWAuthenticate) == "" {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="bulkd"`)
		}
		if c.Request().Method == http.MethodHead {
			c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON) // as GET would answer
			_ = c.NoContent(e.Status)
			return
		}
		_ = respond(c, e.Status, e)
	}
}

// subject names the resource of a route in messages: "bulk", "webhook", a
// record's ("customer" for /api/v1/customers/{id}/debt_accounts too, whose
// id is the customer's), "" for none.
func subject(route string) string {
	first, _, _ := strings.Cut(strings.TrimPrefix(route, "/api/v1/"), "/")
	if first == "bulk" || first == "webhook" {
		return first
	}
	name, _ := records.Singular(first)
	return name
}

// answer is the one table from errors to answers: what a request, or an
// operation of a batch, that failed with err answers, naming subject (see
// subject: the resource of its route, or of the operation). An answer
// names a field always, as documented: field when the error itself names
// none.
func answer(err error, subject, field string) *Error {
	e := answerOf(err, subject)
	if len(e.Errors) == 0 {
		e = newError(e.Status, field, e.Message)
	}
	return e
}

func answerOf(err error, subject string) *Error {
	if subject == "" {
		subject = "record"
	}
	var (
		e          *Error
		he         *echo.HTTPError
		tooBig     *http.MaxBytesError
		badOption  *bulk.OptionError
		badFilter  *records.FilterError
		limit      bulk.LimitError
		finished   bulksvc.ErrNotCancelable
		expired    bulksvc.ErrReportExpired
		invalid    *records.ValidationError
		stale      *records.PreconditionError
		inUse      *records.InUseError
		malformed  *records.MalformedError
		badWebhook *webhook.URLError
	)
	switch {
	case errors.As(err, &e):
		return e

	// The request as a whole.
	case errors.As(err, &tooBig):
		return newError(http.StatusRequestEntityTooLarge, "body", "The request body must not be larger than "+byteSize(tooBig.Limit)+".")
	case errors.Is(err, bulk.ErrNotJSON), errors.Is(err, bulk.ErrNotArray), errors.Is(err, bulk.ErrInvalidUTF8):
		return newError(http.StatusBadRequest, "body", sentence(err))
	case errors.As(err, &badOption):
		return newError(http.StatusBadRequest, badOption.Param, badOption.Message)
	case errors.As(err, &badFilter):
		return newError(http.StatusBadRequest, badFilter.Param, badFilter.Message)
	case errors.Is(err, page.ErrInvalidCursor):
		return newError(http.StatusBadRequest, "cursor", msgCursor)
	case errors.As(err, &limit):
		return newError(http.StatusUnprocessableEntity, limit.Field, limit.Message)
	case errors.Is(err, bulk.ErrNoRows), errors.Is(err, bulk.ErrTooManyRows):
		return newError(http.StatusUnprocessableEntity, "body", sentence(err))
	case errors.Is(err, store.ErrIdempotencyKeyReused):
		return newError(http.StatusUnprocessableEntity, headerIdempotencyKey,
			"The Idempotency-Key has already been used with a different request (body or options); use a new key for a new submission.")

	// What the request names.
	case errors.Is(err, store.ErrNotFound) && subject == "webhook":
		return newError(http.StatusNotFound, "webhook", "The organization has no webhook; PUT one first.")
	case errors.Is(err, store.ErrNotFound):
		return newError(http.StatusNotFound, "id", "The "+subject+" was not found.")
	case errors.As(err, &finished):
		return newError(http.StatusConflict, "status",
			fmt.Sprintf("The bulk is %s; only a pending or processing bulk can be canceled.", finished.Bulk.Status))
	case errors.As(err, &expired):
		return newError(http.StatusGone, "report", reportExpired(expired.Bulk))
	case errors.As(err, &invalid):
		return &Error{Status: http.StatusUnprocessableEntity, Message: invalid.Error(), Errors: invalid.Messages}
	case errors.As(err, &stale) && stale.Weak:
		return newError(http.StatusPreconditionFailed, "If-Match",
			fmt.Sprintf("The If-Match header names the %s by a weak entity tag, and weak tags never match If-Match (RFC 9110 compares them strongly); send its ETag as given, %s (version %d).",
				subject, stale.Current, stale.Version))
	case errors.As(err, &stale):
		return newError(http.StatusPreconditionFailed, "If-Match",
			fmt.Sprintf("The %s has changed since it was read: its current version is %d (ETag %s); read it again and retry.",
				subject, stale.Version, stale.Current))
	case errors.As(err, &inUse):
		msg := fmt.Sprintf("The %s has %d %s; delete them first, or add ?cascade=true to delete them with it.",
			subject, inUse.Count, bulk.Label(inUse.What))
		if one, _ := records.Singular(inUse.What); inUse.Count == 1 {
			msg = fmt.Sprintf("The %s has 1 %s; delete it first, or add ?cascade=true to delete it with the %s.", subject, one, subject)
		}
		return newError(http.StatusConflict, inUse.What, msg)
	case errors.As(err, &malformed):
		return newError(http.StatusBadRequest, "operation", malformed.Message)
	case errors.As(err, &badWebhook):
		return newError(http.StatusUnprocessableEntity, "url", badWebhook.Reason)
	case errors.Is(err, bulksvc.ErrWebhooksOff):
		return newError(http.StatusNotImplemented, "webhook",
			"Webhooks are not configured on this server (its WEBHOOK_SECRET_KEY is not set).")

	// The server.
	case errors.Is(err, store.ErrUnavailable):
		return newError(http.StatusServiceUnavailable, "service", "The database is unavailable; please try again shortly.")
	case errors.Is(err, echo.ErrNotFound): // no route
		return newError(http.StatusNotFound, "path", "No API endpoint has this path.")
	case errors.Is(err, echo.ErrMethodNotAllowed): // the router has set Allow
		return newError(http.StatusMethodNotAllowed, "method", "This endpoint does not accept this method; the Allow header lists those it does.")
	case errors.As(err, &he):
		msg, _ := he.Message.(string)
		if msg == "" {
			msg = http.StatusText(he.Code)
		}
		return newError(he.Code, "request", msg)
	}
	return newError(http.StatusInternalServerError, "service", "Internal server error.")
}

// reportExpired says that a bulk's report was erased, when, and what is
// left of it.
func reportExpired(b models.Bulk) string {
	at := ""
	if b.ReportExpiredAt != nil {
		at = " on " + b.ReportExpiredAt.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("The bulk's report has expired: its rows as submitted and their results were erased%s, "+
		"once the retention period after the bulk finished had passed. Its status and counts remain: GET /api/v1/bulk/%s.", at, b.ID)
}

// timeoutError is the answer to work that did not finish within timeout.
func timeoutError(timeout time.Duration) *Error {
	return newError(http.StatusServiceUnavailable, "service",
		fmt.Sprintf("The request did not finish within %s; please try again shortly.", timeout))
}

// sentence turns a Go error text into a message: capitalised, with a full stop.
func sentence(err error) string {
	s := err.Error()
	if s == "" {
		return s
	}
	b := []byte(s)
	if b[0] >= 'a' && b[0] <= 'z' {
		b[0] -= 'a' - 'A'
	}
	return string(b) + "."
}

// byteSize writes a limit the way it was most likely configured.
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
