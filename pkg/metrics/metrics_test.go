package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bulkd/bulkd/pkg/metrics"
)

// Every known label value is exported at zero before its first event, so
// that an alert's rate() over it exists from the start; the names follow
// Prometheus' conventions.
func TestSeriesStartAtZeroWithConventionalNames(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	for _, status := range metrics.FinishedStatuses {
		for _, mode := range metrics.Modes {
			if v := testutil.ToFloat64(m.BulksFinished.WithLabelValues(status, mode)); v != 0 {
				t.Errorf("finished{%s,%s} = %v", status, mode, v)
			}
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
		if !strings.HasPrefix(f.GetName(), "bulkd_") {
			t.Errorf("%s: no bulkd_ prefix", f.GetName())
		}
		switch f.GetType().String() {
		case "COUNTER":
			if !strings.HasSuffix(f.GetName(), "_total") {
				t.Errorf("counter %s does not end in _total", f.GetName())
			}
		case "HISTOGRAM":
			if !strings.HasSuffix(f.GetName(), "_seconds") {
				t.Errorf("histogram %s does not end in _seconds", f.GetName())
			}
		}
	}
	for _, want := range []string{"bulkd_bulks_submitted_total", "bulkd_bulks_finished_total", "bulkd_import_phase_duration_seconds"} {
		if !names[want] {
			t.Errorf("%s is not exported before its first event", want)
		}
	}
}

// New(nil) records into collectors registered nowhere: what a service made
// without metrics uses, so that recording never needs a nil check.
func TestUnregisteredMetricsRecord(t *testing.T) {
	t.Parallel()
	m := metrics.Or(nil)
	m.ObserveRequest("", "BREW", 200, time.Millisecond)
	m.ObserveDelivery("email", metrics.OutcomeDelivered, 1)
	if v := testutil.ToFloat64(m.HTTPRequests.WithLabelValues("unmatched", "other", "200")); v != 1 {
		t.Errorf("requests{unmatched,other,200} = %v, want 1", v)
	}
	if v := testutil.ToFloat64(m.Deliveries.WithLabelValues("email", "delivered", "1")); v != 1 {
		t.Errorf("deliveries{email,delivered,1} = %v, want 1", v)
	}
}

// BenchmarkObserveRequest is what every API request pays for its metrics.
func BenchmarkObserveRequest(b *testing.B) {
	m := metrics.New(prometheus.NewRegistry())
	for b.Loop() {
		m.ObserveRequest("/api/v1/bulk/:id", "GET", 200, 3*time.Millisecond)
	}
}
