package store_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulkgen"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// recordTables are the tables an import looks records up in.
var recordTables = []string{"locations", "customers", "debt_accounts"}

// An import reads what its rows name, whatever the organization holds
// already and whatever plans and statistics Postgres has: twenty bulks of
// 1000 rows × 20 debt accounts into one fresh organization, with autovacuum
// off (no statistics are ever gathered) and through one connection that
// runs generic plans (what Postgres switches a prepared statement to after
// five executions, and keeps however the tables grow), each read at most
// twice as many rows of each table as the bulk has objects: the twentieth
// no more than the first. Planned for the tables as the twentieth bulk
// finds them, custom or generic, every look-up probes the unique index once
// per external id.
func TestImportReadsWhatItsRowsName(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("imports 400 000 debt accounts")
	}
	url := testenv.DatabaseURL(t)
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for _, table := range recordTables {
		if _, err := admin.Exec(ctx, `ALTER TABLE `+table+` SET (autovacuum_enabled = false)`); err != nil {
			t.Fatal(err)
		}
	}
	s, err := store.Open(ctx, url+"&plan_cache_mode=force_generic_plan", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	org, err := s.CreateOrganization(ctx, "Acme", "ops@acme.example")
	if err != nil {
		t.Fatal(err)
	}

	const bulks = 20
	gen := bulkgen.Options{Seed: 1, Rows: 1000, Accounts: 20, Prefix: "plans-", Locations: 100}
	opts := bulk.Options{Today: time.Now().UTC()}
	written := map[string]int64{}
	before := tableStats(t, admin)
	var last []*bulk.Row
	var took []time.Duration
	for n := range bulks {
		gen.Bulk = n
		raw, err := bulk.DecodeSubmission(bytes.NewReader(bulkgen.Body(gen)))
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := s.CreateBulk(ctx, store.NewBulk{OrganizationID: org.ID, Rows: raw})
		if err != nil {
			t.Fatal(err)
		}
		if b, err = s.StartBulk(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		rows := bulk.ParseRows(raw, opts)
		start := time.Now()
		res, err := s.Import(ctx, b, store.Parsed(rows), opts)
		if err != nil {
			t.Fatal(err)
		}
		took = append(took, time.Since(start))
		if res.Bulk.RowsFailed != 0 {
			t.Fatalf("bulk %d: %d rows failed", n+1, res.Bulk.RowsFailed)
		}
		l, c, d := res.Plan.Written()
		written["locations"] += int64(l)
		written["customers"] += int64(c)
		written["debt_accounts"] += int64(d)
		locs, custs, accts := bulk.ExternalIDs(rows)
		objects := int64(len(locs) + len(custs) + len(accts))

		// A backend reports its counts at most once a second; those of a
		// table arrive together, its inserts with its reads.
		var after map[string]readCounts
		testenv.Eventually(t, 30*time.Second, func() error {
			after = tableStats(t, admin)
			for _, table := range recordTables {
				if got := after[table].inserted; got != written[table] {
					return fmt.Errorf("the statistics of bulk %d: %d rows inserted into %s, %d written", n+1, got, table, written[table])
				}
			}
			return nil
		})
		for _, table := range recordTables {
			if read := after[table].read - before[table].read; read > 2*objects {
				t.Fatalf("bulk %d of %d objects read %d rows of %s, which holds %d (each bulk took %v)",
					n+1, objects, read, table, written[table], took)
			}
		}
		before, last = after, rows
	}
	t.Logf("imports of bulks 1 to %d took %v", bulks, took)

	locs, custs, accts := bulk.ExternalIDs(last)
	for _, l := range []struct {
		name, sql, table string
		ids              []string
	}{
		{"locations", store.LookupSQL("locations"), "locations", locs},
		{"customers", store.LookupSQL("customers"), "customers", custs},
		{"debt accounts", store.LookupSQL("debt_accounts"), "debt_accounts", accts},
		{"debt accounts of an upsert", store.UpsertLookupSQL, "debt_accounts", accts},
	} {
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			plan := explainPrepared(t, admin, mode, l.sql, org.ID.String(), l.ids)
			scans := scansOf(plan, l.table)
			if strings.Contains(string(plan), `"BitmapAnd"`) {
				// Two indexes combined: one of them is the organization's
				// whole range of the primary key, read for every probe.
				t.Errorf("%s, %s: a BitmapAnd of two indexes; want one index answering both conditions\n%s", l.name, mode, plan)
			}
			if len(scans) == 0 {
				t.Errorf("%s, %s: no scan of %s in\n%s", l.name, mode, l.table, plan)
			}
			for _, scan := range scans {
				want := "x.external_id" // the record of one external id
				if scan.alias == "c" {
					want = "parent_id = " // the children of one account found
				}
				if scan.node == "Seq Scan" || !strings.Contains(scan.cond, want) || scan.filter != "" {
					t.Errorf("%s, %s: %s of %s %s on %q, filter %q; want an index probe on %s\n%s",
						l.name, mode, scan.node, l.table, scan.alias, scan.cond, scan.filter, want, plan)
				}
			}
		}
	}
}

