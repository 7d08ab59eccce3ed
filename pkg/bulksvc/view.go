package bulksvc

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/page"
)

// The answers of the bulk API as clients read them; handlers write them and
// the tests and the client read them.

// Accepted is the answer to a submission: the bulk's id, its rows and its
// status, pending.
type Accepted struct {
	BulkID uuid.UUID         `json:"bulk_id"`
	Count  int               `json:"count"`
	Status models.BulkStatus `json:"status"`
}

// View is a bulk as GET /api/v1/bulk/{id} shows it, and as a webhook's data
// carries it; times not reached yet are null.
type View struct {
	Accepted
	// The options it was submitted with.
	Mode         string `json:"mode"`
	Atomic       bool   `json:"atomic"`
	ValidateOnly bool   `json:"validate_only"`
	Strict       bool   `json:"strict"`
	// RolledBack: the bulk is atomic and a row failed, so nothing was written.
	RolledBack    bool `json:"rolled_back"`
	RowsSucceeded int  `json:"rows_succeeded"`
	RowsFailed    int  `json:"rows_failed"`
	// RecordsWritten says what is stored, since a row with errors may still
	// have written its location, customer and some accounts.
	RecordsWritten RecordsWritten `json:"records_written"`
	FailureReason  *string        `json:"failure_reason,omitempty"`
	CreatedAt      time.Time      `json:"created_at"`
	StartedAt      *time.Time     `json:"started_at"`
	CompletedAt    *time.Time     `json:"completed_at"`
	CanceledAt     *time.Time     `json:"canceled_at"`
	// ReportExpiredAt is when the bulk's rows as submitted and its results
	// were erased, RETENTION after it finished; only then is it shown, and
	// /errors and /results answer 410 from then on.
	ReportExpiredAt *time.Time `json:"report_expired_at,omitempty"`
}

// RecordsWritten counts the records a bulk's import wrote, by table.
type RecordsWritten struct {
	Locations    int `json:"locations"`
	Customers    int `json:"customers"`
	DebtAccounts int `json:"debt_accounts"`
}

// NewView shows a bulk as GET /api/v1/bulk/{id} does.
func NewView(b models.Bulk) View {
	return View{
		Accepted: Accepted{BulkID: b.ID, Count: b.Count, Status: b.Status},
		Mode:     b.Mode, Atomic: b.Atomic, ValidateOnly: b.ValidateOnly, Strict: b.Strict, RolledBack: b.RolledBack,
		RowsSucceeded: b.RowsSucceeded, RowsFailed: b.RowsFailed, FailureReason: b.FailureReason,
		RecordsWritten: RecordsWritten{Locations: b.LocationsWritten, Customers: b.CustomersWritten, DebtAccounts: b.DebtAccountsWritten},
		CreatedAt:      b.CreatedAt, StartedAt: b.StartedAt, CompletedAt: b.CompletedAt, CanceledAt: b.CanceledAt,
		ReportExpiredAt: b.ReportExpiredAt,
	}
}

// ResultsPage is GET /api/v1/bulk/{id}/results: a page of rows in the order
// submitted, then the bulk's status (a bulk not finished yet has no rows,
// which tells "nothing yet" from "nothing failed"), the rows' totals by
// status, and the next page.
type ResultsPage struct {
	Data []bulk.ResultRow `json:"data"`
	ResultsTotals
}

// ResultsTotals is what follows a page's rows.
type ResultsTotals struct {
	Status         models.BulkStatus `json:"status"`
	TotalRows      int               `json:"total_rows"`
	TotalCreated   int               `json:"total_created"`
	TotalUpdated   int               `json:"total_updated"`
	TotalUnchanged int               `json:"total_unchanged"`
	TotalErrors    int               `json:"total_errors"`
	Links          page.Links        `json:"links"`
}

// NewResultsTotals is what follows the rows of a page of b's results; the
// caller sets the link to the next page. Only a completed bulk has results.
func NewResultsTotals(b models.Bulk) ResultsTotals {
	v := ResultsTotals{Status: b.Status, TotalRows: b.Count}
	if b.Status == models.StatusCompleted {
		v.TotalCreated, v.TotalUpdated, v.TotalUnchanged, v.TotalErrors = b.RowsCreated, b.RowsUpdated, b.RowsUnchanged, b.RowsFailed
	}
	return v
}

// FinishedView is the answer to a wait that saw the bulk finish: the bulk, as
// GET /api/v1/bulk/{id} shows it, and the first page of its results.
type FinishedView struct {
	Data    View        `json:"data"`
	Results ResultsPage `json:"results"`
}

// ErrorsPage is GET /api/v1/bulk/{id}/errors: the failed rows, in order,
// then the bulk's status, which tells "nothing failed" from "not imported
// yet".
type ErrorsPage struct {
	Data []ErrorRow `json:"data"`
	ErrorsStatus
}

// ErrorsStatus is what follows the rows of an ErrorsPage.
type ErrorsStatus struct {
	Status models.BulkStatus `json:"status"`
}

// ErrorRow is one failed row of the errors report: its number, the row as
// submitted and its errors (the sections of bulk.RowErrors), both as
// stored.
type ErrorRow struct {
	ID      int             `json:"id"`
	Payload json.RawMessage `json:"payload"`
	Errors  json.RawMessage `json:"errors"`
}
