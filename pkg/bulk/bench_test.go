package bulk_test

import (
	"bytes"
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
			if row := bulk.ParseRow(i+1, r, today); row.Customer.Failed() {
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
			rows[i] = bulk.ParseRow(i+1, r, today)
		}
		b.StartTimer()
		if p := bulk.NewPlan(uuid.New(), rows, bulk.Existing{}); len(p.DebtAccounts) != 3000 {
			b.Fatalf("planned %d accounts", len(p.DebtAccounts))
		}
	}
}
