package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulkd/bulkd/pkg/testenv"
)

func TestOperationalEndpoints(t *testing.T) {
	t.Parallel()
	s := startService(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := s.request(t, http.MethodGet, path, nil); r.status != 200 {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
	r := s.request(t, http.MethodGet, "/admin/queues", nil)
	if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != `Basic realm="bulkd queues"` {
		t.Errorf("queue UI without credentials: %d, WWW-Authenticate %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	if r := s.request(t, http.MethodGet, "/admin/queues", nil, basicAuth("admin", "wrong")); r.status != http.StatusUnauthorized {
		t.Errorf("queue UI with a wrong password: %v", r.status)
	}
	r = s.request(t, http.MethodGet, "/admin/queues", nil, basicAuth("admin", "queue-secret"))
	if r.status != 200 || !strings.Contains(string(r.body), "<html") {
		t.Errorf("queue UI with credentials: %d %.200s", r.status, r.body)
	}
	if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("security headers missing: %v", r.header)
	}
}

func TestShutdownFinishesRequestsInFlight(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	body := testenv.SeedExample(t)

	// A submission whose body is still arriving when SIGTERM comes.
	pr, pw := io.Pipe()
	answered := make(chan response, 1)
	go func() { answered <- s.request(t, http.MethodPost, "/api/v1/bulk", pr, bearer(key)) }()
	if _, err := pw.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the server start reading the request

	s.stop()
	time.Sleep(200 * time.Millisecond) // shutdown under way: new connections refused
	if s.answersHealthz() {
		t.Errorf("a new request was served after SIGTERM")
	}
	if _, err := pw.Write(body[len(body)/2:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	r := <-answered
	if r.status != http.StatusAccepted {
		t.Fatalf("request in flight at SIGTERM: %d %s", r.status, r.body)
	}
	if err := <-s.stopped; err != nil {
		t.Errorf("bulkd serve after SIGTERM: %v", err)
	}
	s.stopped <- nil // for the cleanup, which waits on it too
	if n := s.db.Count(t, `SELECT count(*) FROM bulks`); n != 1 {
		t.Errorf("%d bulks stored, want the one in flight", n)
	}
}

// A failing /readyz is logged once, as a change of state naming the
// dependency, not as an ERROR line per probe.
func TestReadinessIsLoggedOnChange(t *testing.T) {
	t.Parallel()
	s := newService(t, "REDIS_URL=redis://127.0.0.1:1/0") // nothing listens on port 1
	s.start("api")
	for range 5 {
		r := s.request(t, http.MethodGet, "/readyz", nil)
		assertError(t, r, http.StatusServiceUnavailable, "redis")
	}
	var lines []string
	for _, l := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(l, "ready") && !strings.Contains(l, `"msg":"request"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], `"level":"WARN"`) || !strings.Contains(lines[0], `"dependency":"redis"`) {
		t.Errorf("want one WARN readiness line naming redis, got %d:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	assertNoErrorLines(t, s)
}
