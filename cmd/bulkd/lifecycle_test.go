package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/pkg/testenv"
	"github.com/bulkd/bulkd/pkg/webhook"
	"github.com/bulkd/bulkd/workers/tasks"
)

// receiver is an endpoint of the test's own that verifies every delivery's
// signature with the secret it is given, and answers with the statuses of
// fail first.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	fail   []int // statuses to answer before 204
	got    []delivery
}

type delivery struct {
	id, timestamp string
	verified      bool
	event         struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		d := delivery{id: req.Header.Get("webhook-id"), timestamp: req.Header.Get("webhook-timestamp")}
		ts, _ := strconv.ParseInt(d.timestamp, 10, 64)
		r.mu.Lock()
		defer r.mu.Unlock()
		want, err := webhook.Sign(r.secret, d.id, time.Unix(ts, 0), body)
		d.verified = err == nil && req.Header.Get("webhook-signature") == want && req.Method == http.MethodPost
		if err := json.Unmarshal(body, &d.event); err != nil {
			t.Errorf("delivery body is not JSON: %v", err)
		}
		r.got = append(r.got, d)
		if len(r.fail) > 0 {
			w.WriteHeader(r.fail[0])
			r.fail = r.fail[1:]
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// waitFor waits until the receiver has n deliveries.
func (r *receiver) waitFor(n int) []delivery {
	r.t.Helper()
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if got := r.deliveries(); len(got) >= n {
			return got
		}
		if time.Since(start) > 30*time.Second {
			r.t.Fatalf("%d deliveries after 30 s, want %d", len(r.deliveries()), n)
		}
	}
}

// putWebhook registers url for the key's organization and returns the secret.
func (s *service) putWebhook(key, url string) string {
	s.t.Helper()
	r := s.do(http.MethodPut, "/api/v1/webhook", key, bytes.NewReader([]byte(`{"url":"`+url+`"}`)))
	if r.status != http.StatusOK {
		s.t.Fatalf("PUT /api/v1/webhook: %d %s", r.status, r.body)
	}
	data := r.json(s.t)["data"].(map[string]any)
	secret, _ := data["secret"].(string)
	if data["url"] != url || len(secret) < 20 {
		s.t.Fatalf("PUT /api/v1/webhook: %s", r.body)
	}
	return secret
}

// runRetriesNow moves the service's delivery retries to pending, as if their
// backoff had passed.
func (s *service) runRetriesNow(t *testing.T) {
	t.Helper()
	in := asynq.NewInspector(s.redisOpt)
	defer in.Close()
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(20 * time.Millisecond) {
		retries, err := in.ListRetryTasks(tasks.QueueNotifications)
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			t.Fatal(err)
		}
		for _, r := range retries {
			if err := in.RunTask(tasks.QueueNotifications, r.ID); err != nil {
				t.Fatal(err)
			}
		}
		if len(retries) > 0 {
			return
		}
	}
	t.Fatal("no delivery to retry within 30 s")
}

