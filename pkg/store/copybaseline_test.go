package store_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulkgen"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// planOf plans a generated bulk against no existing records, as bulkbench
// plans the baselines.
func planOf(t testing.TB, o bulkgen.Options) *bulk.Plan {
	t.Helper()
	raw, err := bulk.DecodeSubmission(bytes.NewReader(bulkgen.Body(o)))
	if err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	return bulk.NewPlan(uuid.New(), bulk.ParseRows(raw, bulk.Options{Today: today}), bulk.Existing{}, bulk.Options{Today: today})
}

// TestUpsertPlan: the raw upsert baseline rewrites the stored records of the
// same external ids with the new values (every one counting a version,
// changed or not), keeps their ids and the rest of their columns, and
// creates none.
func TestUpsertPlan(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := bulkgen.Options{Seed: 5, Rows: 40, Accounts: 3}
	first := planOf(t, o)
	if err := e.Store.CreateBaselineBulk(ctx, e.org.ID, first.BulkID, 40); err != nil {
		t.Fatal(err)
	}
	if err := e.Store.CopyPlan(ctx, e.org.ID, first); err != nil {
		t.Fatal(err)
	}
	before := states(t, e.Store, e.org.ID)

	o.Changed = 0.5
	second := planOf(t, o)
	if err := e.Store.CreateBaselineBulk(ctx, e.org.ID, second.BulkID, 40); err != nil {
		t.Fatal(err)
	}
	if err := e.Store.UpsertPlan(ctx, e.org.ID, second); err != nil {
		t.Fatal(err)
	}
	after := states(t, e.Store, e.org.ID)
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

func states(t *testing.T, s *store.Store, orgID uuid.UUID) map[[2]string]store.RecordState {
	t.Helper()
	m := map[[2]string]store.RecordState{}
	if err := s.RecordStates(ctx, orgID, func(st store.RecordState) error {
		m[[2]string{st.Table, st.ExternalID}] = st
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

// BenchmarkUpsertPlan1000Rows is the raw upsert baseline of bulkbench: a
// bulk of 1000 rows rewritten over itself, every record updated, in tables
// that hold 20 such bulks (82 000 records), as a run's later bulks meet.
func BenchmarkUpsertPlan1000Rows(b *testing.B) {
	e := testenv.NewDatabase(b)
	org, err := e.Store.CreateOrganization(ctx, "Bench", "ops@bench.example")
	if err != nil {
		b.Fatal(err)
	}
	const bulks = 20
	for n := range bulks {
		seed := planOf(b, bulkgen.Options{Seed: 1, Rows: 1000, Accounts: 3, Locations: 100, Bulk: n, Prefix: fmt.Sprintf("b%d-", n)})
		if err := e.Store.CreateBaselineBulk(ctx, org.ID, seed.BulkID, 1000); err != nil {
			b.Fatal(err)
		}
		if err := e.Store.CopyPlan(ctx, org.ID, seed); err != nil {
			b.Fatal(err)
		}
	}
	records, n := 0, 0
	for b.Loop() {
		b.StopTimer()
		p := planOf(b, bulkgen.Options{Seed: 1, Rows: 1000, Accounts: 3, Locations: 100, Bulk: n % bulks, Prefix: fmt.Sprintf("b%d-", n%bulks), Changed: 1})
		n++
		if err := e.Store.CreateBaselineBulk(ctx, org.ID, p.BulkID, 1000); err != nil {
			b.Fatal(err)
		}
		records += len(p.Locations) + len(p.Customers) + len(p.DebtAccounts)
		b.StartTimer()
		if err := e.Store.UpsertPlan(ctx, org.ID, p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
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
	if _, err := e.Store.Import(ctx, bk, bulk.ParseRows(raw, bulk.Options{Today: today}), bulk.Options{Today: today}); err != nil {
		b.Fatal(err)
	}
	for _, perPage := range []int{100, 1000} {
		b.Run(fmt.Sprintf("per_page=%d", perPage), func(b *testing.B) {
			for b.Loop() {
				n, size := 0, 0
				for offset := 0; ; offset += perPage {
					page, err := e.Store.BulkResults(ctx, bk.ID, offset, perPage)
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
// such bulks, as BenchmarkUpsertPlan1000Rows measures the raw upsert.
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
		res, err := e.Store.Import(ctx, bk, rows, upsert)
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
