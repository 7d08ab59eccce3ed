package bulk_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulkd/bulkd/pkg/bulk"
)

func TestRowErrorsLines(t *testing.T) {
	t.Parallel()
	var e bulk.RowErrors
	err := json.Unmarshal([]byte(`{
		"customer": [{"data": {"external_id": "c-1", "email": "x@"}, "messages": {"name": ["The name field is required."], "email": ["The email field must be a valid email address."]}}],
		"location": [],
		"parent_debt_accounts": [],
		"debt_accounts": [
			{"data": {"external_id": 7}, "messages": {"external_id": ["The external id field must be a string."]}},
			{"data": {"external_id": "a-2"}, "messages": {"external_id": ["The external id has already been taken."]}}
		]}`), &e)
	if err != nil {
		t.Fatal(err)
	}
	want := []bulk.ErrorLine{
		{Row: 4, Section: "customer", ExternalID: "c-1", Field: "email", Message: "The email field must be a valid email address."},
		{Row: 4, Section: "customer", ExternalID: "c-1", Field: "name", Message: "The name field is required."},
		{Row: 4, Section: "debt_accounts", Index: 0, ExternalID: "", Field: "external_id", Message: "The external id field must be a string."},
		{Row: 4, Section: "debt_accounts", Index: 1, ExternalID: "a-2", Field: "external_id", Message: "The external id has already been taken."},
	}
	if diff := cmp.Diff(want, e.Lines(4)); diff != "" {
		t.Errorf("Lines (-want +got):\n%s", diff)
	}
	for _, l := range e.Lines(4) {
		if strings.Contains(strings.Join(l.Record(), ","), "x@") {
			t.Errorf("a line shows a submitted value: %v", l)
		}
	}
}

func TestErrorLineExternalIDIsBounded(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 300)
	e := bulk.RowErrors{Customer: []bulk.ObjectError{{Data: json.RawMessage(`{"external_id":"` + long + `"}`), Messages: bulk.Messages{"external_id": {"m"}}}}}
	id := e.Lines(1)[0].ExternalID
	if len(id) > bulk.MaxLineExternalIDLen+len("…") || !strings.HasSuffix(id, "…") || !strings.HasPrefix(long, strings.TrimSuffix(id, "…")) {
		t.Errorf("external id of %d bytes: %d bytes %q", len(long), len(id), id)
	}
}
