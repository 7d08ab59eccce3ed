package bulk_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/bulk"
)

func rowsOf(t *testing.T, rows ...map[string]any) []*bulk.Row {
	t.Helper()
	out := make([]*bulk.Row, len(rows))
	for i, r := range rows {
		raw, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = bulk.ParseRow(i+1, raw, bulk.Options{Today: today})
	}
	return out
}

func simpleRow(customer, location string, accounts ...map[string]any) map[string]any {
	list := make([]any, len(accounts))
	for i, a := range accounts {
		list[i] = a
	}
	return map[string]any{
		"customer":      map[string]any{"external_id": customer, "name": "Name " + customer},
		"location":      map[string]any{"external_id": location},
		"debt_accounts": list,
	}
}

func acct(id, parent string) map[string]any {
	a := map[string]any{"external_id": id, "balance": "12.30", "billing_type": []any{"full-payment"}}
	if parent != "" {
		a["parent_external_id"] = parent
	}
	return a
}

// messages collects every message of the plan's rows as "row/section/id: field: message".
func messages(p *bulk.Plan) []string {
	var out []string
	for _, r := range p.Results {
		errs, _ := r.Errors()
		for section, list := range map[string][]bulk.ObjectError{
			"customer": errs.Customer, "location": errs.Location,
			"parent_debt_accounts": errs.ParentDebtAccounts, "debt_accounts": errs.DebtAccounts,
		} {
			for _, e := range list {
				var obj struct {
					ExternalID string `json:"external_id"`
				}
				_ = json.Unmarshal(e.Data, &obj)
				for field, msgs := range e.Messages {
					for _, m := range msgs {
						out = append(out, fmt.Sprintf("%d/%s/%s: %s: %s", r.Row, section, obj.ExternalID, field, m))
					}
				}
			}
		}
	}
	return out
}

func externalIDs(accounts []bulk.NewDebtAccount) []string {
	out := make([]string, len(accounts))
	for i, a := range accounts {
		out[i] = a.ExternalID
	}
	return out
}

func TestPlanNewBulk(t *testing.T) {
	bulkID := uuid.New()
	rows := rowsOf(t,
		simpleRow("c1", "l1", acct("child", "top"), acct("top", "")),
		simpleRow("c2", "l1", acct("solo", "")),
		simpleRow("c1", "l2", acct("other", "")),
	)
	p := bulk.NewPlan(bulkID, rows, bulk.Existing{}, bulk.Options{Today: today})
	if msgs := messages(p); len(msgs) > 0 {
		t.Fatalf("unexpected messages: %v", msgs)
	}
	if len(p.Locations) != 2 || len(p.Customers) != 2 {
		t.Fatalf("want 2 new locations and 2 customers, got %d and %d", len(p.Locations), len(p.Customers))
	}
	// Parents are written before their children, whatever the order submitted.
	if diff := cmp.Diff([]string{"top", "child", "solo", "other"}, externalIDs(p.DebtAccounts)); diff != "" {
		t.Errorf("write order (-want +got):\n%s", diff)
	}
	top, child := p.DebtAccounts[0], p.DebtAccounts[1]
	if child.ParentID != top.ID || top.ParentID != uuid.Nil {
		t.Errorf("child not nested under its parent: %+v", p.DebtAccounts[:2])
	}
	// Row 3 names customer c1 again: it is reused, not created twice, and its
	// account belongs to the first c1.
	res := p.Results
	if res[2].Customer.Action != bulk.ActionFound || res[2].Customer.ID != res[0].Customer.ID {
		t.Errorf("repeated customer: %+v", res[2].Customer)
	}
	if p.DebtAccounts[3].CustomerID != res[0].Customer.ID {
		t.Errorf("account of row 3 attached to the wrong customer")
	}
	if res[1].Location.ID != res[0].Location.ID || res[1].Location.Action != bulk.ActionFound || res[0].Location.Action != bulk.ActionCreated {
		t.Errorf("shared location not reused: %+v, %+v", res[0].Location, res[1].Location)
	}
	for i, want := range []bulk.RowStatus{bulk.RowCreated, bulk.RowCreated, bulk.RowCreated} {
		if got := res[i].Status(); got != want {
			t.Errorf("row %d status %q, want %q", i+1, got, want)
		}
	}
	// Planning is read-only: the same rows planned again give the same outcome.
	again := bulk.NewPlan(bulkID, rows, bulk.Existing{}, bulk.Options{Today: today})
	if len(again.DebtAccounts) != len(p.DebtAccounts) || len(messages(again)) != 0 {
		t.Errorf("planning twice changed the outcome: %v", messages(again))
	}
	for _, a := range p.DebtAccounts {
		if a.Balance != 1230 {
			t.Errorf("balance %d, want 1230 cents", a.Balance)
		}
	}
	// New records get time-ordered ids (UUIDv7), increasing in the order
	// they are made, so that their inserts append to the primary-key index.
	var ids []uuid.UUID
	for _, l := range p.Locations {
		ids = append(ids, l.ID)
	}
	for i, id := range ids {
		if id.Version() != 7 || (i > 0 && bytes.Compare(ids[i-1][:], id[:]) >= 0) {
			t.Errorf("location ids %v are not increasing UUIDv7s", ids)
		}
	}
	for _, a := range p.DebtAccounts {
		if a.ID.Version() != 7 {
			t.Errorf("debt account id %s is not a UUIDv7", a.ID)
		}
	}
}

