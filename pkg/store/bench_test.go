package store_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulkgen"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// The write benchmarks take 1000-row bulks of 3 debt accounts per customer
// (about 4100 records each). BenchmarkCopyPlan1000Rows is the floor they are
// compared with, in the same run: the same records by raw COPY and nothing
// else.

// benchRows returns the n-th bulk's submitted rows, with ids of its own.
func benchRows(b *testing.B, n int) []json.RawMessage {
	b.Helper()
	rows, err := bulk.DecodeSubmission(bytes.NewReader(bulkgen.Body(bulkgen.Options{
		Seed: uint64(n), Rows: 1000, Accounts: 3, Prefix: fmt.Sprintf("b%d-", n), Locations: 100})))
	if err != nil {
		b.Fatal(err)
	}
	return rows
}

// BenchmarkCreateBulk1000Rows is the database part of accepting a
// submission: the bulk and its 1000 rows in one transaction.
func BenchmarkCreateBulk1000Rows(b *testing.B) {
	db := testenv.NewDatabase(b)
	org, err := db.Store.CreateOrganization(ctx, "Bench", "ops@bench.example")
	if err != nil {
		b.Fatal(err)
	}
	rows := benchRows(b, 0)
	size := 0
	for _, r := range rows {
		size += len(r)
	}
	b.SetBytes(int64(size))
	for b.Loop() {
		if _, _, err := db.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: org.ID, Rows: rows}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkImport1000Rows is the write phase of an import: lock, look up
// existing ids, plan, COPY three tables, store the row reports, complete.
func BenchmarkImport1000Rows(b *testing.B) {
	benchmarkWrite(b, func(db testenv.Database, orgID, bulkID uuid.UUID, rows []*bulk.Row) error {
		bk, err := db.Store.StartBulk(ctx, bulkID)
		if err != nil {
			return err
		}
		_, err = db.Store.Import(ctx, bk, store.Parsed(rows), bulk.Options{})
		return err
	})
}

// BenchmarkCopyPlan1000Rows writes the same records by raw COPY only: the
// rows the import COPYs (store.PlanInserts), in one transaction, as
// cmd/bulkbench's COPY baseline does.
func BenchmarkCopyPlan1000Rows(b *testing.B) {
	benchmarkWrite(b, func(db testenv.Database, orgID, bulkID uuid.UUID, rows []*bulk.Row) error {
		p := bulk.NewPlan(bulkID, rows, bulk.Existing{}, bulk.Options{})
		return pgx.BeginFunc(ctx, db.Conn, func(tx pgx.Tx) error {
			for _, in := range store.PlanInserts(orgID, p) {
				if err := in.Copy(ctx, tx); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

func benchmarkWrite(b *testing.B, write func(db testenv.Database, orgID, bulkID uuid.UUID, rows []*bulk.Row) error) {
	db := testenv.NewDatabase(b)
	org, err := db.Store.CreateOrganization(ctx, "Bench", "ops@bench.example")
	if err != nil {
		b.Fatal(err)
	}
	records := 0
	n := 0
	for b.Loop() {
		b.StopTimer()
		raw := benchRows(b, n)
		n++
		bk, _, err := db.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: org.ID, Rows: raw})
		if err != nil {
			b.Fatal(err)
		}
		rows := bulk.ParseRows(raw, bulk.Options{Today: time.Now().UTC()})
		p := bulk.NewPlan(bk.ID, rows, bulk.Existing{}, bulk.Options{})
		records += len(p.Locations) + len(p.Customers) + len(p.DebtAccounts)
		b.StartTimer()
		if err := write(db, org.ID, bk.ID, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkUpsertUnchanged1000Rows is the write phase of an upsert that
// finds every record already as submitted: lock, look up, plan, stage and
// compare the changes, store the results, complete. Compare it with
// BenchmarkImport1000Rows, the create mode of the same kind of bulk.
func BenchmarkUpsertUnchanged1000Rows(b *testing.B) {
	db := testenv.NewDatabase(b)
	org, err := db.Store.CreateOrganization(ctx, "Bench", "ops@bench.example")
	if err != nil {
		b.Fatal(err)
	}
	upsert := bulk.Options{Mode: bulk.ModeUpsert, Today: time.Now().UTC()}
	n := 0
	for b.Loop() {
		b.StopTimer()
		raw := benchRows(b, n)
		n++
		db.ImportBulk(b, mustCreate(b, db, org.ID, raw, bulk.Options{}))
		bk, err := db.Store.StartBulk(ctx, mustCreate(b, db, org.ID, raw, upsert))
		if err != nil {
			b.Fatal(err)
		}
		rows := bulk.ParseRows(raw, upsert)
		b.StartTimer()
		res, err := db.Store.Import(ctx, bk, store.Parsed(rows), upsert)
		if err != nil {
			b.Fatal(err)
		}
		if res.Bulk.RowsUpdated != 0 {
			b.Fatalf("%d rows updated, want none", res.Bulk.RowsUpdated)
		}
	}
}

func mustCreate(b *testing.B, db testenv.Database, orgID uuid.UUID, raw []json.RawMessage, opts bulk.Options) uuid.UUID {
	b.Helper()
	bk, _, err := db.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: orgID, Options: opts, Rows: raw})
	if err != nil {
		b.Fatal(err)
	}
	return bk.ID
}

// BenchmarkResults1000Rows reads every page of the stored results of a
// 1000-row bulk (1% of its rows failing, so with their errors), as GET
// /api/v1/bulk/{id}/results pages through them: 10 pages of the default 100
// rows, and one page of the most a page holds (1000).
func BenchmarkResults1000Rows(b *testing.B) {
	e := testenv.NewDatabase(b)
	org, err := e.Store.CreateOrganization(ctx, "Bench", "ops@bench.example")
	if err != nil {
		b.Fatal(err)
	}
	raw, err := bulk.DecodeSubmission(bytes.NewReader(bulkgen.Body(bulkgen.Options{Seed: 1, Rows: 1000, Accounts: 3, Invalid: 0.01})))
	if err != nil {
		b.Fatal(err)
	}
	bk, _, err := e.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: org.ID, Rows: raw})
	if err != nil {
		b.Fatal(err)
	}
	if bk, err = e.Store.StartBulk(ctx, bk.ID); err != nil {
		b.Fatal(err)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	if _, err := e.Store.Import(ctx, bk, store.Parsed(bulk.ParseRows(raw, bulk.Options{Today: today})), bulk.Options{Today: today}); err != nil {
		b.Fatal(err)
	}
	for _, perPage := range []int{100, 1000} {
		b.Run(fmt.Sprintf("per_page=%d", perPage), func(b *testing.B) {
			for b.Loop() {
				n, size := 0, 0
				for offset := 0; ; offset += perPage {
					page, err := e.Store.BulkResults(ctx, org.ID, bk.ID, offset, perPage)
					if err != nil {
						b.Fatal(err)
					}
					for _, r := range page {
						size += len(r.Result)
					}
					if n += len(page); len(page) < perPage {
						break
					}
				}
				if n != 1000 {
					b.Fatalf("%d rows read, want 1000", n)
				}
				b.SetBytes(int64(size))
			}
		})
	}
}

// BenchmarkUpsertChanged1000Rows is the write phase of bulkd's upsert of a
// bulk that changes every customer and debt account, in tables that hold 20
// such bulks, as cmd/bulkbench's BenchmarkUpsertPlan1000Rows measures the
// raw upsert.
func BenchmarkUpsertChanged1000Rows(b *testing.B) {
	e := testenv.NewDatabase(b)
	org, err := e.Store.CreateOrganization(ctx, "Bench", "ops@bench.example")
	if err != nil {
		b.Fatal(err)
	}
	const bulks = 20
	body := func(n int, changed float64) []json.RawMessage {
		rows, err := bulk.DecodeSubmission(bytes.NewReader(bulkgen.Body(bulkgen.Options{Seed: 1, Rows: 1000, Accounts: 3,
			Locations: 100, Bulk: n, Prefix: fmt.Sprintf("b%d-", n), Changed: changed})))
		if err != nil {
			b.Fatal(err)
		}
		return rows
	}
	for n := range bulks {
		bk, _, err := e.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: org.ID, Rows: body(n, 0)})
		if err != nil {
			b.Fatal(err)
		}
		e.ImportBulk(b, bk.ID)
	}
	upsert := bulk.Options{Mode: bulk.ModeUpsert, Today: time.Now().UTC()}
	records, n := 0, 0
	for b.Loop() {
		b.StopTimer()
		// Each pass over the 20 bulks changes them back and forth.
		raw := body(n%bulks, float64((n/bulks+1)%2))
		n++
		bk, _, err := e.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: org.ID, Options: upsert, Rows: raw})
		if err != nil {
			b.Fatal(err)
		}
		if bk, err = e.Store.StartBulk(ctx, bk.ID); err != nil {
			b.Fatal(err)
		}
		rows := bulk.ParseRows(raw, upsert)
		b.StartTimer()
		res, err := e.Store.Import(ctx, bk, store.Parsed(rows), upsert)
		if err != nil {
			b.Fatal(err)
		}
		records += len(res.Plan.CustomerUpdates) + len(res.Plan.DebtAccountUpdates) + len(res.Plan.LocationUpdates)
		if res.Bulk.RowsUpdated < 900 {
			b.Fatalf("%d rows updated, want most", res.Bulk.RowsUpdated)
		}
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}
