package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// logLines are the lines logged so far with message msg, decoded.
func logLines(t *testing.T, s *service, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(s.logs.String(), "\n") {
		var v map[string]any
		if json.Unmarshal([]byte(line), &v) == nil && v["msg"] == msg {
			out = append(out, v)
		}
	}
	return out
}

// Every line logged while serving a request names it, once: the request's
// own line, and a WARN a handler or a service logs on its way (here the
// one of a row whose stored result cannot be sent).
func TestEveryLogLineOfARequestCarriesItsID(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	id := s.submit(t, key, []byte(`[{},{}]`))
	s.waitCompleted(t, key, id)
	if _, err := s.db.Conn.Exec(t.Context(), `UPDATE bulk_results SET result = $2 WHERE bulk_id = $1 AND row = 2`, id, []byte("{\"a\":\xff")); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/v1/bulk/" + id + "/results", "/api/v1/bulk/" + id + "?wait=1s"} {
		const reqID = "unreadable-result-1"
		r := s.request(t, http.MethodGet, path, nil, bearer(key), "X-Request-Id: "+reqID)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %.300s", path, r.status, r.body)
		}
		warns := logLines(t, s, "a row's stored result cannot be read; answered as unreadable")
		if len(warns) == 0 {
			t.Fatalf("GET %s logged no WARN for the unreadable row:\n%s", path, s.logs)
		}
		if w := warns[len(warns)-1]; w["level"] != "WARN" || w["request_id"] != reqID || w["row"] != 2.0 {
			t.Errorf("GET %s: the WARN does not name the request: %v", path, w)
		}
	}
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"request"`) && strings.Count(line, `"request_id"`) != 1 {
			t.Errorf("a request line names its id %d times: %s", strings.Count(line, `"request_id"`), line)
		}
	}
}
