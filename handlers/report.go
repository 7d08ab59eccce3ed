package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/report"
	"github.com/bulkd/bulkd/pkg/store"
)

// Reports serves the report page a completion email links to: a person
// opens it without an API key, with the signed link as the credential.
type Reports struct {
	links   *report.Links
	bulks   *bulksvc.Service
	timeout time.Duration
	log     *slog.Logger
}

// reportCSP lets the page show itself and nothing else: its styles are
// inline, it has no script, image or form, and it is never framed.
const reportCSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Get answers GET /report/{id} with the HTML page, and /report/{id}.csv
// with every error line as CSV. A link that is not bulkd's is 403, an
// expired one 410, and so is the report of a bulk that retention erased,
// each a page a person can read.
func (h *Reports) Get(c echo.Context) error {
	w := c.Response().Header()
	w.Set("Cache-Control", "no-store")
	w.Set("X-Robots-Tag", "noindex")
	w.Set("Content-Security-Policy", reportCSP)
	raw, asCSV := strings.CutSuffix(c.Param("id"), ".csv")
	id, err := uuid.Parse(raw)
	if err != nil {
		return h.notice(c, http.StatusNotFound, "Report not found", "No report has this address.")
	}
	q, err := readQuery(c, "org", "expires", "sig")
	if err == nil {
		err = q.err()
	}
	if err != nil {
		return h.notice(c, http.StatusForbidden, "This link is not valid", linkInvalid)
	}
	g, err := h.links.Verify(id, q.values, time.Now())
	switch {
	case errors.Is(err, report.ErrExpired):
		return h.notice(c, http.StatusGone, "This link has expired",
			"Report links work for a limited time. The organization's API keys still read the bulk's errors: GET /api/v1/bulk/"+id.String()+"/errors.")
	case err != nil:
		return h.notice(c, http.StatusForbidden, "This link is not valid", linkInvalid)
	}
	ctx := c.Request().Context()
	b, err := within(ctx, h.timeout, func(ctx context.Context) (models.Bulk, error) {
		return h.bulks.ReportBulk(ctx, g.OrganizationID, id)
	})
	var erased bulksvc.ErrReportExpired
	switch {
	case errors.Is(err, store.ErrNotFound):
		return h.notice(c, http.StatusNotFound, "Report not found", "The bulk of this report no longer exists.")
	case errors.As(err, &erased):
		return h.notice(c, http.StatusGone, "This report has expired", expiredReport(erased.Bulk))
	}
	if err != nil {
		return h.unavailable(c, err)
	}
	if asCSV {
		return h.csv(c, g, b)
	}
	page := report.Page{Bulk: bulksvc.NewView(b), CSVURL: report.PathCSV(id) + "?" + g.Query(), Expires: g.Expires}
	err = work(ctx, h.timeout, func(ctx context.Context) (err error) {
		page.Lines, page.More, err = h.bulks.FirstErrorLines(ctx, g.OrganizationID, id, report.MaxPageLines)
		return err
	})
	if err != nil {
		return h.unavailable(c, err)
	}
	var buf bytes.Buffer // bounded by MaxPageLines
	if err := report.WritePage(&buf, page); err != nil {
		return err
	}
	return c.HTMLBlob(http.StatusOK, buf.Bytes())
}

// expiredReport says, on the page, that the bulk's rows and errors were
// erased, and what is left: its summary.
func expiredReport(b models.Bulk) string {
	at := ""
	if b.ReportExpiredAt != nil {
		at = " on " + b.ReportExpiredAt.UTC().Format("2 January 2006")
	}
	return fmt.Sprintf("The rows of bulk %s and their errors were erased%s, once the retention period after the bulk finished had passed. "+
		"Its summary remains: %s, %d of %d rows fully imported, %d with errors.",
		b.ID, at, b.Status, b.RowsSucceeded, b.Count, b.RowsFailed)
}

const linkInvalid = "The link was changed or is incomplete. Open it again from the email, or ask for a new one."

// csv streams every error line of the bulk; once it has begun, a failure
// can only cut it short.
func (h *Reports) csv(c echo.Context, g report.Grant, b models.Bulk) error {
	out := report.ErrorsCSV(streamCSV(c, "bulk-"+b.ID.String()+"-errors.csv"))
	err := h.bulks.ErrorLines(c.Request().Context(), g.OrganizationID, b.ID, out.Error)
	if err != nil {
		h.log.WarnContext(c.Request().Context(), "report CSV cut short", "bulk_id", b.ID, "err", err)
		return nil
	}
	return out.Flush()
}

// notice answers a page that says why the report does not open.
func (h *Reports) notice(c echo.Context, status int, title, text string) error {
	var buf bytes.Buffer
	if err := report.WriteNotice(&buf, title, text); err != nil {
		return err
	}
	return c.HTMLBlob(status, buf.Bytes())
}

// unavailable answers a page for a database that failed the request.
func (h *Reports) unavailable(c echo.Context, err error) error {
	h.log.ErrorContext(c.Request().Context(), "report page failed", "err", err)
	c.Response().Header().Set("Retry-After", "5")
	return h.notice(c, http.StatusServiceUnavailable, "The report cannot be shown right now", "Please try again in a moment.")
}
