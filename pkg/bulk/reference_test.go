package bulk

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// This file keeps the implementation of ParseRow and DecodeSubmission that
// went through encoding/json (with reflection, validating each nested object
// again), as the reference the fuzz tests and benchmarks hold the hand-written
// scanner to: the two must accept the same input and give the same rows,
// values and messages. Only the names differ from the original.

type refRowWire struct {
	Customer           json.RawMessage `json:"customer"`
	Location           json.RawMessage `json:"location"`
	ParentDebtAccounts json.RawMessage `json:"parent_debt_accounts"`
	DebtAccounts       json.RawMessage `json:"debt_accounts"`
}

// ReferenceParseRow is ParseRow as it was with encoding/json.
func ReferenceParseRow(number int, raw json.RawMessage, today time.Time) *Row {
	r := &Row{Number: number, Raw: raw}
	var w refRowWire
	if refJsonKind(raw) != '{' || json.Unmarshal(raw, &w) != nil {
		r.Customer = &Input[Customer]{Messages: Messages{"row": {MsgRowNotObject}}}
		return r
	}
	r.Customer = refParseCustomer(w.Customer, today)
	r.Location = refParseLocation(w.Location)
	r.ParentDebtAccounts = refParseAccounts("parent_debt_accounts", w.ParentDebtAccounts, true)
	r.DebtAccounts = refParseAccounts("debt_accounts", w.DebtAccounts, false)
	refCheckNesting(r)
	return r
}

func refParseCustomer(raw json.RawMessage, today time.Time) *Input[Customer] {
	in := &Input[Customer]{Raw: raw, Messages: Messages{}}
	if refIsAbsent(raw) {
		in.Messages.add("customer", msgRequired("customer"))
		return in
	}
	var w struct {
		ExternalID  json.RawMessage `json:"external_id"`
		Name        json.RawMessage `json:"name"`
		Email       json.RawMessage `json:"email"`
		Phone       json.RawMessage `json:"phone"`
		DateOfBirth json.RawMessage `json:"date_of_birth"`
		SSNLast4    json.RawMessage `json:"ssn_last4"`
		Address     json.RawMessage `json:"address"`
		Metadata    json.RawMessage `json:"metadata"`
	}
	if !refObject(in.Messages, "customer", raw, &w) {
		return in
	}
	m := in.Messages
	in.Value = Customer{
		ExternalID:  refMust(refText(m, "external_id", w.ExternalID, true, MaxExternalIDLen)),
		Name:        refMust(refText(m, "name", w.Name, true, MaxNameLen)),
		Email:       refEmail(m, w.Email),
		Phone:       refMust(refText(m, "phone", w.Phone, false, MaxPhoneLen)),
		DateOfBirth: refDateOfBirth(m, w.DateOfBirth, today),
		SSNLast4:    refSsnLast4(m, w.SSNLast4),
		Address:     refAddress(m, w.Address),
		Metadata:    refMetadata(m, w.Metadata),
	}
	return in
}

func refParseLocation(raw json.RawMessage) *Input[Location] {
	in := &Input[Location]{Raw: raw, Messages: Messages{}}
	if refIsAbsent(raw) {
		in.Messages.add("location", msgRequired("location"))
		return in
	}
	var w struct {
		ExternalID json.RawMessage `json:"external_id"`
		Name       json.RawMessage `json:"name"`
	}
	if !refObject(in.Messages, "location", raw, &w) {
		return in
	}
	in.Value = Location{
		ExternalID: refMust(refText(in.Messages, "external_id", w.ExternalID, true, MaxExternalIDLen)),
		Name:       refMust(refText(in.Messages, "name", w.Name, false, MaxNameLen)),
	}
	return in
}

// parseAccounts reads a list of debt accounts. A section that is not a list
// becomes a single failed entry carrying the section's message.
func refParseAccounts(section string, raw json.RawMessage, parents bool) []*Input[DebtAccount] {
	if refIsAbsent(raw) {
		return nil
	}
	var items []json.RawMessage
	if refJsonKind(raw) != '[' || json.Unmarshal(raw, &items) != nil {
		return []*Input[DebtAccount]{{Raw: raw, Messages: Messages{section: {msgList(section)}}}}
	}
	out := make([]*Input[DebtAccount], len(items))
	for i, item := range items {
		out[i] = refParseAccount(item, parents)
	}
	return out
}

