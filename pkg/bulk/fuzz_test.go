package bulk_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// Hostile inputs small enough to list here; the large ones (10 000 levels of
// nesting, 10 000 metadata keys, megabyte strings) are in testdata/fuzz.
var hostileRows = []string{
	``, ` `, `{`, `}`, `{"customer":`, `{"customer":{"name":"a"`, `{"customer":{}}}`, `{} {}`, `{},`,
	`null`, `true`, `0`, `-0`, `1e309`, `"row"`, `[]`, `[{}]`, `{}`,
	`{"customer":null,"location":null,"debt_accounts":null,"parent_debt_accounts":null}`,
	`{"customer":1,"location":"x","debt_accounts":{},"parent_debt_accounts":true}`,
	`{"customer":[],"location":[],"debt_accounts":[1,"a",null,[],true],"parent_debt_accounts":[{}]}`,
	`{"customer":{"external_id":1,"name":[],"email":{},"phone":true,"date_of_birth":19900101,"ssn_last4":[9098],"address":[],"metadata":"m"}}`,
	`{"customer":{"external_id":"c","name":"n","address":{"city":1,"is_primary":"yes","line1":null}}}`,
	`{"customer":{"external_id":"c","name":"n","metadata":{"":1,"a\u0000":1,"n":{"x":1},"l":[1],"big":1e309,"neg":-0,"tiny":1e-400}}}`,
	`{"customer":{"external_id":"c","name":"n","metadata":{"a":"\u0000","b":"\ud800","c":"\udc00\ud800","d":"<script>&</script>","e":"\u2028"}}}`,
	`{"customer":{"external_id":"c","name":"n","metadata":{"z":1e-20000,"y":0e-20000,"x":0e99999999999}}}`,
	`{"customer":{"external_id":"a\u0000b","name":"\ud800","email":"a@b.c\u0000","phone":"\udfff\ud800"}}`,
	`{"customer":{"external_id":"'; DROP TABLE customers; --","name":"<img src=x onerror=alert(1)>","email":"\"a@b\"@c.d"}}`,
	`{"customer":{"external_id":"c","name":"n","email":"a@b","date_of_birth":"0000-00-00","ssn_last4":-123}}`,
	`{"customer":{"external_id":"c","name":"n","date_of_birth":"1899-12-31","ssn_last4":1e3}}`,
	`{"customer":{"external_id":"c","name":"n","date_of_birth":"2026-02-29","ssn_last4":"١٢٣٤"}}`,
	`{"customer":{"external_id":"first","EXTERNAL_ID":"second","Name":"n","name":"last"}}`,
	`{"customer":{"external_id":"c","ſſn_laſt4":"12","\u006eame":"n"}}`,
	`{"customer":{"external_id":"c","name":"n"},"customer":{"name":"no id"}}`,
	`{"location":{"external_id":"l","external_id":null}}`,
	`{"debt_accounts":[{"external_id":"a","balance":-0,"billing_type":["full-payment"]}]}`,
	`{"debt_accounts":[{"external_id":"a","balance":1e309,"current_balance":-1e-309,"billing_type":["settlement","settlement"]}]}`,
	`{"debt_accounts":[{"external_id":"a","balance":"999999999999.99","current_balance":"1e12","billing_type":[]}]}`,
	`{"debt_accounts":[{"external_id":"a","balance":0.1e1,"current_balance":"0.001","billing_type":[1,2,3,4,5,6,7,8,9,10,11]}]}`,
	`{"debt_accounts":[{"external_id":"a","balance":"  1","current_balance":"+1","billing_type":"full-payment"}]}`,
	`{"debt_accounts":[{"external_id":"a","balance":100000000000000000000000000000000000000000000000000000000000000000000001}]}`,
	`{"debt_accounts":[{"external_id":"a","parent_external_id":"a"},{"external_id":"b","parent_external_id":"a"}]}`,
	`{"parent_debt_accounts":[{"external_id":"p","parent_external_id":"q"}],"debt_accounts":[{"external_id":"p","parent_external_id":"p"}]}`,
	`{"customer":{"external_id":"\xff","name":"\xc0\x80"}}`,
	"{\"customer\":{\"external_id\":\"c\",\"name\":\"n\x00\"}}",
	"\t\r\n {\"customer\":{}} \n",
	"{\"customer\"\x00:{}}",
	"\xef\xbb\xbf{}",
}

