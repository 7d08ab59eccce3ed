package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulkd/bulkd/pkg/bulk"
)

const (
	customerRecord = `SELECT c.name || '|' || coalesce(c.email, 'NULL') || '|' || coalesce(c.phone, 'NULL') || '|' ||
		coalesce(c.metadata::text, 'NULL') || '|' || l.external_id || '|v' || c.version FROM customers c
		JOIN locations l ON l.id = c.location_id WHERE c.external_id = $1`
	accountRecord = `SELECT a.balance || '|' || a.current_balance || '|' || array_to_string(a.billing_type, ',') || '|' ||
		coalesce(p.external_id, '-') || '|' || coalesce(a.external_account_number, 'NULL') || '|v' || a.version
		FROM debt_accounts a LEFT JOIN debt_accounts p ON p.id = a.parent_id WHERE a.external_id = $1`
)

func TestUpsertCreatesUpdatesAndLeavesUnchanged(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	first := s.submit(t, key, []byte(`[
		{"customer": {"external_id": "c1", "name": "Ann", "email": "ann@example.com", "phone": "111", "metadata": {"tier": 1}},
		 "location": {"external_id": "l1", "name": "North"},
		 "debt_accounts": [
			{"external_id": "p1", "balance": 100, "billing_type": ["settlement"]},
			{"external_id": "p2", "balance": 50, "billing_type": ["settlement"]},
			{"external_id": "k1", "parent_external_id": "p1", "balance": 10, "current_balance": 5, "billing_type": ["full-payment"], "external_account_number": "X-1"}]},
		{"customer": {"external_id": "c2", "name": "Bob"}, "location": {"external_id": "l1"},
		 "debt_accounts": [{"external_id": "b1", "balance": 1, "billing_type": ["settlement"]}]}]`))
	s.waitCompleted(t, key, first)
	var stamp time.Time
	if err := s.db.Conn.QueryRow(t.Context(), `SELECT updated_at FROM customers WHERE external_id = 'c2'`).Scan(&stamp); err != nil {
		t.Fatal(err)
	}

	// Row 1: the customer's phone cleared and metadata changed, email absent
	// (kept); k1 moves under p2, its balance changes, its current balance and
	// account number are left alone; a new account. Row 2: everything as
	// stored. Row 3: a new customer. Row 4: an account of c1 named under c2.
	second := s.submitWith(t, key, "mode=upsert", []byte(`[
		{"customer": {"external_id": "c1", "phone": null, "metadata": {"tier": 2}},
		 "location": {"external_id": "l1"},
		 "debt_accounts": [
			{"external_id": "p2"},
			{"external_id": "k1", "parent_external_id": "p2", "balance": 12},
			{"external_id": "n1", "balance": 7, "billing_type": ["payment-plan"]}]},
		{"customer": {"external_id": "c2", "name": "Bob"}, "location": {"external_id": "l1", "name": "North"},
		 "debt_accounts": [{"external_id": "b1", "balance": "1.00", "billing_type": ["settlement"]}]},
		{"customer": {"external_id": "c3", "name": "Cy"}, "location": {"external_id": "l2"}, "debt_accounts": []},
		{"customer": {"external_id": "c2"}, "location": {"external_id": "l1"},
		 "debt_accounts": [{"external_id": "p1", "balance": 1}]},
		{"customer": {"external_id": "c4"}, "location": {"external_id": "l1"}},
		{"customer": {"external_id": "c1"}, "location": {"external_id": "l1"},
		 "debt_accounts": [{"external_id": "new-without-balance"}]}]`))
	got := s.waitCompleted(t, key, second)
	if got["mode"] != "upsert" || got["rows_failed"] != 3.0 || got["rows_succeeded"] != 3.0 {
		t.Errorf("upsert bulk: %v", got)
	}

	if diff := cmp.Diff("Ann|ann@example.com|NULL|{\"tier\": 2}|l1|v2", s.record(t, customerRecord, "c1")); diff != "" {
		t.Errorf("c1 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("12.00|5.00|full-payment|p2|X-1|v2", s.record(t, accountRecord, "k1")); diff != "" {
		t.Errorf("k1 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("Bob|NULL|NULL|NULL|l1|v1", s.record(t, customerRecord, "c2")); diff != "" {
		t.Errorf("c2 (-want +got):\n%s", diff)
	}
	var stampAfter time.Time
	_ = s.db.Conn.QueryRow(t.Context(), `SELECT updated_at FROM customers WHERE external_id = 'c2'`).Scan(&stampAfter)
	if !stampAfter.Equal(stamp) {
		t.Errorf("an unchanged customer was rewritten: updated_at %v → %v", stamp, stampAfter)
	}
	for _, q := range []struct{ sql, want string }{
		{`SELECT last_bulk_id || '/' || last_bulk_row || ' ' || bulk_id FROM customers WHERE external_id = 'c1'`, second + "/1 " + first},
		{`SELECT last_bulk_id || '/' || last_bulk_row FROM debt_accounts WHERE external_id = 'b1'`, first + "/2"},
		{`SELECT version || ' ' || bulk_id || '/' || bulk_row || ' ' || last_bulk_id FROM customers WHERE external_id = 'c3'`, "1 " + second + "/3 " + second},
		{`SELECT count(*)::text FROM debt_accounts WHERE external_id = 'p1' AND balance = 100`, "1"},
		{`SELECT count(*)::text FROM customers WHERE external_id = 'c4'`, "0"},
	} {
		if got := s.record(t, q.sql); got != q.want {
			t.Errorf("%s = %q, want %q", q.sql, got, q.want)
		}
	}

	p := s.results(t, key, "/api/v1/bulk/"+second+"/results")
	if p.TotalUpdated != 1 || p.TotalUnchanged != 1 || p.TotalCreated != 1 || p.TotalErrors != 3 {
		t.Errorf("totals: %+v", p)
	}
	if diff := cmp.Diff([]bulk.RowStatus{bulk.RowUpdated, bulk.RowUnchanged, bulk.RowCreated, bulk.RowFailed, bulk.RowFailed, bulk.RowFailed}, statuses(p)); diff != "" {
		t.Errorf("row statuses (-want +got):\n%s", diff)
	}
	actions := func(r bulk.ResultRow) []bulk.Action {
		out := []bulk.Action{r.Customer.Action, r.Location.Action}
		for _, a := range r.DebtAccounts {
			out = append(out, a.Action)
		}
		return out
	}
	for i, want := range [][]bulk.Action{
		{bulk.ActionUpdated, bulk.ActionUnchanged, bulk.ActionUnchanged, bulk.ActionUpdated, bulk.ActionCreated},
		{bulk.ActionUnchanged, bulk.ActionFound, bulk.ActionUnchanged},
		{bulk.ActionCreated, bulk.ActionCreated},
		{bulk.ActionFound, bulk.ActionFound, bulk.ActionFailed},
		{bulk.ActionFailed, bulk.ActionFound},
		{bulk.ActionFound, bulk.ActionFound, bulk.ActionFailed},
	} {
		if diff := cmp.Diff(want, actions(p.Data[i])); diff != "" {
			t.Errorf("row %d actions (-want +got):\n%s", i+1, diff)
		}
	}
	msg := func(row int, section string) []string {
		e := p.Data[row-1].Errors
		if e == nil {
			return nil
		}
		var out []string
		list := e.DebtAccounts
		if section == "customer" {
			list = e.Customer
		}
		for _, o := range list {
			for _, m := range o.Messages {
				out = append(out, m...)
			}
		}
		return out
	}
	if got := msg(4, "debt_accounts"); len(got) != 1 || got[0] != bulk.MsgOtherCustomer {
		t.Errorf("an account of another customer: %v", got)
	}
	if got := msg(5, "customer"); len(got) != 1 || got[0] != "The name field is required." {
		t.Errorf("a new customer without a name: %v", got)
	}
	if got := strings.Join(msg(6, "debt_accounts"), " "); !strings.Contains(got, "balance field is required") || !strings.Contains(got, "billing type field is required") {
		t.Errorf("a new account without balance and billing type: %v", got)
	}

	// The same upsert again changes nothing: every record unchanged, no version counted.
	third := s.submitWith(t, key, "mode=upsert", []byte(`[{"customer": {"external_id": "c1", "phone": null, "metadata": {"tier": 2}},
		 "location": {"external_id": "l1"}, "debt_accounts": [{"external_id": "p2"}, {"external_id": "k1", "parent_external_id": "p2", "balance": 12}]}]`))
	s.waitCompleted(t, key, third)
	if p := s.results(t, key, "/api/v1/bulk/"+third+"/results"); p.TotalUnchanged != 1 || p.Data[0].Customer.Action != bulk.ActionUnchanged {
		t.Errorf("an upsert of stored values: %+v", p.Data)
	}
	if diff := cmp.Diff("12.00|5.00|full-payment|p2|X-1|v2", s.record(t, accountRecord, "k1")); diff != "" {
		t.Errorf("k1 after a no-op upsert (-want +got):\n%s", diff)
	}
	if r := s.request(t, http.MethodGet, "/api/v1/bulk/"+third, nil, bearer(key)); r.status != 200 {
		t.Fatal(r.status)
	}
}

// README: a child may move to the top level ("parent_external_id": null), and
// nesting an account that has children of its own fails. When the only child
// of C2 moves to the top level in the same row, C2 has no children left and
// may be nested (it failed with "has debt accounts nested under it").
func TestUpsertNestsAnAccountWhoseChildMovesAwayInTheSameRow(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	s.waitCompleted(t, key, s.submit(t, key, []byte(`[{"customer":{"external_id":"c1","name":"N"},"location":{"external_id":"l1"},
		"debt_accounts":[{"external_id":"P1","balance":1,"billing_type":["settlement"]},{"external_id":"C2","balance":1,"billing_type":["settlement"]},
		{"external_id":"C1","parent_external_id":"C2","balance":1,"billing_type":["settlement"]}]}]`)))

	id := s.submitWith(t, key, "mode=upsert", []byte(`[{"customer":{"external_id":"c1"},"location":{"external_id":"l1"},
		"debt_accounts":[{"external_id":"C1","parent_external_id":null},{"external_id":"P1"},{"external_id":"C2","parent_external_id":"P1"}]}]`))
	got := s.waitCompleted(t, key, id)
	if got["rows_failed"] != 0.0 {
		r := s.request(t, http.MethodGet, "/api/v1/bulk/"+id+"/errors", nil, bearer(key))
		t.Errorf("moving C1 to the top level and C2 under P1 in one row: %v failed row(s): %s", got["rows_failed"], r.body)
	}
	var tree []string
	rows, err := s.db.Conn.Query(context.Background(), `SELECT a.external_id || ' under ' || coalesce(p.external_id, '-')
		FROM debt_accounts a LEFT JOIN debt_accounts p ON p.id = a.parent_id ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		tree = append(tree, s)
	}
	if want := []string{"C1 under -", "C2 under P1", "P1 under -"}; !cmp.Equal(tree, want) {
		t.Errorf("accounts: %v, want %v", tree, want)
	}
}
