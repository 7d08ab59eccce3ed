package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/bulkd/bulkd/pkg/testenv"
)

// scrape is one read of a process's /metrics: each series as the
// exposition format writes it (name{label="value",...}, labels in name
// order) and its value.
type scrape map[string]float64

// scrapeMetrics reads the metrics served at addr (METRICS_ADDR) with a
// plain client: the listener is not part of the API, so its description
// does not cover it.
func scrapeMetrics(t testing.TB, addr string) scrape {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %d %v: %.300s", addr, resp.StatusCode, err, b)
	}
	out := scrape{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape %s: %q: %v", addr, line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// has tells whether a series of the metric name is there (of a histogram:
// its _count).
func (s scrape) has(name string) bool {
	for series := range s {
		if series == name || strings.HasPrefix(series, name+"{") || strings.HasPrefix(series, name+"_count") {
			return true
		}
	}
	return false
}

// waitMetric scrapes until the series' value satisfies ok.
func (s *service) waitMetric(t testing.TB, addr, series, want string, ok func(float64) bool) {
	t.Helper()
	testenv.Eventually(t, deadlineForImport, func() error {
		if v := scrapeMetrics(t, addr)[series]; !ok(v) {
			return fmt.Errorf("%s to be %s; it is %v", series, want, v)
		}
		return nil
	})
}

// Each metric an operator graphs or alerts on moves when its event happens:
// a submission, a row that fails, an import and its phases, an email
// delivered, a replayed Idempotency-Key, a request over the rate limit, a
// client waiting for its bulk. The queue's, Go's and the process's metrics
// are served beside them, on METRICS_ADDR only, and no label carries an id.
func TestMetricsMoveWithTheirEvents(t *testing.T) {
	t.Parallel()
	s := startService(t, "METRICS_ADDR="+freeAddr(t))
	metricsAddr := s.env["METRICS_ADDR"]
	orgID, key := s.newOrg(t, "Acme", "ops@acme.example")
	before := scrapeMetrics(t, metricsAddr)

	// A bulk of the seed's row and a row that fails.
	rows := append(testenv.SeedRows(t), json.RawMessage(`"not a row"`))
	body, err := json.Marshal(rows)
	if err != nil {
		t.Fatal(err)
	}
	id := s.submit(t, key, body)
	if b := s.waitCompleted(t, key, id); b["rows_failed"] != 1.0 {
		t.Fatalf("the bulk: %v", b)
	}
	s.smtp.WaitForMessages(t, 1, deadlineForEmail)
	delivered := `bulkd_deliveries_total{attempt="1",channel="email",outcome="delivered"}`
	s.waitMetric(t, metricsAddr, delivered, "1", func(v float64) bool { return v == 1 })

	// The same submission twice with an Idempotency-Key: one bulk, one
	// replay. (Each part is another organization's, whose seed records are
	// new.)
	_, idemKey := s.newOrg(t, "Twice", "ops@twice.example")
	for range 2 {
		r := s.request(t, http.MethodPost, "/api/v1/bulk", testenv.SeedExample(t), bearer(idemKey), jsonBody, "Idempotency-Key: metrics-1")
		if r.status != http.StatusAccepted && r.status != http.StatusOK {
			t.Fatalf("idempotent submit: %d %s", r.status, r.body)
		}
	}

	// Another organization's client over the rate limit (per key, so the
	// first key's requests are not held up).
	_, busyKey := s.newOrg(t, "Busy", "ops@busy.example")
	limited := false
	for i := 0; i < 1000 && !limited; i++ {
		limited = s.request(t, http.MethodGet, "/api/v1/bulk", nil, bearer(busyKey)).status == http.StatusTooManyRequests
	}
	if !limited {
		t.Fatal("1000 requests at once were never refused with 429")
	}

	// A client that waits for a bulk whose import is held on a lock: it is
	// counted while it waits, and no longer once its bulk has finished.
	_, waitKey := s.newOrg(t, "Patient", "ops@patient.example")
	lock := lockTable(t, s.db, "customers")
	waitID := s.submit(t, waitKey, testenv.SeedExample(t))
	waitForWriteBlockedOn(t, s.db, "customers")
	waited := make(chan response, 1)
	go func() {
		waited <- s.request(t, http.MethodGet, "/api/v1/bulk/"+waitID+"?wait=50s", nil, bearer(waitKey))
	}()
	s.waitMetric(t, metricsAddr, "bulkd_waiting_clients", "1", func(v float64) bool { return v == 1 })
	lock.release()
	if r := <-waited; r.status != http.StatusOK || !strings.Contains(string(r.body), `"status":"completed"`) {
		t.Fatalf("the waiting GET: %d %.300s", r.status, r.body)
	}
	s.waitMetric(t, metricsAddr, "bulkd_waiting_clients", "0", func(v float64) bool { return v == 0 })
	s.waitQueuesEmpty(t)

	after := scrapeMetrics(t, metricsAddr)
	for _, c := range []struct {
		series string
		moved  float64 // at least
	}{
		{`bulkd_bulks_submitted_total{mode="create"}`, 3}, // the bulk, the idempotent one, the waited one
		{`bulkd_bulks_finished_total{mode="create",status="completed"}`, 3},
		{`bulkd_rows_imported_total`, 3},
		{`bulkd_rows_failed_total`, 1},
		{`bulkd_import_duration_seconds_count{mode="create"}`, 3},
		{`bulkd_import_phase_duration_seconds_count{phase="parse"}`, 3},
		{`bulkd_import_phase_duration_seconds_count{phase="lock"}`, 3},
		{`bulkd_import_phase_duration_seconds_count{phase="plan"}`, 3},
		{`bulkd_import_phase_duration_seconds_count{phase="write"}`, 3},
		{`bulkd_import_phase_duration_seconds_count{phase="results"}`, 3},
		{delivered, 3},
		{`bulkd_idempotent_replays_total`, 1},
		{`bulkd_rate_limited_requests_total`, 1},
		{`bulkd_http_requests_total{method="POST",route="/api/v1/bulk",status="202"}`, 3},
		{`bulkd_http_requests_total{method="GET",route="/api/v1/bulk/:id",status="200"}`, 1},
		{`bulkd_http_requests_total{method="GET",route="/api/v1/bulk",status="429"}`, 1},
		{`bulkd_http_request_duration_seconds_count{method="GET",route="/api/v1/bulk/:id",status="200"}`, 1},
	} {
		if got := after[c.series] - before[c.series]; got < c.moved {
			t.Errorf("%s moved by %v, want at least %v (before %v, after %v)", c.series, got, c.moved, before[c.series], after[c.series])
		}
	}
	// The queue's metrics (asynq's collector), Go's and the process's.
	for _, name := range []string{"asynq_queue_size", "asynq_queue_latency_seconds", "asynq_tasks_processed_total",
		"asynq_tasks_failed_total", "go_goroutines", "process_cpu_seconds_total"} {
		if !after.has(name) {
			t.Errorf("no %s in the scrape", name)
		}
	}
	if after[`asynq_tasks_processed_total{queue="imports"}`] < 3 {
		t.Errorf("asynq_tasks_processed_total{queue=\"imports\"} = %v, want 3 at least", after[`asynq_tasks_processed_total{queue="imports"}`])
	}
	// Every metric the shipped alerts (configs/alerts.yml) query exists.
	alerts, err := os.ReadFile("../../configs/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`\b(?:bulkd|asynq)_[a-z_]+`).FindAllString(string(alerts), -1) {
		if !after.has(name) {
			t.Errorf("configs/alerts.yml queries %s, which is not served", name)
		}
	}
	// Labels are patterns and names, never ids.
	for series := range after {
		for _, idv := range []string{id, waitID, orgID} {
			if strings.Contains(series, idv) {
				t.Errorf("a series names an id: %s", series)
			}
		}
	}
	// The public API's port does not serve them.
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics on the API's port: %d, want 404", resp.StatusCode)
	}
}
