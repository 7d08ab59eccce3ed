package bulk_test

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/testenv"
)

var today = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

// seedRow is the one row of the Tratta seed's example request.
func seedRow(t *testing.T) map[string]any {
	t.Helper()
	var rows []map[string]any
	if err := json.Unmarshal(testenv.SeedExample(t), &rows); err != nil {
		t.Fatal(err)
	}
	return rows[0]
}

// set changes the value at a dotted path ("customer.address.city",
// "debt_accounts.1.balance"); the value del removes it.
func set(t *testing.T, row map[string]any, path string, v any) {
	t.Helper()
	parts := strings.Split(path, ".")
	var cur any = row
	for i, p := range parts {
		last := i == len(parts)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				if v == del {
					delete(c, p)
				} else {
					c[p] = v
				}
				return
			}
			cur = c[p]
		case []any:
			var idx int
			if err := json.Unmarshal([]byte(p), &idx); err != nil {
				t.Fatalf("bad index %q", p)
			}
			if last {
				c[idx] = v
				return
			}
			cur = c[idx]
		default:
			t.Fatalf("path %s: %T is not a container", path, cur)
		}
	}
}

type deleted struct{}

var del = deleted{}

func parse(t *testing.T, row any) *bulk.Row {
	t.Helper()
	raw, err := json.Marshal(row)
	if err != nil {
		t.Fatal(err)
	}
	return bulk.ParseRow(1, raw, bulk.Options{Today: today})
}

func TestSeedRowIsValid(t *testing.T) {
	r := parse(t, seedRow(t))
	if _, failed := r.Errors(); failed {
		errs, _ := r.Errors()
		t.Fatalf("seed row has errors: %+v", errs)
	}
	c := r.Customer.Value
	if c.SSNLast4 != "9098" || c.DateOfBirth != time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC) || c.Email != "tatum.marks@example.com" {
		t.Errorf("customer read wrong: %+v", c)
	}
	if got := r.DebtAccounts[1].Value; got.ParentExternalID != "parent-external-id" || got.Balance != 10000 || got.CurrentBalance != 10000 {
		t.Errorf("child account read wrong: %+v", got)
	}
	if diff := cmp.Diff([]string{"partial-payment"}, r.ParentDebtAccounts[0].Value.BillingType); diff != "" {
		t.Errorf("billing type (-want +got):\n%s", diff)
	}
}