var hostileBodies = []string{
	``, ` `, `[`, `]`, `[]`, ` [ ] `, `[{}]`, `[{},]`, `[,{}]`, `[{}`, `[{}}`, `[{}] [{}]`, `[{}] x`, `[{}] 1e400`,
	`{}`, `{"rows":[]}`, `"rows"`, `"rows`, `1`, `1e400`, `-`, `true`, `tru`, `nul`, `null`, `[null]`, `[1,"a",[]]`,
	`[{"a":"\ud800"}]`, "[{\"a\":\"\xff\"}]", "[\"\xff\", x]", "[{}\x00]", "\xef\xbb\xbf[{}]", `[1 2]`, `[{} {}]`,
}

func FuzzDecodeSubmission(f *testing.F) {
	f.Add(testenv.SeedExample(f))
	for _, body := range hostileBodies {
		f.Add([]byte(body))
	}
	for _, row := range hostileRows {
		f.Add([]byte("[" + row + "]"))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rows, err := bulk.DecodeSubmission(bytes.NewReader(body))
		checkSubmission(t, body, rows, err)
		if err == nil {
			checkReportsRoundTrip(t, rows)
		}

		// The outcome cannot depend on how the body arrives.
		for name, r := range map[string]io.Reader{
			"one byte at a time": iotest.OneByteReader(bytes.NewReader(body)),
			"EOF with the data":  iotest.DataErrReader(bytes.NewReader(body)),
		} {
			got, gotErr := bulk.DecodeSubmission(r)
			if !errors.Is(gotErr, err) || (err == nil) != (gotErr == nil) {
				t.Fatalf("%s: err = %v, want %v", name, gotErr, err)
			}
			if diff := cmp.Diff(rows, got, sameBytes); diff != "" {
				t.Fatalf("%s: rows differ (-whole +%[1]s):\n%s", name, diff)
			}
		}

		// A reader that fails part way (a body over the size limit, a dropped
		// connection) either has its error returned, or the bytes it delivered
		// already decided the outcome, as they would have on their own.
		boom := errors.New("connection reset")
		cut := len(body) / 2
		_, err = bulk.DecodeSubmission(io.MultiReader(bytes.NewReader(body[:cut]), iotest.ErrReader(boom)))
		if !errors.Is(err, boom) {
			_, alone := bulk.DecodeSubmission(bytes.NewReader(body[:cut]))
			if alone == nil || !errors.Is(err, alone) {
				t.Fatalf("failing reader: err = %v, but the delivered bytes alone give %v", err, alone)
			}
		}
	})
}

// sameBytes compares JSON as bytes, much faster than cmp's element by
// element, while still telling an absent value (nil) from an empty one.
var sameBytes = cmp.Comparer(func(a, b json.RawMessage) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
})

var documentedErrors = []error{bulk.ErrNotJSON, bulk.ErrNotArray, bulk.ErrInvalidUTF8, bulk.ErrNoRows, bulk.ErrTooManyRows, bulk.ErrRowLimit}

