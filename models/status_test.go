package models_test

import (
	"encoding/json"
	"testing"

	"github.com/bulkd/bulkd/models"
)

// A bulk is finished once completed, failed or canceled, never while
// pending or processing; the status reads and writes as its plain name.
func TestBulkStatusFinished(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status   models.BulkStatus
		name     string
		finished bool
	}{
		{models.StatusPending, "pending", false},
		{models.StatusProcessing, "processing", false},
		{models.StatusCompleted, "completed", true},
		{models.StatusFailed, "failed", true},
		{models.StatusCanceled, "canceled", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.status.Finished(); got != tc.finished {
				t.Errorf("%s.Finished() = %v, want %v", tc.status, got, tc.finished)
			}
			b, err := json.Marshal(tc.status)
			if err != nil || string(b) != `"`+tc.name+`"` {
				t.Errorf("JSON %s, %v; want %q", b, err, tc.name)
			}
		})
	}
}
