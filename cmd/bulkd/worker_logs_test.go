package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/pkg/testenv"
	"github.com/bulkd/bulkd/workers/tasks"
)

// Every line a worker logs about a bulk names the bulk, its organization
// and, for a task's lines, the task's attempt, so that an operator can
// follow one bulk through its import, its deliveries and the reconciler:
// here an import and its email, a webhook attempt that fails, and a bulk
// whose task was archived, which the reconciler marks failed. Each key is
// there once. The worker process's own metrics count the same events.
func TestWorkerLinesNameBulkOrganizationAndAttempt(t *testing.T) {
	t.Parallel()
	s := newService(t, "WEBHOOK_ALLOW_PRIVATE=true", "RECONCILE_INTERVAL=1s", "RATE_LIMIT=0")
	s.start("api")
	orgID, key := s.newOrg(t, "Acme", "ops@acme.example")
	s.putWebhook(t, key, "http://bulkd-hook.invalid/hook") // its host does not resolve: each attempt fails
	in := asynq.NewInspector(s.redisOpt)
	defer in.Close()
	// No worker runs yet: the first bulk's task is archived as after its
	// last retry, for the worker's reconciler to find.
	failed := s.submit(t, key, testenv.SeedExample(t))
	if err := in.ArchiveTask(tasks.QueueImports, tasks.ImportTaskID(mustUUID(t, failed))); err != nil {
		t.Fatal(err)
	}
	imported := s.submit(t, key, testenv.SeedExample(t))
	workerMetrics := freeAddr(t)
	w := s.spawn("worker", "METRICS_ADDR="+workerMetrics)
	s.waitCompleted(t, key, imported)
	s.smtp.WaitForMessages(t, 2, deadlineForEmail) // the completed bulk's, the failed one's

	want := []struct {
		msg     string
		bulk    string
		attempt bool // a task's line, not the reconciler's
	}{
		{"bulk imported", imported, true},
		{"delivery made", imported, true},
		{"delivery made", failed, true},
		{"delivery not made", imported, true},
		{"delivery not made", failed, true},
		{"bulk import gave up without marking the bulk failed; marked it now", failed, false},
	}
	var lines []map[string]any
	testenv.Eventually(t, deadlineForImport, func() error {
		lines = w.logs.Lines(t)
		for _, wl := range want {
			if !hasLine(lines, wl.msg, wl.bulk) {
				return withLogs{fmt.Sprintf("a line %q of bulk %s", wl.msg, wl.bulk), w.logs}
			}
		}
		return nil
	})
	for _, wl := range want {
		for _, l := range lines {
			if l["msg"] != wl.msg || l["bulk_id"] != wl.bulk {
				continue
			}
			if l["organization_id"] != orgID {
				t.Errorf("%q of bulk %s: organization_id %v, want %s", wl.msg, wl.bulk, l["organization_id"], orgID)
			}
			if _, ok := l["attempt"].(float64); wl.attempt && !ok {
				t.Errorf("%q of bulk %s: no attempt: %v", wl.msg, wl.bulk, l)
			}
		}
	}
	// Whatever else the worker said about a bulk names its organization too.
	for _, l := range lines {
		if l["bulk_id"] != nil && l["organization_id"] != orgID {
			t.Errorf("a line about bulk %v without its organization: %v", l["bulk_id"], l)
		}
	}
	// A key twice in one line would leave a reader with the last value only.
	for _, raw := range strings.Split(w.logs.String(), "\n") {
		for _, k := range []string{`"bulk_id":`, `"organization_id":`, `"attempt":`} {
			if strings.Count(raw, k) > 1 {
				t.Errorf("%s twice: %s", k, raw)
			}
		}
	}
	// The worker process serves its own metrics: the bulk the reconciler
	// failed, the webhook attempts that failed and will be retried.
	got := scrapeMetrics(t, workerMetrics)
	for series, want := range map[string]float64{
		`bulkd_bulks_finished_total{mode="create",status="failed"}`:                1,
		`bulkd_bulks_finished_total{mode="create",status="completed"}`:             1,
		`bulkd_deliveries_total{attempt="1",channel="webhook",outcome="retrying"}`: 2,
		`bulkd_deliveries_total{attempt="1",channel="email",outcome="delivered"}`:  2,
	} {
		if got[series] != want {
			t.Errorf("the worker's %s = %v, want %v", series, got[series], want)
		}
	}
	if r := s.request(t, http.MethodGet, "/api/v1/bulk/"+failed, nil, bearer(key)); !strings.Contains(string(r.body), `"status":"failed"`) {
		t.Errorf("the archived bulk: %d %s", r.status, r.body)
	}
}

// hasLine tells whether a line with msg names the bulk.
func hasLine(lines []map[string]any, msg, bulkID string) bool {
	for _, l := range lines {
		if l["msg"] == msg && l["bulk_id"] == bulkID {
			return true
		}
	}
	return false
}