func TestValidationRules(t *testing.T) {
	long := strings.Repeat("x", 256)
	tests := []struct {
		name    string
		path    string
		value   any
		section string // customer, location, parent_debt_accounts.N, debt_accounts.N
		field   string
		want    string // "" means the row must stay valid
	}{
		{"customer external id required", "customer.external_id", del, "customer", "external_id", "The external id field is required."},
		{"customer external id blank", "customer.external_id", "  ", "customer", "external_id", "The external id field is required."},
		{"customer external id not a string", "customer.external_id", 12, "customer", "external_id", "The external id field must be a string."},
		{"customer external id too long", "customer.external_id", long, "customer", "external_id", "The external id field must not be greater than 255 characters."},
		{"customer name required", "customer.name", del, "customer", "name", "The name field is required."},
		{"customer name null", "customer.name", nil, "customer", "name", "The name field is required."},
		{"customer name too long", "customer.name", long, "customer", "name", "The name field must not be greater than 255 characters."},
		{"customer name with NUL", "customer.name", "a\x00b", "customer", "name", "The name field must not contain NUL characters."},
		{"email format", "customer.email", "not-an-email", "customer", "email", bulk.MsgEmail},
		{"email with display name", "customer.email", "Bob <bob@example.com>", "customer", "email", bulk.MsgEmail},
		{"email without domain dot", "customer.email", "bob@localhost", "customer", "email", bulk.MsgEmail},
		{"email wrong type", "customer.email", true, "customer", "email", "The email field must be a string."},
		{"email a@[127.0.0.1]", "customer.email", `a@[127.0.0.1]`, "customer", "email", bulk.MsgEmail},
		{"email a@-b.com", "customer.email", `a@-b.com`, "customer", "email", bulk.MsgEmail},
		{"email a@b-.com", "customer.email", `a@b-.com`, "customer", "email", bulk.MsgEmail},
		{"email a@b..com", "customer.email", `a@b..com`, "customer", "email", bulk.MsgEmail},
		{"email a@.b.com", "customer.email", `a@.b.com`, "customer", "email", bulk.MsgEmail},
		{"email a@b.c_m", "customer.email", `a@b.c_m`, "customer", "email", bulk.MsgEmail},
		{"email a@123.456", "customer.email", `a@123.456`, "customer", "email", bulk.MsgEmail},
		{"email 'a b'@example.com", "customer.email", `"a b"@example.com`, "customer", "email", bulk.MsgEmail},
		{"email a..b@example.com", "customer.email", `a..b@example.com`, "customer", "email", bulk.MsgEmail},
		{"email .a@example.com", "customer.email", `.a@example.com`, "customer", "email", bulk.MsgEmail},
		{"email a@b.", "customer.email", `a@b.`, "customer", "email", bulk.MsgEmail},
		{"email a@xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.com", "customer.email", `a@xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.com`, "customer", "email", bulk.MsgEmail},
		{"email tatum.marks@example.com accepted", "customer.email", `tatum.marks@example.com`, "customer", "email", ""},
		{"email a+b@sub.example.co.uk accepted", "customer.email", `a+b@sub.example.co.uk`, "customer", "email", ""},
		{"email ü@exämple.de accepted", "customer.email", `ü@exämple.de`, "customer", "email", ""},
		{"email o'brien@x-y.example accepted", "customer.email", `o'brien@x-y.example`, "customer", "email", ""},
		{"email a@xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.com accepted", "customer.email", `a@xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.com`, "customer", "email", ""},
		{"email a@b.c1 accepted", "customer.email", `a@b.c1`, "customer", "email", ""},
		{"email optional", "customer.email", del, "customer", "email", ""},
		{"phone too long", "customer.phone", strings.Repeat("1", 51), "customer", "phone", "The phone field must not be greater than 50 characters."},
		{"date of birth format", "customer.date_of_birth", "01/02/1990", "customer", "date_of_birth", "The date of birth field must be a real date in the format YYYY-MM-DD."},
		{"date of birth not real", "customer.date_of_birth", "1990-02-30", "customer", "date_of_birth", "The date of birth field must be a real date in the format YYYY-MM-DD."},
		{"date of birth unpadded", "customer.date_of_birth", "1990-1-1", "customer", "date_of_birth", "The date of birth field must be a real date in the format YYYY-MM-DD."},
		{"date of birth today", "customer.date_of_birth", "2026-11-23", "customer", "date_of_birth", "The date of birth field must be a date before today."},
		{"date of birth future", "customer.date_of_birth", "2030-01-01", "customer", "date_of_birth", "The date of birth field must be a date before today."},
		{"date of birth ancient", "customer.date_of_birth", "1850-01-01", "customer", "date_of_birth", "The date of birth field must be a date after 1900-01-01."},
		{"date of birth leap day", "customer.date_of_birth", "2000-02-29", "customer", "date_of_birth", ""},
		{"date of birth timestamp", "customer.date_of_birth", "1990-01-01T00:00:00Z", "customer", "date_of_birth", "The date of birth field must be a real date in the format YYYY-MM-DD."},
		{"date of birth long garbage", "customer.date_of_birth", long, "customer", "date_of_birth", "The date of birth field must be a real date in the format YYYY-MM-DD."},
		{"date of birth 1900-01-01", "customer.date_of_birth", "1900-01-01", "customer", "date_of_birth", "The date of birth field must be a date after 1900-01-01."},
		{"date of birth 1900-01-02", "customer.date_of_birth", "1900-01-02", "customer", "date_of_birth", ""},
		{"date of birth not a string", "customer.date_of_birth", 19900101, "customer", "date_of_birth", "The date of birth field must be a string."},
		{"ssn as string", "customer.ssn_last4", "0123", "customer", "ssn_last4", ""},
		{"ssn three digits", "customer.ssn_last4", 123, "customer", "ssn_last4", "The ssn last4 field must be exactly 4 digits."},
		{"ssn five digits", "customer.ssn_last4", "12345", "customer", "ssn_last4", "The ssn last4 field must be exactly 4 digits."},
		{"ssn letters", "customer.ssn_last4", "12a4", "customer", "ssn_last4", "The ssn last4 field must be exactly 4 digits."},
		{"ssn float", "customer.ssn_last4", 1234.5, "customer", "ssn_last4", "The ssn last4 field must be exactly 4 digits."},
		{"address not an object", "customer.address", "Main St", "customer", "address", "The address field must be an object."},
		{"address city wrong type", "customer.address.city", 5, "customer", "address.city", "The address.city field must be a string."},
		{"address line1 too long", "customer.address.line1", long, "customer", "address.line1", "The address.line1 field must not be greater than 255 characters."},
		{"address is_primary wrong type", "customer.address.is_primary", "yes", "customer", "address.is_primary", "The address.is primary field must be true or false."},
		{"metadata not an object", "customer.metadata", []any{"a"}, "customer", "metadata", "The metadata field must be an object."},
		{"metadata nested object", "customer.metadata.ad", map[string]any{"x": 1}, "customer", "metadata.ad", "The metadata.ad field must be a string, number, boolean or null."},
		{"metadata value too long", "customer.metadata.ad", strings.Repeat("v", 501), "customer", "metadata.ad", "The metadata.ad field must not be greater than 500 characters."},
		{"metadata scalars", "customer.metadata.ad", 1.5, "customer", "metadata.ad", ""},
		{"location required", "location", del, "location", "location", "The location field is required."},
		{"location not an object", "location", "rerum", "location", "location", "The location field must be an object."},
		{"location external id required", "location.external_id", del, "location", "external_id", "The external id field is required."},
		{"location name too long", "location.name", long, "location", "name", "The name field must not be greater than 255 characters."},
		{"account external id required", "debt_accounts.0.external_id", del, "debt_accounts.0", "external_id", "The external id field is required."},
		{"account balance required", "debt_accounts.0.balance", del, "debt_accounts.0", "balance", "The balance field is required."},
		{"account balance negative", "debt_accounts.0.balance", -1, "debt_accounts.0", "balance", "The balance field must be at least 0."},
		{"account balance three places", "debt_accounts.0.balance", 10.005, "debt_accounts.0", "balance", "The balance field must have at most 2 decimal places."},
		{"account balance not a number", "debt_accounts.0.balance", "ten", "debt_accounts.0", "balance", "The balance field must be a number."},
		{"account balance boolean", "debt_accounts.0.balance", true, "debt_accounts.0", "balance", "The balance field must be a number."},
		{"account balance numeric string", "debt_accounts.0.balance", "10.50", "debt_accounts.0", "balance", ""},
		{"account balance long number", "debt_accounts.0.balance", json.Number("1.0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"), "debt_accounts.0", "balance", ""},
		{"account balance long numeric string", "debt_accounts.0.balance", "0.10000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000", "debt_accounts.0", "balance", ""},
		{"account balance long and too large", "debt_accounts.0.balance", json.Number("10000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"), "debt_accounts.0", "balance", "The balance field must not be greater than 999999999999.99."},
		{"account balance long and too many places", "debt_accounts.0.balance", json.Number("0.00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001"), "debt_accounts.0", "balance", "The balance field must have at most 2 decimal places."},
		{"account balance long negative", "debt_accounts.0.balance", json.Number("-10000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"), "debt_accounts.0", "balance", "The balance field must be at least 0."},
		{"account current balance negative", "debt_accounts.0.current_balance", -0.01, "debt_accounts.0", "current_balance", "The current balance field must be at least 0."},
		{"account current balance too large", "debt_accounts.0.current_balance", 1e15, "debt_accounts.0", "current_balance", "The current balance field must not be greater than 999999999999.99."},
		{"billing type required", "debt_accounts.0.billing_type", del, "debt_accounts.0", "billing_type", "The billing type field is required."},
		{"billing type empty", "debt_accounts.0.billing_type", []any{}, "debt_accounts.0", "billing_type", "The billing type field is required."},
		{"billing type not a list", "debt_accounts.0.billing_type", "partial-payment", "debt_accounts.0", "billing_type", "The billing type field must be a list."},
		{"billing type unknown", "debt_accounts.0.billing_type", []any{"barter"}, "debt_accounts.0", "billing_type", bulk.MsgBillingTypeChoice},
		{"billing type several", "debt_accounts.0.billing_type", []any{"full-payment", "payment-plan"}, "debt_accounts.0", "billing_type", ""},
		{"account metadata wrong", "debt_accounts.0.metadata", "x", "debt_accounts.0", "metadata", "The metadata field must be an object."},
		{"account number wrong type", "debt_accounts.0.external_account_number", 42, "debt_accounts.0", "external_account_number", "The external account number field must be a string."},
		{"parent external id on a parent", "parent_debt_accounts.0.parent_external_id", "x", "parent_debt_accounts.0", "parent_external_id", bulk.MsgParentNotAllowed},
		{"unknown parent", "debt_accounts.1.parent_external_id", "nope", "debt_accounts.1", "parent_external_id", bulk.MsgInvalidParent},
		{"parent external id wrong type", "debt_accounts.1.parent_external_id", 7, "debt_accounts.1", "parent_external_id", "The parent external id field must be a string."},
		{"debt accounts not a list", "debt_accounts", "x", "debt_accounts.0", "debt_accounts", "The debt accounts field must be a list."},
		{"account not an object", "debt_accounts.0", 5, "debt_accounts.0", "debt_account", "The debt account field must be an object."},
		{"unknown fields are ignored", "customer.favourite_colour", "blue", "customer", "favourite_colour", ""},
		{"customer required", "customer", del, "customer", "customer", "The customer field is required."},
		{"customer not an object", "customer", "Tremaine", "customer", "customer", "The customer field must be an object."},
		{"location name optional", "location.name", del, "location", "name", ""},
		{"parent debt accounts not a list", "parent_debt_accounts", "x", "parent_debt_accounts.0", "parent_debt_accounts", "The parent debt accounts field must be a list."},
		{"billing type 11 items", "debt_accounts.0.billing_type", []any{"settlement", "settlement", "settlement", "settlement", "settlement", "settlement", "settlement", "settlement", "settlement", "settlement", "settlement"}, "debt_accounts.0", "billing_type", "The billing type field must not have more than 10 items."},
		{"billing type not a string", "debt_accounts.0.billing_type", []any{1}, "debt_accounts.0", "billing_type", bulk.MsgBillingTypeChoice},
		{"metadata key too long", "customer.metadata", map[string]any{strings.Repeat("k", 41): 1}, "customer", "metadata", "The metadata keys must be 1 to 40 characters without NUL."},
		{"metadata key of 40 characters", "customer.metadata", map[string]any{strings.Repeat("ķ", 40): 1}, "customer", "metadata", ""},
		{"metadata key empty", "customer.metadata", map[string]any{"": 1}, "customer", "metadata", "The metadata keys must be 1 to 40 characters without NUL."},
		{"metadata key with NUL", "customer.metadata", map[string]any{"a\x00": 1}, "customer", "metadata", "The metadata keys must be 1 to 40 characters without NUL."},
		{"metadata value with NUL", "customer.metadata.ad", "a\x00", "customer", "metadata.ad", "The metadata.ad field must not contain NUL characters."},
		{"metadata value a list", "customer.metadata.ad", []any{1}, "customer", "metadata.ad", "The metadata.ad field must be a string, number, boolean or null."},
		{"metadata value boolean", "customer.metadata.ad", false, "customer", "metadata.ad", ""},
		{"metadata value null", "customer.metadata.ad", nil, "customer", "metadata.ad", ""},
		{"account metadata value wrong", "debt_accounts.0.metadata", map[string]any{"x": map[string]any{}}, "debt_accounts.0", "metadata.x", "The metadata.x field must be a string, number, boolean or null."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			row := seedRow(t)
			set(t, row, tt.path, tt.value)
			r := parse(t, row)
			m := messagesOf(t, r, tt.section)
			if tt.want == "" {
				if _, failed := r.Errors(); failed {
					errs, _ := r.Errors()
					t.Fatalf("row should be valid, got %+v", errs)
				}
				return
			}
			if diff := cmp.Diff([]string{tt.want}, m[tt.field]); diff != "" {
				t.Errorf("messages of %s.%s (-want +got):\n%s\nall: %v", tt.section, tt.field, diff, m)
			}
		})
	}
}

