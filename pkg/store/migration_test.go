package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// TestOrganizationKeysMigrationKeepsEveryRow: migration 0017 on a database
// that holds two organizations' bulks, rows, results, records (a parent
// and its child account), idempotency keys, webhooks, deliveries (one
// superseded) and attempts, as 0016 left them: every row stays, the rows
// that hung off a bulk or a delivery get its organization, the keys follow
// the rules, and the store reads and imports on the result.
func TestOrganizationKeysMigrationKeepsEveryRow(t *testing.T) {
	t.Parallel()
	db := openEmpty(t)
	if err := db.Store.MigrateTo(ctx, "0016_webhook_previous_secret"); err != nil {
		t.Fatal(err)
	}
	orgA, orgB := uuid.New(), uuid.New()
	bulkA, bulkB := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	locA, custA, parentA, childA := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	locB, custB, acctB := uuid.New(), uuid.New(), uuid.New()
	liveA, oldA, liveB := uuid.New(), uuid.New(), uuid.New()
	row := `{"customer":{"external_id":"c"},"location":{"external_id":"l"},"debt_accounts":[]}`
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO organizations (id, name, notify_email) VALUES ($1, 'A', 'a@example.com'), ($2, 'B', 'b@example.com')`, []any{orgA, orgB}},
		{`INSERT INTO bulks (id, organization_id, status, count, rows_succeeded, rows_failed, completed_at)
		  VALUES ($1, $2, 'completed', 2, 1, 1, now()), ($3, $4, 'completed', 1, 1, 0, now())`, []any{bulkA, orgA, bulkB, orgB}},
		{`INSERT INTO bulk_rows (bulk_id, row, payload) VALUES ($1, 1, $3), ($1, 2, $3), ($2, 1, $3)`, []any{bulkA, bulkB, []byte(row)}},
		{`INSERT INTO bulk_results (bulk_id, row, status, result, errors)
		  VALUES ($1, 1, 'created', '{"row":1}', NULL), ($1, 2, 'failed', '{"row":2}', '{"customer":[]}'), ($2, 1, 'created', '{"row":1}', NULL)`,
			[]any{bulkA, bulkB}},
		{`INSERT INTO locations (id, organization_id, external_id, bulk_id, bulk_row) VALUES ($1, $2, 'loc', $5, 1), ($3, $4, 'loc', $6, 1)`,
			[]any{locA, orgA, locB, orgB, bulkA, bulkB}},
		{`INSERT INTO customers (id, organization_id, external_id, location_id, name) VALUES ($1, $2, 'cust', $3, 'Ann'), ($4, $5, 'cust', $6, 'Bo')`,
			[]any{custA, orgA, locA, custB, orgB, locB}},
		{`INSERT INTO debt_accounts (id, organization_id, external_id, customer_id, parent_id, balance, current_balance, billing_type)
		  VALUES ($1, $2, 'parent', $3, NULL, 1, 1, '{}'), ($4, $2, 'child', $3, $1, 2, 2, '{}'), ($5, $6, 'parent', $7, NULL, 3, 3, '{}')`,
			[]any{parentA, orgA, custA, childA, acctB, orgB, custB}},
		{`INSERT INTO idempotency_keys (organization_id, key, request_hash, bulk_id) VALUES ($1, 'k', 'h', $2), ($3, 'k', 'h', $4)`,
			[]any{orgA, bulkA, orgB, bulkB}},
		{`INSERT INTO webhooks (organization_id, url, secret) VALUES ($1, 'https://a.example.com', 'sealed')`, []any{orgA}},
		{`INSERT INTO deliveries (id, bulk_id, organization_id, channel, event, target, delivered_at, superseded_at)
		  VALUES ($1, $2, $3, 'email', 'bulk.completed', 'a@example.com', NULL, NULL),
		         ($4, $2, $3, 'email', 'bulk.failed', NULL, now(), now()),
		         ($5, $6, $7, 'email', 'bulk.completed', NULL, now(), NULL)`, []any{liveA, bulkA, orgA, oldA, liveB, bulkB, orgB}},
		{`INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error)
		  VALUES ($1, 1, now(), 5, 550, 'refused'), ($2, 1, now(), 5, NULL, NULL), ($3, 1, now(), 5, NULL, NULL)`, []any{liveA, oldA, liveB}},
	} {
		if _, err := db.Conn.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	tables := []string{"bulks", "bulk_rows", "bulk_results", "locations", "customers", "debt_accounts", "idempotency_keys",
		"webhooks", "deliveries", "delivery_attempts"}
	before := map[string]int{}
	for _, table := range tables {
		before[table] = db.Count(t, `SELECT count(*) FROM `+table)
	}

	if err := db.Store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		if n := db.Count(t, `SELECT count(*) FROM `+table); n != before[table] {
			t.Errorf("%s: %d rows after the migration, %d before", table, n, before[table])
		}
	}
	for _, check := range []string{
		`SELECT count(*) FROM bulk_rows r JOIN bulks b ON b.id = r.bulk_id WHERE r.organization_id IS DISTINCT FROM b.organization_id`,
		`SELECT count(*) FROM bulk_results r JOIN bulks b ON b.id = r.bulk_id WHERE r.organization_id IS DISTINCT FROM b.organization_id`,
		`SELECT count(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE a.organization_id IS DISTINCT FROM d.organization_id`,
	} {
		if n := db.Count(t, check); n != 0 {
			t.Errorf("%s: %d", check, n)
		}
	}
	if n := db.Count(t, `SELECT count(*) FROM delivery_attempts WHERE organization_id = $1 AND status_code = 550`, orgA); n != 1 {
		t.Errorf("%d of organization A's refused attempts kept", n)
	}
	report, err := keyRules(ctx, db.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Violations) > 0 {
		t.Errorf("after the migration:\n%s", strings.Join(report.Violations, "\n"))
	}
	// The keys hold: an account's parent must be its organization's.
	if _, err := db.Conn.Exec(ctx, `UPDATE debt_accounts SET parent_id = $1 WHERE id = $2`, parentA, acctB); err == nil ||
		!strings.Contains(err.Error(), "debt_accounts_parent_id_fkey") {
		t.Errorf("an account of B nested under one of A: %v", err)
	}

	// The store on the migrated data: the reports, the outbox, and an
	// import that finds A's records and takes none of B's.
	if rows, err := db.Store.BulkErrors(ctx, orgA, bulkA, 0, 10); err != nil || len(rows) != 1 || rows[0].Row != 2 {
		t.Errorf("errors of bulk A: %+v, %v", rows, err)
	}
	if rows, err := db.Store.BulkErrors(ctx, orgB, bulkA, 0, 10); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("errors of bulk A read by B: %+v, %v", rows, err)
	}
	if rows, err := db.Store.BulkResults(ctx, orgA, bulkA, 0, 10); err != nil || len(rows) != 2 {
		t.Errorf("results of bulk A: %+v, %v", rows, err)
	}
	if rows, err := db.Store.BulkRows(ctx, orgB, bulkB); err != nil || len(rows) != 1 {
		t.Errorf("rows of bulk B: %d, %v", len(rows), err)
	}
	if pending, err := db.Store.PendingDeliveries(ctx, bulkA); err != nil || len(pending) != 1 || pending[0].ID != liveA {
		t.Errorf("pending deliveries of bulk A: %+v, %v", pending, err)
	}
	recent, err := db.Store.RecentDeliveries(ctx, orgA, store.ChannelEmail, 10)
	if err != nil || len(recent) != 2 || len(recent[0].Attempts)+len(recent[1].Attempts) != 2 {
		t.Errorf("recent deliveries of A: %+v, %v", recent, err)
	}
	if a, err := db.Store.DebtAccountByExternalID(ctx, orgA, "child"); err != nil || a.ParentExternalID == nil || *a.ParentExternalID != "parent" {
		t.Errorf("A's child account: %+v, %v", a, err)
	}
	b, _, err := db.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: orgA, Rows: testenv.SeedRows(t)})
	if err != nil {
		t.Fatal(err)
	}
	if b = db.ImportBulk(t, b.ID); b.RowsSucceeded != b.Count {
		t.Errorf("import after the migration: %+v", b)
	}
	if n := db.Count(t, `SELECT count(*) FROM bulk_results WHERE organization_id = $1 AND bulk_id = $2`, orgA, b.ID); n != b.Count {
		t.Errorf("%d results stored of %d rows", n, b.Count)
	}
}
