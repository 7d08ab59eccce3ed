package bulk_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"

	"github.com/bulkd/bulkd/pkg/bulk"
)

func TestDecodeSubmission(t *testing.T) {
	thousand := "[" + strings.Repeat(`{},`, 999) + "{}]"
	tests := []struct {
		name     string
		body     string
		wantRows int
		wantErr  error
	}{
		{"one row", `[{"customer":{}}]`, 1, nil},
		{"rows keep their bytes", ` [ {"a" : 1} , 2 ] `, 2, nil},
		{"1000 rows", thousand, 1000, nil},
		{"1001 rows", "[" + strings.Repeat(`{},`, 1000) + "{}]", 0, bulk.ErrTooManyRows},
		{"empty array", `[]`, 0, bulk.ErrNoRows},
		{"empty body", ``, 0, bulk.ErrNotJSON},
		{"object", `{"customer":{}}`, 0, bulk.ErrNotArray},
		{"string", `"rows"`, 0, bulk.ErrNotArray},
		{"truncated", `[{"customer":{`, 0, bulk.ErrNotJSON},
		{"trailing comma", `[{},]`, 0, bulk.ErrNotJSON},
		{"garbage after", `[{}] [{}]`, 0, bulk.ErrNotJSON},
		{"not json", `customer=1`, 0, bulk.ErrNotJSON},
		{"invalid utf-8", "[{\"name\":\"\xff\"}]", 0, bulk.ErrInvalidUTF8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := bulk.DecodeSubmission(strings.NewReader(tt.body))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if len(rows) != tt.wantRows {
				t.Fatalf("got %d rows, want %d", len(rows), tt.wantRows)
			}
		})
	}
	rows, _ := bulk.DecodeSubmission(strings.NewReader(` [ {"a" : 1} , 2 ] `))
	if string(rows[0]) != `{"a" : 1}` {
		t.Errorf("row bytes changed: %s", rows[0])
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestDecodeSubmissionPassesReaderErrors(t *testing.T) {
	boom := errors.New("connection reset")
	_, err := bulk.DecodeSubmission(io.MultiReader(strings.NewReader(`[{"a":`), failingReader{boom}))
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the reader's error", err)
	}
}

func TestDecodeSubmissionOfValidJSONThatIsNotAnArray(t *testing.T) {
	for _, body := range []string{`{}`, `"rows"`, `null`, `1`, `1e400`, `true `} {
		if _, err := bulk.DecodeSubmission(strings.NewReader(body)); !errors.Is(err, bulk.ErrNotArray) {
			t.Errorf("%s: err = %v, want ErrNotArray", body, err)
		}
	}
}

// Rows cross the blocks a body is read into, and a row larger than a block
// grows one; however the body arrives, the rows are the same.
func TestDecodeSubmissionAcrossReads(t *testing.T) {
	huge := `{"customer":{"name":"` + strings.Repeat("é", 200_000) + `"}}`
	var body strings.Builder
	body.WriteString(" [\n")
	for i := range bulk.MaxRows {
		if i > 0 {
			body.WriteString(" ,\n")
		}
		switch i {
		case 500:
			body.WriteString(huge)
		default:
			fmt.Fprintf(&body, `{"customer":{"external_id":"c%d"},"balance":%d}`, i, i)
		}
	}
	body.WriteString("\n] ")
	var want []json.RawMessage
	if err := json.Unmarshal([]byte(body.String()), &want); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]io.Reader{
		"whole":              strings.NewReader(body.String()),
		"one byte at a time": iotest.OneByteReader(strings.NewReader(body.String())),
		"half of each read":  iotest.HalfReader(strings.NewReader(body.String())),
		"EOF with the data":  iotest.DataErrReader(strings.NewReader(body.String())),
	} {
		t.Run(name, func(t *testing.T) {
			rows, err := bulk.DecodeSubmission(r)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, rows, sameBytes); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
}

// Rows over a structural limit are refused at submit, naming the row (from
// 0 in the pointer, from 1 in the message) and the section.
func TestDecodeSubmissionLimits(t *testing.T) {
	accounts := func(n int) string { return "[" + strings.TrimSuffix(strings.Repeat("{},", n), ",") + "]" }
	nested := func(levels int) string { // a row whose balance nests to levels in all
		return `{"debt_accounts":[{"balance":` + strings.Repeat("[", levels-3) + strings.Repeat("]", levels-3) + `}]}`
	}
	tests := []struct {
		name string
		rows []string
		want error
	}{
		{"100 accounts", []string{`{"debt_accounts":` + accounts(100) + `,"parent_debt_accounts":` + accounts(100) + `}`}, nil},
		{"101 accounts", []string{`{}`, `{}`, `{"debt_accounts":` + accounts(101) + `}`},
			bulk.LimitError{Field: "#/2/debt_accounts", Message: "Row 3: the debt accounts field must not have more than 100 items."}},
		{"101 parents", []string{`{"parent_debt_accounts":` + accounts(101) + `}`},
			bulk.LimitError{Field: "#/0/parent_debt_accounts", Message: "Row 1: the parent debt accounts field must not have more than 100 items."}},
		{"another spelling", []string{`{"DEBT_ACCOUNTS":` + accounts(101) + `}`},
			bulk.LimitError{Field: "#/0/debt_accounts", Message: "Row 1: the debt accounts field must not have more than 100 items."}},
		{"an escaped spelling", []string{`{"debt\u005faccounts":` + accounts(101) + `}`},
			bulk.LimitError{Field: "#/0/debt_accounts", Message: "Row 1: the debt accounts field must not have more than 100 items."}},
		{"a duplicate key that does not win", []string{`{"debt_accounts":` + accounts(101) + `,"debt_accounts":[]}`},
			bulk.LimitError{Field: "#/0/debt_accounts", Message: "Row 1: the debt accounts field must not have more than 100 items."}},
		{"a million accounts", []string{`{"debt_accounts":` + accounts(1_000_000) + `}`},
			bulk.LimitError{Field: "#/0/debt_accounts", Message: "Row 1: the debt accounts field must not have more than 100 items."}},
		{"unknown fields are not sections", []string{`{"debt_accounts_x":` + accounts(101) + `,"customer":{"debt_accounts":` + accounts(101) + `}}`}, nil},
		{"32 levels", []string{nested(32)}, nil},
		{"33 levels", []string{`{}`, nested(33)}, bulk.LimitError{Field: "#/1", Message: "Row 2 is nested more than 32 levels deep."}},
		{"33 levels in a row that is not an object", []string{strings.Repeat("[", 33) + strings.Repeat("]", 33)},
			bulk.LimitError{Field: "#/0", Message: "Row 1 is nested more than 32 levels deep."}},
		{"brackets in strings do not count", []string{`{"a":"` + strings.Repeat("[{", 100) + `"}`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := "[" + strings.Join(tt.rows, ",") + "]"
			rows, err := bulk.DecodeSubmission(strings.NewReader(body))
			if err != tt.want {
				t.Fatalf("err = %#v, want %#v", err, tt.want)
			}
			if err != nil && (!errors.Is(err, bulk.ErrRowLimit) || rows != nil) {
				t.Fatalf("err = %v is not ErrRowLimit, or rows returned", err)
			}
			if err == nil && len(rows) != len(tt.rows) {
				t.Fatalf("%d rows", len(rows))
			}
		})
	}
}