func messagesOf(t *testing.T, r *bulk.Row, section string) bulk.Messages {
	t.Helper()
	name, idx, _ := strings.Cut(section, ".")
	var i int
	if idx != "" {
		if err := json.Unmarshal([]byte(idx), &i); err != nil {
			t.Fatal(err)
		}
	}
	switch name {
	case "customer":
		return r.Customer.Messages
	case "location":
		return r.Location.Messages
	case "parent_debt_accounts":
		return r.ParentDebtAccounts[i].Messages
	case "debt_accounts":
		return r.DebtAccounts[i].Messages
	}
	t.Fatalf("unknown section %s", section)
	return nil
}

// Duplicate billing types are one type each: stored once, in the order
// first sent.
func TestBillingTypesAreASet(t *testing.T) {
	row := seedRow(t)
	set(t, row, "debt_accounts.0.billing_type", []any{"settlement", "full-payment", "settlement", "full-payment", "settlement"})
	r := parse(t, row)
	if diff := cmp.Diff([]string{"settlement", "full-payment"}, r.DebtAccounts[0].Value.BillingType); diff != "" || r.DebtAccounts[0].Failed() {
		t.Errorf("billing types (-want +got):\n%s\nmessages: %v", diff, r.DebtAccounts[0].Messages)
	}
}