func TestWebhookDeliversSignedEventsOnce(t *testing.T) {
	t.Parallel()
	s := startService(t, "WEBHOOK_ALLOW_PRIVATE=true", "RATE_LIMIT=0")
	_, key := s.newOrg("Acme", "ops@acme.example")
	rcv := newReceiver(t)
	rcv.secret = s.putWebhook(key, rcv.srv.URL+"/hooks?token=abc")
	rcv.fail = []int{500, 503} // twice, then 204

	id := s.submit(key, testenv.SeedExample(t))
	s.waitCompleted(key, id)
	rcv.waitFor(1)
	s.runRetriesNow(t)
	rcv.waitFor(2)
	s.runRetriesNow(t)
	got := rcv.waitFor(3)

	// One event, three attempts, each signed, all with one webhook-id.
	for i, d := range got {
		if !d.verified || d.id != got[0].id || d.event.Type != "bulk.completed" || d.event.Data["bulk_id"] != id ||
			d.event.Data["status"] != "completed" {
			t.Errorf("attempt %d: %+v", i+1, d)
		}
	}
	bulkView := s.do(http.MethodGet, "/api/v1/bulk/"+id, key, nil).json(t)["data"].(map[string]any)
	if diff := jsonDiff(bulkView, got[2].event.Data); diff != "" {
		t.Errorf("the event's data is not the bulk as GET shows it:\n%s", diff)
	}
	hook := s.do(http.MethodGet, "/api/v1/webhook", key, nil)
	var shown struct {
		Data struct {
			URL        string `json:"url"`
			Secret     string `json:"secret"`
			Deliveries []struct {
				ID       string `json:"id"`
				BulkID   string `json:"bulk_id"`
				Event    string `json:"event"`
				Status   string `json:"status"`
				Attempts []struct {
					StatusCode *int    `json:"status_code"`
					Error      *string `json:"error"`
				} `json:"attempts"`
			} `json:"deliveries"`
		} `json:"data"`
	}
	if err := json.Unmarshal(hook.body, &shown); err != nil || hook.status != 200 {
		t.Fatalf("GET /api/v1/webhook: %d %s", hook.status, hook.body)
	}
	if shown.Data.Secret != "" || len(shown.Data.Deliveries) != 1 {
		t.Fatalf("GET /api/v1/webhook shows the secret or not one delivery: %s", hook.body)
	}
	d := shown.Data.Deliveries[0]
	if d.ID != got[0].id || d.BulkID != id || d.Event != "bulk.completed" || d.Status != "delivered" || len(d.Attempts) != 3 {
		t.Errorf("delivery as shown: %+v", d)
	}
	for i, want := range []int{500, 503, 204} {
		if a := d.Attempts[i]; a.StatusCode == nil || *a.StatusCode != want || (want == 204) != (a.Error == nil) {
			t.Errorf("attempt %d: %+v, want status %d", i+1, a, want)
		}
	}

	// A duplicated task sends nothing more.
	client := asynq.NewClient(s.redisOpt)
	defer client.Close()
	var deliveryID string
	_ = s.db.Conn.QueryRow(t.Context(), `SELECT id::text FROM deliveries WHERE channel = 'webhook'`).Scan(&deliveryID)
	task, _ := tasks.NewDeliveryTask(mustUUID(t, deliveryID), "webhook")
	if _, err := client.Enqueue(task, asynq.TaskID("again")); err != nil {
		t.Fatal(err)
	}
	waitQueuesEmptyOf(t, s)
	if n := len(rcv.deliveries()); n != 3 {
		t.Errorf("%d deliveries after a duplicate task, want 3", n)
	}
	// The email went too, once.
	if n := len(s.smtp.WaitForMessages(t, 1, deadlineForEmail)); n != 1 {
		t.Errorf("%d emails, want 1", n)
	}

	// A new secret signs the next event; the old one no longer verifies.
	rot := s.do(http.MethodPost, "/api/v1/webhook/rotate", key, nil)
	newSecret, _ := rot.json(t)["data"].(map[string]any)["secret"].(string)
	if rot.status != 200 || newSecret == "" || newSecret == rcv.secret {
		t.Fatalf("rotate: %d %s", rot.status, rot.body)
	}
	second := s.submit(key, testenv.SeedExample(t))
	s.waitCompleted(key, second)
	d4 := rcv.waitFor(4)[3]
	if d4.verified {
		t.Errorf("the old secret verifies a delivery after rotation")
	}
	rcv.mu.Lock()
	rcv.secret = newSecret
	rcv.mu.Unlock()
	third := s.submit(key, testenv.SeedExample(t))
	s.waitCompleted(key, third)
	if d5 := rcv.waitFor(5)[4]; !d5.verified || d5.event.Data["bulk_id"] != third {
		t.Errorf("a delivery after rotation does not verify with the new secret: %+v", d5)
	}

	// DELETE removes the endpoint: nothing more is sent.
	if r := s.do(http.MethodDelete, "/api/v1/webhook", key, nil); r.status != http.StatusNoContent {
		t.Errorf("DELETE: %d %s", r.status, r.body)
	}
	if r := s.do(http.MethodGet, "/api/v1/webhook", key, nil); r.status != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d %s", r.status, r.body)
	}
	fourth := s.submit(key, testenv.SeedExample(t))
	s.waitCompleted(key, fourth)
	waitQueuesEmptyOf(t, s)
	if n := len(rcv.deliveries()); n != 5 {
		t.Errorf("%d deliveries after the endpoint was removed, want 5", n)
	}
}

