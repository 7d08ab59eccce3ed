package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// The rules a distributed Postgres (Citus) sets for tables distributed by a
// column, here organization_id, with organizations and api_keys as
// reference tables (copied to every node): every primary key, unique
// constraint or unique index of a distributed table includes the column;
// a foreign key between two distributed tables joins on it (the
// referencing table's organization_id to the referenced one's); a
// distributed table may reference a reference table, never the other way
// round. Citus cannot be installed here; these tests check the rules on the
// catalog, and have Postgres itself enforce the first one on a
// hash-partitioned copy of each table, which it refuses to build when a
// unique key lacks the partition column, as Citus does.

// referenceTables are the tables a deployment keeps whole on every node;
// localTables are bookkeeping that is no one's data (the migrations
// applied), left on the coordinator. Every other table holds one
// organization's data and must carry organization_id.
var (
	referenceTables = []string{"organizations", "api_keys"}
	localTables     = []string{"schema_migrations"}
)

// keyReport is what keyRules found: the tables it took as an
// organization's, and every key or foreign key among them that breaks a
// rule.
type keyReport struct {
	Distributed []string
	Violations  []string
}

// keyRules reads the catalog of the public schema.
func keyRules(ctx context.Context, conn *pgx.Conn) (keyReport, error) {
	var r keyReport
	rows, err := conn.Query(ctx, `SELECT c.relname,
		       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'organization_id'
		               AND NOT a.attisdropped AND a.attnotnull)
		  FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
		   AND NOT c.relispartition ORDER BY c.relname`)
	if err != nil {
		return r, err
	}
	var (
		name string
		has  bool
	)
	if _, err := pgx.ForEachRow(rows, []any{&name, &has}, func() error {
		switch {
		case slices.Contains(referenceTables, name) || slices.Contains(localTables, name):
		case !has:
			r.Violations = append(r.Violations, name+": no organization_id NOT NULL column (an organization's data, or a reference table?)")
		default:
			r.Distributed = append(r.Distributed, name)
		}
		return nil
	}); err != nil {
		return r, err
	}

	// Unique indexes: primary keys, unique constraints, partial and
	// expression unique indexes alike; organization_id must be a key
	// column (not an INCLUDE one).
	rows, err = conn.Query(ctx, `SELECT t.relname, i.relname, pg_get_indexdef(i.oid)
		  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
		 WHERE t.relname = ANY($1) AND t.relnamespace = 'public'::regnamespace AND (x.indisunique OR x.indisexclusion)
		   AND NOT EXISTS (SELECT 1 FROM pg_attribute a
		                    WHERE a.attrelid = t.oid AND a.attname = 'organization_id'
		                      AND a.attnum = ANY ((x.indkey::int2[])[0:x.indnkeyatts - 1]))
		 ORDER BY 1, 2`, r.Distributed)
	if err != nil {
		return r, err
	}
	var table, index, def string
	if _, err := pgx.ForEachRow(rows, []any{&table, &index, &def}, func() error {
		r.Violations = append(r.Violations, fmt.Sprintf("%s: unique key %s without organization_id: %s", table, index, def))
		return nil
	}); err != nil {
		return r, err
	}

	// Foreign keys from or to an organization's table.
	rows, err = conn.Query(ctx, `SELECT f.conrelid::regclass::text, f.confrelid::regclass::text, f.conname, pg_get_constraintdef(f.oid),
		       EXISTS (SELECT 1 FROM unnest(f.conkey, f.confkey) AS k(from_col, to_col)
		                WHERE k.from_col = (SELECT attnum FROM pg_attribute WHERE attrelid = f.conrelid AND attname = 'organization_id')
		                  AND k.to_col = (SELECT attnum FROM pg_attribute WHERE attrelid = f.confrelid AND attname = 'organization_id'))
		  FROM pg_constraint f
		 WHERE f.contype = 'f' AND f.connamespace = 'public'::regnamespace
		   AND (f.conrelid::regclass::text = ANY($1) OR f.confrelid::regclass::text = ANY($1))
		 ORDER BY 1, 3`, r.Distributed)
	if err != nil {
		return r, err
	}
	var from, to, con string
	var joins bool
	if _, err := pgx.ForEachRow(rows, []any{&from, &to, &con, &def, &joins}, func() error {
		switch {
		case !slices.Contains(r.Distributed, from):
			r.Violations = append(r.Violations, fmt.Sprintf("%s: foreign key %s from a table that is not an organization's to %s: %s", from, con, to, def))
		case slices.Contains(referenceTables, to):
			// A distributed table may reference a reference table.
		case !slices.Contains(r.Distributed, to):
			r.Violations = append(r.Violations, fmt.Sprintf("%s: foreign key %s to %s, neither an organization's nor a reference table: %s", from, con, to, def))
		case !joins:
			r.Violations = append(r.Violations, fmt.Sprintf("%s: foreign key %s to %s does not join on organization_id: %s", from, con, to, def))
		}
		return nil
	}); err != nil {
		return r, err
	}
	return r, nil
}