// Metadata members are counted as read, duplicates included: 51 members
// fail even when some repeat a key, and the count stops early.
func TestMetadataCountsMembers(t *testing.T) {
	members := make([]string, 0, bulk.MaxMetadataKeys+1)
	for i := range bulk.MaxMetadataKeys {
		members = append(members, fmt.Sprintf(`"k%d":%d`, i, i))
	}
	tests := []struct {
		name    string
		members []string
		fails   bool
	}{
		{"50 keys", members, false},
		{"51 keys", append(members[:50:50], `"k50":1`), true},
		{"51 members, one a duplicate", append(members[:50:50], `"k0":1`), true},
	}
	for _, tt := range tests {
		raw := `{"customer":{"external_id":"c","name":"n","metadata":{` + strings.Join(tt.members, ",") + `}}}`
		r := bulk.ParseRow(1, json.RawMessage(raw), bulk.Options{Today: today})
		got := r.Customer.Messages["metadata"]
		if tt.fails != (len(got) > 0) || tt.fails && got[0] != "The metadata field must not have more than 50 keys." {
			t.Errorf("%s: messages %v", tt.name, got)
		}
	}
	// A million members cost no more memory than 51: they are not collected
	// before counting (which took about 100 MB).
	huge := json.RawMessage(`{"customer":{"external_id":"c","name":"n","metadata":{` + strings.Repeat(`"k":1,`, 1_000_000) + `"k":1}}}`)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := bulk.ParseRow(1, huge, bulk.Options{Today: today})
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("a metadata object of a million members allocated %d bytes", n)
	}
	if len(r.Customer.Messages["metadata"]) != 1 {
		t.Errorf("messages %v", r.Customer.Messages)
	}
}

