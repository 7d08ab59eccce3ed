package bulk_test

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulkgen"
)

func BenchmarkDecodeAndValidate1000Rows(b *testing.B) {
	body := bulkgen.Body(bulkgen.Options{Seed: 1, Rows: 1000, Accounts: 3})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		raw, err := bulk.DecodeSubmission(bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		for i, r := range raw {
			if row := bulk.ParseRow(i+1, r, bulk.Options{Today: today}); row.Customer.Failed() {
				b.Fatal(row.Customer.Messages)
			}
		}
	}
}

func BenchmarkPlan1000Rows(b *testing.B) {
	raw, err := bulk.DecodeSubmission(bytes.NewReader(bulkgen.Body(bulkgen.Options{Seed: 1, Rows: 1000, Accounts: 3})))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		rows := make([]*bulk.Row, len(raw))
		for i, r := range raw {
			rows[i] = bulk.ParseRow(i+1, r, bulk.Options{Today: today})
		}
		b.StartTimer()
		if p := bulk.NewPlan(uuid.New(), rows, bulk.Existing{}, bulk.Options{Today: today}); len(p.DebtAccounts) != 3000 {
			b.Fatalf("planned %d accounts", len(p.DebtAccounts))
		}
	}
}

// The EncodingJSON benchmarks do the same work with encoding/json, the
// baseline that pkg/jsonscan replaced: the body read as []json.RawMessage by a
// Decoder, and each row unmarshalled into a struct of the known fields, so
// that a run compares the two on the same machine at the same moment. They
// do not validate: what they measure is the reading alone.

// decodeEncodingJSON reads the body as DecodeSubmission does, an array
// token by token, each row one value.
func decodeEncodingJSON(r io.Reader) ([]json.RawMessage, error) {
	dec := json.NewDecoder(r)
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	var rows []json.RawMessage
	for dec.More() {
		var row json.RawMessage
		if err := dec.Decode(&row); err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return rows, nil
}

type wireAccount struct {
	ExternalID            string          `json:"external_id"`
	ParentExternalID      string          `json:"parent_external_id"`
	ExternalAccountNumber string          `json:"external_account_number"`
	Balance               json.Number     `json:"balance"`
	CurrentBalance        json.Number     `json:"current_balance"`
	BillingType           []string        `json:"billing_type"`
	Metadata              json.RawMessage `json:"metadata"`
}

type wireRow struct {
	Customer struct {
		ExternalID  string          `json:"external_id"`
		Name        string          `json:"name"`
		Email       string          `json:"email"`
		Phone       string          `json:"phone"`
		DateOfBirth string          `json:"date_of_birth"`
		SSNLast4    json.RawMessage `json:"ssn_last4"`
		Address     json.RawMessage `json:"address"`
		Metadata    json.RawMessage `json:"metadata"`
	} `json:"customer"`
	Location struct {
		ExternalID string `json:"external_id"`
		Name       string `json:"name"`
	} `json:"location"`
	ParentDebtAccounts []wireAccount `json:"parent_debt_accounts"`
	DebtAccounts       []wireAccount `json:"debt_accounts"`
}

// parseEncodingJSON unmarshals a row into its known fields; a row that does
// not read fails its customer, as ParseRow would.
func parseEncodingJSON(n int, raw json.RawMessage, _ bulk.Options) *bulk.Row {
	r := &bulk.Row{Number: n, Raw: raw, Customer: &bulk.Input[bulk.Customer]{}}
	var w wireRow
	if err := json.Unmarshal(raw, &w); err != nil {
		r.Customer.Messages = bulk.Messages{"row": {err.Error()}}
	}
	return r
}

func BenchmarkDecodeAndValidate1000RowsEncodingJSON(b *testing.B) {
	benchmarkDecodeAndValidate(b, decodeEncodingJSON, parseEncodingJSON)
}

func BenchmarkDecodeSubmission1000Rows(b *testing.B) {
	benchmarkDecodeAndValidate(b, bulk.DecodeSubmission, nil)
}

func BenchmarkDecodeSubmission1000RowsEncodingJSON(b *testing.B) {
	benchmarkDecodeAndValidate(b, decodeEncodingJSON, nil)
}

func BenchmarkParseRow1000Rows(b *testing.B) {
	benchmarkDecodeAndValidate(b, nil, bulk.ParseRow)
}

func BenchmarkParseRow1000RowsEncodingJSON(b *testing.B) {
	benchmarkDecodeAndValidate(b, nil, parseEncodingJSON)
}

// benchmarkDecodeAndValidate decodes a generated bulk of 1000 rows, when
// decode is given, and parses its rows, when parse is given.
func benchmarkDecodeAndValidate(b *testing.B,
	decode func(io.Reader) ([]json.RawMessage, error),
	parse func(int, json.RawMessage, bulk.Options) *bulk.Row,
) {
	body := bulkgen.Body(bulkgen.Options{Seed: 1, Rows: 1000, Accounts: 3})
	rows, err := bulk.DecodeSubmission(bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if decode != nil {
			if rows, err = decode(bytes.NewReader(body)); err != nil {
				b.Fatal(err)
			}
		}
		if parse == nil {
			continue
		}
		for i, r := range rows {
			if row := parse(i+1, r, bulk.Options{Today: today}); row.Customer.Failed() {
				b.Fatal(row.Customer.Messages)
			}
		}
	}
}
