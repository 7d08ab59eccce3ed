package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/bulkd/bulkd/pkg/bulk"
)

// Inserts are the new records of a plan in one table, as the import writes
// them: the table, the columns it sets, and the values of the i-th record
// in the columns' order. They are the one statement of each record table's
// columns: the import COPYs them, and cmd/bulkbench's baselines write the
// same rows their own ways, so that they measure the very records bulkd
// writes.
type Inserts struct {
	Table   string
	Columns []string
	Len     int
	Values  func(i int) []any
}

// PlanInserts returns the new records of the plan, table by table in the
// order the import writes them: locations, customers, debt accounts, each
// pointing at records of the tables before. An empty plan gives each table
// with its columns and no records.
func PlanInserts(orgID uuid.UUID, p *bulk.Plan) []Inserts {
	org, bulkID := pgUUID(orgID), pgUUID(p.BulkID)
	return []Inserts{
		{Table: "locations",
			Columns: []string{"id", "organization_id", "external_id", "name", "bulk_id", "bulk_row", "last_bulk_id", "last_bulk_row"},
			Len:     len(p.Locations),
			Values: func(i int) []any {
				l := p.Locations[i]
				return []any{pgUUID(l.ID), org, l.ExternalID, nullText(l.Name), bulkID, l.Row, bulkID, l.Row}
			}},
		{Table: "customers",
			Columns: []string{"id", "organization_id", "external_id", "location_id", "name", "email", "phone",
				"date_of_birth", "ssn_last4", "address", "metadata", "bulk_id", "bulk_row", "last_bulk_id", "last_bulk_row"},
			Len: len(p.Customers),
			Values: func(i int) []any {
				c := p.Customers[i]
				return []any{pgUUID(c.ID), org, c.ExternalID, pgUUID(c.LocationID), c.Name, nullText(c.Email), nullText(c.Phone),
					nullDate(c.DateOfBirth), nullText(c.SSNLast4), nullJSON(c.Address), nullJSON(c.Metadata), bulkID, c.Row, bulkID, c.Row}
			}},
		{Table: "debt_accounts",
			Columns: []string{"id", "organization_id", "external_id", "customer_id", "parent_id", "external_account_number",
				"balance", "current_balance", "billing_type", "metadata", "bulk_id", "bulk_row", "last_bulk_id", "last_bulk_row"},
			Len: len(p.DebtAccounts),
			Values: func(i int) []any {
				a := p.DebtAccounts[i]
				return []any{pgUUID(a.ID), org, a.ExternalID, pgUUID(a.CustomerID), pgUUID(a.ParentID), nullText(a.ExternalAccountNumber),
					numeric(a.Balance), numeric(a.CurrentBalance), a.BillingType, nullJSON(a.Metadata), bulkID, a.Row, bulkID, a.Row}
			}},
	}
}

// Copy writes the records into their table in tx, in one COPY; no records,
// no round trip.
func (in Inserts) Copy(ctx context.Context, tx pgx.Tx) error {
	if in.Len == 0 {
		return nil
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{in.Table}, in.Columns, pgx.CopyFromSlice(in.Len, func(i int) ([]any, error) {
		return in.Values(i), nil
	})); err != nil {
		return fmt.Errorf("copy %s: %w", strings.ReplaceAll(in.Table, "_", " "), err)
	}
	return nil
}
