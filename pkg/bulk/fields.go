package bulk

import (
	"bytes"
	"encoding/json"
	"math"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bulkd/bulkd/pkg/jsonscan"
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

func isAbsent(raw json.RawMessage) bool {
	k := jsonscan.Kind(raw)
	return k == 0 || k == 'n'
}

// jsonString decodes a JSON string value.
func jsonString(raw json.RawMessage) (string, bool) {
	if jsonscan.Kind(raw) != '"' {
		return "", false
	}
	return string(jsonscan.Unquote(raw)), true
}

// text reads a string field. It reports a message and returns ok=false when the
// value has the wrong type, is too long or holds a NUL (Postgres text cannot).
func text(m Messages, field string, raw json.RawMessage, required bool, maxLen int) (string, bool) {
	s, problem := readText(raw, required, maxLen)
	if problem != textOK {
		m.add(field, problem.message(field, maxLen))
		return "", false
	}
	return string(s), true
}

// textProblem is what makes a string field fail.
type textProblem uint8

const (
	textOK textProblem = iota
	textRequired
	textNotString
	textNUL
	textTooLong
)

func (p textProblem) message(field string, maxLen int) string {
	switch p {
	case textRequired:
		return msgRequired(field)
	case textNotString:
		return msgString(field)
	case textNUL:
		return msgNoNUL(field)
	default:
		return msgMaxChars(field, maxLen)
	}
}

// readText is text without the message, for callers that name the field only
// when it fails. The string it returns may share raw's bytes.
func readText(raw json.RawMessage, required bool, maxLen int) ([]byte, textProblem) {
	switch jsonscan.Kind(raw) {
	case 0, 'n':
		if required {
			return nil, textRequired
		}
		return nil, textOK
	case '"':
	default:
		return nil, textNotString
	}
	s := jsonscan.Unquote(raw)
	switch {
	case required && len(bytes.TrimSpace(s)) == 0:
		return nil, textRequired
	case bytes.IndexByte(s, 0) >= 0:
		return nil, textNUL
	case len(s) > maxLen && utf8.RuneCount(s) > maxLen:
		return nil, textTooLong
	}
	return s, textOK
}

func email(m Messages, raw json.RawMessage) string {
	s, ok := text(m, "email", raw, false, MaxEmailLen)
	if !ok || s == "" {
		return ""
	}
	if !validEmail(s) {
		m.add("email", MsgEmail)
		return ""
	}
	return s
}

// validEmail tells whether s is a plain address, name@domain.tld: the local
// part a dot-atom as net/mail reads it (no quoted local parts, no comments),
// the domain a host name of at least two labels. A domain literal
// (a@[127.0.0.1]) or a numeric "top-level domain" (a@1.2) is no address an
// email to a customer can reach.
func validEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at < 0 || !dotAtom(s[:at]) || !hostName(s[at+1:]) {
		return false
	}
	addr, err := mail.ParseAddress(s)
	return err == nil && addr.Address == s && addr.Name == ""
}

// dotAtom tells whether s is atoms of atext joined by single dots (RFC 5322
// 3.2.3, with UTF-8 as RFC 6532 and net/mail allow).
func dotAtom(s string) bool {
	if s == "" {
		return false
	}
	for atom := range strings.SplitSeq(s, ".") {
		if atom == "" {
			return false
		}
		for _, r := range atom {
			if r < utf8.RuneSelf && (r <= ' ' || r == 0x7f || strings.ContainsRune(`()<>[]:;@\,"`, r)) {
				return false
			}
		}
	}
	return true
}

// hostName tells whether s is at least two dot-separated labels of letters,
// digits and hyphens (letters and marks beyond ASCII for internationalised
// names), each of 1 to 63 characters and neither starting nor ending with a
// hyphen, the last not all digits.
func hostName(s string) bool {
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || utf8.RuneCountInString(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			ok := r == '-' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' ||
				r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsMark(r))
			if !ok {
				return false
			}
		}
	}
	return !isDigits(labels[len(labels)-1])
}

// earliestBirthDate keeps obvious typos (0199-01-01) out of the data: a date
// of birth must be after it.
var earliestBirthDate = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

