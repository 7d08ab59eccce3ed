package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

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
	var got []delivery
	testenv.Eventually(r.t, 30*time.Second, func() error {
		if got = r.deliveries(); len(got) < n {
			return fmt.Errorf("%d deliveries; there are %d", n, len(got))
		}
		return nil
	})
	return got
}

// putWebhook registers url for the key's organization and returns the secret.
func (s *service) putWebhook(t testing.TB, key, url string) string {
	t.Helper()
	r := s.request(t, http.MethodPut, "/api/v1/webhook", `{"url":"`+url+`"}`, bearer(key), jsonBody)
	if r.status != http.StatusOK {
		t.Fatalf("PUT /api/v1/webhook: %d %s", r.status, r.body)
	}
	data := r.json(t)["data"].(map[string]any)
	secret, _ := data["secret"].(string)
	if data["url"] != url || len(secret) < 20 {
		t.Fatalf("PUT /api/v1/webhook: %s", r.body)
	}
	return secret
}

// runRetriesNow moves the service's delivery retries to pending, as if their
// backoff had passed.
func (s *service) runRetriesNow(t testing.TB) {
	t.Helper()
	in := asynq.NewInspector(s.redisOpt)
	defer in.Close()
	testenv.Eventually(t, 30*time.Second, func() error {
		retries, err := in.ListRetryTasks(tasks.QueueNotifications)
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			t.Fatal(err)
		}
		for _, r := range retries {
			if err := in.RunTask(tasks.QueueNotifications, r.ID); err != nil {
				t.Fatal(err)
			}
		}
		if len(retries) == 0 {
			return errors.New("a delivery to retry")
		}
		return nil
	})
}

func TestWebhookDeliversSignedEventsOnce(t *testing.T) {
	t.Parallel()
	s := startService(t, "WEBHOOK_ALLOW_PRIVATE=true", "RATE_LIMIT=0")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	rcv := newReceiver(t)
	rcv.secret = s.putWebhook(t, key, rcv.srv.URL+"/hooks?token=abc")
	rcv.fail = []int{500, 503} // twice, then 204

	id := s.submit(t, key, testenv.SeedExample(t))
	s.waitCompleted(t, key, id)
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
	bulkView := s.request(t, http.MethodGet, "/api/v1/bulk/"+id, nil, bearer(key)).json(t)["data"].(map[string]any)
	if diff := jsonDiff(bulkView, got[2].event.Data); diff != "" {
		t.Errorf("the event's data is not the bulk as GET shows it:\n%s", diff)
	}
	hook := s.request(t, http.MethodGet, "/api/v1/webhook", nil, bearer(key))
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
	s.waitQueuesEmpty(t)
	if n := len(rcv.deliveries()); n != 3 {
		t.Errorf("%d deliveries after a duplicate task, want 3", n)
	}
	// The email went too, once.
	if n := len(s.smtp.WaitForMessages(t, 1, deadlineForEmail)); n != 1 {
		t.Errorf("%d emails, want 1", n)
	}

	// A new secret signs the next event; the old one no longer verifies.
	rot := s.request(t, http.MethodPost, "/api/v1/webhook/rotate", nil, bearer(key))
	newSecret, _ := rot.json(t)["data"].(map[string]any)["secret"].(string)
	if rot.status != 200 || newSecret == "" || newSecret == rcv.secret {
		t.Fatalf("rotate: %d %s", rot.status, rot.body)
	}
	second := s.submit(t, key, testenv.SeedExample(t))
	s.waitCompleted(t, key, second)
	d4 := rcv.waitFor(4)[3]
	if d4.verified {
		t.Errorf("the old secret verifies a delivery after rotation")
	}
	rcv.mu.Lock()
	rcv.secret = newSecret
	rcv.mu.Unlock()
	third := s.submit(t, key, testenv.SeedExample(t))
	s.waitCompleted(t, key, third)
	if d5 := rcv.waitFor(5)[4]; !d5.verified || d5.event.Data["bulk_id"] != third {
		t.Errorf("a delivery after rotation does not verify with the new secret: %+v", d5)
	}

	// DELETE removes the endpoint: nothing more is sent.
	if r := s.request(t, http.MethodDelete, "/api/v1/webhook", nil, bearer(key)); r.status != http.StatusNoContent {
		t.Errorf("DELETE: %d %s", r.status, r.body)
	}
	if r := s.request(t, http.MethodGet, "/api/v1/webhook", nil, bearer(key)); r.status != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d %s", r.status, r.body)
	}
	fourth := s.submit(t, key, testenv.SeedExample(t))
	s.waitCompleted(t, key, fourth)
	s.waitQueuesEmpty(t)
	if n := len(rcv.deliveries()); n != 5 {
		t.Errorf("%d deliveries after the endpoint was removed, want 5", n)
	}
}

