package store

// Baselines for cmd/bulkbench: the records an import writes, written with
// nothing around them, the fastest way (COPY, as Import does) and the naive
// way (one GORM Create per record). Comparing the service's end-to-end rate
// with them says what the queue, validation, look-ups and reports cost, and
// what the set-based writes save.

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulk"
)

// RecordCounts counts the records an organization's imports wrote.
type RecordCounts struct {
	Locations    int64 `json:"locations"`
	Customers    int64 `json:"customers"`
	DebtAccounts int64 `json:"debt_accounts"`
}

// Total is every record of the three tables.
func (c RecordCounts) Total() int64 { return c.Locations + c.Customers + c.DebtAccounts }

// Add sums two counts.
func (c RecordCounts) Add(o RecordCounts) RecordCounts {
	return RecordCounts{Locations: c.Locations + o.Locations, Customers: c.Customers + o.Customers, DebtAccounts: c.DebtAccounts + o.DebtAccounts}
}

// PlanCounts counts the records a plan writes.
func PlanCounts(p *bulk.Plan) RecordCounts {
	return RecordCounts{Locations: int64(len(p.Locations)), Customers: int64(len(p.Customers)), DebtAccounts: int64(len(p.DebtAccounts))}
}

// CountRecords counts the organization's locations, customers and debt
// accounts, in one round trip.
func (s *Store) CountRecords(ctx context.Context, orgID uuid.UUID) (RecordCounts, error) {
	var c RecordCounts
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM locations WHERE organization_id = $1),
		(SELECT count(*) FROM customers WHERE organization_id = $1),
		(SELECT count(*) FROM debt_accounts WHERE organization_id = $1)`, pgUUID(orgID)).
		Scan(&c.Locations, &c.Customers, &c.DebtAccounts)
	if err != nil {
		return RecordCounts{}, errorf("store: count records: %w", err)
	}
	return c, nil
}

// CreateBaselineBulk stores a completed bulk without rows, for the records of
// a baseline write to point at through bulk_id as imported records do.
func (s *Store) CreateBaselineBulk(ctx context.Context, orgID, id uuid.UUID, count int) error {
	now := time.Now()
	b := models.Bulk{ID: id, OrganizationID: orgID, Status: models.StatusCompleted, Count: count, Mode: string(bulk.ModeCreate),
		RowsSucceeded: count, StartedAt: &now, CompletedAt: &now}
	if err := s.db.WithContext(ctx).Create(&b).Error; err != nil {
		return errorf("store: create baseline bulk: %w", err)
	}
	return nil
}

// CopyPlan writes a plan's new records exactly as Import does — one COPY
// per table in one transaction, the same columns and conversions — and
// nothing else: no lock, no look-ups, no row reports, no status. The plan's
// bulk must exist (CreateBaselineBulk).
func (s *Store) CopyPlan(ctx context.Context, orgID uuid.UUID, p *bulk.Plan) error {
	if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := applyPlan(ctx, tx, orgID, p)
		return err
	}); err != nil {
		return errorf("store: copy plan: %w", err)
	}
	return nil
}

// CreatePlanOneByOne writes the same records as CopyPlan the way a naive
// importer would: one GORM Create, so one INSERT round trip, per record, all
// in one transaction.
func (s *Store) CreatePlanOneByOne(ctx context.Context, orgID uuid.UUID, p *bulk.Plan) error {
	bulkID := p.BulkID
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, l := range p.Locations {
			rec := models.Location{ID: l.ID, OrganizationID: orgID, ExternalID: l.ExternalID, Name: textOrNil(l.Name),
				BulkID: &bulkID, BulkRow: &l.Row}
			if err := tx.Create(&rec).Error; err != nil {
				return fmt.Errorf("location: %w", err)
			}
		}
		for _, c := range p.Customers {
			rec := models.Customer{ID: c.ID, OrganizationID: orgID, ExternalID: c.ExternalID, LocationID: c.LocationID,
				Name: c.Name, Email: textOrNil(c.Email), Phone: textOrNil(c.Phone), SSNLast4: textOrNil(c.SSNLast4),
				Address: c.Address, Metadata: c.Metadata, BulkID: &bulkID, BulkRow: &c.Row}
			if !c.DateOfBirth.IsZero() {
				rec.DateOfBirth = &c.DateOfBirth
			}
			if err := tx.Create(&rec).Error; err != nil {
				return fmt.Errorf("customer: %w", err)
			}
		}
		for _, a := range p.DebtAccounts {
			rec := models.DebtAccount{ID: a.ID, OrganizationID: orgID, ExternalID: a.ExternalID, CustomerID: a.CustomerID,
				ExternalAccountNumber: textOrNil(a.ExternalAccountNumber), Balance: a.Balance.String(),
				CurrentBalance: a.CurrentBalance.String(), BillingType: a.BillingType, Metadata: a.Metadata,
				BulkID: &bulkID, BulkRow: &a.Row}
			if a.ParentID != uuid.Nil {
				rec.ParentID = &a.ParentID
			}
			if err := tx.Create(&rec).Error; err != nil {
				return fmt.Errorf("debt account: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return errorf("store: create plan one by one: %w", err)
	}
	return nil
}

// textOrNil maps "" to NULL, as the import's nullText does.
func textOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