// readCounts are a table's counts in pg_stat_user_tables: rows inserted, and
// rows read by sequential and index scans.
type readCounts struct{ inserted, read int64 }

func tableStats(t *testing.T, conn *pgx.Conn) map[string]readCounts {
	t.Helper()
	rows, err := conn.Query(ctx, `SELECT relname, n_tup_ins, seq_tup_read + coalesce(idx_tup_fetch, 0)
		FROM pg_stat_user_tables WHERE relname = ANY($1)`, recordTables)
	if err != nil {
		t.Fatal(err)
	}
	stats := map[string]readCounts{}
	var name string
	var c readCounts
	if _, err := pgx.ForEachRow(rows, []any{&name, &c.inserted, &c.read}, func() error {
		stats[name] = c
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return stats
}

// explainPrepared prepares sql on conn, as a pooled connection of the store
// does, and returns its plan for the organization and ids under
// plan_cache_mode = mode, as EXPLAIN (FORMAT JSON) gives it.
func explainPrepared(t *testing.T, conn *pgx.Conn, mode, sql, orgID string, ids []string) json.RawMessage {
	t.Helper()
	for _, stmt := range []string{`DEALLOCATE ALL`, `SET plan_cache_mode = ` + mode, `PREPARE lookup(uuid, text[]) AS ` + sql} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	var plan json.RawMessage
	if err := conn.QueryRow(ctx, `EXPLAIN (FORMAT JSON) EXECUTE lookup($1, $2)`, pgx.QueryExecModeSimpleProtocol, orgID, ids).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	return plan
}

// scan is a node of a plan that reads a table: its type, its alias, the
// condition it finds rows by and the filter it drops them by.
type scan struct{ node, alias, cond, filter string }

// scansOf lists the scans of table in plan, for a bitmap scan with the
// condition of its index scans.
func scansOf(plan json.RawMessage, table string) []scan {
	type node struct {
		Type        string `json:"Node Type"`
		Relation    string `json:"Relation Name"`
		Alias       string `json:"Alias"`
		IndexCond   string `json:"Index Cond"`
		RecheckCond string `json:"Recheck Cond"`
		Filter      string `json:"Filter"`
		Plans       []node `json:"Plans"`
	}
	var doc []struct{ Plan node }
	if err := json.Unmarshal(plan, &doc); err != nil || len(doc) != 1 {
		return []scan{{node: fmt.Sprintf("a plan that does not read (%v)", err)}}
	}
	var out []scan
	var walk func(n node)
	walk = func(n node) {
		if n.Relation == table {
			out = append(out, scan{node: n.Type, alias: n.Alias, cond: n.IndexCond + n.RecheckCond, filter: n.Filter})
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(doc[0].Plan)
	return out
}
