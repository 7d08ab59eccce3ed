package bulkgen_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulkgen"
)

var today = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func TestDeterministic(t *testing.T) {
	t.Parallel()
	o := bulkgen.Options{Seed: 7, Rows: 200, Accounts: 3, Bulk: 4, Invalid: 0.05, Duplicates: 0.02}
	if !bytes.Equal(bulkgen.Body(o), bulkgen.Body(o)) {
		t.Fatal("the same options gave different bodies")
	}
	other := o
	other.Seed = 8
	if bytes.Equal(bulkgen.Body(o), bulkgen.Body(other)) {
		t.Error("another seed gave the same body")
	}
	next := o
	next.Bulk = 5
	if bytes.Equal(bulkgen.Body(o), bulkgen.Body(next)) {
		t.Error("another bulk index gave the same body")
	}
}

// TestBodyIsRows: Body writes its JSON by hand for speed; it must be exactly
// what encoding/json makes of Rows.
func TestBodyIsRows(t *testing.T) {
	t.Parallel()
	for _, o := range []bulkgen.Options{
		{Seed: 1, Rows: 300, Accounts: 3, Bulk: 2, Invalid: 0.2, Duplicates: 0.1},
		{Seed: 2, Rows: 20, Accounts: 0},
		{Seed: 3, Rows: 20, Accounts: 1, Prefix: `run "<1>"\ `},
	} {
		want, err := json.Marshal(bulkgen.Rows(o))
		if err != nil {
			t.Fatal(err)
		}
		if got := bulkgen.Body(o); !bytes.Equal(got, want) {
			t.Errorf("%+v: Body differs from json.Marshal(Rows):\n%s\n%s", o, got[:min(len(got), 400)], want[:min(len(want), 400)])
		}
	}
}

// TestValidRowsIgnoreShares: which rows fail must not change the others, so
// that a duplicate can repeat a row by regenerating it alone.
func TestValidRowsIgnoreShares(t *testing.T) {
	t.Parallel()
	plain := bulkgen.Options{Seed: 3, Rows: 100, Accounts: 2, Bulk: 2}
	mixed := plain
	mixed.Invalid, mixed.Duplicates = 0.1, 0.1
	want, got := bulkgen.Rows(plain), bulkgen.Rows(mixed)
	for i, k := range bulkgen.Kinds(mixed) {
		if k == bulkgen.Valid {
			if diff := cmp.Diff(want[i], got[i]); diff != "" {
				t.Fatalf("row %d changed with the shares (-plain +mixed):\n%s", i, diff)
			}
		}
	}
}

func TestCounts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                   string
		o                      bulkgen.Options
		wantInvalid, wantDupes int
	}{
		{"none", bulkgen.Options{Rows: 1000, Accounts: 3, Bulk: 3}, 0, 0},
		{"first bulk has no duplicates", bulkgen.Options{Rows: 1000, Accounts: 3, Invalid: 0.01, Duplicates: 0.01}, 10, 0},
		{"later bulk", bulkgen.Options{Rows: 1000, Accounts: 3, Bulk: 1, Invalid: 0.01, Duplicates: 0.005}, 10, 5},
		{"rounded", bulkgen.Options{Rows: 50, Accounts: 1, Bulk: 1, Invalid: 0.03, Duplicates: 0.03}, 2, 2},
		{"no accounts, nothing to take", bulkgen.Options{Rows: 100, Bulk: 1, Duplicates: 0.1}, 0, 0},
		{"all invalid leaves nothing to repeat", bulkgen.Options{Rows: 10, Accounts: 2, Bulk: 1, Invalid: 1, Duplicates: 0.5}, 10, 0},
		{"shares above 1 are clamped", bulkgen.Options{Rows: 10, Accounts: 2, Bulk: 1, Invalid: 0.5, Duplicates: 2}, 5, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inv, dup := bulkgen.Counts(tc.o)
			if inv != tc.wantInvalid || dup != tc.wantDupes {
				t.Fatalf("Counts = %d invalid, %d duplicates; want %d, %d", inv, dup, tc.wantInvalid, tc.wantDupes)
			}
			got := map[bulkgen.Kind]int{}
			for _, k := range bulkgen.Kinds(tc.o) {
				got[k]++
			}
			want := map[bulkgen.Kind]int{bulkgen.Invalid: inv, bulkgen.Duplicate: dup, bulkgen.Valid: tc.o.Rows - inv - dup}
			for k := range want {
				if want[k] == 0 {
					delete(want, k)
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("kinds (-want +got):\n%s", diff)
			}
		})
	}
}

