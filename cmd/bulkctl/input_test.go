package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readAll reads every row and bad line of an input.
func readAll(t *testing.T, format, input string) (rows []row, bad []*lineError, err error) {
	t.Helper()
	rr, err := newRowReader(strings.NewReader(input), format)
	if err != nil {
		return nil, nil, err
	}
	for {
		r, err := rr.Next()
		if err == io.EOF {
			return rows, bad, nil
		}
		var le *lineError
		if errors.As(err, &le) {
			bad = append(bad, le)
			if le.Fatal {
				return rows, bad, nil
			}
			continue
		}
		if err != nil {
			return rows, bad, err
		}
		rows = append(rows, r)
	}
}

// compact is a JSON text without its spaces, to compare.
func compact(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return b.String()
}

const nestedCSV = `customer.external_id,customer.name,customer.email,customer.ssn_last4,customer.address.city,customer.address.is_primary,customer.metadata.tier,location.external_id,location.name,debt_account.external_id,debt_account.parent_external_id,debt_account.balance,debt_account.current_balance,debt_account.billing_type,debt_account.external_account_number,debt_account.metadata.source
c-1,Ann Lee,ann@example.com,0123,Lyon,true,gold,loc-1,Main,p-1,,100.00,,settlement,N-1,crm
c-1,,,,,,,,,a-1,p-1,12.5,10,full-payment|payment-plan,,
c-2,"Bo ""B"" Chen",,,,,,loc-1,,,,,,,,
c-3,Cy,,,,,,loc-2,,a-3,,abc,,settlement,,
`

func TestCSVRowsFollowTheColumns(t *testing.T) {
	rows, bad, err := readAll(t, formatCSV, nestedCSV)
	if err != nil || len(bad) != 0 {
		t.Fatalf("rows %v, bad %v, err %v", rows, bad, err)
	}
	want := []string{
		`{"customer":{"external_id":"c-1","name":"Ann Lee","email":"ann@example.com","ssn_last4":"0123","address":{"city":"Lyon","is_primary":true},"metadata":{"tier":"gold"}},
		  "location":{"external_id":"loc-1","name":"Main"},
		  "debt_accounts":[{"external_id":"p-1","balance":100.00,"billing_type":["settlement"],"external_account_number":"N-1","metadata":{"source":"crm"}},
		                   {"external_id":"a-1","parent_external_id":"p-1","balance":12.5,"current_balance":10,"billing_type":["full-payment","payment-plan"]}]}`,
		`{"customer":{"external_id":"c-2","name":"Bo \"B\" Chen"},"location":{"external_id":"loc-1"},"debt_accounts":[]}`,
		// A balance that is no number is sent as text, for the server to name.
		`{"customer":{"external_id":"c-3","name":"Cy"},"location":{"external_id":"loc-2"},"debt_accounts":[{"external_id":"a-3","balance":"abc","billing_type":["settlement"]}]}`,
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(rows), len(want))
	}
	for i, r := range rows {
		if got := compact(t, string(r.JSON)); got != compact(t, want[i]) {
			t.Errorf("row %d:\n got %s\nwant %s", i+1, got, compact(t, want[i]))
		}
	}
	if rows[0].Line != 2 || rows[1].Line != 4 || rows[2].Line != 5 || rows[0].Accounts != 2 || *rows[0].Customer != "c-1" {
		t.Errorf("lines %d %d %d, accounts %d", rows[0].Line, rows[1].Line, rows[2].Line, rows[0].Accounts)
	}
	// The spans are the row's lines, exactly.
	first := nestedCSV[rows[0].Spans[0].Start:rows[0].Spans[0].End]
	if len(rows[0].Spans) != 1 || !strings.HasPrefix(first, "c-1,Ann") || strings.Count(first, "\n") != 2 {
		t.Errorf("spans of row 1: %v %q", rows[0].Spans, first)
	}
}

