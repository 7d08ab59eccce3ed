package bulk

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/bulkd/bulkd/pkg/jsonscan"
)

// MaxRows is the most rows one bulk may carry.
const MaxRows = 1000

// Fields is a set of the fields of a submitted object that it carries, with
// a value or null. An upsert changes exactly these; an explicit null clears
// an optional field, an absent one keeps its value.
type Fields uint32

// The fields Fields can hold. External ids are always carried.
const (
	FieldName Fields = 1 << iota
	FieldEmail
	FieldPhone
	FieldDateOfBirth
	FieldSSNLast4
	FieldAddress
	FieldMetadata
	FieldParentExternalID
	FieldExternalAccountNumber
	FieldBalance
	FieldCurrentBalance
	FieldBillingType
)

// Has tells whether every field of x is in the set.
func (f Fields) Has(x Fields) bool { return f&x == x }

// Customer is a validated customer. Optional fields are zero when absent or
// null; Present tells which the object carried.
type Customer struct {
	ExternalID  string
	Name        string
	Email       string
	Phone       string
	DateOfBirth time.Time
	SSNLast4    string
	Address     json.RawMessage // the known address fields, re-encoded; nil when absent
	Metadata    json.RawMessage // nil when absent
	Present     Fields
}

// Location is a validated location.
type Location struct {
	ExternalID string
	Name       string
	Present    Fields
}