// checkSubmission holds DecodeSubmission's result for body against what
// encoding/json makes of the same bytes.
func checkSubmission(t *testing.T, body []byte, rows []json.RawMessage, err error) {
	t.Helper()
	if err != nil {
		if rows != nil {
			t.Fatalf("rows returned with error %v", err)
		}
		if !slices.ContainsFunc(documentedErrors, func(e error) bool { return errors.Is(err, e) }) {
			t.Fatalf("undocumented error %v", err)
		}
	}

	// A body that is valid JSON has one right answer.
	if json.Valid(body) {
		var elems []json.RawMessage
		switch {
		case bytes.TrimLeft(body, " \t\r\n")[0] != '[':
			if !errors.Is(err, bulk.ErrNotArray) {
				t.Fatalf("valid JSON that is not an array: err = %v, want ErrNotArray", err)
			}
		default:
			if err := json.Unmarshal(body, &elems); err != nil {
				t.Fatal(err)
			}
			// The rows are checked in order: the first over MaxRows, the first
			// that is not UTF-8 or the first over a limit of its own or of the
			// bulk's decides.
			var want error
			firstBad := len(elems)
			for i, e := range elems {
				if i == bulk.MaxRows {
					want, firstBad = bulk.ErrTooManyRows, i
					break
				}
				if !utf8.Valid(e) {
					want, firstBad = bulk.ErrInvalidUTF8, i
					break
				}
			}
			if want == nil && len(elems) == 0 {
				want = bulk.ErrNoRows
			}
			if limit := (bulk.LimitError{}); errors.As(err, &limit) {
				checkLimitError(t, elems[:firstBad], limit)
			} else if !errors.Is(err, want) || (want == nil) != (err == nil) {
				t.Fatalf("array of %d rows: err = %v, want %v", len(elems), err, want)
			}
			if err == nil {
				if diff := cmp.Diff(elems, rows, sameBytes); diff != "" {
					t.Fatalf("rows differ from encoding/json's (-want +got):\n%s", diff)
				}
			}
		}
	}
	if err != nil {
		return
	}

	if len(rows) == 0 || len(rows) > bulk.MaxRows {
		t.Fatalf("%d rows accepted", len(rows))
	}
	for i, row := range rows {
		if !json.Valid(row) || !utf8.Valid(row) {
			t.Fatalf("row %d is not valid JSON in UTF-8: %q", i+1, row)
		}
	}
	// The body is exactly these rows, in order, between brackets and commas:
	// nothing was skipped, reordered or invented.
	rest := bytes.TrimLeft(body, " \t\r\n")
	sep := byte('[')
	for i, row := range rows {
		if len(rest) == 0 || rest[0] != sep {
			t.Fatalf("before row %d: want %q in %q", i+1, sep, rest)
		}
		rest = bytes.TrimLeft(rest[1:], " \t\r\n")
		if !bytes.HasPrefix(rest, row) {
			t.Fatalf("row %d = %q is not what the body holds: %q", i+1, row, rest)
		}
		rest = bytes.TrimLeft(rest[len(row):], " \t\r\n")
		sep = ','
	}
	if string(bytes.TrimRight(rest, " \t\r\n")) != "]" {
		t.Fatalf("after the rows: %q", rest)
	}
	// Rows put back into an array decode to the same rows.
	again, err := bulk.DecodeSubmission(bytes.NewReader(joinRows(rows)))
	if err != nil {
		t.Fatalf("rows re-joined: %v", err)
	}
	if diff := cmp.Diff(rows, again, sameBytes); diff != "" {
		t.Fatalf("rows re-joined decode differently (-first +again):\n%s", diff)
	}
}

// joinRows is the body of rows: an array of them.
func joinRows(rows []json.RawMessage) []byte {
	body := []byte("[")
	for i, row := range rows {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, row...)
	}
	return append(body, ']')
}

// checkLimitError holds a LimitError to what a client relies on: it names,
// as a JSON pointer and in a sentence, one of the rows (candidates, those
// before any other problem of the body), and the rows before that one are a
// body within every limit.
func checkLimitError(t *testing.T, candidates []json.RawMessage, limit bulk.LimitError) {
	t.Helper()
	rest, ok := strings.CutPrefix(limit.Field, "#/")
	index, section, _ := strings.Cut(rest, "/")
	i, err := strconv.Atoi(index)
	if !ok || err != nil || i < 0 || i >= len(candidates) || strconv.Itoa(i) != index ||
		(section != "" && section != "parent_debt_accounts" && section != "debt_accounts") {
		t.Fatalf("limit error %q on %s: not a row among the %d before any other problem", limit.Message, limit.Field, len(candidates))
	}
	row := "ow " + strconv.Itoa(i+1) // Row 3 is…, Row 3: the…, row 3 brings…
	if !strings.Contains(limit.Message, row+" ") && !strings.Contains(limit.Message, row+":") || !strings.HasSuffix(limit.Message, ".") {
		t.Fatalf("limit error on %s does not name row %d in a sentence: %q", limit.Field, i+1, limit.Message)
	}
	if i > 0 {
		if _, err := bulk.DecodeSubmission(bytes.NewReader(joinRows(candidates[:i]))); err != nil {
			t.Fatalf("limit error on %s, yet the rows before it alone give %v", limit.Field, err)
		}
	}
}