func refParseAccount(raw json.RawMessage, parent bool) *Input[DebtAccount] {
	in := &Input[DebtAccount]{Raw: raw, Messages: Messages{}}
	var w struct {
		ExternalID            json.RawMessage `json:"external_id"`
		ParentExternalID      json.RawMessage `json:"parent_external_id"`
		ExternalAccountNumber json.RawMessage `json:"external_account_number"`
		Balance               json.RawMessage `json:"balance"`
		CurrentBalance        json.RawMessage `json:"current_balance"`
		BillingType           json.RawMessage `json:"billing_type"`
		Metadata              json.RawMessage `json:"metadata"`
	}
	if !refObject(in.Messages, "debt_account", raw, &w) {
		return in
	}
	m := in.Messages
	a := DebtAccount{
		ExternalID:            refMust(refText(m, "external_id", w.ExternalID, true, MaxExternalIDLen)),
		ParentExternalID:      refMust(refText(m, "parent_external_id", w.ParentExternalID, false, MaxExternalIDLen)),
		ExternalAccountNumber: refMust(refText(m, "external_account_number", w.ExternalAccountNumber, false, MaxAccountNumberLen)),
		BillingType:           refBillingType(m, w.BillingType),
		Metadata:              refMetadata(m, w.Metadata),
	}
	a.Balance, _ = refMoney(m, "balance", w.Balance, true)
	var hasCurrent bool
	a.CurrentBalance, hasCurrent = refMoney(m, "current_balance", w.CurrentBalance, false)
	if hasCurrent && refIsAbsent(w.CurrentBalance) {
		a.CurrentBalance = a.Balance // an account nobody has paid on yet owes its balance
	}
	if parent && a.ParentExternalID != "" {
		m.add("parent_external_id", MsgParentNotAllowed)
	}
	in.Value = a
	return in
}

// must drops the ok of a field reader: a failed field already left its message.
func refMust[T any](v T, _ bool) T { return v }

// checkNesting resolves each child's parent_external_id within the row: the
// parent is an explicit parent debt account or a top-level entry of
// debt_accounts. Unknown parents and parents that have a parent themselves
// (which covers cycles and self-references) are errors of the child.
func refCheckNesting(r *Row) {
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

// jsonKind is the first byte of a JSON value: '"', '{', '[', 'n', 't', 'f' or a
// digit/minus for numbers; 0 when the value is absent.
func refJsonKind(raw json.RawMessage) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	if c := raw[0]; c == '-' || (c >= '0' && c <= '9') {
		return '0'
	}
	return raw[0]
}

func refIsAbsent(raw json.RawMessage) bool {
	k := refJsonKind(raw)
	return k == 0 || k == 'n'
}