func TestPlanAgainstExistingRecords(t *testing.T) {
	bulkID, otherBulk := uuid.New(), uuid.New()
	existingCustomer, existingLocation := uuid.New(), uuid.New()
	mine := uuid.New()
	existing := bulk.Existing{
		Locations: map[string]bulk.Record{"l1": {ID: existingLocation, BulkID: otherBulk, BulkRow: 1}},
		Customers: map[string]bulk.Record{"c1": {ID: existingCustomer, BulkID: otherBulk, BulkRow: 1}},
		DebtAccounts: map[string]bulk.Record{
			"taken":     {ID: uuid.New(), BulkID: otherBulk, BulkRow: 1},
			"mine":      {ID: mine, BulkID: bulkID, BulkRow: 1}, // written by an earlier attempt of this bulk
			"taken-top": {ID: uuid.New(), BulkID: otherBulk, BulkRow: 4},
		},
	}
	rows := rowsOf(t,
		simpleRow("c1", "l1", acct("taken", ""), acct("mine", ""), acct("fresh", "mine")),
		simpleRow("c2", "l1", acct("fresh", ""), acct("mine", "")),
		simpleRow("c3", "l3", acct("taken-top", ""), acct("kid", "taken-top")),
	)
	p := bulk.NewPlan(bulkID, rows, existing, bulk.Options{Today: today})

	want := []string{
		"1/debt_accounts/taken: external_id: " + bulk.MsgTaken,
		"2/debt_accounts/fresh: external_id: " + bulk.MsgTaken,
		"2/debt_accounts/mine: external_id: " + bulk.MsgTaken,
		"3/debt_accounts/taken-top: external_id: " + bulk.MsgTaken,
		"3/debt_accounts/kid: parent_external_id: " + bulk.MsgParentFailed,
	}
	if diff := cmp.Diff(want, messages(p), sortStrings); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
	res := p.Results
	if res[0].Customer.Action != bulk.ActionFound || res[0].Customer.ID != existingCustomer {
		t.Errorf("existing customer not reused: %+v", res[0].Customer)
	}
	if res[0].Location.ID != existingLocation || res[1].Location.ID != existingLocation || res[0].Location.Action != bulk.ActionFound {
		t.Errorf("existing location not reused")
	}
	// "mine" counts as created by this bulk and is not written again; its
	// child nests under the stored record.
	if got := res[0].DebtAccounts[1]; got.Action != bulk.ActionCreated || got.ID != mine {
		t.Errorf("account written by this bulk: %+v", got)
	}
	// A failed account has no record id.
	if got := res[0].DebtAccounts[0]; got.Action != bulk.ActionFailed || got.ID != uuid.Nil || got.ExternalID != "taken" {
		t.Errorf("taken account: %+v", got)
	}
	if res[0].Status() != bulk.RowFailed {
		t.Errorf("row 1 status %q, want failed", res[0].Status())
	}
	if diff := cmp.Diff([]string{"fresh"}, externalIDs(p.DebtAccounts)); diff != "" {
		t.Errorf("accounts to write (-want +got):\n%s", diff)
	}
	if p.DebtAccounts[0].ParentID != mine {
		t.Errorf("fresh should nest under the stored parent")
	}
	if len(p.Customers) != 2 || len(p.Locations) != 1 {
		t.Errorf("want customers c2, c3 and location l3 written, got %d customers, %d locations", len(p.Customers), len(p.Locations))
	}
}

