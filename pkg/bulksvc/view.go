package bulksvc

import (
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/models"
)

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
	}
}
