package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkd/bulkd/pkg/testenv"
)

// waited is the answer to a wait that saw the bulk finish.
type waited struct {
	Data    json.RawMessage `json:"data"`
	Results json.RawMessage `json:"results"`
}

func (r response) waited(t testing.TB) waited {
	t.Helper()
	var w waited
	if err := json.Unmarshal(r.body, &w); err != nil {
		t.Fatalf("answer is not JSON (%d): %s", r.status, r.body)
	}
	return w
}

// data is the "data" member of an answer, as raw JSON.
func (r response) data(t testing.TB) json.RawMessage {
	t.Helper()
	return r.waited(t).Data
}

// status is the "status" of a bulk as GET shows it.
func status(t testing.TB, bulk json.RawMessage) string {
	t.Helper()
	var b struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(bulk, &b); err != nil {
		t.Fatalf("not a bulk: %s", bulk)
	}
	return b.Status
}

// A small bulk submitted with ?wait= answers 200 with the bulk exactly as
// GET shows it and its first page of results exactly as GET …/results
// gives it; GET ?wait= of a finished bulk answers the same. Without wait,
// nothing changes: 202 for a submission, no results in GET.
func TestWaitForASmallBulk(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")

	r := s.request(t, http.MethodPost, "/api/v1/bulk?wait=30s", testenv.SeedExample(t), bearer(key), jsonBody)
	if r.status != http.StatusOK {
		t.Fatalf("POST ?wait=30s of the seed: %d %s", r.status, r.body)
	}
	w := r.waited(t)
	var b struct {
		ID            string `json:"bulk_id"`
		Status        string `json:"status"`
		RowsSucceeded int    `json:"rows_succeeded"`
	}
	if err := json.Unmarshal(w.Data, &b); err != nil || b.Status != "completed" || b.RowsSucceeded != 1 {
		t.Fatalf("waited bulk: %s (%v)", w.Data, err)
	}
	if loc := r.header.Get("Location"); loc != "/api/v1/bulk/"+b.ID {
		t.Errorf("Location %q", loc)
	}
	get := s.request(t, http.MethodGet, "/api/v1/bulk/"+b.ID, nil, bearer(key))
	if !jsonEqual(t, w.Data, get.data(t)) {
		t.Errorf("waited bulk differs from GET's:\n%s\n%s", w.Data, get.body)
	}
	results := s.request(t, http.MethodGet, "/api/v1/bulk/"+b.ID+"/results?page=1", nil, bearer(key))
	if !jsonEqual(t, w.Results, results.body) {
		t.Errorf("waited results differ from GET …/results?page=1:\n%s\n%s", w.Results, results.body)
	}
	if !strings.Contains(string(w.Results), `"total_created":1`) {
		t.Errorf("results without the totals: %s", w.Results)
	}

	// GET ?wait= of a finished bulk answers at once, with its results.
	r = s.request(t, http.MethodGet, "/api/v1/bulk/"+b.ID+"?wait=30", nil, bearer(key))
	if r.status != http.StatusOK || !jsonEqual(t, r.waited(t).Results, results.body) || !jsonEqual(t, r.data(t), get.data(t)) {
		t.Errorf("GET ?wait=30 of a finished bulk: %d %s", r.status, r.body)
	}
	// Another organization's bulk is not found, at once, wait or not.
	_, otherKey := s.newOrg(t, "Other", "ops@other.example")
	if r := s.request(t, http.MethodGet, "/api/v1/bulk/"+b.ID+"?wait=30s", nil, bearer(otherKey)); r.status != http.StatusNotFound {
		t.Errorf("GET ?wait=30s of another organization's bulk: %d %s, want 404", r.status, r.body)
	}
	// Without wait (or wait=0): as before.
	for _, path := range []string{"/api/v1/bulk/" + b.ID, "/api/v1/bulk/" + b.ID + "?wait=0"} {
		if r := s.request(t, http.MethodGet, path, nil, bearer(key)); r.status != http.StatusOK || r.waited(t).Results != nil {
			t.Errorf("GET %s: %d %s, want the bulk alone", path, r.status, r.body)
		}
	}
	s.submit(t, key, testenv.SeedExample(t)) // checks the 202
	if r := s.request(t, http.MethodPost, "/api/v1/bulk?wait=0", testenv.SeedExample(t), bearer(key), jsonBody); r.status != http.StatusAccepted {
		t.Errorf("POST ?wait=0: %d %s, want 202", r.status, r.body)
	}

	// An Idempotency-Key replay waits too, and answers the same bulk.
	post := func() response {
		return s.request(t, http.MethodPost, "/api/v1/bulk?wait=30s", testenv.SeedExample(t), bearer(key), jsonBody, "Idempotency-Key: wait-replay-1")
	}
	first, replay := post(), post()
	if first.status != http.StatusOK || replay.status != http.StatusOK || replay.header.Get("Idempotent-Replayed") != "true" ||
		!jsonEqual(t, first.data(t), replay.data(t)) {
		t.Errorf("replay with wait:\n%d %s\n%d %v %s", first.status, first.body, replay.status, replay.header, replay.body)
	}
}

