package main

// Hostile review of issue 10 (list, cancel, wait, webhooks): each test here
// failed on the code it was written against and says what a client relies on.

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkd/bulkd/pkg/testenv"
)

// A cursor is base64url of plain bytes, the organization's id among them,
// so a client can edit its time. One edited to a time before Postgres'
// range (4714 BC) is a 500 "Internal server error." logged at ERROR, where
// the README promises a 400 naming cursor for any cursor that is not one
// the organization was given.
func TestHostileForgedCursorIs400(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api")
	_, key := s.newOrg("Acme", "ops@acme.example")
	s.submitBulks(key, 2)
	next := s.list(key, "/api/v1/bulk?limit=1").Links.Next
	if next == nil {
		t.Fatal("no next page")
	}
	u, err := url.Parse(*next)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(u.Query().Get("cursor"))
	if err != nil || len(raw) < 9 {
		t.Fatalf("cursor %q: %v", u.Query().Get("cursor"), err)
	}
	// Microseconds since 1970 of one microsecond before 4714-11-24 BC.
	before := int64(-210866803200000001)
	binary.BigEndian.PutUint64(raw[1:9], uint64(before))
	forged := base64.RawURLEncoding.EncodeToString(raw)

	r := s.do(http.MethodGet, "/api/v1/bulk?limit=1&cursor="+forged, key, nil)
	const msg = "The cursor parameter must be a cursor from a links.next this organization was given."
	if want := `{"message":"` + msg + `","errors":{"cursor":["` + msg + `"]}}`; r.status != http.StatusBadRequest || !jsonEqual(t, r.body, []byte(want)) {
		t.Errorf("forged cursor: %d %s, want 400 naming cursor", r.status, r.body)
	}
}

// A client that gives up while GET ?wait= waits (its own timeout, a closed
// tab) is logged as a server failure: "request failed" at ERROR and status
// 500. Any client can thus raise error alerts at will, and a dashboard of
// 5xx counts its impatience as bulkd's faults. A client gone is not an
// error of the server.
func TestHostileClientGoneMidWaitIsNoServerError(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api") // no worker: the bulk stays pending
	_, key := s.newOrg("Acme", "ops@acme.example")
	id := s.submit(key, testenv.SeedExample(t))

	const requestID = "h9-client-gone"
	req, err := http.NewRequest(http.MethodGet, s.base+"/api/v1/bulk/"+id+"?wait=20s", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Request-Id", requestID)
	impatient := &http.Client{Timeout: 300 * time.Millisecond}
	if resp, err := impatient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the wait answered %d before the client gave up", resp.StatusCode)
	}

	var line string
	for start := time.Now(); line == "" && time.Since(start) < 25*time.Second; time.Sleep(50 * time.Millisecond) {
		for _, l := range strings.Split(s.logs.String(), "\n") {
			if strings.Contains(l, `"request_id":"`+requestID+`"`) && strings.Contains(l, `"msg":"request"`) {
				line = l
			}
		}
	}
	if line == "" {
		t.Fatal("the request was not logged within 25 s")
	}
	if strings.Contains(line, `"status":500`) {
		t.Errorf("a client gone mid-wait is logged as a 500: %s", line)
	}
	for _, l := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(l, requestID) && strings.Contains(l, `"level":"ERROR"`) {
			t.Errorf("a client gone mid-wait is logged at ERROR: %s", l)
		}
	}
}

// Two PUT /api/v1/webhook of an organization without an endpoint, at once
// (a client retrying a PUT that seemed slow, two deploys of its receiver),
// both answer 200 with a secret, each a different one; only the secret of
// the last write signs anything, and the other client keeps a secret that
// verifies nothing, with no error to tell it. Registration must answer one
// secret (or one 200 with it, the others without).
func TestHostileConcurrentWebhookPutsAnswerOneSecret(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api", "WEBHOOK_ALLOW_PRIVATE=true", "RATE_LIMIT=0")
	// The race is in the window between an UPDATE that finds no endpoint and
	// the INSERT that makes one; a few rounds of 8 at once meet it.
	for round := range 10 {
		_, key := s.newOrg("Acme", "ops@acme.example")
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			secrets = map[string]bool{}
		)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := call(s.base, key, http.MethodPut, "/api/v1/webhook", []byte(`{"url":"http://127.0.0.1:9/hook"}`))
				if err != nil || r.status != http.StatusOK {
					t.Errorf("PUT: %v %d %s", err, r.status, r.body)
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
			}()
		}
		wg.Wait()
		if len(secrets) != 1 {
			t.Fatalf("round %d: 8 concurrent PUTs answered %d different secrets; only one of them signs", round, len(secrets))
		}
	}
}