func TestMetadataLimits(t *testing.T) {
	row := seedRow(t)
	many := map[string]any{}
	for i := 0; i < 10000; i++ {
		many[fmt.Sprintf("key%d", i)] = i
	}
	set(t, row, "customer.metadata", many)
	r := parse(t, row)
	want := []string{"The metadata field must not have more than 50 keys."}
	if diff := cmp.Diff(want, r.Customer.Messages["metadata"]); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestRowThatIsNotAnObject(t *testing.T) {
	for _, raw := range []string{`5`, `"row"`, `[]`, `null`} {
		r := bulk.ParseRow(3, json.RawMessage(raw), bulk.Options{Today: today})
		errs, failed := r.Errors()
		if !failed || len(errs.Customer) != 1 || errs.Customer[0].Messages["row"][0] != bulk.MsgRowNotObject {
			t.Errorf("%s: got %+v", raw, errs)
		}
	}
}

func TestNesting(t *testing.T) {
	account := func(id, parent string) map[string]any {
		a := map[string]any{"external_id": id, "balance": 1, "billing_type": []any{"full-payment"}}
		if parent != "" {
			a["parent_external_id"] = parent
		}
		return a
	}
	rowWith := func(parents, accounts []any) map[string]any {
		return map[string]any{
			"customer":             map[string]any{"external_id": "c1", "name": "Ann"},
			"location":             map[string]any{"external_id": "l1"},
			"parent_debt_accounts": parents,
			"debt_accounts":        accounts,
		}
	}
	tests := []struct {
		name string
		row  map[string]any
		want map[string]string // external id of a debt account → its parent_external_id message; "" = valid
	}{
		{"implicit parent", rowWith(nil, []any{account("p", ""), account("c", "p")}), map[string]string{"p": "", "c": ""}},
		{"explicit parent", rowWith([]any{account("p", "")}, []any{account("c", "p")}), map[string]string{"c": ""}},
		{"unknown parent", rowWith(nil, []any{account("c", "ghost")}), map[string]string{"c": bulk.MsgInvalidParent}},
		{"two levels", rowWith(nil, []any{account("a", ""), account("b", "a"), account("c", "b")}),
			map[string]string{"a": "", "b": "", "c": bulk.MsgParentNested}},
		{"cycle", rowWith(nil, []any{account("a", "b"), account("b", "a")}),
			map[string]string{"a": bulk.MsgParentNested, "b": bulk.MsgParentNested}},
		{"self reference", rowWith(nil, []any{account("a", "a")}), map[string]string{"a": bulk.MsgParentNested}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := parse(t, tt.row)
			got := map[string]string{}
			for _, a := range r.DebtAccounts {
				got[a.Value.ExternalID] = strings.Join(a.Messages["parent_external_id"], " ")
			}
			for id, want := range tt.want {
				if got[id] != want {
					t.Errorf("account %s: got %q, want %q", id, got[id], want)
				}
			}
		})
	}
}

