package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulkd/bulkd/pkg/bulk"
)

// With strict=true a key given twice in one object fails that object, at
// its pointer, as an unknown key does: an earlier value, however wrong,
// would otherwise be dropped unseen (here a whole customer of unknown,
// empty, NUL and lone-surrogate keys). Without it the last value is taken,
// as encoding/json takes it.
func TestStrictRefusesRepeatedKeys(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	body := func(prefix string) []byte {
		return []byte(strings.ReplaceAll(`[
		{"customer": {"bogus": 1, "": 2, "\u0000": 3, "\ud800": 4}, "customer": {"external_id": "P-c1", "name": "Ann"},
		 "location": {"external_id": "P-l1"}},
		{"customer": {"external_id": "P-c2", "name": "First", "name": "Last"}, "location": {"external_id": "P-l1"}},
		{"customer": {"external_id": "P-c3", "name": "Cy", "metadata": {"tier": 1, "tier": 2}}, "location": {"external_id": "P-l1"},
		 "debt_accounts": [{"external_id": "P-a1", "balance": -1, "balance": 1, "billing_type": ["settlement"]}]},
		{"customer": {"external_id": "P-c4", "name": "Di"}, "location": {"external_id": "P-l1"}}]`, "P-", prefix))
	}

	id := s.submitWith(t, key, "strict=true", body("s-"))
	if got := s.waitCompleted(t, key, id); got["rows_failed"] != float64(3) {
		t.Errorf("strict: %v rows failed, want 3", got["rows_failed"])
	}
	res := s.results(t, key, "/api/v1/bulk/"+id+"/results")
	wantCustomer := []bulk.Messages{
		{"row.customer": {"#/0: duplicate key [customer] is not permitted"}},
		{"name": {"#/1/customer: duplicate key [name] is not permitted"}},
		{"metadata.tier": {"#/2/customer/metadata: duplicate key [tier] is not permitted"}},
	}
	for i, want := range wantCustomer {
		r := res.Data[i]
		if r.Status != bulk.RowFailed || r.Errors == nil || len(r.Errors.Customer) != 1 {
			t.Fatalf("row %d: %s, errors %+v", i+1, r.Status, r.Errors)
		}
		if diff := cmp.Diff(want, r.Errors.Customer[0].Messages); diff != "" {
			t.Errorf("row %d: customer messages (-want +got):\n%s", i+1, diff)
		}
	}
	if e := res.Data[2].Errors; len(e.DebtAccounts) != 1 ||
		!cmp.Equal(e.DebtAccounts[0].Messages["balance"], []string{"#/2/debt_accounts/0: duplicate key [balance] is not permitted"}) {
		t.Errorf("row 3: debt account errors %+v", e.DebtAccounts)
	}
	if res.Data[3].Status != bulk.RowCreated {
		t.Errorf("row 4, without a repeated key: %s", res.Data[3].Status)
	}
	if n := s.db.Count(t, `SELECT count(*) FROM customers WHERE external_id LIKE 's-%'`); n != 1 {
		t.Errorf("strict: %d customers written, want 1 (row 4's)", n)
	}

	lax := s.submit(t, key, body("l-"))
	if got := s.waitCompleted(t, key, lax); got["rows_failed"] != float64(0) {
		t.Errorf("without strict: %v rows failed, want none", got["rows_failed"])
	}
	for query, want := range map[string]string{
		`SELECT name FROM customers WHERE external_id = 'l-c1'`:              "Ann",
		`SELECT name FROM customers WHERE external_id = 'l-c2'`:              "Last",
		`SELECT metadata::text FROM customers WHERE external_id = 'l-c3'`:    `{"tier": 2}`,
		`SELECT balance::text FROM debt_accounts WHERE external_id = 'l-a1'`: "1.00",
	} {
		if got := s.record(t, query); got != want {
			t.Errorf("without strict, %s: %q, want the last value %q", query, got, want)
		}
	}
	if r := s.request(t, http.MethodGet, "/api/v1/bulk/"+lax+"/errors", nil, bearer(key)); r.status != http.StatusOK {
		t.Errorf("errors of the lax bulk: %d %s", r.status, r.body)
	}
}