func TestCSVHeaderMustNameKnownColumns(t *testing.T) {
	for _, tc := range []struct{ header, want string }{
		{"customer.external_id,customer.nickname,debt_account.colour", `unknown columns "customer.nickname", "debt_account.colour"`},
		{"customer.name,location.external_id", "no customer.external_id column"},
		{"customer.external_id,customer.name,customer.name", "names customer.name twice"},
		{"customer.external_id,debt_account.metadata.", `unknown columns "debt_account.metadata."`},
	} {
		_, _, err := readAll(t, formatCSV, tc.header+"\nc-1,x,y\n")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "line 1: ") {
			t.Errorf("header %q: %v, want it to say %q", tc.header, err, tc.want)
		}
	}
	if _, _, err := readAll(t, formatCSV, "\ufeffcustomer.external_id,customer.metadata.a.b\nc-1,x\n"); err != nil {
		t.Errorf("a byte-order mark and a dotted metadata key: %v", err)
	}
}

func TestCSVBadLinesAreNamedAndLeftOut(t *testing.T) {
	input := "customer.external_id,customer.name,debt_account.external_id,debt_account.balance\n" +
		"c-1,Ann,a-1,1\n" +
		"c-1,Ann,a-2\n" + // a field short
		"c-1,Bo,a-3,3\n" + // another name for the same customer
		",Cy,a-4,4\n" + // no customer
		"c-1,,a-5,\"5\n" + // an unterminated quote runs to the end
		""
	rows, bad, err := readAll(t, formatCSV, input)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range bad {
		got = append(got, b.Error())
	}
	want := []string{
		"line 3: 3 fields, but the header has 4 columns",
		`line 4: customer.name is "Bo" here but "Ann" on line 2, the customer's first line; leave it empty or the same`,
		"line 5: customer.external_id is empty; it names the customer the line belongs to",
	}
	if len(got) != 4 || !cmp.Equal(got[:3], want) || !strings.HasPrefix(got[3], "line 6: not valid CSV") {
		t.Errorf("bad lines:\n%s", strings.Join(got, "\n"))
	}
	if len(rows) != 1 || compact(t, string(rows[0].JSON)) != `{"customer":{"external_id":"c-1","name":"Ann"},"debt_accounts":[{"external_id":"a-1","balance":1}]}` {
		t.Errorf("rows %+v", rows)
	}
}