// TestImportOutcome plans a run of bulks the way an import does, each against
// what the earlier ones wrote, and checks that exactly the planted rows fail:
// invalid ones by validation, duplicates because their accounts are taken.
func TestImportOutcome(t *testing.T) {
	t.Parallel()
	base := bulkgen.Options{Seed: 11, Rows: 300, Accounts: 3, Invalid: 0.04, Duplicates: 0.03}
	existing := bulk.Existing{Locations: map[string]bulk.Record{}, Customers: map[string]bulk.Record{}, DebtAccounts: map[string]bulk.Record{}}
	for b := range 4 {
		o := base
		o.Bulk = b
		raw, err := bulk.DecodeSubmission(bytes.NewReader(bulkgen.Body(o)))
		if err != nil {
			t.Fatal(err)
		}
		rows := bulk.ParseRows(raw, bulk.Options{Today: today})
		p := bulk.NewPlan(uuid.New(), rows, existing, bulk.Options{Today: today})
		for _, l := range p.Locations {
			existing.Locations[l.ExternalID] = bulk.Record{ID: l.ID}
		}
		for _, c := range p.Customers {
			existing.Customers[c.ExternalID] = bulk.Record{ID: c.ID}
		}
		for _, a := range p.DebtAccounts {
			existing.DebtAccounts[a.ExternalID] = bulk.Record{ID: a.ID}
		}
		kinds := bulkgen.Kinds(o)
		for i, r := range p.Results {
			report, failed := r.Errors()
			if failed != (kinds[i] != bulkgen.Valid) {
				msgs, _ := json.Marshal(report)
				t.Fatalf("bulk %d row %d (%s): failed = %v: %s", b, i+1, kinds[i], failed, msgs)
			}
			if kinds[i] == bulkgen.Duplicate {
				for _, a := range r.DebtAccounts {
					if got := a.Messages["external_id"]; len(got) != 1 || got[0] != bulk.MsgTaken {
						t.Fatalf("bulk %d row %d: duplicate account messages %v, want taken", b, i+1, a.Messages)
					}
				}
			}
		}
	}
	// Customers and accounts are unique per valid row; locations are shared.
	if n := len(existing.Locations); n == 0 || n > base.Rows/10 {
		t.Errorf("%d locations, want 1..%d shared across bulks", n, base.Rows/10)
	}
}

func BenchmarkBody1000Rows(b *testing.B) {
	o := bulkgen.Options{Seed: 1, Rows: 1000, Accounts: 3, Bulk: 1, Invalid: 0.01, Duplicates: 0.01}
	for b.Loop() {
		b.SetBytes(int64(len(bulkgen.Body(o))))
	}
}

// TestChanged: the second version of a bulk differs from the first exactly
// in the planted fields of the changed valid rows (and of duplicates of
// them); invalid rows and every other field stay as they were.
func TestChanged(t *testing.T) {
	t.Parallel()
	o := bulkgen.Options{Seed: 3, Rows: 400, Accounts: 3, Bulk: 2, Invalid: 0.05, Duplicates: 0.05}
	changed := o
	changed.Changed = 0.5
	before, after := bulkgen.Rows(o), bulkgen.Rows(changed)
	kinds := bulkgen.Kinds(o)
	counts := map[bool]int{}
	wantCusts := map[string]bool{} // changed valid rows' customers
	for i := range before {
		cust := after[i]["customer"].(map[string]any)
		name := cust["name"].(string)
		wasName := before[i]["customer"].(map[string]any)["name"].(string)
		isChanged := name != wasName
		counts[isChanged]++
		if kinds[i] == bulkgen.Valid && isChanged {
			wantCusts[cust["external_id"].(string)] = true
		}
		if kinds[i] == bulkgen.Invalid && isChanged {
			t.Errorf("row %d: an invalid row changed", i)
		}
		if kinds[i] == bulkgen.Valid && isChanged != changed.IsChanged(o.Bulk, i) {
			t.Errorf("row %d: changed = %v, IsChanged says %v", i, isChanged, !isChanged)
		}
		// Undo the planted change: the rest must be what it was.
		if isChanged {
			if name != wasName+bulkgen.ChangedNameSuffix {
				t.Fatalf("row %d: name %q, want %q", i, name, wasName+bulkgen.ChangedNameSuffix)
			}
			cust["name"] = wasName
			for _, a := range after[i]["debt_accounts"].([]any) {
				m := a.(map[string]any)
				cents, err := bulk.ParseMoney(string(m["current_balance"].(json.Number)))
				if err != nil {
					t.Fatal(err)
				}
				m["current_balance"] = json.Number((cents - bulkgen.ChangedBalanceCents).String())
			}
		}
		if diff := cmp.Diff(before[i], after[i]); diff != "" {
			t.Fatalf("row %d (%s) differs beyond the planted fields (-before +after):\n%s", i, kinds[i], diff)
		}
	}
	custs, accts := bulkgen.ChangedRecords(changed)
	if len(custs) != len(wantCusts) || len(accts) != 3*len(custs) {
		t.Errorf("ChangedRecords: %d customers and %d accounts, want %d and 3 each", len(custs), len(accts), len(wantCusts))
	}
	for _, c := range custs {
		if !wantCusts[c] {
			t.Errorf("ChangedRecords names %s, which did not change", c)
		}
	}
	if counts[true] < 150 || counts[false] < 150 {
		t.Errorf("changed rows: %v, want about half", counts)
	}
	if !bytes.Equal(bulkgen.Body(o), bulkgen.Body(bulkgen.Options{Seed: 3, Rows: 400, Accounts: 3, Bulk: 2, Invalid: 0.05, Duplicates: 0.05, Changed: 0})) {
		t.Error("Changed 0 changes the body")
	}
}

// TestDuplicatesRepeatDifferentRows: no two rows of a bulk are the same
// customer, so that an upsert of the bulk fails no duplicate as taken.
func TestDuplicatesRepeatDifferentRows(t *testing.T) {
	t.Parallel()
	for b := 1; b < 8; b++ {
		o := bulkgen.Options{Seed: 1, Rows: 100, Accounts: 3, Bulk: b, Invalid: 0.05, Duplicates: 0.3}
		seen := map[string]bool{}
		for i, r := range bulkgen.Rows(o) {
			id, _ := r["customer"].(map[string]any)["external_id"].(string)
			if id != "" && seen[id] {
				t.Fatalf("bulk %d row %d repeats customer %s a second time", b, i, id)
			}
			seen[id] = true
		}
	}
}
