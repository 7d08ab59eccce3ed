package handlers

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/store"
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

// errorHandler maps every error a handler returns to a status and the
// {"message","errors"} shape. Anything it does not recognise is a 500 whose
// details stay in the log, under the request id.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		e := toError(err)
		if len(e.Errors) == 0 { // every error names a field, as documented
			e = newError(e.Status, "request", e.Message)
		}
		if e.Status >= 500 {
			log.ErrorContext(c.Request().Context(), "request failed",
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", err)
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
		_ = c.JSON(e.Status, e)
	}
}

func toError(err error) *Error {
	var (
		e         *Error
		he        *echo.HTTPError
		tooBig    *http.MaxBytesError
		badOption *bulk.OptionError
		limit     bulk.LimitError
	)
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &tooBig):
		return newError(http.StatusRequestEntityTooLarge, "body", "The request body must not be larger than "+byteSize(tooBig.Limit)+".")
	case errors.Is(err, bulk.ErrNotJSON), errors.Is(err, bulk.ErrNotArray), errors.Is(err, bulk.ErrInvalidUTF8):
		return newError(http.StatusBadRequest, "body", sentence(err))
	case errors.As(err, &badOption):
		return newError(http.StatusBadRequest, badOption.Param, badOption.Message)
	case errors.As(err, &limit):
		return newError(http.StatusUnprocessableEntity, limit.Field, limit.Message)
	case errors.Is(err, bulk.ErrNoRows), errors.Is(err, bulk.ErrTooManyRows):
		return newError(http.StatusUnprocessableEntity, "body", sentence(err))
	case errors.Is(err, store.ErrIdempotencyKeyReused):
		return newError(http.StatusUnprocessableEntity, headerIdempotencyKey,
			"The Idempotency-Key has already been used with a different request (body or options); use a new key for a new submission.")
	case errors.Is(err, store.ErrNotFound):
		return newError(http.StatusNotFound, "id", "The bulk was not found.")
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