func FuzzParseRow(f *testing.F) {
	for _, row := range testenv.SeedRows(f) {
		f.Add([]byte(row))
	}
	for _, row := range hostileRows {
		f.Add([]byte(row))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r := bulk.ParseRow(1, raw, bulk.Options{Today: today})
		if again := bulk.ParseRow(1, raw, bulk.Options{Today: today}); !cmp.Equal(r, again, sameBytes) {
			t.Fatalf("parsing is not deterministic:\n%s", cmp.Diff(r, again, sameBytes))
		}
		checkRow(t, raw, r)
		checkStrict(t, raw, r, bulk.ParseRow(1, raw, bulk.Options{Today: today, Strict: true}))

		// The row twice in a bulk: every id of the second is taken by the first.
		rows := bulk.ParseRows([]json.RawMessage{raw, raw}, bulk.Options{Today: today})
		if !cmp.Equal(r, rows[0], sameBytes) {
			t.Fatalf("ParseRows differs from ParseRow:\n%s", cmp.Diff(r, rows[0], sameBytes))
		}
		p := bulk.NewPlan(uuid.New(), rows, bulk.Existing{}, bulk.Options{Today: today})
		checkPlan(t, p)
		for _, row := range rows {
			errs, _ := row.Errors()
			if _, err := json.Marshal(errs); err != nil {
				t.Fatalf("errors report does not encode: %v", err)
			}
		}
		// A row a body may carry has a report that encodes and reads back.
		if _, err := bulk.DecodeSubmission(bytes.NewReader(joinRows([]json.RawMessage{raw}))); err == nil && json.Valid(raw) {
			checkReportsRoundTrip(t, []json.RawMessage{raw})
		}
	})
}

// checkReportsRoundTrip holds the rows of an accepted body to what
// GET /api/v1/bulk/{id}/errors relies on: each row's errors report encodes,
// and wrapped as the endpoint wraps it, with the row as its payload, reads
// back as JSON (no object is nested beyond what encoding/json accepts).
func checkReportsRoundTrip(t *testing.T, raw []json.RawMessage) {
	t.Helper()
	for i, row := range bulk.ParseRows(raw, bulk.Options{Today: today}) {
		errs, _ := row.Errors()
		report, err := json.Marshal(errs)
		if err != nil {
			t.Fatalf("row %d: errors report does not encode: %v", i+1, err)
		}
		page, err := json.Marshal(map[string]any{"data": []map[string]any{
			{"id": i + 1, "payload": row.Raw, "errors": json.RawMessage(report)},
		}})
		if err != nil {
			t.Fatalf("row %d: errors page does not encode: %v", i+1, err)
		}
		var back struct {
			Data []struct {
				Payload json.RawMessage `json:"payload"`
				Errors  json.RawMessage `json:"errors"`
			} `json:"data"`
		}
		if err := json.Unmarshal(page, &back); err != nil || len(back.Data) != 1 {
			t.Fatalf("row %d: errors page does not read back: %v", i+1, err)
		}
		// reflect, not cmp: cmp's slice diff takes time exponential in the
		// nesting of equal arrays.
		if got, want := decodeNumbers(t, back.Data[0].Payload), decodeNumbers(t, row.Raw); !reflect.DeepEqual(got, want) {
			t.Fatalf("row %d: payload read back differs:\n%.500v\nwant\n%.500v", i+1, got, want)
		}
		if got, want := decodeNumbers(t, back.Data[0].Errors), decodeNumbers(t, report); !reflect.DeepEqual(got, want) {
			t.Fatalf("row %d: errors read back differ:\n%.500v\nwant\n%.500v", i+1, got, want)
		}
	}
}

// decodeNumbers decodes JSON keeping numbers as written (1e309 included).
func decodeNumbers(t *testing.T, raw []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("does not decode: %v: %.200q", err, raw)
	}
	return v
}