// Without WEBHOOK_ALLOW_PRIVATE, an endpoint must be https on a public
// address; a bad body or URL is a 4xx naming the field.
func TestWebhookRefusesPrivateAndBadEndpoints(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
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
		r := s.request(t, http.MethodPut, "/api/v1/webhook", tt.body, bearer(key), jsonBody)
		errs, _ := r.json(t)["errors"].(map[string]any)
		if r.status != tt.status || errs[tt.field] == nil {
			t.Errorf("PUT %s: %d %s; want %d naming %s", tt.body, r.status, r.body, tt.status, tt.field)
		}
	}
	if n := s.db.Count(t, `SELECT count(*) FROM webhooks`); n != 0 {
		t.Errorf("%d webhooks stored from refused requests", n)
	}
	for _, path := range []string{"/api/v1/webhook"} {
		if r := s.request(t, http.MethodGet, path, nil, bearer(key)); r.status != http.StatusNotFound {
			t.Errorf("GET %s without a webhook: %d", path, r.status)
		}
	}
	if r := s.request(t, http.MethodPost, "/api/v1/webhook/rotate", nil, bearer(key)); r.status != http.StatusNotFound {
		t.Errorf("rotate without a webhook: %d", r.status)
	}
}

// Without WEBHOOK_SECRET_KEY the server says webhooks are off.
func TestWebhooksOffWithoutAKey(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api", "WEBHOOK_SECRET_KEY=")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	r := s.request(t, http.MethodPut, "/api/v1/webhook", `{"url":"https://8.8.8.8/hook"}`, bearer(key), jsonBody)
	if errs, _ := r.json(t)["errors"].(map[string]any); r.status != http.StatusNotImplemented || errs["webhook"] == nil {
		t.Errorf("PUT without a key: %d %s", r.status, r.body)
	}
}

// Concurrent PUT /api/v1/webhook of an organization without an endpoint (a
// client retrying a PUT that seemed slow, two deploys of its receiver)
// answer one secret between them, the one that signs: no client is left
// with a secret that verifies nothing.
func TestConcurrentWebhookPutsAnswerOneSecret(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api", "WEBHOOK_ALLOW_PRIVATE=true", "RATE_LIMIT=0")
	// The race is in the window between an UPDATE that finds no endpoint and
	// the INSERT that makes one; a few rounds of 8 at once meet it.
	for round := range 10 {
		_, key := s.newOrg(t, "Acme", "ops@acme.example")
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			secrets = map[string]bool{}
		)
		for range 8 {
			wg.Go(func() {
				r := s.request(t, http.MethodPut, "/api/v1/webhook", `{"url":"http://127.0.0.1:9/hook"}`, bearer(key), jsonBody)
				if r.status != http.StatusOK {
					t.Errorf("PUT: %d %s", r.status, r.body)
					return
				}
				var answer struct {
					Data struct {
						Secret string `json:"secret"`
					} `json:"data"`
				}
				if err := json.Unmarshal(r.body, &answer); err != nil {
					t.Errorf("PUT answer: %v: %s", err, r.body)
					return
				}
				if secret := answer.Data.Secret; secret != "" {
					mu.Lock()
					secrets[secret] = true
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(secrets) != 1 {
			t.Fatalf("round %d: 8 concurrent PUTs answered %d different secrets; only one of them signs", round, len(secrets))
		}
	}
}
