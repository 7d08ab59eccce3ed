package bulk_test

import (
	"strings"
	"testing"

	"github.com/bulkd/bulkd/pkg/bulk"
)

func TestParseMoney(t *testing.T) {
	tests := []struct {
		lit     string
		want    bulk.Money
		wantErr bool
	}{
		{"0", 0, false},
		{"-0", 0, false},
		{"-0.00", 0, false},
		{"100", 10000, false},
		{"100.5", 10050, false},
		{"100.50", 10050, false},
		{"0.01", 1, false},
		{"1.005e2", 10050, false},
		{"1E2", 10000, false},
		{"12345e-2", 12345, false},
		{"1.2300000", 123, false},
		{"999999999999.99", 99_999_999_999_999, false},
		{"0e99999999999", 0, false},
		{"1000000000000", 0, true}, // 13 integer digits do not fit numeric(14,2)
		{"1e309", 0, true},
		{"1e-309", 0, true},
		{"0.001", 0, true},
		{"-1", 0, true},
		{"-0.01", 0, true},
		{"", 0, true},
		{"abc", 0, true},
		{"01", 0, true},
		{"1.", 0, true},
		{".5", 0, true},
		{"1e", 0, true},
		{"NaN", 0, true},
		{"Infinity", 0, true},
		{"1_000", 0, true},
		// Over 64 characters, read like any other literal.
		{"1." + strings.Repeat("0", 100), 100, false},
		{"0.1" + strings.Repeat("0", 100), 10, false},
		{"12.34" + strings.Repeat("0", 1<<20) + "e0", 1234, false},
		{strings.Repeat("0", 70), 0, true},
		{"0." + strings.Repeat("0", 100) + "1", 0, true},
		{"1" + strings.Repeat("0", 100), 0, true},
		{"1" + strings.Repeat("0", 100) + "e-100", 100, false},
	}
	for _, tt := range tests {
		got, err := bulk.ParseMoney(tt.lit)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseMoney(%.80q) = %d, %v; want %d, error %v", tt.lit, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestMoneyString(t *testing.T) {
	for m, want := range map[bulk.Money]string{0: "0.00", 5: "0.05", 10050: "100.50", bulk.MaxMoney: "999999999999.99"} {
		if got := m.String(); got != want {
			t.Errorf("Money(%d).String() = %q, want %q", m, got, want)
		}
	}
}
