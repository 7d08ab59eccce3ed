package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// modeRows is a bulk of three rows of which the second fails (a negative
// balance), the first and third are fine.
func modeRows(prefix string) []byte {
	row := func(n, balance string) string {
		return `{"customer":{"external_id":"` + prefix + `c` + n + `","name":"N"},"location":{"external_id":"` + prefix +
			`l"},"debt_accounts":[{"external_id":"` + prefix + `a` + n + `","balance":` + balance + `,"billing_type":["settlement"]}]}`
	}
	return []byte("[" + row("1", "1") + "," + row("2", "-1") + "," + row("3", "3") + "]")
}

// statuses lists each result row's status.
func statuses(p bulksvc.ResultsPage) []bulk.RowStatus {
	var out []bulk.RowStatus
	for _, r := range p.Data {
		out = append(out, r.Status)
	}
	return out
}

func TestAtomicBulkWritesNothingWhenARowFails(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	s.waitCompleted(t, key, s.submit(t, key, testenv.SeedExample(t)))
	before := s.db.Snapshot(t)

	id := s.submitWith(t, key, "atomic=true", modeRows("x"))
	got := s.waitCompleted(t, key, id)
	if got["atomic"] != true || got["rolled_back"] != true || got["rows_succeeded"] != 0.0 || got["rows_failed"] != 1.0 {
		t.Errorf("atomic bulk with a failed row: %v", got)
	}
	if diff := cmp.Diff(before, s.db.Snapshot(t)); diff != "" {
		t.Errorf("an atomic bulk with a failed row changed the tables:\n%s", diff)
	}
	p := s.results(t, key, "/api/v1/bulk/"+id+"/results")
	if diff := cmp.Diff([]bulk.RowStatus{bulk.RowRolledBack, bulk.RowFailed, bulk.RowRolledBack}, statuses(p)); diff != "" {
		t.Errorf("row statuses (-want +got):\n%s", diff)
	}
	if p.TotalErrors != 1 || p.TotalCreated != 0 {
		t.Errorf("totals: %+v", p)
	}
	var report struct {
		Data []struct {
			ID int `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(s.errorsReport(t, key, id)), &report); err != nil || len(report.Data) != 1 || report.Data[0].ID != 2 {
		t.Errorf("errors of the atomic bulk: %+v %v", report, err)
	}

	// Without an error, atomic writes exactly what the partial mode writes.
	clean := []byte(strings.Replace(string(modeRows("y")), `"balance":-1`, `"balance":2`, 1))
	id = s.submitWith(t, key, "atomic=true", clean)
	if got := s.waitCompleted(t, key, id); got["rolled_back"] != false || got["rows_succeeded"] != 3.0 {
		t.Errorf("atomic bulk without errors: %v", got)
	}
	if n := s.db.Count(t, `SELECT count(*) FROM debt_accounts WHERE external_id LIKE 'ya%'`); n != 3 {
		t.Errorf("%d accounts written by a clean atomic bulk, want 3", n)
	}
}

// A dry run leaves the tables as they were, its report equals a real run's
// of the same bulk at that moment, and nobody is emailed.
func TestValidateOnlyReportsWhatARealRunWould(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	s.waitCompleted(t, key, s.submit(t, key, testenv.SeedExample(t)))
	s.smtp.WaitForMessages(t, 1, deadlineForEmail)
	before := s.db.Snapshot(t)

	// The seed again (its accounts are taken, its customer found) and rows
	// of which one fails.
	var seed []json.RawMessage
	_ = json.Unmarshal(testenv.SeedExample(t), &seed)
	var mixed []json.RawMessage
	_ = json.Unmarshal(modeRows("v"), &mixed)
	body, _ := json.Marshal(append(seed, mixed...))

	dry := s.submitWith(t, key, "validate_only=true", body)
	got := s.waitCompleted(t, key, dry)
	if got["validate_only"] != true || got["rows_failed"] != 2.0 || got["rows_succeeded"] != 2.0 {
		t.Errorf("dry run: %v", got)
	}
	if diff := cmp.Diff(before, s.db.Snapshot(t)); diff != "" {
		t.Errorf("a dry run changed the tables:\n%s", diff)
	}
	if w := got["records_written"].(map[string]any); w["locations"] != 0.0 || w["customers"] != 0.0 || w["debt_accounts"] != 0.0 {
		t.Errorf("a dry run counts records written: %v", w)
	}
	dryErrors := s.errorsReport(t, key, dry)
	dryResults := s.results(t, key, "/api/v1/bulk/"+dry+"/results")

	real := s.submit(t, key, body)
	s.waitCompleted(t, key, real)
	if diff := cmp.Diff(s.errorsReport(t, key, real), dryErrors); diff != "" {
		t.Errorf("the dry run's errors differ from the real run's (-real +dry):\n%s", diff)
	}
	realResults := s.results(t, key, "/api/v1/bulk/"+real+"/results")
	// Ids of what the real run created exist only there: compare the rest,
	// then the ids of what existed before, which both name.
	withoutIDs := cmp.Transformer("ids", func(o bulk.ResultObject) bulk.ResultObject {
		o.ID = nil
		return o
	})
	if diff := cmp.Diff(realResults, dryResults, withoutIDs); diff != "" {
		t.Errorf("the dry run's results differ from the real run's (-real +dry):\n%s", diff)
	}
	// Row 1 reuses the seed's customer and location: both runs name them.
	// Rows 2-4 are new: the dry run names no record for any of their objects,
	// not even the location row 2 would create and rows 3 and 4 would reuse.
	d1, r1 := dryResults.Data[0], realResults.Data[0]
	if d1.Customer.ID == nil || *d1.Customer.ID != *r1.Customer.ID || d1.Location.ID == nil || *d1.Location.ID != *r1.Location.ID {
		t.Errorf("row 1: the dry run does not name the existing records: %+v %+v", d1.Customer, d1.Location)
	}
	for _, r := range dryResults.Data[1:] {
		for _, o := range append([]bulk.ResultObject{*r.Customer, *r.Location}, r.DebtAccounts...) {
			if o.ID != nil {
				t.Errorf("row %d: the dry run names a record that does not exist: %+v", r.Row, o)
			}
		}
	}
	// The seed bulk and the real run are emailed; the dry run is not.
	s.waitQueuesEmpty(t)
	if n := len(s.smtp.Messages()); n != 2 {
		t.Errorf("%d emails, want 2 (none for the dry run)", n)
	}
}

func TestBadOptionsStoreNothing(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	for _, q := range []struct{ query, param string }{
		{"mode=merge", "mode"},
		{"atomic=yes", "atomic"},
		{"validate_only=1", "validate_only"},
		{"strict=on", "strict"},
		{"mode=create&mode=upsert", "mode"},
		{"dryrun=true", "dryrun"},
	} {
		r := s.request(t, http.MethodPost, "/api/v1/bulk?"+q.query, testenv.SeedExample(t), bearer(key), jsonBody)
		errs, _ := r.json(t)["errors"].(map[string]any)
		if r.status != http.StatusBadRequest || errs[q.param] == nil {
			t.Errorf("?%s: %d %s; want 400 naming %s", q.query, r.status, r.body, q.param)
		}
	}
	if n := s.db.Count(t, `SELECT count(*) FROM bulks`); n != 0 {
		t.Errorf("bad options stored %d bulks", n)
	}
	// GET shows the options a bulk was submitted with.
	id := s.submitWith(t, key, "mode=create&atomic=true&validate_only=true&strict=false", testenv.SeedExample(t))
	got := s.request(t, http.MethodGet, "/api/v1/bulk/"+id, nil, bearer(key)).json(t)["data"].(map[string]any)
	if got["mode"] != "create" || got["atomic"] != true || got["validate_only"] != true || got["strict"] != false || got["rolled_back"] != false {
		t.Errorf("options as shown: %v", got)
	}
}

// A replay with an Idempotency-Key must carry the options of the first
// request: other options are another request.
func TestIdempotentReplayComparesOptions(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	post := func(query string) response {
		return s.request(t, http.MethodPost, "/api/v1/bulk?"+query, testenv.SeedExample(t), bearer(key), "Idempotency-Key: opt-1", jsonBody)
	}
	first := post("atomic=true")
	same := post("atomic=true")
	reordered := post("validate_only=false&atomic=true") // the same options written otherwise
	other := post("atomic=false")
	if first.status != 202 || same.status != 202 || same.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(first.body, same.body) {
		t.Errorf("replay with the same options: %d %s / %d %s", first.status, first.body, same.status, same.body)
	}
	if reordered.status != 202 || !bytes.Equal(first.body, reordered.body) {
		t.Errorf("replay with the same options in another order: %d %s", reordered.status, reordered.body)
	}
	if errs, _ := other.json(t)["errors"].(map[string]any); other.status != 422 || errs["Idempotency-Key"] == nil {
		t.Errorf("replay with other options: %d %s; want 422 naming Idempotency-Key", other.status, other.body)
	}
	if n := s.db.Count(t, `SELECT count(*) FROM bulks`); n != 1 {
		t.Errorf("%d bulks, want 1", n)
	}
}

// Every combination of the options works, alone and together, and does what
// each option says.
func TestEveryCombinationOfOptions(t *testing.T) {
	t.Parallel()
	s := startService(t, "RATE_LIMIT=0")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	for combo := range 16 {
		upsert, atomic, dry, strict := combo&1 != 0, combo&2 != 0, combo&4 != 0, combo&8 != 0
		p := fmt.Sprintf("x%d-", combo) // external ids of this combination
		query := fmt.Sprintf("mode=%s&atomic=%v&validate_only=%v&strict=%v", map[bool]string{false: "create", true: "upsert"}[upsert], atomic, dry, strict)
		func() {
			t := &prefixed{T: t, prefix: query + ": "}
			// What exists before: a customer with an account of balance 1.
			s.waitCompleted(t, key, s.submit(t, key, []byte(`[{"customer":{"external_id":"`+p+`old","name":"Old"},"location":{"external_id":"L"},
				"debt_accounts":[{"external_id":"`+p+`old-a","balance":1,"billing_type":["settlement"]}]}]`)))
			account := func(id, balance string) string {
				return `{"external_id":"` + p + id + `","balance":` + balance + `,"billing_type":["settlement"]}`
			}
			body := `[
				{"customer":{"external_id":"` + p + `c1","name":"A"},"location":{"external_id":"L"},"debt_accounts":[` + account("a1", "1") + `]},
				{"customer":{"external_id":"` + p + `c2","name":"B","company":"Acme"},"location":{"external_id":"L"},"debt_accounts":[` + account("a2", "1") + `]},
				{"customer":{"external_id":"` + p + `c3","name":"C"},"location":{"external_id":"L"},"debt_accounts":[` + account("a3", "-1") + `]},
				{"customer":{"external_id":"` + p + `old"},"location":{"external_id":"L"},"debt_accounts":[{"external_id":"` + p + `old-a","balance":9}]}]`
			if !upsert { // create mode needs the customer's name; the account is taken
				body = strings.Replace(body, `"external_id":"`+p+`old"}`, `"external_id":"`+p+`old","name":"Old"}`, 1)
			}
			id := s.submitWith(t, key, query, []byte(body))
			got := s.waitCompleted(t, key, id)

			failed := map[int]bool{3: true, 2: strict, 4: !upsert}
			wantFailed := 0
			for _, f := range failed {
				if f {
					wantFailed++
				}
			}
			writes := !atomic && !dry
			if got["rows_failed"] != float64(wantFailed) || got["rolled_back"] != atomic || got["validate_only"] != dry ||
				got["strict"] != strict || got["atomic"] != atomic {
				t.Errorf("bulk: %v; want %d failed rows", got, wantFailed)
			}
			wantAccounts := 1 // old-a
			if writes {
				wantAccounts += 1 + map[bool]int{true: 0, false: 1}[strict] // a1, and a2 unless strict
			}
			if n := s.db.Count(t.T, `SELECT count(*) FROM debt_accounts WHERE external_id LIKE $1`, p+"%"); n != wantAccounts {
				t.Errorf("%d accounts, want %d", n, wantAccounts)
			}
			wantBalance := "1.00"
			if writes && upsert {
				wantBalance = "9.00"
			}
			if got := s.record(t.T, `SELECT balance::text FROM debt_accounts WHERE external_id = $1`, p+"old-a"); got != wantBalance {
				t.Errorf("old-a balance %s, want %s", got, wantBalance)
			}
			res := s.results(t, key, "/api/v1/bulk/"+id+"/results")
			for i, r := range res.Data {
				want := bulk.RowFailed
				switch {
				case failed[i+1]:
				case atomic:
					want = bulk.RowRolledBack
				case i+1 == 4:
					want = bulk.RowUpdated
				default:
					want = bulk.RowCreated
				}
				if r.Status != want {
					t.Errorf("row %d: %s, want %s", i+1, r.Status, want)
				}
			}
			if strict {
				e := res.Data[1].Errors
				if e == nil || len(e.Customer) != 1 || !cmp.Equal(e.Customer[0].Messages["company"], []string{"#/1/customer: extraneous key [company] is not permitted"}) {
					t.Errorf("strict pointer of row 2: %+v", e)
				}
			}
		}()
	}
}