// jsonString decodes a JSON string value. Strings without escapes, nearly
// all of them, are sliced out of the raw bytes instead of going through
// encoding/json, which would validate the value a second time.
func refJsonString(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if inner := raw[1 : len(raw)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// object decodes raw into w when it is a JSON object; otherwise it records
// that field must be an object.
func refObject(m Messages, field string, raw json.RawMessage, w any) bool {
	if refJsonKind(raw) != '{' || json.Unmarshal(raw, w) != nil {
		m.add(field, msgObject(field))
		return false
	}
	return true
}

// text reads a string field. It reports a message and returns ok=false when the
// value has the wrong type, is too long or holds a NUL (Postgres text cannot).
func refText(m Messages, field string, raw json.RawMessage, required bool, maxLen int) (string, bool) {
	if refIsAbsent(raw) {
		if required {
			m.add(field, msgRequired(field))
			return "", false
		}
		return "", true
	}
	s, ok := refJsonString(raw)
	if !ok {
		m.add(field, msgString(field))
		return "", false
	}
	switch {
	case required && strings.TrimSpace(s) == "":
		m.add(field, msgRequired(field))
	case strings.IndexByte(s, 0) >= 0:
		m.add(field, msgNoNUL(field))
	case utf8.RuneCountInString(s) > maxLen:
		m.add(field, msgMaxChars(field, maxLen))
	default:
		return s, true
	}
	return "", false
}

func refEmail(m Messages, raw json.RawMessage) string {
	s, ok := refText(m, "email", raw, false, MaxEmailLen)
	if !ok || s == "" {
		return ""
	}
	// The rule changed with issue 8 (domain literals, malformed host names):
	// the reference applies the package's rule on top of its old one.
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || addr.Name != "" || !strings.Contains(s[strings.LastIndexByte(s, '@'):], ".") || !validEmail(s) {
		m.add("email", MsgEmail)
		return ""
	}
	return s
}

// earliestBirthDate keeps obvious typos (0199-01-01) out of the data.
var refEarliestBirthDate = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

func refDateOfBirth(m Messages, raw json.RawMessage, today time.Time) time.Time {
	const field = "date_of_birth"
	s, ok := refText(m, field, raw, false, math.MaxInt) // any length: a timestamp gets the format message
	if !ok || s == "" {
		return time.Time{}
	}
	d, err := time.Parse(time.DateOnly, s)
	switch {
	case err != nil || len(s) != len(time.DateOnly):
		m.add(field, "The date of birth field must be a real date in the format YYYY-MM-DD.")
	case !d.Before(today):
		m.add(field, "The date of birth field must be a date before today.")
	case !d.After(refEarliestBirthDate):
		m.add(field, "The date of birth field must be a date after 1900-01-01.")
	default:
		return d
	}
	return time.Time{}
}

// ssnLast4 accepts 4 digits as a string ("0123") or as a number (9098); a
// number cannot carry a leading zero, so 123 is three digits and rejected.
func refSsnLast4(m Messages, raw json.RawMessage) string {
	const msg = "The ssn last4 field must be exactly 4 digits."
	switch refJsonKind(raw) {
	case 0, 'n':
		return ""
	case '0':
		s := string(bytes.TrimSpace(raw))
		if len(s) == 4 && isDigits(s) {
			return s
		}
	case '"':
		if s, ok := refJsonString(raw); ok && len(s) == 4 && isDigits(s) {
			return s
		}
	}
	m.add("ssn_last4", msg)
	return ""
}

// money reads a balance: a JSON number or a numeric string, at least zero,
// with at most two decimal places.
func refMoney(m Messages, field string, raw json.RawMessage, required bool) (Money, bool) {
	var lit string
	switch refJsonKind(raw) {
	case 0, 'n':
		if required {
			m.add(field, msgRequired(field))
			return 0, false
		}
		return 0, true
	case '0':
		lit = string(bytes.TrimSpace(raw))
	case '"':
		lit, _ = refJsonString(raw) // "" when broken, which ParseMoney rejects
	}
	v, err := ParseMoney(lit)
	switch err {
	case nil:
		return v, true
	case errMoneyNegative:
		m.add(field, "The "+label(field)+" field must be at least 0.")
	case errMoneyPlaces:
		m.add(field, "The "+label(field)+" field must have at most 2 decimal places.")
	case errMoneyTooLarge:
		m.add(field, "The "+label(field)+" field must not be greater than "+MaxMoney.String()+".")
	default:
		m.add(field, "The "+label(field)+" field must be a number.")
	}
	return 0, false
}

func refBillingType(m Messages, raw json.RawMessage) []string {
	const field = "billing_type"
	if refIsAbsent(raw) {
		m.add(field, msgRequired(field))
		return nil
	}
	var items []json.RawMessage
	if refJsonKind(raw) != '[' || json.Unmarshal(raw, &items) != nil {
		m.add(field, msgList(field))
		return nil
	}
	if len(items) == 0 {
		m.add(field, msgRequired(field))
		return nil
	}
	if len(items) > MaxBillingTypes {
		m.add(field, "The billing type field must not have more than "+strconv.Itoa(MaxBillingTypes)+" items.")
		return nil
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		s, ok := refJsonString(it)
		if !ok || !refKnownBillingType(s) {
			m.add(field, MsgBillingTypeChoice)
			return nil
		}
		if !slices.Contains(out, s) { // stored once each, in the order first sent
			out = append(out, s)
		}
	}
	return out
}

func refKnownBillingType(s string) bool {
	for _, b := range BillingTypes {
		if s == b {
			return true
		}
	}
	return false
}

// metadata accepts an object whose values are scalars and returns it
// re-encoded, so that what reaches jsonb is always valid (Go replaces broken
// escapes such as lone surrogates, which Postgres would reject).
func refMetadata(m Messages, raw json.RawMessage) json.RawMessage {
	const field = "metadata"
	if refIsAbsent(raw) {
		return nil
	}
	var obj map[string]json.RawMessage
	if !refObject(m, field, raw, &obj) {
		return nil
	}
	if refCountMembers(raw) > MaxMetadataKeys { // duplicate keys count each time since issue 8
		m.add(field, "The metadata field must not have more than "+strconv.Itoa(MaxMetadataKeys)+" keys.")
		return nil
	}
	clean := make(map[string]any, len(obj))
	ok := true
	for k, v := range obj {
		if utf8.RuneCountInString(k) > MaxMetadataKeyLen || strings.IndexByte(k, 0) >= 0 || k == "" {
			m.add(field, "The metadata keys must be 1 to "+strconv.Itoa(MaxMetadataKeyLen)+" characters without NUL.")
			ok = false
			continue
		}
		val, valid := refMetadataValue(m, field+"."+k, v)
		ok = ok && valid
		clean[k] = val
	}
	if !ok {
		return nil
	}
	out, err := json.Marshal(clean)
	if err != nil { // unreachable: every value is a scalar Go can encode
		m.add(field, msgObject(field))
		return nil
	}
	return out
}

// refCountMembers counts the members of the object raw, duplicates included.
func refCountMembers(raw json.RawMessage) int {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return 0
	}
	n := 0
	for dec.More() {
		var value json.RawMessage
		if _, err := dec.Token(); err != nil || dec.Decode(&value) != nil {
			return n
		}
		n++
	}
	return n
}

func refMetadataValue(m Messages, field string, raw json.RawMessage) (any, bool) {
	switch refJsonKind(raw) {
	case 'n':
		return nil, true
	case 't':
		return true, true
	case 'f':
		return false, true
	case '0':
		lit := string(bytes.TrimSpace(raw))
		f, err := strconv.ParseFloat(lit, 64)
		if err != nil || math.IsInf(f, 0) {
			m.add(field, "The "+label(field)+" field must be a finite number.")
			return nil, false
		}
		if !refFitsNumeric(lit) {
			m.add(field, "The "+label(field)+" field must be a number with at most "+strconv.Itoa(refMaxNumericScale)+
				" decimal places and an exponent between -"+strconv.Itoa(refMaxNumericScale)+" and "+strconv.Itoa(refMaxNumericScale)+".")
			return nil, false
		}
		return json.Number(lit), true
	case '"':
		s, ok := refText(m, field, raw, false, MaxMetadataValueLen)
		return s, ok
	}
	m.add(field, "The "+label(field)+" field must be a string, number, boolean or null.")
	return nil, false
}

// maxNumericScale is the most digits after the decimal point that Postgres
// numeric, and so a number in jsonb, can hold (NUMERIC_DSCALE_MAX).
const refMaxNumericScale = 16383

// fitsNumeric tells whether Postgres can store a JSON number literal in jsonb.
// A literal float64 takes can still overflow numeric's scale ("1e-20000",
// which float64 reads as 0) or its exponent ("0e99999999999"), and Postgres
// would then reject the whole import. The bounds were checked against
// Postgres 15: '1e-16383'::jsonb is stored, '1.5e-16383'::jsonb is not.
func refFitsNumeric(lit string) bool {
	mant, exp := lit, 0
	if i := strings.IndexAny(lit, "eE"); i >= 0 {
		e, err := strconv.Atoi(lit[i+1:])
		if err != nil || e < -refMaxNumericScale || e > refMaxNumericScale {
			return false
		}
		mant, exp = lit[:i], e
	}
	_, frac, _ := strings.Cut(mant, ".")
	return len(frac)-exp <= refMaxNumericScale
}

// address accepts an object of the known address fields and returns it
// re-encoded with only those fields.
func refAddress(m Messages, raw json.RawMessage) json.RawMessage {
	const field = "address"
	if refIsAbsent(raw) {
		return nil
	}
	var w struct {
		Name       json.RawMessage `json:"name"`
		Line1      json.RawMessage `json:"line1"`
		Line2      json.RawMessage `json:"line2"`
		City       json.RawMessage `json:"city"`
		State      json.RawMessage `json:"state"`
		PostalCode json.RawMessage `json:"postal_code"`
		Country    json.RawMessage `json:"country"`
		IsPrimary  json.RawMessage `json:"is_primary"`
	}
	if !refObject(m, field, raw, &w) {
		return nil
	}
	clean := map[string]any{}
	ok := true
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{
		{"name", w.Name}, {"line1", w.Line1}, {"line2", w.Line2}, {"city", w.City},
		{"state", w.State}, {"postal_code", w.PostalCode}, {"country", w.Country},
	} {
		s, valid := refText(m, field+"."+f.name, f.raw, false, MaxAddressFieldLen)
		ok = ok && valid
		if valid && !refIsAbsent(f.raw) {
			clean[f.name] = s
		}
	}
	switch refJsonKind(w.IsPrimary) {
	case 0, 'n':
	case 't':
		clean["is_primary"] = true
	case 'f':
		clean["is_primary"] = false
	default:
		m.add(field+".is_primary", msgBoolean(field+".is_primary"))
		ok = false
	}
	if !ok {
		return nil
	}
	out, _ := json.Marshal(clean) // strings and booleans always encode
	return out
}

// ReferenceDecodeSubmission is DecodeSubmission as it was with encoding/json.
func ReferenceDecodeSubmission(r io.Reader) ([]json.RawMessage, error) {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) { // a number beyond float64, such as 1e400: valid JSON all the same
			return nil, ErrNotArray
		}
		return nil, refSyntaxOr(err)
	}
	if tok != json.Delim('[') {
		return nil, ErrNotArray
	}
	var rows []json.RawMessage
	for dec.More() {
		if len(rows) == MaxRows {
			return nil, ErrTooManyRows
		}
		var row json.RawMessage
		if err := dec.Decode(&row); err != nil {
			return nil, refSyntaxOr(err)
		}
		if !utf8.Valid(row) {
			return nil, ErrInvalidUTF8
		}
		if err := ReferenceCheckRowLimits(len(rows), row); err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	if _, err := dec.Token(); err != nil { // the closing bracket
		return nil, refSyntaxOr(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return nil, ErrNotJSON // something after the array
		}
		return nil, refSyntaxOr(err)
	}
	if len(rows) == 0 {
		return nil, ErrNoRows
	}
	return rows, nil
}

