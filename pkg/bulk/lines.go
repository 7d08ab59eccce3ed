package bulk

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrorLine is one message of a bulk's errors report, flat: the row, the
// section and the object's place in it, the object's external id, the field
// and the message. It is how a person reads the report (the report page,
// the email, a CSV export): it names each failed object by its external id,
// never by the values it was submitted with.
type ErrorLine struct {
	Row        int    `json:"row"`
	Section    string `json:"section"`
	Index      int    `json:"index"` // the object's place in its section, from 0
	ExternalID string `json:"external_id"`
	Field      string `json:"field"`
	Message    string `json:"message"`
}

// ErrorLineColumns are the CSV columns of an ErrorLine, in order.
var ErrorLineColumns = []string{"row", "section", "index", "external_id", "field", "message"}

// Record is the line as CSV values, in ErrorLineColumns' order.
func (l ErrorLine) Record() []string {
	return []string{strconv.Itoa(l.Row), l.Section, strconv.Itoa(l.Index), l.ExternalID, l.Field, l.Message}
}

// MaxLineExternalIDLen bounds the external id an ErrorLine repeats: an
// external id is at most 255 characters when valid, but an invalid one may
// be anything the client sent.
const MaxLineExternalIDLen = 255

// Lines flattens a row's errors report into its messages, section by
// section in the report's order, fields in alphabetical order.
func (e RowErrors) Lines(row int) []ErrorLine {
	var out []ErrorLine
	for _, s := range []struct {
		name string
		list []ObjectError
	}{
		{"customer", e.Customer}, {"location", e.Location},
		{"parent_debt_accounts", e.ParentDebtAccounts}, {"debt_accounts", e.DebtAccounts},
	} {
		for i, o := range s.list {
			id := externalID(o.Data)
			fields := make([]string, 0, len(o.Messages))
			for f := range o.Messages {
				fields = append(fields, f)
			}
			slices.Sort(fields)
			for _, f := range fields {
				for _, msg := range o.Messages[f] {
					out = append(out, ErrorLine{Row: row, Section: s.name, Index: i, ExternalID: id, Field: f, Message: msg})
				}
			}
		}
	}
	return out
}

// UnreadableLine stands for a row whose stored report cannot be read, so
// that one such row does not hide the others.
func UnreadableLine(row int) ErrorLine {
	return ErrorLine{Row: row, Section: "row", Field: "report", Message: "The errors of this row could not be read."}
}

// externalID is the external_id of an object as submitted when it is a
// string, "" otherwise (absent, another type, or no object at all).
func externalID(data json.RawMessage) string {
	var o struct {
		ExternalID json.RawMessage `json:"external_id"`
	}
	if json.Unmarshal(data, &o) != nil {
		return ""
	}
	var id string
	if json.Unmarshal(o.ExternalID, &id) != nil {
		return ""
	}
	if len(id) > MaxLineExternalIDLen {
		id = id[:MaxLineExternalIDLen]
		for !utf8.ValidString(id) { // never cut a character in two
			id = id[:len(id)-1]
		}
		id = strings.TrimSpace(id) + "…"
	}
	return id
}

// ResultLine is one object of a row's result, flat: the row and its status,
// the section and the object's place in it, its external id, what the
// import did with it and the record that stands for it. It is the CSV form
// of GET /api/v1/bulk/{id}/results.
type ResultLine struct {
	Row        int
	RowStatus  RowStatus
	Section    string
	Index      int
	ExternalID string
	Action     Action
	ID         string // "" when no record stands for the object
}

// ResultLineColumns are the CSV columns of a ResultLine, in order.
var ResultLineColumns = []string{"row", "row_status", "section", "index", "external_id", "action", "id"}

// Record is the line as CSV values, in ResultLineColumns' order.
func (l ResultLine) Record() []string {
	return []string{strconv.Itoa(l.Row), string(l.RowStatus), l.Section, strconv.Itoa(l.Index), l.ExternalID, string(l.Action), l.ID}
}

// Lines flattens a row's result into its objects, in the order of the
// result: customer, location, parent debt accounts, debt accounts.
func (r ResultRow) Lines() []ResultLine {
	var out []ResultLine
	add := func(section string, i int, o *ResultObject) {
		if o == nil {
			return
		}
		l := ResultLine{Row: r.Row, RowStatus: r.Status, Section: section, Index: i, Action: o.Action}
		if o.ExternalID != nil {
			l.ExternalID = *o.ExternalID
		}
		if o.ID != nil {
			l.ID = o.ID.String()
		}
		out = append(out, l)
	}
	add("customer", 0, r.Customer)
	add("location", 0, r.Location)
	for i := range r.ParentDebtAccounts {
		add("parent_debt_accounts", i, &r.ParentDebtAccounts[i])
	}
	for i := range r.DebtAccounts {
		add("debt_accounts", i, &r.DebtAccounts[i])
	}
	return out
}
