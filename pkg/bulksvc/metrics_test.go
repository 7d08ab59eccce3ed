package bulksvc_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/metrics"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// bulkd_rows_imported_total counts the rows an import wrote: an upsert of
// rows that change nothing (reported unchanged) writes none and adds none,
// while it is still a bulk finished.
func TestRowsImportedCountsRowsWritten(t *testing.T) {
	t.Parallel()
	db := testenv.NewDatabase(t)
	org, err := db.Store.CreateOrganization(t.Context(), "Acme", "ops@acme.example")
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(nil)
	svc := bulksvc.New(db.Store, nil, discard, m)
	upsert := func() {
		t.Helper()
		sub, err := svc.Submit(t.Context(), bulksvc.Submission{OrganizationID: org.ID, Rows: testenv.SeedRows(t),
			Options: bulk.Options{Mode: bulk.ModeUpsert}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Import(t.Context(), sub.Bulk.ID); err != nil {
			t.Fatal(err)
		}
	}
	upsert()
	written := testutil.ToFloat64(m.RowsImported)
	if written != 1 {
		t.Fatalf("rows imported after the first upsert: %v, want 1", written)
	}
	upsert() // the same row again: unchanged
	if got := testutil.ToFloat64(m.RowsImported); got != written {
		t.Errorf("rows imported after an upsert that wrote nothing: %v, want %v", got, written)
	}
	if got := testutil.ToFloat64(m.BulksFinished.WithLabelValues("completed", "upsert")); got != 2 {
		t.Errorf("upserts finished: %v, want 2", got)
	}
}
