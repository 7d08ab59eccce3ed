package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/pkg/testenv"
	"github.com/bulkd/bulkd/workers/tasks"
)

// TestRetryAFailedBulk runs `bulkd bulk retry` as an operator would, on a
// bulk that failed for good (its import task archived after its last
// retry, which the reconciler finds), and on one set failed in SQL after
// its task was gone: each is imported again, completes, and its
// organization is emailed and called once more, the new end with a
// webhook-id of its own. A bulk that did not fail, or whose rows retention
// erased, is refused with a message that says why.
func TestRetryAFailedBulk(t *testing.T) {
	t.Parallel()
	s := newService(t, "WEBHOOK_ALLOW_PRIVATE=true", "RECONCILE_INTERVAL=1s", "RATE_LIMIT=0")
	s.start("api")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	rcv := newReceiver(t)
	rcv.secret = s.putWebhook(t, key, rcv.srv.URL)
	in := asynq.NewInspector(s.redisOpt)
	defer in.Close()

	// No worker runs yet: the task waits, and is archived as after its
	// last retry. The worker's reconciler then marks the bulk failed.
	failed := s.submit(t, key, testenv.SeedExample(t))
	if err := in.ArchiveTask(tasks.QueueImports, tasks.ImportTaskID(mustUUID(t, failed))); err != nil {
		t.Fatal(err)
	}
	s.spawn("worker")
	testenv.Eventually(t, deadlineForImport, func() error {
		if got := data(t, s.request(t, http.MethodGet, "/api/v1/bulk/"+failed, nil, bearer(key)), http.StatusOK); got["status"] != "failed" {
			return s.waitingFor("bulk %s to fail; it is %v", failed, got["status"])
		}
		return nil
	})
	if m := s.smtp.WaitForMessages(t, 1, deadlineForEmail); !strings.HasPrefix(m[0].Parse(t).Subject, "Bulk "+failed+" failed") {
		t.Fatalf("the failure's email: %q", m[0].Parse(t).Subject)
	}
	rcv.waitFor(1)

	table := s.cli(t, "bulk", "retry", failed)
	if lines := strings.Split(table, "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "BULK") ||
		!strings.Contains(lines[1], failed) || !strings.Contains(lines[1], "pending") {
		t.Errorf("bulk retry:\n%s", table)
	}
	retried := s.waitCompleted(t, key, failed)
	if retried["failure_reason"] != nil || retried["rows_succeeded"] != 1.0 {
		t.Errorf("the retried bulk: %v", retried)
	}

	// Completed, its task long gone, then set failed in SQL.
	again := s.submit(t, key, testenv.SeedExample(t)) // every account taken by the first
	s.waitCompleted(t, key, again)
	s.waitAllNotified(t)
	if _, err := s.db.Conn.Exec(t.Context(), `UPDATE bulks SET status = 'failed', failure_reason = 'x' WHERE id = $1`, again); err != nil {
		t.Fatal(err)
	}
	var shown struct {
		ID     string `json:"bulk_id"`
		Status string `json:"status"`
		Count  int    `json:"count"`
	}
	if err := json.Unmarshal([]byte(s.cli(t, "bulk", "retry", again, "--json")), &shown); err != nil ||
		shown.ID != again || shown.Status != "pending" || shown.Count != 1 {
		t.Errorf("bulk retry --json: %+v, %v", shown, err)
	}
	s.waitCompleted(t, key, again)

	// Emailed once more each: the failure, then the two completions of
	// the first bulk and the two of the second.
	subjects := map[string]int{}
	for _, m := range s.smtp.WaitForMessages(t, 4, deadlineForEmail) {
		subjects[strings.SplitN(m.Parse(t).Subject, ":", 2)[0]]++
	}
	if want := map[string]int{"Bulk " + failed + " failed": 1, "Bulk " + failed + " completed": 1, "Bulk " + again + " completed": 2}; jsonDiff(want, subjects) != "" {
		t.Errorf("emails: %v, want %v", subjects, want)
	}
	events := map[string][]string{}
	ids := map[string]bool{}
	for _, d := range rcv.waitFor(4) {
		if !d.verified {
			t.Errorf("webhook delivery %s is not signed", d.id)
		}
		id, _ := d.event.Data["bulk_id"].(string)
		events[id] = append(events[id], d.event.Type)
		ids[d.id] = true
	}
	if want := map[string][]string{failed: {"bulk.failed", "bulk.completed"}, again: {"bulk.completed", "bulk.completed"}}; jsonDiff(want, events) != "" {
		t.Errorf("webhook events: %v, want %v", events, want)
	}
	if len(ids) != 4 {
		t.Errorf("%d webhook-ids for 4 ends: each end is a message of its own", len(ids))
	}
	s.waitAllNotified(t)
	if n := s.db.Count(t, `SELECT count(*) FROM deliveries WHERE superseded_at IS NOT NULL`); n != 4 {
		t.Errorf("%d superseded deliveries, want the 2 of each first end", n)
	}

	// What cannot be retried says why.
	erased := s.submit(t, key, testenv.SeedExample(t))
	s.waitCompleted(t, key, erased)
	if _, err := s.db.Conn.Exec(t.Context(), `UPDATE bulks SET status = 'failed', failure_reason = 'x',
		completed_at = now() - interval '31 days' WHERE id = $1`, erased); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, deadlineForImport, func() error { // the default RETENTION, 30 days
		if n := s.db.Count(t, `SELECT count(*) FROM bulk_rows WHERE bulk_id = $1`, erased); n != 0 {
			return s.waitingFor("the rows of bulk %s to be erased", erased)
		}
		return nil
	})
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"bulk", "retry", failed}, "bulk " + failed + " is completed; only a failed bulk can be retried"},
		{[]string{"bulk", "retry", erased}, "its rows were erased on "},
		{[]string{"bulk", "retry", uuid.NewString()}, "bulk retry: no bulk"},
		{[]string{"bulk", "retry", "not-a-bulk"}, `"not-a-bulk" is not a bulk id`},
		{[]string{"bulk", "retry"}, "give the bulk's id"},
		{[]string{"bulk", "retry", failed, again}, "give one bulk id"},
	} {
		err := run(context.Background(), tc.args, s.getenv, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("bulkd %s: %v, want an error saying %q", strings.Join(tc.args, " "), err, tc.says)
		}
	}
	if got := data(t, s.request(t, http.MethodGet, "/api/v1/bulk/"+erased, nil, bearer(key)), http.StatusOK); got["status"] != "failed" {
		t.Errorf("the erased bulk after a refused retry: %v", got["status"])
	}
	s.waitAllNotified(t)
	if n := len(s.smtp.Messages()); n != 5 {
		t.Errorf("%d emails, want 5: the refused retries sent none", n)
	}
}