// buildTwins builds, in tx, a copy of each of the tables hash-partitioned
// by organization_id (two partitions), with every index of the original,
// the foreign keys among them between the copies, and the original's rows,
// parents first. Postgres refuses a unique index of a partitioned table
// that lacks the partition column.
func buildTwins(ctx context.Context, tx pgx.Tx, tables []string) error {
	for _, t := range tables {
		twin := pgx.Identifier{t + "_twin"}.Sanitize()
		if _, err := tx.Exec(ctx, `CREATE TABLE `+twin+` (LIKE `+pgx.Identifier{t}.Sanitize()+` INCLUDING ALL) PARTITION BY HASH (organization_id)`); err != nil {
			return fmt.Errorf("%s: %w", t, err)
		}
		for i := range 2 {
			if _, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s PARTITION OF %s FOR VALUES WITH (MODULUS 2, REMAINDER %d)`,
				pgx.Identifier{fmt.Sprintf("%s_twin_%d", t, i)}.Sanitize(), twin, i)); err != nil {
				return fmt.Errorf("%s: partition %d: %w", t, i, err)
			}
		}
	}
	// The foreign keys among the tables, each between the twins, with the
	// same columns.
	rows, err := tx.Query(ctx, `SELECT f.conrelid::regclass::text, f.confrelid::regclass::text, f.conname,
		       (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(f.conkey) WITH ORDINALITY k(col, n)
		          JOIN pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.col),
		       (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(f.confkey) WITH ORDINALITY k(col, n)
		          JOIN pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k.col)
		  FROM pg_constraint f
		 WHERE f.contype = 'f' AND f.conrelid::regclass::text = ANY($1) AND f.confrelid::regclass::text = ANY($1)`, tables)
	if err != nil {
		return err
	}
	type fk struct {
		From, To, Name string
		FromCols       []string
		ToCols         []string
	}
	fks, err := pgx.CollectRows(rows, pgx.RowToStructByPos[fk])
	if err != nil {
		return err
	}
	for _, f := range fks {
		if _, err := tx.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s ADD FOREIGN KEY (%s) REFERENCES %s (%s)`,
			pgx.Identifier{f.From + "_twin"}.Sanitize(), strings.Join(f.FromCols, ", "),
			pgx.Identifier{f.To + "_twin"}.Sanitize(), strings.Join(f.ToCols, ", "))); err != nil {
			return fmt.Errorf("%s: foreign key %s: %w", f.From, f.Name, err)
		}
	}
	// The rows, each table after those it references (a foreign key of a
	// table to itself is checked at the end of its statement).
	copied := map[string]bool{}
	for len(copied) < len(tables) {
		progress := false
		for _, t := range tables {
			ready := !copied[t]
			for _, f := range fks {
				if f.From == t && f.To != t && !copied[f.To] {
					ready = false
				}
			}
			if !ready {
				continue
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+pgx.Identifier{t + "_twin"}.Sanitize()+` SELECT * FROM `+pgx.Identifier{t}.Sanitize()); err != nil {
				return fmt.Errorf("%s: copy rows: %w", t, err)
			}
			copied[t], progress = true, true
		}
		if !progress {
			return fmt.Errorf("the foreign keys among %v form a cycle", tables)
		}
	}
	return nil
}

// organizationTables are the tables that hold an organization's data
// today: keyRules must find each of them (and any new one, which it finds
// by itself).
var organizationTables = []string{"bulk_results", "bulk_rows", "bulks", "customers", "debt_accounts", "deliveries",
	"delivery_attempts", "idempotency_keys", "locations", "webhooks"}

