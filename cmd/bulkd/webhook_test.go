package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/pkg/client"
	"github.com/bulkd/bulkd/pkg/testenv"
	"github.com/bulkd/bulkd/pkg/webhook"
	"github.com/bulkd/bulkd/workers/tasks"
)

// receiver is an endpoint of the test's own that verifies every delivery's
// signature with the secret it is given, and answers with the statuses of
// fail first, or, when answer is set, with what answer says.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	fail   []int              // statuses to answer before 204
	answer func(delivery) int // the status to answer, when set
	got    []delivery
}

type delivery struct {
	id, timestamp, signature string
	body                     []byte
	verified                 bool // with the receiver's secret, when it came
	event                    struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
}

// signedWith tells whether one of the delivery's signatures (the
// webhook-signature header may carry several, space-separated) is the one
// secret makes, as a Standard Webhooks receiver verifies.
func (d delivery) signedWith(secret string) bool {
	ts, err := strconv.ParseInt(d.timestamp, 10, 64)
	if err != nil {
		return false
	}
	want, err := webhook.Sign(secret, d.id, time.Unix(ts, 0), d.body)
	return err == nil && slices.Contains(strings.Fields(d.signature), want)
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		d := delivery{id: req.Header.Get("webhook-id"), timestamp: req.Header.Get("webhook-timestamp"),
			signature: req.Header.Get("webhook-signature"), body: body}
		if err := json.Unmarshal(body, &d.event); err != nil {
			t.Errorf("delivery body is not JSON: %v", err)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		d.verified = d.signedWith(r.secret) && req.Method == http.MethodPost
		r.got = append(r.got, d)
		switch {
		case r.answer != nil:
			w.WriteHeader(r.answer(d))
		case len(r.fail) > 0:
			w.WriteHeader(r.fail[0])
			r.fail = r.fail[1:]
		default:
			w.WriteHeader(http.StatusNoContent)
		}
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

// getWebhook reads the organization's webhook, which must exist.
func (s *service) getWebhook(t testing.TB, key string) client.Webhook {
	t.Helper()
	r := s.request(t, http.MethodGet, "/api/v1/webhook", nil, bearer(key))
	var shown struct{ Data client.Webhook }
	if err := json.Unmarshal(r.body, &shown); err != nil || r.status != http.StatusOK {
		t.Fatalf("GET /api/v1/webhook: %d %s", r.status, r.body)
	}
	return shown.Data
}

// logLines are the service's log lines whose message starts with msg.
func (s *service) logLines(t testing.TB, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range s.logs.Lines(t) {
		if m, _ := l["msg"].(string); strings.HasPrefix(m, msg) {
			out = append(out, l)
		}
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return "<none>"
	}
	return *s
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
	// The receiver has the third attempt before the worker records it: wait
	// for the record.
	var shown client.Webhook
	testenv.Eventually(t, 30*time.Second, func() error {
		shown = s.getWebhook(t, key)
		if len(shown.Deliveries) != 1 || len(shown.Deliveries[0].Attempts) < 3 {
			return fmt.Errorf("GET /api/v1/webhook to show the delivery's three attempts; it shows %+v", shown.Deliveries)
		}
		return nil
	})
	if shown.Secret != "" {
		t.Errorf("GET /api/v1/webhook shows the secret: %+v", shown)
	}
	d := shown.Deliveries[0]
	if d.ID != got[0].id || d.BulkID != id || d.Event != "bulk.completed" || d.Status != "delivered" || len(d.Attempts) != 3 {
		t.Errorf("delivery as shown: %+v", d)
	}
	for i, want := range []int{500, 503, 204} {
		if a := d.Attempts[i]; a.StatusCode == nil || *a.StatusCode != want || (want == 204) != (a.Error == nil) {
			t.Errorf("attempt %d: %+v, want status %d", i+1, a, want)
		}
	}

	// A duplicated task sends nothing more.
	queue := asynq.NewClient(s.redisOpt)
	defer queue.Close()
	var deliveryID string
	_ = s.db.Conn.QueryRow(t.Context(), `SELECT id::text FROM deliveries WHERE channel = 'webhook'`).Scan(&deliveryID)
	task, _ := tasks.NewDeliveryTask(mustUUID(t, deliveryID), "webhook")
	if _, err := queue.Enqueue(task, asynq.TaskID("again")); err != nil {
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

	// DELETE removes the endpoint: nothing more is sent.
	if r := s.request(t, http.MethodDelete, "/api/v1/webhook", nil, bearer(key)); r.status != http.StatusNoContent {
		t.Errorf("DELETE: %d %s", r.status, r.body)
	}
	if r := s.request(t, http.MethodGet, "/api/v1/webhook", nil, bearer(key)); r.status != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d %s", r.status, r.body)
	}
	after := s.submit(t, key, testenv.SeedExample(t))
	s.waitCompleted(t, key, after)
	s.waitQueuesEmpty(t)
	if n := len(rcv.deliveries()); n != 3 {
		t.Errorf("%d deliveries after the endpoint was removed, want 3", n)
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

// After POST /api/v1/webhook/rotate, deliveries are signed with the new
// secret and the one it replaced, for bulksvc.SecretOverlap (a day): a
// receiver that verifies with the old secret and one that verifies with
// the new both accept them, so that the organization can deploy the new
// secret without refusing a delivery. Once the day is over, the new secret
// signs alone. GET shows until when the old one signs.
func TestWebhookRotationSignsWithBothSecretsForADay(t *testing.T) {
	t.Parallel()
	s := startService(t, "WEBHOOK_ALLOW_PRIVATE=true", "RATE_LIMIT=0")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	rcv := newReceiver(t)
	old := s.putWebhook(t, key, rcv.srv.URL+"/hooks")
	deliver := func(n int) delivery {
		t.Helper()
		id := s.submit(t, key, testenv.SeedExample(t))
		s.waitCompleted(t, key, id)
		d := rcv.waitFor(n)[n-1]
		if d.event.Data["bulk_id"] != id {
			t.Fatalf("delivery %d is of bulk %v, want %s", n, d.event.Data["bulk_id"], id)
		}
		return d
	}

	if d := deliver(1); !d.signedWith(old) || len(strings.Fields(d.signature)) != 1 {
		t.Errorf("before any rotation: signature %q, want one, with the secret", d.signature)
	}

	rot := s.request(t, http.MethodPost, "/api/v1/webhook/rotate", nil, bearer(key))
	rotated := data(t, rot, http.StatusOK)
	newSecret, _ := rotated["secret"].(string)
	if newSecret == "" || newSecret == old {
		t.Fatalf("rotate: %s", rot.body)
	}
	shown := s.getWebhook(t, key)
	if until := shown.PreviousSecretExpiresAt; until == nil || time.Until(*until) < 23*time.Hour || time.Until(*until) > 24*time.Hour {
		t.Errorf("previous_secret_expires_at %v, want a day from the rotation", until)
	}

	d := deliver(2)
	if !d.signedWith(old) || !d.signedWith(newSecret) || len(strings.Fields(d.signature)) != 2 {
		t.Errorf("within the overlap: signature %q, want one with each secret (old verifies: %v, new verifies: %v)",
			d.signature, d.signedWith(old), d.signedWith(newSecret))
	}
	if n := s.db.Count(t, `SELECT count(*) FROM webhooks WHERE previous_secret IS NOT NULL
		AND position(convert_to($1, 'UTF8') IN previous_secret) = 0`, old); n != 1 {
		t.Errorf("the previous secret is not kept sealed")
	}

	// A day later (moved back, not waited for), the old secret is done.
	if _, err := s.db.Conn.Exec(t.Context(), `UPDATE webhooks SET rotated_at = rotated_at - interval '24 hours 1 second'`); err != nil {
		t.Fatal(err)
	}
	d = deliver(3)
	if d.signedWith(old) || !d.signedWith(newSecret) || len(strings.Fields(d.signature)) != 1 {
		t.Errorf("after the overlap: signature %q, want the new secret's alone (old verifies: %v)", d.signature, d.signedWith(old))
	}
	if shown := s.getWebhook(t, key); shown.PreviousSecretExpiresAt != nil {
		t.Errorf("previous_secret_expires_at %v after the overlap, want none", shown.PreviousSecretExpiresAt)
	}
}

// PUT /api/v1/webhook reads its body as every other body is read: JSON
// (415 for another Content-Type), the member url exactly (not "URL") and
// no other, each unknown member named in a 400; nothing is stored.
func TestWebhookPutBodyIsStrict(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api", "RATE_LIMIT=0")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	for _, tt := range []struct {
		body, contentType string
		status            int
		field             string
	}{
		{`{"url":"https://8.8.8.8/hook","secret":"whsec_mine"}`, "application/json", 400, "secret"},
		{`{"URL":"https://8.8.8.8/hook"}`, "application/json", 400, "URL"},
		{`{"Url":"https://8.8.8.8/hook","events":["bulk.completed"]}`, "application/json", 400, "events"},
		{`{"url":"https://8.8.8.8/hook"}`, "text/plain", 415, "Content-Type"},
		{`{"url":"https://8.8.8.8/hook"}`, "application/x-www-form-urlencoded", 415, "Content-Type"},
		{`{"url":"https://8.8.8.8/hook"} {"url":"https://8.8.4.4/hook"}`, "application/json", 400, "body"},
	} {
		r := s.request(t, http.MethodPut, "/api/v1/webhook", tt.body, bearer(key), "Content-Type: "+tt.contentType)
		if errs, _ := r.json(t)["errors"].(map[string]any); r.status != tt.status || errs[tt.field] == nil {
			t.Errorf("PUT %s (%s): %d %s; want %d naming %s", tt.body, tt.contentType, r.status, r.body, tt.status, tt.field)
		}
	}
	if n := s.db.Count(t, `SELECT count(*) FROM webhooks`); n != 0 {
		t.Errorf("%d webhooks stored from refused requests", n)
	}
	if r := s.request(t, http.MethodPut, "/api/v1/webhook", `{"url":"https://8.8.8.8/hook"}`, bearer(key), jsonBody); r.status != http.StatusOK {
		t.Errorf("PUT of a good body: %d %s", r.status, r.body)
	}
}

// A name that does not resolve and one that resolves to a private address
// are refused in the same words: a caller cannot tell from the answer
// which internal names exist.
func TestWebhookRefusalDoesNotTellWhatANameResolvesTo(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api", "RATE_LIMIT=0")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	var answers []string
	for _, u := range []string{"https://bulkd-hook.invalid/hook", "https://localhost/hook", "https://10.1.2.3/hook"} {
		r := s.request(t, http.MethodPut, "/api/v1/webhook", `{"url":"`+u+`"}`, bearer(key), jsonBody)
		assertError(t, r, http.StatusUnprocessableEntity, "url")
		answers = append(answers, string(r.body))
	}
	if answers[0] != answers[1] || answers[1] != answers[2] {
		t.Errorf("the answers tell what the names resolve to:\n%s", strings.Join(answers, "\n"))
	}
}

// A delivery that fails (here the endpoint's host does not resolve) is
// logged with the organization and the kind of failure, never the URL
// (which may carry a token) nor its host (which may be a customer's own
// domain); the attempt's error, which GET shows the client, says what went
// wrong without them either.
func TestWebhookFailureLogsNeitherURLNorHost(t *testing.T) {
	t.Parallel()
	s := startService(t, "WEBHOOK_ALLOW_PRIVATE=true", "RATE_LIMIT=0")
	orgID, key := s.newOrg(t, "Acme", "ops@acme.example")
	const host, token = "bulkd-hook.invalid", "t0k3n-of-acme"
	s.putWebhook(t, key, "http://"+host+"/hooks?token="+token)
	id := s.submit(t, key, testenv.SeedExample(t))
	s.waitCompleted(t, key, id)

	var attempt *string
	testenv.Eventually(t, 30*time.Second, func() error {
		if d := s.getWebhook(t, key).Deliveries; len(d) == 1 && len(d[0].Attempts) > 0 {
			attempt = d[0].Attempts[0].Error
			return nil
		}
		return errors.New("the delivery's first attempt to be recorded")
	})
	if attempt == nil || strings.Contains(*attempt, host) || strings.Contains(*attempt, token) || !strings.Contains(*attempt, "resolve") {
		t.Errorf("the attempt's error %q; want what went wrong, without the host or URL", deref(attempt))
	}
	var warned bool
	for _, l := range s.logLines(t, "delivery not made") {
		warned = warned || l["organization_id"] == orgID && l["failure"] == "dns" && l["bulk_id"] == id
	}
	if !warned {
		t.Errorf("no WARN line with the organization and the kind of failure (dns); the logs:\n%s", s.logs)
	}
	for _, part := range []string{host, token, "/hooks"} {
		if strings.Contains(s.logs.String(), part) {
			t.Errorf("the logs carry %q:\n%s", part, s.logs)
		}
	}
}

// A client's DELETE of its webhook gives up its pending deliveries and says
// so in one INFO line: no line per delivery, nothing at ERROR, and nothing
// sent after.
func TestWebhookDeleteIsOneInfoLine(t *testing.T) {
	t.Parallel()
	s := startService(t, "WEBHOOK_ALLOW_PRIVATE=true", "RATE_LIMIT=0")
	orgID, key := s.newOrg(t, "Acme", "ops@acme.example")
	rcv := newReceiver(t)
	rcv.answer = func(delivery) int { return http.StatusServiceUnavailable }
	s.putWebhook(t, key, rcv.srv.URL+"/hooks")
	const bulks = 3
	for range bulks {
		s.waitCompleted(t, key, s.submit(t, key, testenv.SeedExample(t)))
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := s.db.Count(t, `SELECT count(*) FROM deliveries WHERE channel = 'webhook' AND attempts > 0`); n < bulks {
			return fmt.Errorf("each of %d webhook deliveries to be attempted; %d are", bulks, n)
		}
		return nil
	})

	if r := s.request(t, http.MethodDelete, "/api/v1/webhook", nil, bearer(key)); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	sent := len(rcv.deliveries())
	s.runRetriesNow(t)
	s.waitQueuesEmpty(t)

	removed := s.logLines(t, "webhook removed")
	if len(removed) != 1 || removed[0]["level"] != "INFO" || removed[0]["organization_id"] != orgID ||
		removed[0]["deliveries_abandoned"] != float64(bulks) {
		t.Errorf("want one INFO line for the DELETE, giving up %d deliveries; got %v", bulks, removed)
	}
	if n := s.db.Count(t, `SELECT count(*) FROM deliveries WHERE channel = 'webhook' AND abandoned_at IS NULL`); n != 0 {
		t.Errorf("%d webhook deliveries not given up", n)
	}
	if n := len(rcv.deliveries()); n != sent {
		t.Errorf("%d deliveries sent after the DELETE", n-sent)
	}
	assertNoErrorLines(t, s)
}

// An endpoint that answers 410 Gone is disabled: GET still shows its URL,
// with disabled, when and why; its pending deliveries are given up (and
// never sent again), no event is recorded for it any more, and one WARN
// line, without the URL, says so. A PUT enables it again.
func TestWebhookGoneDisablesTheEndpoint(t *testing.T) {
	t.Parallel()
	s := startService(t, "WEBHOOK_ALLOW_PRIVATE=true", "RATE_LIMIT=0")
	orgID, key := s.newOrg(t, "Acme", "ops@acme.example")
	rcv := newReceiver(t)
	url := rcv.srv.URL + "/hooks"
	rcv.secret = s.putWebhook(t, key, url)

	// The first bulk's delivery is refused for now (and pending), the
	// second's is answered 410.
	var refused any
	rcv.answer = func(d delivery) int { // called with rcv.mu held
		if refused == nil {
			refused = d.event.Data["bulk_id"]
		}
		if d.event.Data["bulk_id"] == refused {
			return http.StatusServiceUnavailable
		}
		return http.StatusGone
	}
	first := s.submit(t, key, testenv.SeedExample(t))
	s.waitCompleted(t, key, first)
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := s.db.Count(t, `SELECT count(*) FROM deliveries WHERE bulk_id = $1 AND channel = 'webhook' AND attempts > 0`, first); n != 1 {
			return errors.New("the first bulk's delivery to be attempted")
		}
		return nil
	})
	second := s.submit(t, key, testenv.SeedExample(t))
	s.waitCompleted(t, key, second)

	var shown client.Webhook
	testenv.Eventually(t, 30*time.Second, func() error {
		if shown = s.getWebhook(t, key); !shown.Disabled {
			return errors.New("the webhook to be disabled")
		}
		return nil
	})
	if shown.URL != url || shown.DisabledAt == nil || !strings.Contains(shown.DisabledReason, "410") {
		t.Errorf("disabled webhook as shown: %+v; want its URL, when and why", shown)
	}
	if len(shown.Deliveries) != 2 {
		t.Fatalf("deliveries shown: %+v", shown.Deliveries)
	}
	for _, d := range shown.Deliveries {
		if d.Status != "abandoned" || d.LastError == nil || !strings.Contains(*d.LastError, "410") {
			t.Errorf("delivery of bulk %s after the 410: %s, %v; want given up, saying why", d.BulkID, d.Status, d.LastError)
		}
	}
	disabled := s.logLines(t, "webhook disabled")
	if len(disabled) != 1 || disabled[0]["level"] != "WARN" || disabled[0]["organization_id"] != orgID {
		t.Errorf("want one WARN line for the disabled webhook; got %v", disabled)
	}

	s.waitQueuesEmpty(t) // the first delivery's retry, given up, sends nothing
	if n := s.db.Count(t, `SELECT count(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
		JOIN webhooks w ON w.organization_id = d.organization_id WHERE a.started_at > w.disabled_at`); n != 0 {
		t.Errorf("%d attempts made after the webhook was disabled", n)
	}
	third := s.submit(t, key, testenv.SeedExample(t))
	s.waitCompleted(t, key, third)
	if n := s.db.Count(t, `SELECT count(*) FROM deliveries WHERE bulk_id = $1 AND channel = 'webhook'`, third); n != 0 {
		t.Errorf("an event was recorded for the disabled webhook")
	}
	if strings.Contains(s.logs.String(), strings.TrimPrefix(rcv.srv.URL, "http://")) {
		t.Errorf("the logs carry the endpoint's address:\n%s", s.logs)
	}

	// PUT enables it again, with its secret.
	rcv.mu.Lock()
	rcv.answer = nil
	rcv.mu.Unlock()
	put := data(t, s.request(t, http.MethodPut, "/api/v1/webhook", `{"url":"`+url+`"}`, bearer(key), jsonBody), http.StatusOK)
	if put["disabled"] != false || put["disabled_at"] != nil || put["secret"] != nil {
		t.Errorf("PUT of a disabled webhook: %v; want it enabled, its secret kept", put)
	}
	fourth := s.submit(t, key, testenv.SeedExample(t))
	s.waitCompleted(t, key, fourth)
	testenv.Eventually(t, 30*time.Second, func() error {
		for _, d := range rcv.deliveries() {
			if d.event.Data["bulk_id"] == fourth && d.verified {
				return nil
			}
		}
		return errors.New("the bulk after the PUT to be delivered, signed")
	})
}