func TestCSVCustomerLinesMustBeTogether(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "in.csv")
	input := "customer.external_id,debt_account.external_id\nc-1,a-1\nc-2,a-2\nc-1,a-3\nc-3,a-4\nc-2,a-5\n"
	if err := os.WriteFile(path, []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := planInput(path, formatCSV, submitOptions{rows: 1000})
	if err == nil || !strings.Contains(err.Error(), `line 4: customer "c-1"'s lines are not together: they start at line 2, and again here`) ||
		!strings.Contains(err.Error(), `line 6: customer "c-2"'s lines are not together: they start at line 3`) {
		t.Fatalf("a customer in two places: %v", err)
	}
	if err := os.WriteFile(path, []byte("customer.external_id,debt_account.external_id\nc-1,a-1\nc-1,a-3\nc-2,a-2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := planInput(path, formatCSV, submitOptions{rows: 1000})
	if err != nil || p.rows != 2 || p.bulks != 1 || len(p.sha256) != 64 {
		t.Fatalf("sorted: %+v, %v", p, err)
	}
}

func TestCSVRowOfMoreThan100AccountsIsCut(t *testing.T) {
	var b strings.Builder
	b.WriteString("customer.external_id,debt_account.external_id\n")
	for i := range 101 {
		b.WriteString("c-1,a-" + string(rune('0'+i%10)) + "\n")
	}
	rows, bad, err := readAll(t, formatCSV, b.String())
	if err != nil || len(rows) != 1 || rows[0].Accounts != 100 || len(bad) != 1 || bad[0].Line != 102 {
		t.Fatalf("rows %d (%d accounts), bad %v, %v", len(rows), rows[0].Accounts, bad, err)
	}
}

func TestNDJSONRows(t *testing.T) {
	input := "{\"customer\":{\"external_id\":\"c-1\"}}\n\n  {\"customer\":{\"external_id\":\"c-2\"}}  \r\n[1]\n{\"a\":\n{\"customer\":{\"name\":\"\xff\"}}\n{\"customer\":{}}"
	rows, bad, err := readAll(t, formatNDJSON, input)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[1].Line != 3 || string(rows[1].JSON) != `{"customer":{"external_id":"c-2"}}` || rows[2].Line != 7 {
		t.Fatalf("rows %+v", rows)
	}
	var got []string
	for _, b := range bad {
		got = append(got, b.Error())
	}
	want := []string{"line 4: a row must be a JSON object", "line 5: not valid JSON", "line 6: not UTF-8 text"}
	if !cmp.Equal(got, want) {
		t.Errorf("bad lines %q", got)
	}
}

func TestJSONRows(t *testing.T) {
	input := "[\n  {\"customer\": {\"external_id\": \"c-1\"}},\n  {\"customer\":\n    {\"external_id\": \"c-2\"}},\n  7\n]\n"
	rows, bad, err := readAll(t, formatJSON, input)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Line != 2 || rows[1].Line != 3 || input[rows[1].Spans[0].Start:rows[1].Spans[0].End] != "{\"customer\":\n    {\"external_id\": \"c-2\"}}" {
		t.Fatalf("rows %+v", rows)
	}
	if len(bad) != 1 || bad[0].Error() != "line 5: a row must be a JSON object" {
		t.Fatalf("bad %v", bad)
	}
	for _, tc := range []struct{ input, want string }{
		{"[\n{\"a\":1},\n{\"a\" 2}\n]", "line 3: not valid JSON"},
		{"[\n{\"a\":1}", "line 2: the JSON array ends before its closing bracket"},
		{"{\"a\":1}", "line 1: a JSON input must be one array of rows"},
		{"[]\n[]", "line 2: data after the array's closing bracket"},
		{"", "line 1: the file is empty"},
	} {
		_, bad, _ := readAll(t, formatJSON, tc.input)
		if len(bad) != 1 || !bad[0].Fatal || !strings.HasPrefix(bad[0].Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.input, bad, tc.want)
		}
	}
}

func TestSplitterBoundsEachBulk(t *testing.T) {
	s := splitter{maxRows: 1000}
	bulks := 0
	for range 2500 {
		if s.add(row{JSON: []byte(`{}`), Accounts: 2}) {
			bulks++
		}
	}
	if bulks != 3 {
		t.Errorf("2500 rows in %d bulks, want 3", bulks)
	}
	s, bulks = splitter{maxRows: 1000}, 0
	for range 5 {
		if s.add(row{JSON: []byte(`{}`), Accounts: 100 * 50}) { // 5000 accounts a row
			bulks++
		}
	}
	if bulks != 2 {
		t.Errorf("25 000 accounts in %d bulks, want 2 (20 000 at most a bulk)", bulks)
	}
	s, bulks = splitter{maxRows: 1000}, 0
	big := make([]byte, 6<<20)
	for range 3 {
		if s.add(row{JSON: big, Accounts: -1}) {
			bulks++
		}
	}
	if bulks != 2 {
		t.Errorf("3 rows of 6 MiB in %d bulks, want 2", bulks)
	}
}

// TestCSVWrittenFromRowsReadsBack: rows written as CSV from their JSON (a
// resubmit file without the input) read back as the same rows.
func TestCSVWrittenFromRowsReadsBack(t *testing.T) {
	rows, _, err := readAll(t, formatCSV, nestedCSV)
	if err != nil {
		t.Fatal(err)
	}
	var payloads [][]byte
	for _, r := range rows {
		payloads = append(payloads, r.JSON)
	}
	var b bytes.Buffer
	if err := writeCSVRows(&b, payloads); err != nil {
		t.Fatal(err)
	}
	again, bad, err := readAll(t, formatCSV, b.String())
	if err != nil || len(bad) != 0 || len(again) != len(rows) {
		t.Fatalf("read back %d rows, bad %v, err %v:\n%s", len(again), bad, err, b.String())
	}
	for i := range rows {
		var want, got any
		_ = json.Unmarshal(rows[i].JSON, &want)
		_ = json.Unmarshal(again[i].JSON, &got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("row %d read back (-want +got):\n%s", i+1, diff)
		}
	}
}