func TestPlanCascades(t *testing.T) {
	badLocation := simpleRow("c1", "l1", acct("a1", ""))
	badLocation["location"] = map[string]any{"name": "no id"}
	badCustomer := simpleRow("c2", "l2", acct("a2", ""), acct("a3", "a2"))
	badCustomer["customer"] = map[string]any{"external_id": "c2"} // no name
	badParent := simpleRow("c3", "l3", acct("p", ""), acct("k", "p"))
	badParent["debt_accounts"].([]any)[0].(map[string]any)["balance"] = -5
	rows := rowsOf(t, badLocation, badCustomer, badParent)
	p := bulk.NewPlan(uuid.New(), rows, bulk.Existing{}, bulk.Options{Today: today})

	want := []string{
		"1/location/: external_id: The external id field is required.",
		"1/customer/c1: location: " + bulk.MsgLocationFailed,
		"1/debt_accounts/a1: customer: " + bulk.MsgCustomerFailed,
		"2/customer/c2: name: The name field is required.",
		"2/debt_accounts/a2: customer: " + bulk.MsgCustomerFailed,
		"2/debt_accounts/a3: customer: " + bulk.MsgCustomerFailed,
		"3/debt_accounts/p: balance: The balance field must be at least 0.",
		"3/debt_accounts/k: parent_external_id: " + bulk.MsgParentFailed,
	}
	if diff := cmp.Diff(want, messages(p), sortStrings); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
	// The valid location of row 2 and the customer of row 3 are still written.
	if len(p.Locations) != 2 || len(p.Customers) != 1 || len(p.DebtAccounts) != 0 {
		t.Errorf("got %d locations, %d customers, %d accounts; want 2, 1, 0", len(p.Locations), len(p.Customers), len(p.DebtAccounts))
	}
}

var sortStrings = cmp.Transformer("sort", func(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return out
})

func ExampleNewPlan() {
	raw := json.RawMessage(`{
		"customer": {"external_id": "c-1", "name": "Ann Lee", "email": "not an email"},
		"location": {"external_id": "loc-1", "name": "Main office"},
		"debt_accounts": [
			{"external_id": "top", "balance": 100, "billing_type": ["full-payment"]},
			{"external_id": "child", "parent_external_id": "top", "balance": 25.5, "billing_type": ["payment-plan"]}
		]
	}`)
	row := bulk.ParseRow(1, raw, bulk.Options{Today: today})
	p := bulk.NewPlan(uuid.New(), []*bulk.Row{row}, bulk.Existing{}, bulk.Options{Today: today})
	res := p.Results[0]
	errs, failed := res.Errors()
	fmt.Println("row:", res.Status(), failed)
	fmt.Println("customer:", errs.Customer[0].Messages)
	fmt.Println("accounts:", errs.DebtAccounts[0].Messages["customer"])
	fmt.Println("location:", res.Location.Action)
	// Output:
	// row: failed true
	// customer: map[email:[The email field must be a valid email address.]]
	// accounts: [The debt account was not saved because its customer failed.]
	// location: created
}

