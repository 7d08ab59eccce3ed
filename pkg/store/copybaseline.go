package store

// Baselines for cmd/bulkbench: the records an import writes, written with
// nothing around them, the fastest way (COPY, as Import does), the naive
// way (one GORM Create per record) and, for upserts, the raw set-based way
// (COPY into a temporary table, one INSERT … ON CONFLICT DO UPDATE per
// table). Comparing the service's end-to-end rate with them says what the
// queue, validation, look-ups and reports cost, and what the set-based
// writes save.

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

// The staging tables of UpsertPlan, made once per connection and emptied at
// every commit, as the import's own staging tables are.
var rawUpsertStaging = []string{
	`CREATE TEMP TABLE IF NOT EXISTS raw_locations (id uuid, external_id text, name text, row integer) ON COMMIT DELETE ROWS`,
	`CREATE TEMP TABLE IF NOT EXISTS raw_customers (id uuid, external_id text, location_external_id text, name text,
		email text, phone text, date_of_birth date, ssn_last4 text, address jsonb, metadata jsonb, row integer) ON COMMIT DELETE ROWS`,
	`CREATE TEMP TABLE IF NOT EXISTS raw_debt_accounts (id uuid, external_id text, customer_external_id text,
		parent_external_id text, external_account_number text, balance numeric(14,2), current_balance numeric(14,2),
		billing_type text[], metadata jsonb, row integer) ON COMMIT DELETE ROWS`,
}

// The INSERT … ON CONFLICT DO UPDATE of each table: references resolve by
// external id, so a record that exists keeps its id and one that does not
// is created. Every record is rewritten and counts a version, changed or
// not: that is what a raw upsert does. Top-level debt accounts go before
// their children, which look their parent up.
const (
	rawUpsertLocations = `INSERT INTO locations AS r (id, organization_id, external_id, name, bulk_id, bulk_row, last_bulk_id, last_bulk_row)
		SELECT t.id, $1, t.external_id, t.name, $2, t.row, $2, t.row FROM raw_locations t
		ON CONFLICT (organization_id, external_id) DO UPDATE SET name = excluded.name, version = r.version + 1,
		updated_at = clock_timestamp(), last_bulk_id = excluded.last_bulk_id, last_bulk_row = excluded.last_bulk_row`
	rawUpsertCustomers = `INSERT INTO customers AS r (id, organization_id, external_id, location_id, name, email, phone,
		date_of_birth, ssn_last4, address, metadata, bulk_id, bulk_row, last_bulk_id, last_bulk_row)
		SELECT t.id, $1, t.external_id, l.id, t.name, t.email, t.phone, t.date_of_birth, t.ssn_last4, t.address, t.metadata,
		       $2, t.row, $2, t.row
		  FROM raw_customers t JOIN locations l ON l.organization_id = $1 AND l.external_id = t.location_external_id
		ON CONFLICT (organization_id, external_id) DO UPDATE SET location_id = excluded.location_id, name = excluded.name,
		email = excluded.email, phone = excluded.phone, date_of_birth = excluded.date_of_birth, ssn_last4 = excluded.ssn_last4,
		address = excluded.address, metadata = excluded.metadata, version = r.version + 1, updated_at = clock_timestamp(),
		last_bulk_id = excluded.last_bulk_id, last_bulk_row = excluded.last_bulk_row`
	rawUpsertDebtAccounts = `INSERT INTO debt_accounts AS r (id, organization_id, external_id, customer_id, parent_id,
		external_account_number, balance, current_balance, billing_type, metadata, bulk_id, bulk_row, last_bulk_id, last_bulk_row)
		SELECT t.id, $1, t.external_id, c.id, p.id, t.external_account_number, t.balance, t.current_balance, t.billing_type,
		       t.metadata, $2, t.row, $2, t.row
		  FROM raw_debt_accounts t JOIN customers c ON c.organization_id = $1 AND c.external_id = t.customer_external_id
		  LEFT JOIN debt_accounts p ON p.organization_id = $1 AND p.external_id = t.parent_external_id
		 WHERE (t.parent_external_id IS NULL) = $3
		ON CONFLICT (organization_id, external_id) DO UPDATE SET customer_id = excluded.customer_id, parent_id = excluded.parent_id,
		external_account_number = excluded.external_account_number, balance = excluded.balance,
		current_balance = excluded.current_balance, billing_type = excluded.billing_type, metadata = excluded.metadata,
		version = r.version + 1, updated_at = clock_timestamp(), last_bulk_id = excluded.last_bulk_id, last_bulk_row = excluded.last_bulk_row`
)

