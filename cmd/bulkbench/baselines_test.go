package main

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulkgen"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// testDatabase opens the test database at url as the baselines open theirs.
func testDatabase(t testing.TB, url string) *database {
	t.Helper()
	db, err := openDatabase(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.close)
	return db
}

// planOf plans a generated bulk against no existing records, as the
// baselines plan theirs.
func planOf(t testing.TB, o bulkgen.Options) *bulk.Plan {
	t.Helper()
	raw, err := bulk.DecodeSubmission(bytes.NewReader(bulkgen.Body(o)))
	if err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	return bulk.NewPlan(uuid.New(), bulk.ParseRows(raw, bulk.Options{Today: today}), bulk.Existing{}, bulk.Options{Today: today})
}

// The COPY and GORM baselines write the same records as the import of the
// same bulk: the same rows in every table.
func TestBaselinesWriteWhatTheImportWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := bulkgen.Options{Seed: 3, Rows: 30, Accounts: 3, Invalid: 0.1}
	raw, err := bulk.DecodeSubmission(bytes.NewReader(bulkgen.Body(o)))
	if err != nil {
		t.Fatal(err)
	}
	imported := testenv.NewDatabase(t)
	org, err := imported.Store.CreateOrganization(ctx, "Acme", "ops@acme.example")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := imported.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: org.ID, Rows: raw})
	if err != nil {
		t.Fatal(err)
	}
	imported.ImportBulk(t, b.ID)
	want := imported.Snapshot(t)

	for name, write := range map[string]func(*database) func(context.Context, uuid.UUID, *bulk.Plan) error{
		"copy": func(db *database) func(context.Context, uuid.UUID, *bulk.Plan) error { return db.copyPlan },
		"gorm": func(db *database) func(context.Context, uuid.UUID, *bulk.Plan) error { return db.createPlanOneByOne },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tdb := testenv.NewDatabase(t)
			org, err := tdb.Store.CreateOrganization(ctx, "Acme", "ops@acme.example")
			if err != nil {
				t.Fatal(err)
			}
			db := testDatabase(t, tdb.URL)
			p := planOf(t, o)
			if err := db.createBaselineBulk(ctx, org.ID, p.BulkID, len(raw)); err != nil {
				t.Fatal(err)
			}
			if err := write(db)(ctx, org.ID, p); err != nil {
				t.Fatal(err)
			}
			if got := tdb.Snapshot(t); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("the %s baseline wrote\n%v\nthe import\n%v", name, got, want)
			}
			counted, err := db.countRecords(ctx, org.ID)
			if err != nil || counted != planCounts(p) {
				t.Errorf("counted %+v, %v; the plan writes %+v", counted, err, planCounts(p))
			}
		})
	}
}

// TestUpsertPlan: the raw upsert baseline rewrites the stored records of the
// same external ids with the new values (every one counting a version,
// changed or not), keeps their ids and the rest of their columns, and
// creates none.
func TestUpsertPlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tdb := testenv.NewDatabase(t)
	org, err := tdb.Store.CreateOrganization(ctx, "Acme", "ops@acme.example")
	if err != nil {
		t.Fatal(err)
	}
	db := testDatabase(t, tdb.URL)
	o := bulkgen.Options{Seed: 5, Rows: 40, Accounts: 3}
	first := planOf(t, o)
	if err := db.createBaselineBulk(ctx, org.ID, first.BulkID, 40); err != nil {
		t.Fatal(err)
	}
	if err := db.copyPlan(ctx, org.ID, first); err != nil {
		t.Fatal(err)
	}
	before, err := snapshot(ctx, db, org.ID)
	if err != nil {
		t.Fatal(err)
	}

	o.Changed = 0.5
	second := planOf(t, o)
	if err := db.createBaselineBulk(ctx, org.ID, second.BulkID, 40); err != nil {
		t.Fatal(err)
	}
	if err := db.upsertPlan(ctx, org.ID, second); err != nil {
		t.Fatal(err)
	}
	after, err := snapshot(ctx, db, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) || len(before) != len(first.Locations)+40*4 {
		t.Fatalf("%d records after, %d before; want %d both", len(after), len(before), len(first.Locations)+40*4)
	}
	changed := 0
	for k, b := range before {
		a := after[k]
		if a.Rest != b.Rest {
			t.Errorf("%v: columns beyond the planted one changed", k)
		}
		if a.Version != 2 {
			t.Errorf("%v: version %d, want 2 (a raw upsert rewrites every record)", k, a.Version)
		}
		if a.Planted != b.Planted {
			changed++
		}
	}
	if changed == 0 {
		t.Error("the upsert changed no planted value")
	}
}

// BenchmarkUpsertPlan1000Rows is the raw upsert baseline: a bulk of 1000
// rows rewritten over itself, every record updated, in tables that hold 20
// such bulks (82 000 records), as a run's later bulks meet. pkg/store's
// BenchmarkUpsertChanged1000Rows measures bulkd's upsert of the same.
func BenchmarkUpsertPlan1000Rows(b *testing.B) {
	ctx := context.Background()
	tdb := testenv.NewDatabase(b)
	org, err := tdb.Store.CreateOrganization(ctx, "Bench", "ops@bench.example")
	if err != nil {
		b.Fatal(err)
	}
	db := testDatabase(b, tdb.URL)
	const bulks = 20
	for n := range bulks {
		seed := planOf(b, bulkgen.Options{Seed: 1, Rows: 1000, Accounts: 3, Locations: 100, Bulk: n, Prefix: fmt.Sprintf("b%d-", n)})
		if err := db.createBaselineBulk(ctx, org.ID, seed.BulkID, 1000); err != nil {
			b.Fatal(err)
		}
		if err := db.copyPlan(ctx, org.ID, seed); err != nil {
			b.Fatal(err)
		}
	}
	records, n := 0, 0
	for b.Loop() {
		b.StopTimer()
		p := planOf(b, bulkgen.Options{Seed: 1, Rows: 1000, Accounts: 3, Locations: 100, Bulk: n % bulks, Prefix: fmt.Sprintf("b%d-", n%bulks), Changed: 1})
		n++
		if err := db.createBaselineBulk(ctx, org.ID, p.BulkID, 1000); err != nil {
			b.Fatal(err)
		}
		records += len(p.Locations) + len(p.Customers) + len(p.DebtAccounts)
		b.StartTimer()
		if err := db.upsertPlan(ctx, org.ID, p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}