// DebtAccount is a validated debt account, a parent or a child. An absent
// current balance is the balance (on an account nobody has paid on yet), but
// is not Present: an upsert keeps the stored one.
type DebtAccount struct {
	ExternalID            string
	ParentExternalID      string // "" for a top-level account
	ExternalAccountNumber string
	Balance               Money
	CurrentBalance        Money
	BillingType           []string
	Metadata              json.RawMessage
	Present               Fields
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

// ParseRow decodes and validates one row as submitted, as opts say: Today
// bounds dates of birth; Strict makes unknown keys errors; in ModeUpsert a
// field required to create a record may be absent (the plan requires it of
// the records it creates). It never fails: every problem becomes a message on
// the object it concerns. The Raw of each object is a slice of raw, not a
// copy.
func ParseRow(number int, raw json.RawMessage, opts Options) *Row {
	p := parser{opts: opts, row: "#/" + strconv.Itoa(number-1)}
	r := &Row{Number: number, Raw: raw}
	var w struct{ Customer, Location, ParentDebtAccounts, DebtAccounts json.RawMessage }
	fields := []jsonscan.Field{
		{Name: "customer", Value: &w.Customer}, {Name: "location", Value: &w.Location},
		{Name: "parent_debt_accounts", Value: &w.ParentDebtAccounts}, {Name: "debt_accounts", Value: &w.DebtAccounts},
	}
	extraneous := Messages{}
	if !jsonscan.ScanFields(jsonscan.TrimSpace(raw), fields, p.unknown(extraneous, p.row, "")) {
		r.Customer = &Input[Customer]{Messages: Messages{"row": {MsgRowNotObject}}}
		return r
	}
	r.Customer = p.customer(w.Customer)
	for field, msgs := range extraneous {
		// A key the row itself does not know fails the row's customer (the
		// report has no place for the row as such), under row.<key> so as
		// not to read as a field of the customer.
		r.Customer.Messages["row."+field] = append(r.Customer.Messages["row."+field], msgs...)
	}
	r.Location = p.location(w.Location)
	r.ParentDebtAccounts = p.accounts("parent_debt_accounts", w.ParentDebtAccounts, true)
	r.DebtAccounts = p.accounts("debt_accounts", w.DebtAccounts, false)
	checkNesting(r)
	return r
}

// parser reads the objects of one row.
type parser struct {
	opts Options
	row  string // the row's JSON pointer, "#/0" for the first
}

// maxExtraneousReported bounds the messages strict mode gives one object
// for its unknown keys: an object of a million of them costs a message each
// for the first ones and one for the rest.
const maxExtraneousReported = 10

// unknown returns what jsonscan.ReadFields calls for each key the fields do not name:
// nothing, or in strict mode a message under the key (prefixed with prefix,
// "address." for the keys of an address) naming the object's pointer.
func (p parser) unknown(m Messages, pointer, prefix string) func(key []byte) {
	if !p.opts.Strict {
		return nil
	}
	n := 0
	return func(key []byte) {
		n++
		switch {
		case n <= maxExtraneousReported:
			k := shortKey(key)
			m.add(prefix+k, MsgExtraneous(pointer, k))
		case n == maxExtraneousReported+1:
			m.add(prefix+"*", pointer+": more extraneous keys are not permitted")
		}
	}
}

// maxKeyReported is how much of an unknown key a message repeats: the
// object itself, echoed in the report, shows it whole.
const maxKeyReported = 64

// shortKey is key as a message names it: whole, or its first
// maxKeyReported characters and an ellipsis.
func shortKey(key []byte) string {
	if utf8.RuneCount(key) <= maxKeyReported {
		return string(key)
	}
	i, n := 0, 0
	for n < maxKeyReported {
		_, size := utf8.DecodeRune(key[i:])
		i += size
		n++
	}
	return string(key[:i]) + "…"
}

// required tells whether a field that must have a value to create a record
// is required of this object: always, except that an upsert may leave one
// out of an object that updates a record. An explicit null is always
// checked.
func (p parser) required(raw json.RawMessage) bool {
	return p.opts.Mode != ModeUpsert || raw != nil
}

// present adds field to set when the object carried it.
func present(set *Fields, field Fields, raw json.RawMessage) {
	if raw != nil {
		*set |= field
	}
}

// object reads the fields of raw when it is a JSON object; otherwise it
// records that field must be an object.
func (p parser) object(m Messages, field, pointer string, raw json.RawMessage, fields []jsonscan.Field) bool {
	if jsonscan.Kind(raw) != '{' {
		m.add(field, msgObject(field))
		return false
	}
	jsonscan.ReadFields(raw, fields, p.unknown(m, pointer, ""))
	return true
}

func (p parser) customer(raw json.RawMessage) *Input[Customer] {
	in := &Input[Customer]{Raw: raw, Messages: Messages{}}
	if isAbsent(raw) {
		in.Messages.add("customer", msgRequired("customer"))
		return in
	}
	var w struct {
		ExternalID, Name, Email, Phone, DateOfBirth, SSNLast4, Address, Metadata json.RawMessage
	}
	pointer := p.row + "/customer"
	if !p.object(in.Messages, "customer", pointer, raw, []jsonscan.Field{
		{Name: "external_id", Value: &w.ExternalID}, {Name: "name", Value: &w.Name},
		{Name: "email", Value: &w.Email}, {Name: "phone", Value: &w.Phone},
		{Name: "date_of_birth", Value: &w.DateOfBirth}, {Name: "ssn_last4", Value: &w.SSNLast4},
		{Name: "address", Value: &w.Address}, {Name: "metadata", Value: &w.Metadata},
	}) {
		return in
	}
	m := in.Messages
	c := Customer{
		ExternalID:  must(text(m, "external_id", w.ExternalID, true, MaxExternalIDLen)),
		Name:        must(text(m, "name", w.Name, p.required(w.Name), MaxNameLen)),
		Email:       email(m, w.Email),
		Phone:       must(text(m, "phone", w.Phone, false, MaxPhoneLen)),
		DateOfBirth: dateOfBirth(m, w.DateOfBirth, p.opts.Today),
		SSNLast4:    ssnLast4(m, w.SSNLast4),
		Address:     p.address(m, pointer+"/address", w.Address),
		Metadata:    metadata(m, w.Metadata),
	}
	for _, f := range []struct {
		field Fields
		raw   json.RawMessage
	}{
		{FieldName, w.Name}, {FieldEmail, w.Email}, {FieldPhone, w.Phone}, {FieldDateOfBirth, w.DateOfBirth},
		{FieldSSNLast4, w.SSNLast4}, {FieldAddress, w.Address}, {FieldMetadata, w.Metadata},
	} {
		present(&c.Present, f.field, f.raw)
	}
	in.Value = c
	return in
}

func (p parser) location(raw json.RawMessage) *Input[Location] {
	in := &Input[Location]{Raw: raw, Messages: Messages{}}
	if isAbsent(raw) {
		in.Messages.add("location", msgRequired("location"))
		return in
	}
	var w struct{ ExternalID, Name json.RawMessage }
	if !p.object(in.Messages, "location", p.row+"/location", raw, []jsonscan.Field{
		{Name: "external_id", Value: &w.ExternalID}, {Name: "name", Value: &w.Name},
	}) {
		return in
	}
	in.Value = Location{
		ExternalID: must(text(in.Messages, "external_id", w.ExternalID, true, MaxExternalIDLen)),
		Name:       must(text(in.Messages, "name", w.Name, false, MaxNameLen)),
	}
	present(&in.Value.Present, FieldName, w.Name)
	return in
}

// accounts reads a list of debt accounts. A section that is not a list
// becomes a single failed entry carrying the section's message.
func (p parser) accounts(section string, raw json.RawMessage, parents bool) []*Input[DebtAccount] {
	if isAbsent(raw) {
		return nil
	}
	if jsonscan.Kind(raw) != '[' {
		return []*Input[DebtAccount]{{Raw: raw, Messages: Messages{section: {msgList(section)}}}}
	}
	var buf [8]json.RawMessage // a usual section's accounts, without allocating
	items := buf[:0]
	for item := range jsonscan.Elements(raw) {
		items = append(items, item)
	}
	// One allocation for all the accounts of the section.
	inputs := make([]Input[DebtAccount], len(items))
	out := make([]*Input[DebtAccount], len(items))
	for i, item := range items {
		out[i] = &inputs[i]
		p.account(out[i], p.row+"/"+section+"/"+strconv.Itoa(i), item, parents)
	}
	return out
}

// account reads one debt account into in.
func (p parser) account(in *Input[DebtAccount], pointer string, raw json.RawMessage, parent bool) {
	in.Raw, in.Messages = raw, Messages{}
	var w struct {
		ExternalID, ParentExternalID, ExternalAccountNumber, Balance, CurrentBalance, BillingType, Metadata json.RawMessage
	}
	if !p.object(in.Messages, "debt_account", pointer, raw, []jsonscan.Field{
		{Name: "external_id", Value: &w.ExternalID}, {Name: "parent_external_id", Value: &w.ParentExternalID},
		{Name: "external_account_number", Value: &w.ExternalAccountNumber}, {Name: "balance", Value: &w.Balance},
		{Name: "current_balance", Value: &w.CurrentBalance}, {Name: "billing_type", Value: &w.BillingType},
		{Name: "metadata", Value: &w.Metadata},
	}) {
		return
	}
	m := in.Messages
	a := DebtAccount{
		ExternalID:            must(text(m, "external_id", w.ExternalID, true, MaxExternalIDLen)),
		ParentExternalID:      must(text(m, "parent_external_id", w.ParentExternalID, false, MaxExternalIDLen)),
		ExternalAccountNumber: must(text(m, "external_account_number", w.ExternalAccountNumber, false, MaxAccountNumberLen)),
		Metadata:              metadata(m, w.Metadata),
	}
	if p.required(w.BillingType) {
		a.BillingType = billingType(m, w.BillingType)
	}
	a.Balance, _ = money(m, "balance", w.Balance, p.required(w.Balance))
	var hasCurrent bool
	a.CurrentBalance, hasCurrent = money(m, "current_balance", w.CurrentBalance, false)
	if hasCurrent && isAbsent(w.CurrentBalance) {
		a.CurrentBalance = a.Balance // an account nobody has paid on yet owes its balance
	}
	if parent && a.ParentExternalID != "" {
		m.add("parent_external_id", MsgParentNotAllowed)
	}
	for _, f := range []struct {
		field Fields
		raw   json.RawMessage
	}{
		{FieldParentExternalID, w.ParentExternalID}, {FieldExternalAccountNumber, w.ExternalAccountNumber},
		{FieldBalance, w.Balance}, {FieldCurrentBalance, w.CurrentBalance}, {FieldBillingType, w.BillingType},
		{FieldMetadata, w.Metadata},
	} {
		present(&a.Present, f.field, f.raw)
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
func ParseRows(raw []json.RawMessage, opts Options) []*Row {
	rows := make([]*Row, len(raw))
	for i, r := range raw {
		rows[i] = ParseRow(i+1, r, opts)
	}
	return rows
}

// ParseCustomer validates one customer object, as a row's customer section,
// by the import's rules: the records API checks a patched or created
// customer with it, so that both paths share one set of rules.
func ParseCustomer(raw json.RawMessage, opts Options) *Input[Customer] {
	return parser{opts: opts, row: "#"}.customer(raw)
}

// ParseLocation validates one location object by the import's rules.
func ParseLocation(raw json.RawMessage, opts Options) *Input[Location] {
	return parser{opts: opts, row: "#"}.location(raw)
}

// ParseDebtAccount validates one debt account object by the import's rules;
// parent says it is a parent account (which may not name a parent itself).
// Where its parent is found is the caller's to check.
func ParseDebtAccount(raw json.RawMessage, opts Options, parent bool) *Input[DebtAccount] {
	in := &Input[DebtAccount]{}
	parser{opts: opts, row: "#"}.account(in, "#", raw, parent)
	return in
}
