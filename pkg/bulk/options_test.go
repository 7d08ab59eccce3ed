package bulk_test

import (
	"errors"
	"net/url"
	"testing"

	"github.com/bulkd/bulkd/pkg/bulk"
)

func TestParseOptions(t *testing.T) {
	t.Parallel()
	ok := []struct {
		query string
		want  bulk.Options
	}{
		{"", bulk.Options{Mode: bulk.ModeCreate}},
		{"mode=upsert", bulk.Options{Mode: bulk.ModeUpsert}},
		{"mode=create&atomic=true&validate_only=true&strict=true",
			bulk.Options{Mode: bulk.ModeCreate, Atomic: true, ValidateOnly: true, Strict: true}},
		{"atomic=false&strict=false", bulk.Options{Mode: bulk.ModeCreate}},
		{"wait=30s", bulk.Options{Mode: bulk.ModeCreate}}, // not an option: the caller's
	}
	for _, tt := range ok {
		got, err := bulk.ParseOptions(values(tt.query))
		if err != nil || got != tt.want {
			t.Errorf("ParseOptions(%q) = %+v, %v; want %+v", tt.query, got, err, tt.want)
		}
	}
	bad := []struct{ query, param string }{
		{"mode=merge", "mode"},
		{"mode=", "mode"},
		{"atomic=yes", "atomic"},
		{"atomic=1", "atomic"},
		{"validate_only=TRUE", "validate_only"},
		{"strict=", "strict"},
	}
	for _, tt := range bad {
		_, err := bulk.ParseOptions(values(tt.query))
		var oe *bulk.OptionError
		if !errors.As(err, &oe) || oe.Param != tt.param || oe.Message == "" {
			t.Errorf("ParseOptions(%q) = %v; want an OptionError naming %s", tt.query, err, tt.param)
		}
	}
}

// values are a query's parameters by name, as the handlers' reader gives
// them (each once).
func values(query string) map[string]string {
	q, _ := url.ParseQuery(query)
	out := map[string]string{}
	for k, v := range q {
		out[k] = v[0]
	}
	return out
}

func TestOptionsQueryIsCanonical(t *testing.T) {
	t.Parallel()
	if a, b := (bulk.Options{}).Query(), (bulk.Options{Mode: bulk.ModeCreate}).Query(); a != b {
		t.Errorf("default options differ: %q vs %q", a, b)
	}
	if a, b := (bulk.Options{Atomic: true}).Query(), (bulk.Options{Strict: true}).Query(); a == b {
		t.Errorf("different options give the same query %q", a)
	}
}

// An atomic plan with one failed object writes nothing and reports every
// other object rolled back; without a failure it is the partial plan.
func TestPlanAtomic(t *testing.T) {
	t.Parallel()
	good := simpleRow("c1", "l1", acct("a1", ""))
	bad := simpleRow("c2", "l1", acct("a2", ""))
	bad["debt_accounts"].([]any)[0].(map[string]any)["balance"] = -1
	rows := rowsOf(t, good, bad)
	p := bulk.NewPlan(uuidOf(1), rows, bulk.Existing{}, bulk.Options{Atomic: true, Today: today})
	if !p.RolledBack || p.Writes() {
		t.Fatalf("rolled back %v, writes %v", p.RolledBack, p.Writes())
	}
	if s := p.Results[0].Status(); s != bulk.RowRolledBack {
		t.Errorf("good row: %s, want rolled_back", s)
	}
	if s := p.Results[1].Status(); s != bulk.RowFailed {
		t.Errorf("bad row: %s, want failed", s)
	}
	for _, o := range []bulk.ObjectResult{p.Results[0].Customer, *p.Results[0].Location, p.Results[0].DebtAccounts[0], p.Results[1].Customer} {
		if o.Action != bulk.ActionRolledBack || o.ID != uuidOf(0) {
			t.Errorf("%s: %s with id %v, want rolled_back without an id", o.ExternalID, o.Action, o.ID)
		}
	}
	if l, c, a := p.Written(); l+c+a != 0 {
		t.Errorf("a rolled-back plan counts %d records written", l+c+a)
	}

	// Without a failure, atomic is the partial plan.
	partial := bulk.NewPlan(uuidOf(1), rowsOf(t, good), bulk.Existing{}, bulk.Options{Today: today})
	atomic := bulk.NewPlan(uuidOf(1), rowsOf(t, good), bulk.Existing{}, bulk.Options{Atomic: true, Today: today})
	if atomic.RolledBack || len(atomic.DebtAccounts) != len(partial.DebtAccounts) || len(atomic.Customers) != 1 ||
		atomic.Results[0].Status() != bulk.RowCreated {
		t.Errorf("atomic plan without errors: %+v", atomic.Results[0])
	}
}

// A validate-only plan reports the actions of a real one, writes nothing,
// and gives no id to what it would create.
func TestPlanValidateOnly(t *testing.T) {
	t.Parallel()
	existingLocation := uuidOf(7)
	existing := bulk.Existing{Locations: map[string]bulk.Record{"l1": {ID: existingLocation}},
		DebtAccounts: map[string]bulk.Record{"taken": {ID: uuidOf(8)}}}
	rows := rowsOf(t, simpleRow("c1", "l1", acct("a1", ""), acct("taken", "")))
	real := bulk.NewPlan(uuidOf(1), rows, existing, bulk.Options{Today: today})
	dry := bulk.NewPlan(uuidOf(1), rows, existing, bulk.Options{ValidateOnly: true, Today: today})
	dry.Settle(nil)
	if dry.Writes() {
		t.Fatalf("a dry run writes")
	}
	r, d := real.Results[0], dry.Results[0]
	if r.Status() != d.Status() || planMessages(real) != planMessages(dry) {
		t.Errorf("dry run %s %s, real %s %s", d.Status(), planMessages(dry), r.Status(), planMessages(real))
	}
	if d.Location.Action != bulk.ActionFound || d.Location.ID != existingLocation {
		t.Errorf("found location: %+v", d.Location)
	}
	if d.Customer.Action != bulk.ActionCreated || d.Customer.ID != uuidOf(0) || d.DebtAccounts[0].ID != uuidOf(0) {
		t.Errorf("would-be-created objects carry ids: %+v %+v", d.Customer, d.DebtAccounts[0])
	}
}