// An import slower than the wait (held by a lock inside its transaction)
// answers the usual 202, and GET ?wait= the bulk as it is; once the import
// goes on, GET ?wait= answers it finished.
func TestWaitAnswers202WhenTheImportIsSlower(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	lock := lockTable(t, s.db, "bulk_results")

	r := s.request(t, http.MethodPost, "/api/v1/bulk?wait=1s", testenv.SeedExample(t), bearer(key), jsonBody)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST ?wait=1s of a held import: %d %s, want 202", r.status, r.body)
	}
	id := r.json(t)["data"].(map[string]any)["bulk_id"].(string)
	waitForWriteBlockedOn(t, s.db, "bulk_results")

	r = s.request(t, http.MethodGet, "/api/v1/bulk/"+id+"?wait=1s", nil, bearer(key))
	if r.status != http.StatusOK || status(t, r.data(t)) != "processing" || r.waited(t).Results != nil {
		t.Errorf("GET ?wait=1s of a held import: %d %s, want 200 processing without results", r.status, r.body)
	}

	lock.release()
	r = s.request(t, http.MethodGet, "/api/v1/bulk/"+id+"?wait=30s", nil, bearer(key))
	if r.status != http.StatusOK || status(t, r.data(t)) != "completed" || r.waited(t).Results == nil {
		t.Errorf("GET ?wait=30s once the import goes on: %d %s", r.status, r.body)
	}
}

// GET ?wait= on a pending bulk, with no worker running, answers once a
// worker started later has imported it.
func TestGetWaitsForAPendingBulk(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	id := s.submit(t, key, testenv.SeedExample(t))

	answer := make(chan response, 1)
	go func() { answer <- s.request(t, http.MethodGet, "/api/v1/bulk/"+id+"?wait=60s", nil, bearer(key)) }()
	s.spawn("worker")
	r := <-answer
	if r.status != http.StatusOK || status(t, r.data(t)) != "completed" || r.waited(t).Results == nil {
		t.Errorf("GET ?wait=60s of a pending bulk: %d %s, want 200 completed with results", r.status, r.body)
	}
}

