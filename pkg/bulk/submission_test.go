package bulk_test

import (
	"errors"
	"io"
	"strings"
	"testing"

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
