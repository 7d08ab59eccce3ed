package main

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/pkg/testenv"
	"github.com/bulkd/bulkd/workers/tasks"
)

// Cancel: a pending bulk is canceled at once and leaves the queue; a
// processing one stops and writes nothing; a finished one is 409. A canceled
// bulk is never imported later, nor emailed; its webhook says so.
func TestCancel(t *testing.T) {
	t.Parallel()
	s := newService(t, "WEBHOOK_ALLOW_PRIVATE=true", "RECONCILE_INTERVAL=1s", "RATE_LIMIT=0")
	s.start("api")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	rcv := newReceiver(t)
	rcv.secret = s.putWebhook(t, key, rcv.srv.URL)
	in := asynq.NewInspector(s.redisOpt)
	defer in.Close()

	// Pending: no worker runs yet.
	pending := s.submit(t, key, testenv.SeedExample(t))
	if _, err := in.GetTaskInfo(tasks.QueueImports, pending); err != nil {
		t.Fatalf("import task before the cancel: %v", err)
	}
	r := s.request(t, http.MethodPost, "/api/v1/bulk/"+pending+"/cancel", nil, bearer(key))
	got := r.json(t)["data"].(map[string]any)
	if r.status != 200 || got["status"] != "canceled" || got["canceled_at"] == nil || got["bulk_id"] != pending {
		t.Fatalf("cancel of a pending bulk: %d %s", r.status, r.body)
	}
	if _, err := in.GetTaskInfo(tasks.QueueImports, pending); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("the canceled bulk's task is still in the queue: %v", err)
	}

	// Processing: held inside its transaction, canceled, then let go.
	lock := lockTable(t, s.db, "bulk_results")
	worker := s.spawn("worker")
	processing := s.submit(t, key, faultBulk(t, "p-", 50))
	waitForWriteBlockedOn(t, s.db, "bulk_results")
	r = s.request(t, http.MethodPost, "/api/v1/bulk/"+processing+"/cancel", nil, bearer(key))
	if got := r.json(t)["data"].(map[string]any); r.status != 200 || got["status"] != "canceled" {
		t.Fatalf("cancel of a processing bulk: %d %s", r.status, r.body)
	}
	lock.release()
	s.waitQueuesEmpty(t)
	if n := s.db.Count(t, `SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM debt_accounts) + (SELECT count(*) FROM bulk_results)`); n != 0 {
		t.Errorf("%d records or results written by canceled bulks", n)
	}

	// Never imported later: a duplicate task, a worker restart, a reconciler pass.
	client := asynq.NewClient(s.redisOpt)
	defer client.Close()
	for _, id := range []string{pending, processing} {
		task, _ := tasks.NewImportTask(mustUUID(t, id))
		if _, err := client.Enqueue(task, asynq.TaskID("again-"+id)); err != nil {
			t.Fatal(err)
		}
	}
	worker.kill()
	s.spawn("worker")
	time.Sleep(3 * time.Second) // several reconciler passes
	s.waitQueuesEmpty(t)
	if n := s.db.Count(t, `SELECT count(*) FROM bulks WHERE status <> 'canceled'`); n != 0 {
		t.Errorf("%d canceled bulks changed status", n)
	}
	if n := s.db.Count(t, `SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM bulk_results)`); n != 0 {
		t.Errorf("%d records or results written after the cancels", n)
	}

	// Finished: 409 with the status.
	done := s.submit(t, key, testenv.SeedExample(t))
	s.waitCompleted(t, key, done)
	for _, id := range []string{done, pending} {
		r := s.request(t, http.MethodPost, "/api/v1/bulk/"+id+"/cancel", nil, bearer(key))
		if errs, _ := r.json(t)["errors"].(map[string]any); r.status != http.StatusConflict || errs["status"] == nil {
			t.Errorf("cancel of a finished bulk: %d %s", r.status, r.body)
		}
	}

	// The webhook told of both cancels and the completion; the email only of the completion.
	events := map[string]string{}
	for _, d := range rcv.waitFor(3) {
		if !d.verified {
			t.Errorf("unverified delivery %+v", d)
		}
		events[d.event.Data["bulk_id"].(string)] = d.event.Type
	}
	want := map[string]string{pending: "bulk.canceled", processing: "bulk.canceled", done: "bulk.completed"}
	if diff := jsonDiff(want, events); diff != "" {
		t.Errorf("webhook events (-want +got):\n%s", diff)
	}
	s.smtp.WaitForMessages(t, 1, deadlineForEmail)
	s.waitQueuesEmpty(t)
	if n := len(s.smtp.Messages()); n != 1 {
		t.Errorf("%d emails, want 1 (none for canceled bulks)", n)
	}
	// Another organization cannot cancel: 404.
	_, other := s.newOrg(t, "B", "b@example.com")
	if r := s.request(t, http.MethodPost, "/api/v1/bulk/"+done+"/cancel", nil, bearer(other)); r.status != http.StatusNotFound {
		t.Errorf("another organization's cancel: %d", r.status)
	}
}