// UpsertPlan writes a plan's new records the raw set-based way of an
// upsert: one COPY per table into a temporary table, then one INSERT … ON
// CONFLICT DO UPDATE per table (two for debt accounts: parents, then
// children), in one transaction; nothing else. Records already stored
// under the same external ids are rewritten with the plan's values. The
// plan must be of its bulk alone (planned against no existing records), so
// that every location, customer and parent it points at is among its own
// records; its bulk must exist (CreateBaselineBulk).
func (s *Store) UpsertPlan(ctx context.Context, orgID uuid.UUID, p *bulk.Plan) error {
	locations := make(map[uuid.UUID]string, len(p.Locations))
	for _, l := range p.Locations {
		locations[l.ID] = l.ExternalID
	}
	customers := make(map[uuid.UUID]string, len(p.Customers))
	for _, c := range p.Customers {
		customers[c.ID] = c.ExternalID
	}
	for _, c := range p.Customers {
		if _, ok := locations[c.LocationID]; !ok {
			return errorf("store: upsert plan: customer %q points at a location outside the plan", c.ExternalID)
		}
	}
	for _, a := range p.DebtAccounts {
		if _, ok := customers[a.CustomerID]; !ok {
			return errorf("store: upsert plan: debt account %q points at a customer outside the plan", a.ExternalID)
		}
	}
	org, bulkID := pgUUID(orgID), pgUUID(p.BulkID)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, ddl := range rawUpsertStaging {
			if _, err := tx.Exec(ctx, ddl); err != nil {
				return fmt.Errorf("stage: %w", err)
			}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"raw_locations"}, []string{"id", "external_id", "name", "row"},
			pgx.CopyFromSlice(len(p.Locations), func(i int) ([]any, error) {
				l := p.Locations[i]
				return []any{pgUUID(l.ID), l.ExternalID, nullText(l.Name), l.Row}, nil
			})); err != nil {
			return fmt.Errorf("copy locations: %w", err)
		}
		if _, err := tx.Exec(ctx, rawUpsertLocations, org, bulkID); err != nil {
			return fmt.Errorf("upsert locations: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"raw_customers"},
			[]string{"id", "external_id", "location_external_id", "name", "email", "phone", "date_of_birth", "ssn_last4",
				"address", "metadata", "row"},
			pgx.CopyFromSlice(len(p.Customers), func(i int) ([]any, error) {
				c := p.Customers[i]
				return []any{pgUUID(c.ID), c.ExternalID, locations[c.LocationID], c.Name, nullText(c.Email), nullText(c.Phone),
					nullDate(c.DateOfBirth), nullText(c.SSNLast4), nullJSON(c.Address), nullJSON(c.Metadata), c.Row}, nil
			})); err != nil {
			return fmt.Errorf("copy customers: %w", err)
		}
		if _, err := tx.Exec(ctx, rawUpsertCustomers, org, bulkID); err != nil {
			return fmt.Errorf("upsert customers: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"raw_debt_accounts"},
			[]string{"id", "external_id", "customer_external_id", "parent_external_id", "external_account_number",
				"balance", "current_balance", "billing_type", "metadata", "row"},
			pgx.CopyFromSlice(len(p.DebtAccounts), func(i int) ([]any, error) {
				a := p.DebtAccounts[i]
				return []any{pgUUID(a.ID), a.ExternalID, customers[a.CustomerID], nullText(a.ParentExternalID),
					nullText(a.ExternalAccountNumber), numeric(a.Balance), numeric(a.CurrentBalance), a.BillingType,
					nullJSON(a.Metadata), a.Row}, nil
			})); err != nil {
			return fmt.Errorf("copy debt accounts: %w", err)
		}
		for _, topLevel := range []bool{true, false} {
			if _, err := tx.Exec(ctx, rawUpsertDebtAccounts, org, bulkID, topLevel); err != nil {
				return fmt.Errorf("upsert debt accounts: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return errorf("store: upsert plan: %w", err)
	}
	return nil
}

// RecordState is one stored record as bulkbench compares it before and
// after an upsert: its version, the value of the field an upsert run plants
// a change in (a customer's name, a debt account's current_balance in
// cents, a location's name), and a digest of every other column but the
// ones a change moves (version, updated_at, last_bulk_id, last_bulk_row).
type RecordState struct {
	Table      string // locations, customers or debt_accounts
	ExternalID string
	Version    int
	Planted    string
	Rest       string
}

// RecordStates calls f with every record of the organization, table by
// table, streamed: a run's records need not fit in memory twice.
func (s *Store) RecordStates(ctx context.Context, orgID uuid.UUID, f func(RecordState) error) error {
	queries := []struct{ table, planted, rest string }{
		{"locations", "coalesce(name, '')", "id, external_id, bulk_id, bulk_row, created_at"},
		{"customers", "name", "id, external_id, location_id, email, phone, date_of_birth, ssn_last4, address, metadata, bulk_id, bulk_row, created_at"},
		{"debt_accounts", "(current_balance * 100)::bigint::text",
			"id, external_id, customer_id, parent_id, external_account_number, balance, billing_type, metadata, bulk_id, bulk_row, created_at"},
	}
	for _, q := range queries {
		rows, err := s.pool.Query(ctx, `SELECT external_id, version, `+q.planted+`, md5(row(`+q.rest+`)::text) FROM `+q.table+
			` WHERE organization_id = $1`, pgUUID(orgID))
		if err != nil {
			return errorf("store: record states: %w", err)
		}
		st := RecordState{Table: q.table}
		if _, err := pgx.ForEachRow(rows, []any{&st.ExternalID, &st.Version, &st.Planted, &st.Rest}, func() error {
			return f(st)
		}); err != nil {
			return errorf("store: record states: %w", err)
		}
	}
	return nil
}