// checkRow holds a parsed row to the package's rules: an object that does not
// parse says why under the field it concerns, and whatever is accepted is
// within the limits the store relies on.
func checkRow(t *testing.T, raw []byte, r *bulk.Row) {
	t.Helper()
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	isObject := json.Valid(raw) && len(trimmed) > 0 && trimmed[0] == '{'
	if !isObject {
		want := bulk.Messages{"row": {bulk.MsgRowNotObject}}
		if diff := cmp.Diff(want, r.Customer.Messages); diff != "" || r.Location != nil || r.DebtAccounts != nil || r.ParentDebtAccounts != nil {
			t.Fatalf("not an object: got %+v (-want +got):\n%s", r, diff)
		}
		return
	}
	if r.Customer == nil || r.Location == nil {
		t.Fatalf("object row without customer or location: %+v", r)
	}

	// encoding/json reads the external ids the same way, when they are strings.
	var wire struct {
		Customer struct {
			ExternalID any `json:"external_id"`
		} `json:"customer"`
		Location struct {
			ExternalID any `json:"external_id"`
		} `json:"location"`
		ParentDebtAccounts any `json:"parent_debt_accounts"`
		DebtAccounts       any `json:"debt_accounts"`
	}
	_ = json.Unmarshal(raw, &wire) // partial on a type mismatch, which is all we need
	if !r.Customer.Failed() && wire.Customer.ExternalID != r.Customer.Value.ExternalID {
		t.Fatalf("customer external id %q, encoding/json reads %q", r.Customer.Value.ExternalID, wire.Customer.ExternalID)
	}
	if !r.Location.Failed() && wire.Location.ExternalID != r.Location.Value.ExternalID {
		t.Fatalf("location external id %q, encoding/json reads %q", r.Location.Value.ExternalID, wire.Location.ExternalID)
	}
	for _, s := range []struct {
		wire  any
		items []*bulk.Input[bulk.DebtAccount]
	}{{wire.ParentDebtAccounts, r.ParentDebtAccounts}, {wire.DebtAccounts, r.DebtAccounts}} {
		switch w := s.wire.(type) {
		case nil:
			if s.items != nil {
				t.Fatalf("absent debt accounts parsed as %d", len(s.items))
			}
		case []any:
			if len(w) != len(s.items) {
				t.Fatalf("%d debt accounts parsed from %d", len(s.items), len(w))
			}
		default:
			if len(s.items) != 1 || !s.items[0].Failed() {
				t.Fatalf("debt accounts that are not a list: %+v", s.items)
			}
		}
	}

	checkMessages(t, "customer", r.Customer.Messages, customerFields)
	checkMessages(t, "location", r.Location.Messages, locationFields)
	for i, a := range r.ParentDebtAccounts {
		checkMessages(t, "parent_debt_accounts."+strconv.Itoa(i), a.Messages, accountFields)
	}
	for i, a := range r.DebtAccounts {
		checkMessages(t, "debt_accounts."+strconv.Itoa(i), a.Messages, accountFields)
	}

	if c := r.Customer; !c.Failed() {
		v := c.Value
		checkText(t, "customer.external_id", v.ExternalID, true, bulk.MaxExternalIDLen)
		checkText(t, "customer.name", v.Name, true, bulk.MaxNameLen)
		checkText(t, "customer.email", v.Email, false, bulk.MaxEmailLen)
		checkText(t, "customer.phone", v.Phone, false, bulk.MaxPhoneLen)
		if v.Email != "" && !strings.Contains(v.Email, "@") {
			t.Fatalf("customer.email %q accepted", v.Email)
		}
		earliest := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
		if d := v.DateOfBirth; !d.IsZero() && (d.Before(earliest) || !d.Before(today)) {
			t.Fatalf("customer.date_of_birth %v accepted", d)
		}
		if s := v.SSNLast4; s != "" && (len(s) != 4 || strings.Trim(s, "0123456789") != "") {
			t.Fatalf("customer.ssn_last4 %q accepted", s)
		}
		checkAddress(t, v.Address)
		checkMetadata(t, "customer.metadata", v.Metadata)
	}
	if l := r.Location; !l.Failed() {
		checkText(t, "location.external_id", l.Value.ExternalID, true, bulk.MaxExternalIDLen)
		checkText(t, "location.name", l.Value.Name, false, bulk.MaxNameLen)
	}
	ids := map[string]bool{}
	for _, a := range r.ParentDebtAccounts {
		ids[a.Value.ExternalID] = true
		if !a.Failed() && a.Value.ParentExternalID != "" {
			t.Fatalf("parent debt account accepted with a parent: %+v", a.Value)
		}
	}
	for _, a := range r.DebtAccounts {
		if a.Value.ParentExternalID == "" {
			ids[a.Value.ExternalID] = true
		}
	}
	for _, list := range [][]*bulk.Input[bulk.DebtAccount]{r.ParentDebtAccounts, r.DebtAccounts} {
		for _, a := range list {
			if a.Failed() {
				continue
			}
			v := a.Value
			checkText(t, "debt_account.external_id", v.ExternalID, true, bulk.MaxExternalIDLen)
			checkText(t, "debt_account.parent_external_id", v.ParentExternalID, false, bulk.MaxExternalIDLen)
			checkText(t, "debt_account.external_account_number", v.ExternalAccountNumber, false, bulk.MaxAccountNumberLen)
			if v.ParentExternalID != "" && !ids[v.ParentExternalID] {
				t.Fatalf("debt account accepted under unknown parent %q", v.ParentExternalID)
			}
			for _, m := range []bulk.Money{v.Balance, v.CurrentBalance} {
				if m < 0 || m > bulk.MaxMoney {
					t.Fatalf("balance %d accepted", m)
				}
			}
			if len(v.BillingType) == 0 || len(v.BillingType) > bulk.MaxBillingTypes {
				t.Fatalf("%d billing types accepted", len(v.BillingType))
			}
			for _, b := range v.BillingType {
				if !slices.Contains(bulk.BillingTypes, b) {
					t.Fatalf("billing type %q accepted", b)
				}
			}
			checkMetadata(t, "debt_account.metadata", v.Metadata)
		}
	}
}