// TestKeysIncludeTheOrganization: every table but the reference tables
// carries organization_id, every unique key and every foreign key among
// them includes it, and Postgres builds a copy of each hash-partitioned by
// it, with all its indexes, its foreign keys among the copies and the
// rows of an imported, delivered bulk.
func TestKeysIncludeTheOrganization(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.submitAndImport(t, e.org.ID, testenv.SeedRows(t))
	if _, _, err := e.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: e.org.ID, Rows: testenv.SeedRows(t),
		IdempotencyKey: &store.IdempotencyKey{Key: "k1", RequestHash: []byte("h")}}); err != nil {
		t.Fatal(err)
	}
	outbox, err := e.Store.PendingDeliveries(ctx, b.ID)
	if err != nil || len(outbox) != 1 {
		t.Fatalf("deliveries %v: %v", outbox, err)
	}
	c, err := e.Store.ClaimDelivery(ctx, outbox[0].ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Store.FinishDelivery(ctx, c, store.Attempt{Number: 1, StartedAt: time.Now(), Error: "refused"}, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Store.CreateWebhook(ctx, e.org.ID, "https://hooks.example.com/bulkd", []byte("sealed")); err != nil {
		t.Fatal(err)
	}

	report, err := keyRules(ctx, e.Conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("organization tables checked: %s; reference tables: %s; local: %s",
		strings.Join(report.Distributed, ", "), strings.Join(referenceTables, ", "), strings.Join(localTables, ", "))
	for _, v := range report.Violations {
		t.Error(v)
	}
	for _, table := range organizationTables {
		if !slices.Contains(report.Distributed, table) {
			t.Errorf("%s was not checked", table)
		}
	}
	for _, table := range []string{"bulk_rows", "bulk_results", "delivery_attempts", "deliveries", "idempotency_keys"} {
		if n := e.Count(t, `SELECT count(*) FROM `+table); n == 0 {
			t.Errorf("%s is empty: its twin would be built without rows", table)
		}
	}

	err = e.Store.WithTx(ctx, func(tx pgx.Tx) error {
		if err := buildTwins(ctx, tx, report.Distributed); err != nil {
			return err
		}
		return errRollback
	})
	if err != errRollback {
		t.Errorf("hash-partitioned twins: %v", err)
	}
}

var errRollback = fmt.Errorf("rolled back on purpose")

// TestKeyRulesRefuseTheSchemaBeforeOrganizationKeys: on the schema as
// migration 0016 left it (ids as primary keys, bulk_rows, bulk_results and
// delivery_attempts without organization_id), the rules name what breaks
// them, and Postgres refuses the partitioned twins: the check can fail.
func TestKeyRulesRefuseTheSchemaBeforeOrganizationKeys(t *testing.T) {
	t.Parallel()
	db := openEmpty(t)
	if err := db.Store.MigrateTo(ctx, "0016_webhook_previous_secret"); err != nil {
		t.Fatal(err)
	}
	report, err := keyRules(ctx, db.Conn)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(report.Violations, "\n")
	t.Logf("violations on the schema of 0016:\n%s", got)
	for _, want := range []string{
		"bulk_rows: no organization_id", "bulk_results: no organization_id", "delivery_attempts: no organization_id",
		"bulks: unique key bulks_pkey", "customers: unique key customers_pkey", "debt_accounts: unique key debt_accounts_pkey",
		"locations: unique key locations_pkey", "deliveries: unique key deliveries_pkey", "deliveries: unique key deliveries_bulk_id_channel_key",
		"customers: foreign key customers_location_id_fkey to locations does not join on organization_id",
		"debt_accounts: foreign key debt_accounts_customer_id_fkey", "debt_accounts: foreign key debt_accounts_parent_id_fkey",
		"deliveries: foreign key deliveries_bulk_id_fkey", "idempotency_keys: foreign key idempotency_keys_bulk_id_fkey",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no violation %q", want)
		}
	}
	// The tables that have organization_id, twinned: the first unique key
	// without it stops Postgres.
	tx, err := db.Conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	err = buildTwins(ctx, tx, report.Distributed)
	if err == nil || !strings.Contains(err.Error(), "partition") {
		t.Errorf("twins of the 0016 schema built: %v", err)
	}
	t.Logf("twins of the 0016 schema: %v", err)
}

// openEmpty opens a database with no migration applied.
func openEmpty(t *testing.T) testenv.Database {
	t.Helper()
	url := testenv.EmptyDatabaseURL(t)
	s, err := store.Open(ctx, url, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return testenv.Database{URL: url, Store: s, Conn: conn}
}
