package bulk

import (
	"encoding/json"
	"time"
)

// MaxRows is the most rows one bulk may carry.
const MaxRows = 1000

// Customer is a validated customer. Optional fields are zero when absent.
type Customer struct {
	ExternalID  string
	Name        string
	Email       string
	Phone       string
	DateOfBirth time.Time
	SSNLast4    string
	Address     json.RawMessage // the known address fields, re-encoded; nil when absent
	Metadata    json.RawMessage // nil when absent
}

// Location is a validated location.
type Location struct {
	ExternalID string
	Name       string
}

// DebtAccount is a validated debt account, a parent or a child.
type DebtAccount struct {
	ExternalID            string
	ParentExternalID      string // "" for a top-level account
	ExternalAccountNumber string
	Balance               Money
	CurrentBalance        Money
	BillingType           []string
	Metadata              json.RawMessage
}

// Input is one submitted object: its bytes as submitted, the value read from
// them, and the messages that make it fail. Value is meaningful only when
// Messages is empty. Planning never changes it: outcomes are in the plan.
type Input[T any] struct {
	Raw      json.RawMessage
	Value    T
	Messages Messages
}

// Failed tells whether the object has any message.
func (in *Input[T]) Failed() bool { return len(in.Messages) > 0 }

// Row is one submitted row, decoded and validated on its own. The nesting of
// its debt accounts is checked too; what depends on the database (an external
// id already taken) is decided by Plan.
type Row struct {
	Number             int // 1-based position in the bulk
	Raw                json.RawMessage
	Customer           *Input[Customer]
	Location           *Input[Location]
	ParentDebtAccounts []*Input[DebtAccount]
	DebtAccounts       []*Input[DebtAccount]
}

// ParseRow decodes and validates one row as submitted. It never fails: every
// problem becomes a message on the object it concerns. today bounds dates of
// birth. The Raw of each object is a slice of raw, not a copy.
func ParseRow(number int, raw json.RawMessage, today time.Time) *Row {
	r := &Row{Number: number, Raw: raw}
	var w struct{ Customer, Location, ParentDebtAccounts, DebtAccounts json.RawMessage }
	if !scanFields(trimSpace(raw), []wireField{
		{"customer", &w.Customer}, {"location", &w.Location},
		{"parent_debt_accounts", &w.ParentDebtAccounts}, {"debt_accounts", &w.DebtAccounts},
	}) {
		r.Customer = &Input[Customer]{Messages: Messages{"row": {MsgRowNotObject}}}
		return r
	}
	r.Customer = parseCustomer(w.Customer, today)
	r.Location = parseLocation(w.Location)
	r.ParentDebtAccounts = parseAccounts("parent_debt_accounts", w.ParentDebtAccounts, true)
	r.DebtAccounts = parseAccounts("debt_accounts", w.DebtAccounts, false)
	checkNesting(r)
	return r
}

func parseCustomer(raw json.RawMessage, today time.Time) *Input[Customer] {
	in := &Input[Customer]{Raw: raw, Messages: Messages{}}
	if isAbsent(raw) {
		in.Messages.add("customer", msgRequired("customer"))
		return in
	}
	var w struct {
		ExternalID, Name, Email, Phone, DateOfBirth, SSNLast4, Address, Metadata json.RawMessage
	}
	if !object(in.Messages, "customer", raw, []wireField{
		{"external_id", &w.ExternalID}, {"name", &w.Name}, {"email", &w.Email}, {"phone", &w.Phone},
		{"date_of_birth", &w.DateOfBirth}, {"ssn_last4", &w.SSNLast4}, {"address", &w.Address}, {"metadata", &w.Metadata},
	}) {
		return in
	}
	m := in.Messages
	in.Value = Customer{
		ExternalID:  must(text(m, "external_id", w.ExternalID, true, MaxExternalIDLen)),
		Name:        must(text(m, "name", w.Name, true, MaxNameLen)),
		Email:       email(m, w.Email),
		Phone:       must(text(m, "phone", w.Phone, false, MaxPhoneLen)),
		DateOfBirth: dateOfBirth(m, w.DateOfBirth, today),
		SSNLast4:    ssnLast4(m, w.SSNLast4),
		Address:     address(m, w.Address),
		Metadata:    metadata(m, w.Metadata),
	}
	return in
}

