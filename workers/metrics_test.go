package workers_test

import (
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/metrics"
	"github.com/bulkd/bulkd/pkg/webhook"
	"github.com/bulkd/bulkd/workers"
	"github.com/bulkd/bulkd/workers/tasks"
)

// Every series of bulkd_deliveries_total that a delivery can move is served
// at zero before its first attempt: Prometheus' increase() over a series
// that appears at 1 is 0, so the shipped alert on abandoned deliveries
// (increase(...{outcome="abandoned"}[1h]) > 0) would miss a process's first
// abandoned delivery at each attempt number.
func TestDeliverySeriesStartAtZero(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	workers.NewDeliverer(workers.DelivererConfig{Webhooks: bulksvc.NewWebhooks(nil, nil, webhook.Policy{}, discard), Log: discard, Metrics: m})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "bulkd_deliveries_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			served[labels["channel"]+"/"+labels["outcome"]+"/"+labels["attempt"]] = s.GetCounter().GetValue()
		}
	}
	for channel, attempts := range map[string]int{"email": tasks.NotificationMaxRetry + 1, "webhook": tasks.WebhookMaxRetry + 1} {
		for attempt := 1; attempt <= attempts; attempt++ {
			for _, outcome := range metrics.Outcomes {
				key := channel + "/" + outcome + "/" + strconv.Itoa(attempt)
				if v, ok := served[key]; !ok || v != 0 {
					t.Errorf("bulkd_deliveries_total{channel=%q,outcome=%q,attempt=\"%d\"}: served %v, value %v; want 0", channel, outcome, attempt, ok, v)
				}
			}
		}
	}
	if want := (tasks.NotificationMaxRetry + 1 + tasks.WebhookMaxRetry + 1) * len(metrics.Outcomes); len(served) != want {
		t.Errorf("%d delivery series, want %d", len(served), want)
	}
}