// checkStrict holds the strict reading of a row to its lax one: strict mode
// only refuses keys. An object it accepts reads as without it; every message
// it adds refuses a key, at a pointer; and an object that repeats one of its
// fields' keys (or a row one of its sections) fails.
func checkStrict(t *testing.T, raw []byte, lax, strict *bulk.Row) {
	t.Helper()
	if lax.Location == nil { // not an object: nothing to refuse
		if !cmp.Equal(lax, strict, sameBytes) {
			t.Fatalf("strict reading of a row that is no object differs:\n%s", cmp.Diff(lax, strict, sameBytes))
		}
		return
	}
	checkStrictObject(t, "customer", &lax.Customer.Messages, &strict.Customer.Messages, lax.Customer.Value, strict.Customer.Value)
	checkStrictObject(t, "location", &lax.Location.Messages, &strict.Location.Messages, lax.Location.Value, strict.Location.Value)

	row := exactMembers(t, raw)
	if repeats(row, "customer", "location", "parent_debt_accounts", "debt_accounts") && !strict.Customer.Failed() {
		t.Fatalf("strict: a row repeating a section's key passes: %v", strict.Customer.Messages)
	}
	if c := row["customer"]; len(c) > 0 && jsonKind(c[len(c)-1]) == '{' && !strict.Customer.Failed() &&
		repeats(exactMembers(t, c[len(c)-1]), "external_id", "name", "email", "phone", "date_of_birth", "ssn_last4", "address", "metadata") {
		t.Fatalf("strict: a customer repeating a field's key passes")
	}
	if l := row["location"]; len(l) > 0 && jsonKind(l[len(l)-1]) == '{' && !strict.Location.Failed() &&
		repeats(exactMembers(t, l[len(l)-1]), "external_id", "name") {
		t.Fatalf("strict: a location repeating a field's key passes")
	}
	for _, section := range []struct {
		name        string
		lax, strict []*bulk.Input[bulk.DebtAccount]
	}{{"parent_debt_accounts", lax.ParentDebtAccounts, strict.ParentDebtAccounts}, {"debt_accounts", lax.DebtAccounts, strict.DebtAccounts}} {
		values := row[section.name]
		var items []json.RawMessage
		if len(values) > 0 && jsonKind(values[len(values)-1]) == '[' {
			if err := json.Unmarshal(values[len(values)-1], &items); err != nil {
				t.Fatal(err)
			}
		}
		for i, a := range section.strict {
			if i >= len(section.lax) {
				t.Fatalf("strict reads %d accounts of %s, lax %d", len(section.strict), section.name, len(section.lax))
			}
			checkStrictObject(t, section.name, &section.lax[i].Messages, &a.Messages, section.lax[i].Value, a.Value)
			if i < len(items) && jsonKind(items[i]) == '{' && !a.Failed() && repeats(exactMembers(t, items[i]), "external_id",
				"parent_external_id", "external_account_number", "balance", "current_balance", "billing_type", "metadata") {
				t.Fatalf("strict: account %d of %s repeating a field's key passes", i, section.name)
			}
		}
	}
}