func parseLocation(raw json.RawMessage) *Input[Location] {
	in := &Input[Location]{Raw: raw, Messages: Messages{}}
	if isAbsent(raw) {
		in.Messages.add("location", msgRequired("location"))
		return in
	}
	var w struct{ ExternalID, Name json.RawMessage }
	if !object(in.Messages, "location", raw, []wireField{{"external_id", &w.ExternalID}, {"name", &w.Name}}) {
		return in
	}
	in.Value = Location{
		ExternalID: must(text(in.Messages, "external_id", w.ExternalID, true, MaxExternalIDLen)),
		Name:       must(text(in.Messages, "name", w.Name, false, MaxNameLen)),
	}
	return in
}

// parseAccounts reads a list of debt accounts. A section that is not a list
// becomes a single failed entry carrying the section's message.
func parseAccounts(section string, raw json.RawMessage, parents bool) []*Input[DebtAccount] {
	if isAbsent(raw) {
		return nil
	}
	if jsonKind(raw) != '[' {
		return []*Input[DebtAccount]{{Raw: raw, Messages: Messages{section: {msgList(section)}}}}
	}
	var buf [8]json.RawMessage // a usual section's accounts, without allocating
	items := buf[:0]
	for item := range elements(raw) {
		items = append(items, item)
	}
	// One allocation for all the accounts of the section.
	inputs := make([]Input[DebtAccount], len(items))
	out := make([]*Input[DebtAccount], len(items))
	for i, item := range items {
		out[i] = &inputs[i]
		parseAccount(out[i], item, parents)
	}
	return out
}

// parseAccount reads one debt account into in.
func parseAccount(in *Input[DebtAccount], raw json.RawMessage, parent bool) {
	in.Raw, in.Messages = raw, Messages{}
	var w struct {
		ExternalID, ParentExternalID, ExternalAccountNumber, Balance, CurrentBalance, BillingType, Metadata json.RawMessage
	}
	if !object(in.Messages, "debt_account", raw, []wireField{
		{"external_id", &w.ExternalID}, {"parent_external_id", &w.ParentExternalID},
		{"external_account_number", &w.ExternalAccountNumber}, {"balance", &w.Balance},
		{"current_balance", &w.CurrentBalance}, {"billing_type", &w.BillingType}, {"metadata", &w.Metadata},
	}) {
		return
	}
	m := in.Messages
	a := DebtAccount{
		ExternalID:            must(text(m, "external_id", w.ExternalID, true, MaxExternalIDLen)),
		ParentExternalID:      must(text(m, "parent_external_id", w.ParentExternalID, false, MaxExternalIDLen)),
		ExternalAccountNumber: must(text(m, "external_account_number", w.ExternalAccountNumber, false, MaxAccountNumberLen)),
		BillingType:           billingType(m, w.BillingType),
		Metadata:              metadata(m, w.Metadata),
	}
	a.Balance, _ = money(m, "balance", w.Balance, true)
	var hasCurrent bool
	a.CurrentBalance, hasCurrent = money(m, "current_balance", w.CurrentBalance, false)
	if hasCurrent && isAbsent(w.CurrentBalance) {
		a.CurrentBalance = a.Balance // an account nobody has paid on yet owes its balance
	}
	if parent && a.ParentExternalID != "" {
		m.add("parent_external_id", MsgParentNotAllowed)
	}
	in.Value = a
}

// must drops the ok of a field reader: a failed field already left its message.
func must[T any](v T, _ bool) T { return v }

// checkNesting resolves each child's parent_external_id within the row: the
// parent is an explicit parent debt account or a top-level entry of
// debt_accounts. Unknown parents and parents that have a parent themselves
// (which covers cycles and self-references) are errors of the child.
func checkNesting(r *Row) {
	type node struct{ parentRef string }
	byID := map[string]node{}
	for _, p := range r.ParentDebtAccounts {
		if id := p.Value.ExternalID; id != "" {
			if _, dup := byID[id]; !dup {
				byID[id] = node{}
			}
		}
	}
	for _, a := range r.DebtAccounts {
		if id := a.Value.ExternalID; id != "" {
			if _, dup := byID[id]; !dup {
				byID[id] = node{parentRef: a.Value.ParentExternalID}
			}
		}
	}
	for _, a := range r.DebtAccounts {
		ref := a.Value.ParentExternalID
		if ref == "" || a.Messages["parent_external_id"] != nil {
			continue
		}
		p, ok := byID[ref]
		switch {
		case !ok:
			a.Messages.add("parent_external_id", MsgInvalidParent)
		case p.parentRef != "":
			a.Messages.add("parent_external_id", MsgParentNested)
		}
	}
}

// ParseRows parses every row of a bulk, numbering them from 1.
func ParseRows(raw []json.RawMessage, today time.Time) []*Row {
	rows := make([]*Row, len(raw))
	for i, r := range raw {
		rows[i] = ParseRow(i+1, r, today)
	}
	return rows
}
