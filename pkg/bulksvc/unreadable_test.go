package bulksvc

import (
	"encoding/json"
	"testing"

	"github.com/bulkd/bulkd/pkg/bulk"
)

// A row whose stored result or errors cannot be sent is answered in the
// shape of every other: a failed result row, an errors report, each saying
// that it could not be read.
func TestUnreadableRowsKeepTheirShape(t *testing.T) {
	t.Parallel()
	want := `{"row":7,"status":"failed","customer":null,"location":null,"parent_debt_accounts":[],"debt_accounts":[],` +
		`"errors":{"report":["The result of this row could not be read."]}}`
	if got := string(unreadableResult(7)); got != want {
		t.Errorf("unreadable result:\n got %s\nwant %s", got, want)
	}
	var row bulk.ResultRow
	if err := json.Unmarshal(unreadableResult(7), &row); err != nil || row.Row != 7 || row.Status != bulk.RowFailed || row.Errors == nil {
		t.Errorf("as a client reads it: %+v, %v", row, err)
	}
	if got := string(unreadableErrors); got != `{"report":["The errors of this row could not be read."]}` {
		t.Errorf("unreadable errors: %s", got)
	}
	for b, ok := range map[string]bool{`{}`: true, `{"a":"é"}`: true, "{\"a\":\xff}": false, `{`: false, ``: false} {
		if sendable([]byte(b)) != ok {
			t.Errorf("sendable(%q) = %v", b, !ok)
		}
	}
}