func dateOfBirth(m Messages, raw json.RawMessage, today time.Time) time.Time {
	const field = "date_of_birth"
	// Any length is read, so that a timestamp gets the format message.
	b, problem := readText(raw, false, math.MaxInt)
	if problem != textOK {
		m.add(field, problem.message(field, 0))
		return time.Time{}
	}
	if len(b) == 0 {
		return time.Time{}
	}
	s := string(b)
	d, err := time.Parse(time.DateOnly, s)
	switch {
	case err != nil || len(s) != len(time.DateOnly):
		m.add(field, "The date of birth field must be a real date in the format YYYY-MM-DD.")
	case !d.Before(today):
		m.add(field, "The date of birth field must be a date before today.")
	case !d.After(earliestBirthDate):
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
	switch jsonscan.Kind(raw) {
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
	switch jsonscan.Kind(raw) {
	case 0, 'n':
		if required {
			m.add(field, msgRequired(field))
			return 0, false
		}
		return 0, true
	case '0':
		lit = string(raw)
	case '"':
		lit, _ = jsonString(raw)
	}
	v, err := ParseMoney(lit) // "" for other types, which it rejects
	switch err {
	case nil:
		return v, true
	case errMoneyNegative:
		m.add(field, "The "+Label(field)+" field must be at least 0.")
	case errMoneyPlaces:
		m.add(field, "The "+Label(field)+" field must have at most 2 decimal places.")
	case errMoneyTooLarge:
		m.add(field, "The "+Label(field)+" field must not be greater than "+MaxMoney.String()+".")
	default:
		m.add(field, "The "+Label(field)+" field must be a number.")
	}
	return 0, false
}

func billingType(m Messages, raw json.RawMessage) []string {
	const field = "billing_type"
	if isAbsent(raw) {
		m.add(field, msgRequired(field))
		return nil
	}
	if jsonscan.Kind(raw) != '[' {
		m.add(field, msgList(field))
		return nil
	}
	var buf [MaxBillingTypes + 1]json.RawMessage
	items := buf[:0]
	for item := range jsonscan.Elements(raw) {
		if items = append(items, item); len(items) > MaxBillingTypes {
			break // too many, however many more there are
		}
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
		b, ok := knownBillingType(it)
		if !ok {
			m.add(field, MsgBillingTypeChoice)
			return nil
		}
		if !slices.Contains(out, b) { // a set: each type once, in the order first sent
			out = append(out, b)
		}
	}
	return out
}

// knownBillingType finds the billing type that raw names, a string of
// BillingTypes, so that accepted values share its strings.
func knownBillingType(raw json.RawMessage) (string, bool) {
	if jsonscan.Kind(raw) != '"' {
		return "", false
	}
	s := jsonscan.Unquote(raw)
	for _, b := range BillingTypes {
		if string(s) == b {
			return b, true
		}
	}
	return "", false
}

// metadata accepts an object whose values are scalars and returns it
// re-encoded as encoding/json encodes a map, keys sorted, so that what reaches
// jsonb is always valid (broken escapes such as lone surrogates become U+FFFD,
// which Postgres would otherwise reject).
func metadata(m Messages, raw json.RawMessage) json.RawMessage {
	const field = "metadata"
	if isAbsent(raw) {
		return nil
	}
	if jsonscan.Kind(raw) != '{' {
		m.add(field, msgObject(field))
		return nil
	}
	// Members are counted as they are read, duplicates included, so that
	// an object of a million keys costs no more than one of 51. The buffer
	// holds a usual object's keys without allocating.
	var buf [8]metadataMember
	entries := buf[:0]
	for key, value := range jsonscan.Members(raw) {
		if len(entries) == MaxMetadataKeys {
			m.add(field, msgMetadataKeys)
			return nil
		}
		entries = append(entries, metadataMember{jsonscan.Unquote(key), value})
	}
	// Like a map, the object holds each key once: the last value given.
	slices.SortStableFunc(entries, func(a, b metadataMember) int { return bytes.Compare(a.key, b.key) })
	distinct := entries[:0]
	for i, e := range entries {
		if i+1 < len(entries) && bytes.Equal(e.key, entries[i+1].key) {
			continue // a later value of the same key wins
		}
		distinct = append(distinct, e)
	}

	// If any key or value fails, what was written is dropped.
	out := make([]byte, 0, len(raw))
	out = append(out, '{')
	ok := true
	for i, e := range distinct {
		if utf8.RuneCount(e.key) > MaxMetadataKeyLen || bytes.IndexByte(e.key, 0) >= 0 || len(e.key) == 0 {
			m.add(field, "The metadata keys must be 1 to "+strconv.Itoa(MaxMetadataKeyLen)+" characters without NUL.")
			ok = false
			continue
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(jsonscan.AppendString(out, e.key), ':')
		var valid bool
		out, valid = appendMetadataValue(out, m, e.key, e.value)
		ok = ok && valid
	}
	if !ok {
		return nil
	}
	return append(out, '}')
}

var msgMetadataKeys = "The metadata field must not have more than " + strconv.Itoa(MaxMetadataKeys) + " keys."

// metadataMember is a key of a metadata object, decoded, and its value.
type metadataMember struct {
	key   []byte
	value json.RawMessage
}

// appendMetadataValue appends the value of a metadata key when it is a scalar
// that Postgres can store; otherwise it records why under metadata.<key>.
func appendMetadataValue(out []byte, m Messages, key []byte, raw json.RawMessage) ([]byte, bool) {
	field := func() string { return "metadata." + string(key) }
	switch jsonscan.Kind(raw) {
	case 'n', 't', 'f':
		return append(out, raw...), true
	case '0':
		if !finite(raw) {
			m.add(field(), "The "+Label(field())+" field must be a finite number.")
			return out, false
		}
		if !fitsNumeric(raw) {
			m.add(field(), "The "+Label(field())+" field must be a number with at most "+strconv.Itoa(maxNumericScale)+
				" decimal places and an exponent between -"+strconv.Itoa(maxNumericScale)+" and "+strconv.Itoa(maxNumericScale)+".")
			return out, false
		}
		return append(out, raw...), true
	case '"':
		s, problem := readText(raw, false, MaxMetadataValueLen)
		if problem != textOK {
			m.add(field(), problem.message(field(), MaxMetadataValueLen))
			return out, false
		}
		return jsonscan.AppendString(out, s), true
	}
	m.add(field(), "The "+Label(field())+" field must be a string, number, boolean or null.")
	return out, false
}

// finite tells whether float64 holds the JSON number lit: whether
// strconv.ParseFloat reads it without overflowing. Most numbers are short
// and without exponent, and then surely finite.
func finite(lit []byte) bool {
	if len(lit) <= 300 && !bytes.ContainsAny(lit, "eE") {
		return true // below 10^300, far from float64's largest, 1.8e308
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	return err == nil && !math.IsInf(f, 0)
}

// maxNumericScale is the most digits after the decimal point that Postgres
// numeric, and so a number in jsonb, can hold (NUMERIC_DSCALE_MAX).
const maxNumericScale = 16383

// fitsNumeric tells whether Postgres can store a JSON number literal in jsonb.
// A literal that float64 reads can still overflow numeric's scale ("1e-20000",
// which float64 reads as 0) or its exponent ("0e99999999999"), and Postgres
// would then reject the whole import. The bounds were checked against
// Postgres 15: '1e-16383'::jsonb is stored, '1.5e-16383'::jsonb is not.
func fitsNumeric(lit []byte) bool {
	mant, exp := lit, 0
	if i := bytes.IndexAny(lit, "eE"); i >= 0 {
		e, err := strconv.Atoi(string(lit[i+1:]))
		if err != nil || e < -maxNumericScale || e > maxNumericScale {
			return false
		}
		mant, exp = lit[:i], e
	}
	_, frac, _ := bytes.Cut(mant, []byte("."))
	return len(frac)-exp <= maxNumericScale
}

// address accepts an object of the known address fields and returns it
// re-encoded with only those fields, as encoding/json encodes a map.
func (p parser) address(m Messages, pointer string, raw json.RawMessage) json.RawMessage {
	const field = "address"
	if isAbsent(raw) {
		return nil
	}
	var w struct {
		Name, Line1, Line2, City, State, PostalCode, Country, IsPrimary json.RawMessage
	}
	if jsonscan.Kind(raw) != '{' {
		m.add(field, msgObject(field))
		return nil
	}
	jsonscan.ReadFields(raw, []jsonscan.Field{
		{Name: "name", Value: &w.Name}, {Name: "line1", Value: &w.Line1}, {Name: "line2", Value: &w.Line2},
		{Name: "city", Value: &w.City}, {Name: "state", Value: &w.State}, {Name: "postal_code", Value: &w.PostalCode},
		{Name: "country", Value: &w.Country}, {Name: "is_primary", Value: &w.IsPrimary},
	}, p.unknown(m, pointer, field+"."))
	// Written in the order of their names, as encoding/json sorts a map's
	// keys; if any field fails, what was written is dropped.
	out := make([]byte, 0, len(raw))
	out = append(out, '{')
	ok := true
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{
		{"city", w.City}, {"country", w.Country}, {"is_primary", w.IsPrimary}, {"line1", w.Line1},
		{"line2", w.Line2}, {"name", w.Name}, {"postal_code", w.PostalCode}, {"state", w.State},
	} {
		if isAbsent(f.raw) {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(jsonscan.AppendString(out, f.name), ':')
		if f.name == "is_primary" {
			if k := jsonscan.Kind(f.raw); k != 't' && k != 'f' {
				m.add(field+".is_primary", msgBoolean(field+".is_primary"))
				ok = false
			}
			out = append(out, f.raw...)
			continue
		}
		s, problem := readText(f.raw, false, MaxAddressFieldLen)
		if problem != textOK {
			m.add(field+"."+f.name, problem.message(field+"."+f.name, MaxAddressFieldLen))
			ok = false
		}
		out = jsonscan.AppendString(out, s)
	}
	if !ok {
		return nil
	}
	return append(out, '}')
}
