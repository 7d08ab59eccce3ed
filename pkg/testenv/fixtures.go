package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/store"
)

// Database is a test's own database, open as the store under test and as a
// plain connection for checking what was written.
type Database struct {
	URL   string
	Store *store.Store
	Conn  *pgx.Conn
}

// NewDatabase creates a fresh database for this test and opens it both ways.
func NewDatabase(t testing.TB) Database {
	t.Helper()
	db := Database{URL: DatabaseURL(t)}
	var err error
	if db.Store, err = store.Open(context.Background(), db.URL, 10); err != nil {
		t.Fatalf("testenv: open store: %v", err)
	}
	t.Cleanup(db.Store.Close)
	if db.Conn, err = pgx.Connect(context.Background(), db.URL); err != nil {
		t.Fatalf("testenv: connect: %v", err)
	}
	t.Cleanup(func() { db.Conn.Close(context.Background()) })
	return db
}

// Count runs a counting query.
func (db Database) Count(t testing.TB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// Snapshot reads every imported record in a stable order, as text without
// generated ids or times: two imports of the same rows, in any databases,
// give equal snapshots exactly when they wrote the same records.
func (db Database) Snapshot(t testing.TB) []string {
	t.Helper()
	rows, err := db.Conn.Query(context.Background(), `
		SELECT 'location ' || external_id || ' ' || coalesce(name, '') || ' row ' || bulk_row || ' v' || version || ' last row ' || coalesce(last_bulk_row, 0) FROM locations
		UNION ALL
		SELECT 'customer ' || c.external_id || ' at ' || l.external_id || ' ' || c.name || ' ' || coalesce(c.email, '') || ' '
		       || coalesce(c.date_of_birth::text, '') || ' ' || coalesce(c.ssn_last4, '') || ' ' || coalesce(c.address::text, '') || ' '
		       || coalesce(c.metadata::text, '') || ' row ' || c.bulk_row || ' v' || c.version || ' last row ' || coalesce(c.last_bulk_row, 0)
		  FROM customers c JOIN locations l ON l.id = c.location_id
		UNION ALL
		SELECT 'account ' || a.external_id || ' of ' || c.external_id || ' under ' || coalesce(p.external_id, '-') || ' '
		       || a.balance || '/' || a.current_balance || ' ' || array_to_string(a.billing_type, ',') || ' '
		       || coalesce(a.external_account_number, '') || ' ' || coalesce(a.metadata::text, '') || ' row ' || a.bulk_row
		       || ' v' || a.version || ' last row ' || coalesce(a.last_bulk_row, 0)
		  FROM debt_accounts a JOIN customers c ON c.id = a.customer_id LEFT JOIN debt_accounts p ON p.id = a.parent_id
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ImportBulk runs the import of a stored bulk as a worker does, through the
// service's one import pipeline, without a queue: while another import of
// the organization runs, it tries again, as the queue would.
func (db Database) ImportBulk(t testing.TB, id uuid.UUID) models.Bulk {
	t.Helper()
	svc := bulksvc.New(db.Store, nil, slog.New(slog.DiscardHandler), nil)
	for {
		b, err := svc.Import(context.Background(), id)
		if errors.Is(err, bulksvc.ErrNotItsTurn) {
			// Another import of the organization runs: try again, as the
			// queue would (after a shorter wait).
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// SeedExample is the Tratta seed's example request, examples/tratta-bulk.json
// of the repository: one row of a customer, a location, a parent debt
// account and five debt accounts, one nested under the parent.
func SeedExample(t testing.TB) []byte {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for { // up to the module root, whichever package the test runs in
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testenv: no go.mod above the test's directory")
		}
		dir = parent
	}
	b, err := os.ReadFile(filepath.Join(dir, "examples", "tratta-bulk.json"))
	if err != nil {
		t.Fatalf("testenv: read the seed example: %v", err)
	}
	return b
}

// SeedRows is SeedExample split into its rows, as submitted.
func SeedRows(t testing.TB) []json.RawMessage {
	t.Helper()
	var rows []json.RawMessage
	if err := json.Unmarshal(SeedExample(t), &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}
