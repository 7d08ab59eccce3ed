package bulk

import (
	"bytes"
	"encoding/json"
	"math"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on submitted values. They keep one row's storage and messages bounded
// whatever a client sends; metadata limits follow common practice for
// free-form key/value data (Stripe uses the same numbers).
const (
	MaxExternalIDLen    = 255
	MaxNameLen          = 255
	MaxEmailLen         = 254
	MaxPhoneLen         = 50
	MaxAddressFieldLen  = 255
	MaxAccountNumberLen = 255
	MaxBillingTypes     = 10
	MaxMetadataKeys     = 50
	MaxMetadataKeyLen   = 40
	MaxMetadataValueLen = 500
)

// BillingTypes are the accepted values of a debt account's billing_type.
var BillingTypes = []string{"full-payment", "partial-payment", "payment-plan", "settlement"}

// jsonKind is the first byte of a JSON value: '"', '{', '[', 'n', 't', 'f' or a
// digit/minus for numbers; 0 when the value is absent.
func jsonKind(raw json.RawMessage) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	if c := raw[0]; c == '-' || (c >= '0' && c <= '9') {
		return '0'
	}
	return raw[0]
}

func isAbsent(raw json.RawMessage) bool {
	k := jsonKind(raw)
	return k == 0 || k == 'n'
}

// jsonString decodes a JSON string value. Strings without escapes, nearly
// all of them, are sliced out of the raw bytes instead of going through
// encoding/json, which would validate the value a second time.
func jsonString(raw json.RawMessage) (string, bool) {
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
func object(m Messages, field string, raw json.RawMessage, w any) bool {
	if jsonKind(raw) != '{' || json.Unmarshal(raw, w) != nil {
		m.add(field, msgObject(field))
		return false
	}
	return true
}

// text reads a string field. It reports a message and returns ok=false when the
// value has the wrong type, is too long or holds a NUL (Postgres text cannot).
func text(m Messages, field string, raw json.RawMessage, required bool, maxLen int) (string, bool) {
	if isAbsent(raw) {
		if required {
			m.add(field, msgRequired(field))
			return "", false
		}
		return "", true
	}
	s, ok := jsonString(raw)
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

func email(m Messages, raw json.RawMessage) string {
	s, ok := text(m, "email", raw, false, MaxEmailLen)
	if !ok || s == "" {
		return ""
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || addr.Name != "" || !strings.Contains(s[strings.LastIndexByte(s, '@'):], ".") {
		m.add("email", MsgEmail)
		return ""
	}
	return s
}

// earliestBirthDate keeps obvious typos (0199-01-01) out of the data.
var earliestBirthDate = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

func dateOfBirth(m Messages, raw json.RawMessage, today time.Time) time.Time {
	const field = "date_of_birth"
	s, ok := text(m, field, raw, false, 10)
	if !ok || s == "" {
		return time.Time{}
	}
	d, err := time.Parse(time.DateOnly, s)
	switch {
	case err != nil || len(s) != len(time.DateOnly):
		m.add(field, "The date of birth field must be a real date in the format YYYY-MM-DD.")
	case !d.Before(today):
		m.add(field, "The date of birth field must be a date before today.")
	case d.Before(earliestBirthDate):
		m.add(field, "The date of birth field must be a date after 1900-01-01.")
	default:
		return d
	}
	return time.Time{}
}

// ssnLast4 accepts 4 digits as a string ("0123") or as a number (9098); a
// number cannot carry a leading zero, so 123 is three digits and rejected.
func ssnLast4(m Messages, raw json.RawMessage) string {
	const msg = "The ssn last4 field must be exactly 4 digits."
	switch jsonKind(raw) {
	case 0, 'n':
		return ""
	case '0':
		s := string(bytes.TrimSpace(raw))
		if len(s) == 4 && isDigits(s) {
			return s
		}
	case '"':
		if s, ok := jsonString(raw); ok && len(s) == 4 && isDigits(s) {
			return s
		}
	}
	m.add("ssn_last4", msg)
	return ""
}

// money reads a balance: a JSON number or a numeric string, at least zero,
// with at most two decimal places.
func money(m Messages, field string, raw json.RawMessage, required bool) (Money, bool) {
	var lit string
	switch jsonKind(raw) {
	case 0, 'n':
		if required {
			m.add(field, msgRequired(field))
			return 0, false
		}
		return 0, true
	case '0':
		lit = string(bytes.TrimSpace(raw))
	case '"':
		lit, _ = jsonString(raw) // "" when broken, which ParseMoney rejects
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

func billingType(m Messages, raw json.RawMessage) []string {
	const field = "billing_type"
	if isAbsent(raw) {
		m.add(field, msgRequired(field))
		return nil
	}
	var items []json.RawMessage
	if jsonKind(raw) != '[' || json.Unmarshal(raw, &items) != nil {
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
		s, ok := jsonString(it)
		if !ok || !knownBillingType(s) {
			m.add(field, MsgBillingTypeChoice)
			return nil
		}
		out = append(out, s)
	}
	return out
}

func knownBillingType(s string) bool {
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
func metadata(m Messages, raw json.RawMessage) json.RawMessage {
	const field = "metadata"
	if isAbsent(raw) {
		return nil
	}
	var obj map[string]json.RawMessage
	if !object(m, field, raw, &obj) {
		return nil
	}
	if len(obj) > MaxMetadataKeys {
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
		val, valid := metadataValue(m, field+"."+k, v)
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

func metadataValue(m Messages, field string, raw json.RawMessage) (any, bool) {
	switch jsonKind(raw) {
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
		return json.Number(lit), true
	case '"':
		s, ok := text(m, field, raw, false, MaxMetadataValueLen)
		return s, ok
	}
	m.add(field, "The "+label(field)+" field must be a string, number, boolean or null.")
	return nil, false
}

// address accepts an object of the known address fields and returns it
// re-encoded with only those fields.
func address(m Messages, raw json.RawMessage) json.RawMessage {
	const field = "address"
	if isAbsent(raw) {
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
	if !object(m, field, raw, &w) {
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
		s, valid := text(m, field+"."+f.name, f.raw, false, MaxAddressFieldLen)
		ok = ok && valid
		if valid && !isAbsent(f.raw) {
			clean[f.name] = s
		}
	}
	switch jsonKind(w.IsPrimary) {
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
