package bulk_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulkd/bulkd/pkg/bulk"
)

// Strict mode makes every unknown key an error of the object that holds it,
// with Propel's JSON-pointer message; without it unknown keys are ignored.
func TestStrictUnknownKeys(t *testing.T) {
	t.Parallel()
	raw := json.RawMessage(`{
		"customer": {"external_id": "c1", "name": "N", "company": "Acme", "address": {"city": "X", "zip": "1"}},
		"location": {"external_id": "l1", "floor": 3},
		"parent_debt_accounts": [{"external_id": "p", "balance": 1, "billing_type": ["settlement"]}],
		"debt_accounts": [
			{"external_id": "a0", "balance": 1, "billing_type": ["settlement"]},
			{"external_id": "a1", "balance": 1, "billing_type": ["settlement"], "interest": 2, "Balance": 3}
		],
		"note": "row-level"
	}`)
	strict := bulk.ParseRow(4, raw, bulk.Options{Strict: true, Today: today})
	want := map[string]bulk.Messages{
		"customer": {
			"company":     {"#/3/customer: extraneous key [company] is not permitted"},
			"address.zip": {"#/3/customer/address: extraneous key [zip] is not permitted"},
			"row.note":    {"#/3: extraneous key [note] is not permitted"},
		},
		"location":        {"floor": {"#/3/location: extraneous key [floor] is not permitted"}},
		"parent":          {},
		"debt_account[0]": {},
		// A key of another case is not the field in strict mode.
		"debt_account[1]": {
			"interest": {"#/3/debt_accounts/1: extraneous key [interest] is not permitted"},
			"Balance":  {"#/3/debt_accounts/1: extraneous key [Balance] is not permitted"},
		},
	}
	got := map[string]bulk.Messages{
		"customer": strict.Customer.Messages, "location": strict.Location.Messages,
		"parent":          strict.ParentDebtAccounts[0].Messages,
		"debt_account[0]": strict.DebtAccounts[0].Messages, "debt_account[1]": strict.DebtAccounts[1].Messages,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("strict messages (-want +got):\n%s", diff)
	}
	lax := bulk.ParseRow(4, raw, bulk.Options{Today: today})
	for _, in := range []bool{lax.Customer.Failed(), lax.Location.Failed(), lax.DebtAccounts[1].Failed()} {
		if in {
			t.Errorf("unknown keys fail an object without strict: %v %v %v", lax.Customer.Messages, lax.Location.Messages, lax.DebtAccounts[1].Messages)
		}
	}
	if lax.DebtAccounts[1].Value.Balance != 300 {
		t.Errorf("without strict, Balance matches balance as encoding/json matches it: %v", lax.DebtAccounts[1].Value.Balance)
	}
}