// Without WEBHOOK_ALLOW_PRIVATE, an endpoint must be https on a public
// address; a bad body or URL is a 4xx naming the field.
func TestWebhookRefusesPrivateAndBadEndpoints(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api")
	_, key := s.newOrg("Acme", "ops@acme.example")
	for _, tt := range []struct {
		body   string
		status int
		field  string
	}{
		{`{"url":"https://127.0.0.1/hook"}`, 422, "url"},
		{`{"url":"https://localhost:8443/hook"}`, 422, "url"},
		{`{"url":"http://example.com/hook"}`, 422, "url"},
		{`{"url":"https://169.254.169.254/latest/meta-data"}`, 422, "url"},
		{`{"url":"https://[::1]/hook"}`, 422, "url"},
		{`{"url":""}`, 422, "url"},
		{`{}`, 422, "url"},
		{`not json`, 400, "body"},
	} {
		r := s.do(http.MethodPut, "/api/v1/webhook", key, bytes.NewReader([]byte(tt.body)))
		errs, _ := r.json(t)["errors"].(map[string]any)
		if r.status != tt.status || errs[tt.field] == nil {
			t.Errorf("PUT %s: %d %s; want %d naming %s", tt.body, r.status, r.body, tt.status, tt.field)
		}
	}
	if n := s.db.Count(t, `SELECT count(*) FROM webhooks`); n != 0 {
		t.Errorf("%d webhooks stored from refused requests", n)
	}
	for _, path := range []string{"/api/v1/webhook"} {
		if r := s.do(http.MethodGet, path, key, nil); r.status != http.StatusNotFound {
			t.Errorf("GET %s without a webhook: %d", path, r.status)
		}
	}
	if r := s.do(http.MethodPost, "/api/v1/webhook/rotate", key, nil); r.status != http.StatusNotFound {
		t.Errorf("rotate without a webhook: %d", r.status)
	}
}

// Without WEBHOOK_SECRET_KEY the server says webhooks are off.
func TestWebhooksOffWithoutAKey(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api", "WEBHOOK_SECRET_KEY=")
	_, key := s.newOrg("Acme", "ops@acme.example")
	r := s.do(http.MethodPut, "/api/v1/webhook", key, bytes.NewReader([]byte(`{"url":"https://8.8.8.8/hook"}`)))
	if errs, _ := r.json(t)["errors"].(map[string]any); r.status != http.StatusNotImplemented || errs["webhook"] == nil {
		t.Errorf("PUT without a key: %d %s", r.status, r.body)
	}
}

// Cancel: a pending bulk is canceled at once and leaves the queue; a
// processing one stops and writes nothing; a finished one is 409. A canceled
// bulk is never imported later, nor emailed; its webhook says so.
func TestCancel(t *testing.T) {
	t.Parallel()
	s := newService(t, "WEBHOOK_ALLOW_PRIVATE=true", "RECONCILE_INTERVAL=1s", "RATE_LIMIT=0")
	s.start("api")
	_, key := s.newOrg("Acme", "ops@acme.example")
	rcv := newReceiver(t)
	rcv.secret = s.putWebhook(key, rcv.srv.URL)
	in := asynq.NewInspector(s.redisOpt)
	defer in.Close()

	// Pending: no worker runs yet.
	pending := s.submit(key, testenv.SeedExample(t))
	if _, err := in.GetTaskInfo(tasks.QueueImports, pending); err != nil {
		t.Fatalf("import task before the cancel: %v", err)
	}
	r := s.do(http.MethodPost, "/api/v1/bulk/"+pending+"/cancel", key, nil)
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
	processing := s.submit(key, faultBulk(t, "p-", 50))
	waitForWriteBlockedOn(t, s.db, "bulk_results")
	r = s.do(http.MethodPost, "/api/v1/bulk/"+processing+"/cancel", key, nil)
	if got := r.json(t)["data"].(map[string]any); r.status != 200 || got["status"] != "canceled" {
		t.Fatalf("cancel of a processing bulk: %d %s", r.status, r.body)
	}
	lock.release()
	waitQueuesEmptyOf(t, s)
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
	waitQueuesEmptyOf(t, s)
	if n := s.db.Count(t, `SELECT count(*) FROM bulks WHERE status <> 'canceled'`); n != 0 {
		t.Errorf("%d canceled bulks changed status", n)
	}
	if n := s.db.Count(t, `SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM bulk_results)`); n != 0 {
		t.Errorf("%d records or results written after the cancels", n)
	}

	// Finished: 409 with the status.
	done := s.submit(key, testenv.SeedExample(t))
	s.waitCompleted(key, done)
	for _, id := range []string{done, pending} {
		r := s.do(http.MethodPost, "/api/v1/bulk/"+id+"/cancel", key, nil)
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
	waitQueuesEmptyOf(t, s)
	if n := len(s.smtp.Messages()); n != 1 {
		t.Errorf("%d emails, want 1 (none for canceled bulks)", n)
	}
	// Another organization cannot cancel: 404.
	_, other := s.newOrg("B", "b@example.com")
	if r := s.do(http.MethodPost, "/api/v1/bulk/"+done+"/cancel", other, nil); r.status != http.StatusNotFound {
		t.Errorf("another organization's cancel: %d", r.status)
	}
}

func mustUUID(t *testing.T, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// jsonDiff compares two values as JSON would carry them.
func jsonDiff(want, got any) string {
	norm := func(v any) any {
		b, _ := json.Marshal(v)
		var out any
		_ = json.Unmarshal(b, &out)
		return out
	}
	return cmp.Diff(norm(want), norm(got))
}