// syntaxOr maps the decoder's syntax errors to ErrNotJSON and leaves reader
// errors (a body too large, a dropped connection) for the caller.
func refSyntaxOr(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	if errors.As(err, &syn) || errors.As(err, &typ) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrNotJSON
	}
	return err
}

// ReferenceCheckRowLimits is checkRowLimits (issue 8) through encoding/json's
// tokens: the depth of the row, then each section's entries, every
// occurrence of a key that names one.
func ReferenceCheckRowLimits(index int, row json.RawMessage) error {
	dec := json.NewDecoder(bytes.NewReader(row))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	if deepest > MaxDepth {
		return LimitError{"#/" + strconv.Itoa(index), "Row " + strconv.Itoa(index+1) + " is nested more than 32 levels deep."}
	}
	if refJsonKind(row) != '{' {
		return nil
	}
	dec = json.NewDecoder(bytes.NewReader(row))
	_, _ = dec.Token()
	for dec.More() {
		tok, _ := dec.Token()
		var value json.RawMessage
		_ = dec.Decode(&value)
		key := tok.(string)
		for _, section := range []string{"parent_debt_accounts", "debt_accounts"} {
			if key != section && (key == "parent_debt_accounts" || key == "debt_accounts" || !strings.EqualFold(key, section)) {
				continue
			}
			var items []json.RawMessage
			if json.Unmarshal(value, &items) == nil && len(items) > MaxAccountsPerSection {
				return LimitError{"#/" + strconv.Itoa(index) + "/" + section,
					"Row " + strconv.Itoa(index+1) + ": the " + strings.ReplaceAll(section, "_", " ") + " field must not have more than 100 items."}
			}
		}
	}
	return nil
}