// Strict mode refuses a key given twice in one object, at every level, as
// an error of the object that holds it at its pointer: the earlier value,
// however wrong, would otherwise be dropped unseen (here a whole customer of
// unknown, empty, NUL and lone-surrogate keys). A key is the same however
// it is escaped. Without strict mode the last value is taken, as
// encoding/json takes it.
func TestStrictDuplicateKeys(t *testing.T) {
	t.Parallel()
	raw := json.RawMessage(`{
		"customer": {"bogus": 1, "": 2, "\u0000": 3, "\ud800": 4},
		"customer": {"external_id": "c1", "name": "First", "n\u0061me": "Second",
			"address": {"city": "X", "city": "Y"}, "metadata": {"tier": 1, "t\u0069er": 2, "tier": 3}},
		"location": {"external_id": "l1", "name": "N", "name": "M"},
		"parent_debt_accounts": [{"external_id": "p", "external_id": "p", "balance": 1, "billing_type": ["settlement"]}],
		"debt_accounts": [
			{"external_id": "a0", "balance": 1, "billing_type": ["settlement"]},
			{"external_id": "a1", "balance": -1, "balance": 1, "billing_type": ["settlement"], "metadata": {"k": 1, "k": 2}}
		],
		"debt_accounts": []
	}`)
	strict := bulk.ParseRow(1, raw, bulk.Options{Strict: true, Today: today})
	want := map[string]bulk.Messages{
		"customer": {
			"name":              {"#/0/customer: duplicate key [name] is not permitted"},
			"address.city":      {"#/0/customer/address: duplicate key [city] is not permitted"},
			"metadata.tier":     {"#/0/customer/metadata: duplicate key [tier] is not permitted"},
			"row.customer":      {"#/0: duplicate key [customer] is not permitted"},
			"row.debt_accounts": {"#/0: duplicate key [debt_accounts] is not permitted"},
		},
		"location": {"name": {"#/0/location: duplicate key [name] is not permitted"}},
		"parent":   {"external_id": {"#/0/parent_debt_accounts/0: duplicate key [external_id] is not permitted"}},
	}
	got := map[string]bulk.Messages{
		"customer": strict.Customer.Messages, "location": strict.Location.Messages, "parent": strict.ParentDebtAccounts[0].Messages,
	}
	if len(strict.DebtAccounts) != 0 {
		t.Errorf("%d debt accounts read, want those of the last debt_accounts: none", len(strict.DebtAccounts))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("strict messages (-want +got):\n%s", diff)
	}

	// Within a list each account is an object of its own, at its pointer.
	accounts := json.RawMessage(`{"customer": {"external_id": "c1", "name": "N"}, "location": {"external_id": "l1"},
		"debt_accounts": [{"external_id": "a0", "balance": 1, "billing_type": ["settlement"]},
			{"external_id": "a1", "balance": -1, "balance": 1, "balance": 2, "billing_type": ["settlement"], "metadata": {"k": 1, "k": 2, "k": 3}}]}`)
	r := bulk.ParseRow(3, accounts, bulk.Options{Strict: true, Today: today})
	wantAccount := bulk.Messages{
		"balance":    {"#/2/debt_accounts/1: duplicate key [balance] is not permitted"},
		"metadata.k": {"#/2/debt_accounts/1/metadata: duplicate key [k] is not permitted"},
	}
	if diff := cmp.Diff(wantAccount, r.DebtAccounts[1].Messages); diff != "" {
		t.Errorf("strict messages of a debt account (-want +got):\n%s", diff)
	}
	if r.Customer.Failed() || r.Location.Failed() || r.DebtAccounts[0].Failed() {
		t.Errorf("an account's repeated keys fail another object: %v %v %v", r.Customer.Messages, r.Location.Messages, r.DebtAccounts[0].Messages)
	}

	lax := bulk.ParseRow(1, raw, bulk.Options{Today: today})
	if lax.Customer.Failed() || lax.Location.Failed() || lax.ParentDebtAccounts[0].Failed() {
		t.Fatalf("without strict, repeated keys fail an object: %v %v %v", lax.Customer.Messages, lax.Location.Messages, lax.ParentDebtAccounts[0].Messages)
	}
	c := lax.Customer.Value
	if c.Name != "Second" || string(c.Address) != `{"city":"Y"}` || string(c.Metadata) != `{"tier":3}` || lax.Location.Value.Name != "M" {
		t.Errorf("without strict, the last value of a repeated key is taken: %q %s %s %q", c.Name, c.Address, c.Metadata, lax.Location.Value.Name)
	}
	if laxAccounts := bulk.ParseRow(3, accounts, bulk.Options{Today: today}); laxAccounts.DebtAccounts[1].Failed() ||
		laxAccounts.DebtAccounts[1].Value.Balance != 200 {
		t.Errorf("without strict, the last balance is taken: %v %v", laxAccounts.DebtAccounts[1].Messages, laxAccounts.DebtAccounts[1].Value.Balance)
	}
}

// A long unknown key is named by its first 64 characters: the report echoes
// the object, and so the key, whole.
func TestStrictShortensLongKeys(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 1000)
	raw := json.RawMessage(`{"customer":{"external_id":"c","name":"N","` + long + `":1},"location":{"external_id":"l"}}`)
	m := bulk.ParseRow(1, raw, bulk.Options{Strict: true, Today: today}).Customer.Messages
	short := strings.Repeat("é", 64) + "…"
	if diff := cmp.Diff(bulk.Messages{short: {"#/0/customer: extraneous key [" + short + "] is not permitted"}}, m); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
}

// An object of many unknown keys gets a bounded number of messages.
func TestStrictBoundsItsMessages(t *testing.T) {
	t.Parallel()
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = `"k` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + `":1`
	}
	raw := json.RawMessage(`{"customer":{"external_id":"c","name":"N",` + strings.Join(keys, ",") + `},"location":{"external_id":"l"}}`)
	r := bulk.ParseRow(1, raw, bulk.Options{Strict: true, Today: today})
	n := 0
	for _, msgs := range r.Customer.Messages {
		n += len(msgs)
	}
	if n == 0 || n > 11 {
		t.Errorf("%d messages for 10 000 unknown keys, want at most 11", n)
	}
}

