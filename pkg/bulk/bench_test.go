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

// The Reference benchmarks measure the encoding/json implementation that
// DecodeSubmission and ParseRow replaced, so that a run compares the two on
// the same machine at the same moment.

func referenceParse(n int, raw json.RawMessage, opts bulk.Options) *bulk.Row {
	return bulk.ReferenceParseRow(n, raw, opts.Today)
}

func BenchmarkDecodeAndValidate1000RowsReference(b *testing.B) {
	benchmarkDecodeAndValidate(b, bulk.ReferenceDecodeSubmission, referenceParse)
}

func BenchmarkDecodeSubmission1000Rows(b *testing.B) {
	benchmarkDecodeAndValidate(b, bulk.DecodeSubmission, nil)
}

func BenchmarkDecodeSubmission1000RowsReference(b *testing.B) {
	benchmarkDecodeAndValidate(b, bulk.ReferenceDecodeSubmission, nil)
}

func BenchmarkParseRow1000Rows(b *testing.B) {
	benchmarkDecodeAndValidate(b, nil, bulk.ParseRow)
}

func BenchmarkParseRow1000RowsReference(b *testing.B) {
	benchmarkDecodeAndValidate(b, nil, referenceParse)
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