// refusal is a message of strict mode refusing a key.
var refusal = regexp.MustCompile(`^#(/[a-z_0-9]+)*: ((extraneous|duplicate) key \[.*\]|more extraneous keys) (is|are) not permitted$`)

// checkStrictObject holds one object's strict reading to its lax one.
func checkStrictObject[T any](t *testing.T, object string, lax, strict *bulk.Messages, laxValue, strictValue T) {
	t.Helper()
	if len(*strict) == 0 {
		if len(*lax) > 0 {
			t.Fatalf("%s: strict accepts what lax refuses: %v", object, *lax)
		}
		if !cmp.Equal(laxValue, strictValue, sameBytes) {
			t.Fatalf("%s: strict reads otherwise:\n%s", object, cmp.Diff(laxValue, strictValue, sameBytes))
		}
	}
	for field, msgs := range *strict {
		for _, msg := range msgs {
			if !slices.Contains((*lax)[field], msg) && !refusal.MatchString(msg) && msg != bulk.MsgMoreProblems {
				t.Fatalf("%s.%s: strict message %q is neither lax's nor a refused key's", object, field, msg)
			}
		}
	}
}

// exactMembers reads the members of a JSON object by their exact keys, as
// encoding/json's Decoder gives them, every value of a repeated key in
// order; nil when raw is no object.
func exactMembers(t *testing.T, raw []byte) map[string][]json.RawMessage {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	out := map[string][]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		out[tok.(string)] = append(out[tok.(string)], v)
	}
	return out
}

// repeats tells whether members hold one of keys more than once.
func repeats(members map[string][]json.RawMessage, keys ...string) bool {
	return slices.ContainsFunc(keys, func(k string) bool { return len(members[k]) > 1 })
}

// jsonKind is the first byte of a JSON value.
func jsonKind(v json.RawMessage) byte {
	if v = bytes.TrimLeft(v, " \t\r\n"); len(v) == 0 {
		return 0
	}
	return v[0]
}

var (
	addressFields  = []string{"name", "line1", "line2", "city", "state", "postal_code", "country", "is_primary"}
	customerFields = append([]string{"customer", "external_id", "name", "email", "phone", "date_of_birth", "ssn_last4", "address", "metadata"},
		prefixed("address.", addressFields)...)
	locationFields = []string{"location", "external_id", "name"}
	accountFields  = []string{"debt_account", "parent_debt_accounts", "debt_accounts", "external_id", "parent_external_id",
		"external_account_number", "balance", "current_balance", "billing_type", "metadata"}
)

func prefixed(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}

// checkMessages requires every message to sit under a field of the object
// (or under metadata.<key> for a metadata value, or "*" for the note that
// there are more), to read as a sentence, and to be at most
// MaxMessagesPerObject and that note.
func checkMessages(t *testing.T, object string, m bulk.Messages, fields []string) {
	t.Helper()
	n := 0
	for _, msgs := range m {
		n += len(msgs)
	}
	if n > bulk.MaxMessagesPerObject+1 || (n == bulk.MaxMessagesPerObject+1) != (m["*"] != nil) {
		t.Fatalf("%s: %d messages: %v", object, n, m)
	}
	for field, msgs := range m {
		key, isMetadata := strings.CutPrefix(field, "metadata.")
		if !slices.Contains(fields, field) && !(isMetadata && validMetadataKey(key)) && field != "*" {
			t.Fatalf("%s: message under unknown field %q: %v", object, field, msgs)
		}
		if len(msgs) == 0 {
			t.Fatalf("%s.%s: empty list of messages", object, field)
		}
		for _, msg := range msgs {
			if !strings.HasPrefix(msg, "The ") || !strings.HasSuffix(msg, ".") || !utf8.ValidString(msg) {
				t.Fatalf("%s.%s: message %q does not read as one", object, field, msg)
			}
		}
	}
}

func validMetadataKey(k string) bool {
	return k != "" && utf8.RuneCountInString(k) <= bulk.MaxMetadataKeyLen && !strings.ContainsRune(k, 0)
}

