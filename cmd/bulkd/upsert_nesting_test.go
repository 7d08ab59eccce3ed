package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulkd/bulkd/pkg/bulk"
)

// In an upsert the row's structure decides the nesting: an account listed
// in parent_debt_accounts that is stored nested under another moves to the
// top level, reported updated, and the row's accounts nest under it. One in
// debt_accounts that names no parent keeps its stored one (absent, a field
// keeps its value), so a child of the row under it fails, saying how to move
// it.
func TestUpsertListedParentMovesToTheTopLevel(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	s.waitCompleted(t, key, s.submit(t, key, []byte(`[{"customer": {"external_id": "c1", "name": "Ann"}, "location": {"external_id": "l1"},
		"debt_accounts": [{"external_id": "y", "balance": 1, "billing_type": ["settlement"]},
			{"external_id": "x", "parent_external_id": "y", "balance": 2, "billing_type": ["settlement"]},
			{"external_id": "v", "parent_external_id": "y", "balance": 3, "billing_type": ["settlement"]}]}]`)))

	id := s.submitWith(t, key, "mode=upsert", []byte(`[
		{"customer": {"external_id": "c1"}, "location": {"external_id": "l1"},
		 "parent_debt_accounts": [{"external_id": "x"}],
		 "debt_accounts": [{"external_id": "k", "parent_external_id": "x", "balance": 4, "billing_type": ["settlement"]}]},
		{"customer": {"external_id": "c1"}, "location": {"external_id": "l1"},
		 "debt_accounts": [{"external_id": "v"}, {"external_id": "n", "parent_external_id": "v", "balance": 5, "billing_type": ["settlement"]}]}]`))
	s.waitCompleted(t, key, id)
	res := s.results(t, key, "/api/v1/bulk/"+id+"/results")
	if x := res.Data[0].ParentDebtAccounts[0]; x.Action != bulk.ActionUpdated {
		t.Errorf("x: %s, want updated", x.Action)
	}
	if k := res.Data[0].DebtAccounts[0]; k.Action != bulk.ActionCreated {
		t.Errorf("k, nested under x: %s, want created", k.Action)
	}
	want := map[string]string{
		"x": "2.00|2.00|settlement|-|NULL|v2", // at the top level, changed once
		"k": "4.00|4.00|settlement|x|NULL|v1",
		"v": "3.00|3.00|settlement|y|NULL|v1", // kept under y, as stored
		"y": "1.00|1.00|settlement|-|NULL|v1",
	}
	got := map[string]string{}
	for extID := range want {
		got[extID] = s.record(t, accountRecord, extID)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("accounts (-want +got):\n%s", diff)
	}
	e := res.Data[1].Errors
	if res.Data[1].Status != bulk.RowFailed || e == nil || len(e.DebtAccounts) != 1 ||
		!cmp.Equal(e.DebtAccounts[0].Messages["parent_external_id"], []string{bulk.MsgParentStoredNested}) {
		t.Errorf("row 2, a child of v: %s %+v", res.Data[1].Status, e)
	}
	if n := s.db.Count(t, `SELECT count(*) FROM debt_accounts WHERE external_id = 'n'`); n != 0 {
		t.Errorf("n was written")
	}
}
