package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/page"
	"github.com/bulkd/bulkd/pkg/records"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/webhook"
)

// A route's resource names what its 404 and its conflicts are about.
func TestSubjectOfRoute(t *testing.T) {
	t.Parallel()
	for route, want := range map[string]string{
		"/api/v1/bulk": "bulk", "/api/v1/bulk/:id/results": "bulk", "/api/v1/webhook/rotate": "webhook",
		"/api/v1/locations/:id": "location", "/api/v1/customers": "customer", "/api/v1/customers/:id/debt_accounts": "customer",
		"/api/v1/debt_accounts/:id": "debt account", "/api/v1/batch": "", "/healthz": "", "": "",
	} {
		if got := subject(route); got != want {
			t.Errorf("subject(%q) = %q, want %q", route, got, want)
		}
	}
}

// The table answers each error with its status, the field it names and a
// message that names the resource looked up; wrapped errors as theirs.
func TestErrorTable(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return fmt.Errorf("somewhere: %w", err) }
	for _, tc := range []struct {
		err     error
		subject string
		status  int
		field   string
		msg     string
	}{
		{store.ErrNotFound, "bulk", 404, "id", "The bulk was not found."},
		{wrap(store.ErrNotFound), "customer", 404, "id", "The customer was not found."},
		{store.ErrNotFound, "location", 404, "id", "The location was not found."},
		{store.ErrNotFound, "debt account", 404, "id", "The debt account was not found."},
		{store.ErrNotFound, "webhook", 404, "webhook", "The organization has no webhook; PUT one first."},
		{store.ErrNotFound, "", 404, "id", "The record was not found."},
		{page.ErrInvalidCursor, "customer", 400, "cursor", msgCursor},
		{wrap(page.ErrInvalidCursor), "bulk", 400, "cursor", msgCursor},
		{&records.FilterError{Param: "bulk_id", Message: "m"}, "customer", 400, "bulk_id", "m"},
		{&bulk.OptionError{Param: "mode", Message: "m"}, "bulk", 400, "mode", "m"},
		{bulk.ErrNotArray, "bulk", 400, "body", ""},
		{bulk.ErrNoRows, "bulk", 422, "body", ""},
		{bulk.LimitError{Field: "body", Message: "m"}, "bulk", 422, "body", "m"},
		{&http.MaxBytesError{Limit: 1 << 20}, "bulk", 413, "body", "The request body must not be larger than 1 MiB."},
		{store.ErrIdempotencyKeyReused, "bulk", 422, headerIdempotencyKey, ""},
		{bulksvc.ErrNotCancelable{Bulk: models.Bulk{Status: "completed"}}, "bulk", 409, "status",
			"The bulk is completed; only a pending or processing bulk can be canceled."},
		{&records.ValidationError{Messages: map[string][]string{"email": {"m"}}}, "customer", 422, "email", "m"},
		{&records.PreconditionError{Version: 3, Current: `"3"`}, "location", 412, "If-Match",
			`The location has changed since it was read: its current version is 3 (ETag "3"); read it again and retry.`},
		{&records.InUseError{What: "debt_accounts", Count: 2}, "customer", 409, "debt_accounts",
			"The customer has 2 debt accounts; delete them first, or add ?cascade=true to delete them with it."},
		{&records.MalformedError{Message: "m"}, "", 400, "operation", "m"},
		{&webhook.URLError{Reason: "r"}, "webhook", 422, "url", "r"},
		{bulksvc.ErrWebhooksOff, "webhook", 501, "webhook", ""},
		{store.ErrUnavailable, "bulk", 503, "service", ""},
		{echo.ErrNotFound, "", 404, "path", ""},
		{echo.ErrMethodNotAllowed, "bulk", 405, "method", ""},
		{echo.NewHTTPError(http.StatusTeapot), "", 418, "request", "I'm a teapot"},
		{newError(http.StatusTeapot, "pot", "m"), "bulk", 418, "pot", "m"},
		{timeoutError(0), "bulk", 503, "service", ""},
		{errors.New("boom"), "bulk", 500, "service", "Internal server error."},
		{context.Canceled, "bulk", 500, "service", "Internal server error."},
	} {
		e := answer(tc.err, tc.subject, "request")
		if e.Status != tc.status || len(e.Errors[tc.field]) == 0 || (tc.msg != "" && e.Message != tc.msg) {
			t.Errorf("%v for %q: %d %q %v, want %d naming %s %q", tc.err, tc.subject, e.Status, e.Message, e.Errors, tc.status, tc.field, tc.msg)
		}
	}
}

// Every answer names a field, as documented: the caller's when the error
// names none (a request's "request", a batch operation's "operation").
func TestEveryAnswerNamesAField(t *testing.T) {
	t.Parallel()
	bare := &Error{Status: http.StatusUnauthorized, Message: "Unauthorized."}
	for _, field := range []string{"request", "operation"} {
		if e := answer(bare, "", field); e.Status != 401 || len(e.Errors[field]) != 1 || e.Errors[field][0] != "Unauthorized." {
			t.Errorf("an answer of no field, for %s: %+v", field, e)
		}
	}
}