// 200 clients wait at once on an API process whose pool has 4 connections:
// while they wait, the process holds at most its 4 pool connections and its
// one listener, and every client gets its bulk finished once a worker runs.
func TestManyWaitersHoldNoConnections(t *testing.T) {
	t.Parallel()
	const clients, poolSize = 200, 4
	s := newService(t, "RATE_LIMIT=0")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	api := s.spawn("api", fmt.Sprintf("DB_MAX_CONNS=%d", poolSize), "DATABASE_URL="+s.db.URL+"&application_name=bulkd-wait-api")
	s.waitHealthy(t, api)

	seed := testenv.SeedExample(t)
	answers := make(chan response, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() { answers <- s.request(t, http.MethodPost, "/api/v1/bulk?wait=60s", seed, bearer(key), jsonBody) })
	}
	// Every submission is stored: the clients are waiting (or about to).
	testenv.Eventually(t, time.Minute, func() error {
		if n := s.db.Count(t, `SELECT count(*) FROM bulks`); n < clients {
			return fmt.Errorf("every submission to be stored; %d of %d are", n, clients)
		}
		return nil
	})
	most := 0
	for range 20 {
		n := s.db.Count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'bulkd-wait-api'`)
		most = max(most, n)
		time.Sleep(25 * time.Millisecond)
	}
	if most > poolSize+1 {
		t.Errorf("the API held %d connections while %d clients waited, want at most %d (pool) + 1 (listener)", most, clients, poolSize)
	}
	if n := s.db.Count(t, `SELECT count(*) FROM bulks WHERE status <> 'pending'`); n != 0 {
		t.Fatalf("%d bulks imported before any worker ran", n)
	}

	s.spawn("worker")
	wg.Wait()
	close(answers)
	completed := 0
	for r := range answers {
		if r.status == http.StatusOK && status(t, r.data(t)) == "completed" && r.waited(t).Results != nil {
			completed++
		} else if r.status != 0 {
			t.Errorf("a waiting client got %d %s", r.status, r.body)
		}
	}
	if completed != clients {
		t.Errorf("%d of %d waiting clients got their bulk completed", completed, clients)
	}
	t.Logf("%d clients waited; the API held at most %d connections", clients, most)
}

// A wait that is not a duration from 0 to MAX_WAIT is a 400 naming wait,
// on POST (nothing stored) and on GET.
func TestBadWaitValues(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	id := s.submit(t, key, testenv.SeedExample(t))
	const msg = "The wait parameter must be a duration from 0 to 60s, such as 30s (or a whole number of seconds)."
	for _, q := range []string{"wait=soon", "wait=-1s", "wait=-1", "wait=61s", "wait=2m", "wait=61", "wait=1.5", "wait=", "wait=30s&wait=1s",
		// 2^55 seconds and 1: whole seconds multiplied into a time.Duration
		// without an overflow check would wrap to 1 s.
		"wait=36028797018963969"} {
		t.Run(q, func(t *testing.T) {
			want := `{"message":"` + msg + `","errors":{"wait":["` + msg + `"]}}`
			if strings.Count(q, "wait=") > 1 {
				want = `{"message":"The wait parameter must be given at most once.","errors":{"wait":["The wait parameter must be given at most once."]}}`
			}
			for _, r := range []response{
				s.request(t, http.MethodPost, "/api/v1/bulk?"+q, testenv.SeedExample(t), bearer(key), jsonBody),
				s.request(t, http.MethodGet, "/api/v1/bulk/"+id+"?"+q, nil, bearer(key)),
			} {
				if r.status != http.StatusBadRequest || !jsonEqual(t, r.body, []byte(want)) {
					t.Errorf("%s: %d %s", q, r.status, r.body)
				}
			}
		})
	}
	if n := s.db.Count(t, `SELECT count(*) FROM bulks`); n != 1 {
		t.Errorf("%d bulks stored, want only the first", n)
	}
}

// Postgres lost while a submission waits: the bulk is stored, so the
// answer is the 202 it earned, not a 503 that would invite a duplicate.
func TestWaitingSubmissionAnswers202WhenPostgresIsLost(t *testing.T) {
	t.Parallel()
	s := newService(t)
	u, err := url.Parse(s.db.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	s.env["DATABASE_URL"] = u.String()
	s.start("api") // no worker: the bulk stays pending
	_, key := s.newOrg(t, "Acme", "ops@acme.example")

	answer := make(chan response, 1)
	seed := testenv.SeedExample(t)
	go func() { answer <- s.request(t, http.MethodPost, "/api/v1/bulk?wait=3s", seed, bearer(key), jsonBody) }()
	testenv.Eventually(t, 30*time.Second, func() error {
		if s.db.Count(t, `SELECT count(*) FROM bulks`) == 0 {
			return errors.New("the submission to be stored")
		}
		return nil
	})
	proxy.Cut()
	r := <-answer
	if r.status != http.StatusAccepted {
		t.Fatalf("a stored bulk whose wait lost Postgres: %d %s, want 202", r.status, r.body)
	}
	var id string
	if err := s.db.Conn.QueryRow(t.Context(), `SELECT id::text FROM bulks`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if got := r.json(t)["data"].(map[string]any)["bulk_id"]; got != id {
		t.Errorf("202 names bulk %v, stored %s", got, id)
	}
}

// A client that gives up while GET ?wait= waits (its own timeout, a closed
// tab) is not an error of the server: its request is not logged as a 500,
// and nothing of it at ERROR, so that no client can raise error alerts at
// will, nor a dashboard of 5xx count its impatience as bulkd's faults.
func TestClientGoneMidWaitIsNoServerError(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api") // no worker: the bulk stays pending
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	id := s.submit(t, key, testenv.SeedExample(t))

	const requestID = "h9-client-gone"
	req, err := http.NewRequest(http.MethodGet, s.base+"/api/v1/bulk/"+id+"?wait=20s", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Request-Id", requestID)
	// Not s.request: a client of its own, that gives up.
	impatient := &http.Client{Timeout: 300 * time.Millisecond}
	if resp, err := impatient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the wait answered %d before the client gave up", resp.StatusCode)
	}

	// The request's own line comes last: every line of it is logged by then.
	line := s.requestLine(t, requestID)
	if strings.Contains(line, `"status":500`) {
		t.Errorf("a client gone mid-wait is logged as a 500: %s", line)
	}
	for _, l := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(l, requestID) && strings.Contains(l, `"level":"ERROR"`) {
			t.Errorf("a client gone mid-wait is logged at ERROR: %s", l)
		}
	}
}