// checkText holds an accepted string to what a Postgres text column takes.
func checkText(t *testing.T, field, s string, required bool, maxLen int) {
	t.Helper()
	switch {
	case !utf8.ValidString(s), strings.ContainsRune(s, 0), utf8.RuneCountInString(s) > maxLen,
		required && strings.TrimSpace(s) == "":
		t.Fatalf("%s %q accepted", field, s)
	}
}

func checkAddress(t *testing.T, raw json.RawMessage) {
	t.Helper()
	if raw == nil {
		return
	}
	var addr map[string]any
	if err := json.Unmarshal(raw, &addr); err != nil || !utf8.Valid(raw) || bytes.Contains(raw, []byte(`\u0000`)) {
		t.Fatalf("customer.address is not JSON for jsonb: %q", raw)
	}
	for k, v := range addr {
		if !slices.Contains(addressFields, k) {
			t.Fatalf("customer.address kept unknown field %q", k)
		}
		switch v := v.(type) {
		case bool:
			if k != "is_primary" {
				t.Fatalf("customer.address.%s is a boolean", k)
			}
		case string:
			checkText(t, "customer.address."+k, v, false, bulk.MaxAddressFieldLen)
		default:
			t.Fatalf("customer.address.%s is %T", k, v)
		}
	}
}

// checkMetadata holds accepted metadata to the limits and to what Postgres
// jsonb accepts: no \u0000, and numbers that numeric can hold.
func checkMetadata(t *testing.T, field string, raw json.RawMessage) {
	t.Helper()
	if raw == nil {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || !utf8.Valid(raw) || bytes.Contains(raw, []byte(`\u0000`)) || obj == nil {
		t.Fatalf("%s is not a JSON object for jsonb: %q", field, raw)
	}
	if len(obj) > bulk.MaxMetadataKeys {
		t.Fatalf("%s: %d keys accepted", field, len(obj))
	}
	for k, v := range obj {
		if !validMetadataKey(k) {
			t.Fatalf("%s: key %q accepted", field, k)
		}
		switch v := v.(type) {
		case nil, bool:
		case string:
			checkText(t, field+"."+k, v, false, bulk.MaxMetadataValueLen)
		case json.Number:
			if f, err := v.Float64(); err != nil || !fitsNumeric(string(v)) {
				t.Fatalf("%s.%s: number %s (%v) accepted", field, k, v, f)
			}
		default:
			t.Fatalf("%s.%s: %T accepted", field, k, v)
		}
	}
}

// fitsNumeric tells whether Postgres numeric (and so jsonb) can hold a JSON
// number: its display scale, the digits after the point once the exponent is
// applied, is at most 16383, and the exponent stays within ±16383 (beyond
// that, even zero overflows: '0e99999999999'::jsonb fails).
func fitsNumeric(lit string) bool {
	mant, exp, _ := strings.Cut(strings.ToLower(lit), "e")
	e := 0
	if exp != "" {
		n, err := strconv.Atoi(exp)
		if err != nil || n < -16383 || n > 16383 {
			return false
		}
		e = n
	}
	_, frac, _ := strings.Cut(mant, ".")
	return len(frac)-e <= 16383
}

// checkPlan holds a plan to what the store relies on: each debt account
// written once, only accepted objects written, parents written first.
func checkPlan(t *testing.T, p *bulk.Plan) {
	t.Helper()
	written := map[uuid.UUID]bool{}
	extIDs := map[string]bool{}
	for _, a := range p.DebtAccounts {
		if extIDs[a.ExternalID] {
			t.Fatalf("debt account %q planned twice", a.ExternalID)
		}
		extIDs[a.ExternalID] = true
		if a.ParentID != uuid.Nil && !written[a.ParentID] {
			t.Fatalf("debt account %q planned before its parent", a.ExternalID)
		}
		written[a.ID] = true
	}
	for _, r := range p.Results {
		for _, list := range [][]bulk.ObjectResult{r.ParentDebtAccounts, r.DebtAccounts} {
			for _, a := range list {
				if a.Failed() != (len(a.Messages) > 0) {
					t.Fatalf("row %d: debt account %q action %q with messages %v", r.Row, a.ExternalID, a.Action, a.Messages)
				}
				if a.Action == bulk.ActionCreated && !written[a.ID] {
					t.Fatalf("row %d: debt account %q created but not planned", r.Row, a.ExternalID)
				}
			}
		}
	}
}