// uuidOf is a fixed id for tests; uuidOf(0) is uuid.Nil.
func uuidOf(n byte) uuid.UUID {
	var id uuid.UUID
	if n != 0 {
		id[15] = n
	}
	return id
}

// planMessages is every message of the plan, sorted, as one string.
func planMessages(p *bulk.Plan) string {
	m := messages(p)
	slices.Sort(m)
	return fmt.Sprint(m)
}

// An upsert's row structure decides the nesting: an account listed in
// parent_debt_accounts is a parent, so one stored nested under another
// moves to the top level and the row's children nest under it (a stored
// child among them). A debt_accounts entry that names no parent keeps its
// stored one, so a child of the row under such an account fails, saying how
// to move it.
func TestUpsertListedParentMovesToTopLevel(t *testing.T) {
	t.Parallel()
	bulkID, customer, y := uuid.New(), uuid.New(), uuid.New()
	x, w, v := uuid.New(), uuid.New(), uuid.New()
	existing := bulk.Existing{
		Locations: map[string]bulk.Record{"l1": {ID: uuid.New()}},
		Customers: map[string]bulk.Record{"c1": {ID: customer}},
		DebtAccounts: map[string]bulk.Record{
			"y": {ID: y, CustomerID: customer, Children: 3},
			"x": {ID: x, CustomerID: customer, ParentID: y},
			"w": {ID: w, CustomerID: customer, ParentID: y},
			"v": {ID: v, CustomerID: customer, ParentID: y},
		},
	}
	upsert := bulk.Options{Mode: bulk.ModeUpsert, Today: today}
	rows := []*bulk.Row{
		bulk.ParseRow(1, json.RawMessage(`{"customer":{"external_id":"c1"},"location":{"external_id":"l1"},
			"parent_debt_accounts":[{"external_id":"x"}],
			"debt_accounts":[{"external_id":"k","parent_external_id":"x","balance":1,"billing_type":["settlement"]},
				{"external_id":"w","parent_external_id":"x"}]}`), upsert),
		bulk.ParseRow(2, json.RawMessage(`{"customer":{"external_id":"c1"},"location":{"external_id":"l1"},
			"debt_accounts":[{"external_id":"v"},{"external_id":"l","parent_external_id":"v","balance":1,"billing_type":["settlement"]}]}`), upsert),
	}
	p := bulk.NewPlan(bulkID, rows, existing, upsert)

	want := []string{"2/debt_accounts/l: parent_external_id: " + bulk.MsgParentStoredNested}
	if diff := cmp.Diff(want, messages(p)); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
	parents := map[uuid.UUID]uuid.UUID{}
	for _, u := range p.DebtAccountUpdates {
		if !u.Present.Has(bulk.FieldParentExternalID) {
			t.Errorf("update of %s leaves its parent unsettled", u.ExternalID)
		}
		parents[u.ID] = u.ParentID
	}
	if diff := cmp.Diff(map[uuid.UUID]uuid.UUID{x: uuid.Nil, w: x, v: y}, parents); diff != "" {
		t.Errorf("parents of the updated accounts, x at the top, w under x, v kept under y (-want +got):\n%s", diff)
	}
	if len(p.DebtAccounts) != 1 || p.DebtAccounts[0].ExternalID != "k" || p.DebtAccounts[0].ParentID != x {
		t.Errorf("new accounts %+v, want k under x", p.DebtAccounts)
	}
	if got := p.Results[0].ParentDebtAccounts[0]; got.Action != bulk.ActionUnchanged || got.ID != x {
		t.Errorf("x before the store settles it: %+v", got)
	}
}