func TestMetadataNumbers(t *testing.T) {
	const msgFinite = "The metadata.n field must be a finite number."
	const msgNumeric = "The metadata.n field must be a number with at most 16383 decimal places and an exponent between -16383 and 16383."
	tests := []struct {
		lit  string
		want string // "" means accepted
	}{
		{"12", ""},
		{"-0", ""},
		{"1.5e300", ""},
		{"1e-400", ""}, // float64 reads it as 0, but Postgres stores it exactly
		{"1e-16383", ""},
		{"1e309", msgFinite},
		{"-1e309", msgFinite},
		{"1.5e-16383", msgNumeric},
		{"1e-20000", msgNumeric},
		{"0e-20000", msgNumeric},
		{"0e99999999999", msgNumeric},
		{"0." + strings.Repeat("0", 16383), ""},
		{"0." + strings.Repeat("0", 16384), msgNumeric},
	}
	for _, tt := range tests {
		row := `{"customer":{"external_id":"c","name":"n","metadata":{"n":` + tt.lit + `}}}`
		r := bulk.ParseRow(1, json.RawMessage(row), bulk.Options{Today: today})
		var want []string
		if tt.want != "" {
			want = []string{tt.want}
		}
		if diff := cmp.Diff(want, r.Customer.Messages["metadata.n"]); diff != "" {
			t.Errorf("%.20s: (-want +got):\n%s", tt.lit, diff)
		}
		if tt.want == "" && !strings.Contains(string(r.Customer.Value.Metadata), tt.lit) {
			t.Errorf("%.20s: metadata %s does not keep the number as written", tt.lit, r.Customer.Value.Metadata)
		}
	}
}