// Present records which fields an object carries, with a value or null: an
// upsert changes exactly those. An upsert may leave out what only creating
// a record needs; an explicit null of a required field is still an error.
func TestPresentAndUpsertRequirements(t *testing.T) {
	t.Parallel()
	raw := json.RawMessage(`{"customer": {"external_id": "c1", "email": null, "phone": "1"},
		"location": {"external_id": "l1"},
		"debt_accounts": [{"external_id": "a1", "current_balance": 5}, {"external_id": "a2", "balance": null, "billing_type": null}]}`)
	up := bulk.ParseRow(1, raw, bulk.Options{Mode: bulk.ModeUpsert, Today: today})
	if up.Customer.Failed() || up.DebtAccounts[0].Failed() {
		t.Fatalf("upsert requires what only creating needs: %v %v", up.Customer.Messages, up.DebtAccounts[0].Messages)
	}
	if got := up.Customer.Value.Present; got != bulk.FieldEmail|bulk.FieldPhone {
		t.Errorf("customer present %b, want email and phone", got)
	}
	if got := up.Location.Value.Present; got != 0 {
		t.Errorf("location present %b, want none", got)
	}
	if got := up.DebtAccounts[0].Value.Present; got != bulk.FieldCurrentBalance {
		t.Errorf("account present %b, want current_balance", got)
	}
	want := bulk.Messages{"balance": {"The balance field is required."}, "billing_type": {"The billing type field is required."}}
	if diff := cmp.Diff(want, up.DebtAccounts[1].Messages); diff != "" {
		t.Errorf("explicit nulls of required fields (-want +got):\n%s", diff)
	}
	create := bulk.ParseRow(1, raw, bulk.Options{Today: today})
	if create.Customer.Messages["name"] == nil || create.DebtAccounts[0].Messages["balance"] == nil {
		t.Errorf("create mode requires name and balance: %v %v", create.Customer.Messages, create.DebtAccounts[0].Messages)
	}
}

// A bulk holds at most MaxAccountsPerBulk accounts in all: the row that goes
// over is named, and nothing of the body is kept.
func TestDecodeSubmissionAccountsPerBulk(t *testing.T) {
	t.Parallel()
	row := `{"customer":{},"debt_accounts":[` + strings.TrimSuffix(strings.Repeat(`{},`, bulk.MaxAccountsPerSection), ",") + `]}`
	rows := bulk.MaxAccountsPerBulk / bulk.MaxAccountsPerSection
	body := "[" + strings.TrimSuffix(strings.Repeat(row+",", rows), ",") + "]"
	if got, err := bulk.DecodeSubmission(strings.NewReader(body)); err != nil || len(got) != rows {
		t.Fatalf("%d accounts: %d rows, %v", bulk.MaxAccountsPerBulk, len(got), err)
	}
	over := strings.TrimSuffix(body, "]") + `,{"parent_debt_accounts":[{}]}]`
	_, err := bulk.DecodeSubmission(strings.NewReader(over))
	var limit bulk.LimitError
	if !errors.As(err, &limit) || limit.Field != "#/"+strconv.Itoa(rows) || !strings.Contains(limit.Message, "row "+strconv.Itoa(rows+1)) {
		t.Errorf("one account more: %v", err)
	}
}

// An object's report lists at most MaxMessagesPerObject messages, then says
// there are more.
func TestMessagesPerObjectAreBounded(t *testing.T) {
	t.Parallel()
	keys := make([]string, bulk.MaxMetadataKeys)
	for i := range keys {
		keys[i] = `"k` + strconv.Itoa(i) + `":[]`
	}
	raw := json.RawMessage(`{"customer":{"external_id":"c","name":"N","metadata":{` + strings.Join(keys, ",") + `}},"location":{"external_id":"l"}}`)
	m := bulk.ParseRow(1, raw, bulk.Options{Today: today}).Customer.Messages
	n := 0
	for _, msgs := range m {
		n += len(msgs)
	}
	if n != bulk.MaxMessagesPerObject+1 || len(m["*"]) != 1 || m["*"][0] != bulk.MsgMoreProblems {
		t.Errorf("%d messages: %v", n, m)
	}
}