// Keys match fields as encoding/json matches them to struct fields (exactly,
// else regardless of case as Unicode folds it, escapes decoded; of duplicates
// the last wins), and what is kept of an address or metadata is re-encoded
// as encoding/json would encode it: known fields only, keys sorted, broken
// strings repaired.
func TestParsedValues(t *testing.T) {
	const account = `{"external_id":"a","balance":"12.50","billing_type":["settlement"]`
	tests := []struct {
		name string
		raw  string
		got  func(r *bulk.Row) any
		want any
	}{
		{"a key of another case, the last duplicate winning",
			`{"customer":{"external_id":"first","EXTERNAL_ID":"second","Name":"n","name":"last"},"Location":{"external_id":"l"}}`,
			func(r *bulk.Row) any {
				return []string{r.Customer.Value.ExternalID, r.Customer.Value.Name, r.Location.Value.ExternalID}
			},
			[]string{"second", "last", "l"}},
		{"keys folded as Unicode folds them, escapes decoded",
			`{"customer":{"external_id":"c","ſſn_laſt4":"1234","\u006eame":"n"},"location":{"external_id":"l"}}`,
			func(r *bulk.Row) any { return []string{r.Customer.Value.SSNLast4, r.Customer.Value.Name} },
			[]string{"1234", "n"}},
		{"current balance absent is the balance",
			`{"debt_accounts":[` + account + `}]}`,
			func(r *bulk.Row) any { return r.DebtAccounts[0].Value.CurrentBalance }, bulk.Money(1250)},
		{"current balance null is the balance",
			`{"debt_accounts":[` + account + `,"current_balance":null}]}`,
			func(r *bulk.Row) any { return r.DebtAccounts[0].Value.CurrentBalance }, bulk.Money(1250)},
		{"current balance given",
			`{"debt_accounts":[` + account + `,"current_balance":0}]}`,
			func(r *bulk.Row) any { return r.DebtAccounts[0].Value.CurrentBalance }, bulk.Money(0)},
		{"address: known fields, sorted, nulls left out",
			`{"customer":{"external_id":"c","name":"n","address":{"line1":"1 <Main>","zip":"x","city":"Y","line2":null,"IS_PRIMARY":true,"city":"Z"}}}`,
			func(r *bulk.Row) any { return string(r.Customer.Value.Address) },
			`{"city":"Z","is_primary":true,"line1":"1 \u003cMain\u003e"}`},
		{"metadata: sorted, the last duplicate winning, numbers as written, broken strings repaired",
			`{"customer":{"external_id":"c","name":"n","metadata":{"k":1,"b":"\ud800&","n":null,"t":true,"x":1.50,"k":2}}}`,
			func(r *bulk.Row) any { return string(r.Customer.Value.Metadata) },
			`{"b":"` + "\ufffd" + `\u0026","k":2,"n":null,"t":true,"x":1.50}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bulk.ParseRow(1, json.RawMessage(tt.raw), bulk.Options{Today: today})
			if diff := cmp.Diff(tt.want, tt.got(r)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
