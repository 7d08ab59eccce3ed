package main

// Final hostile review of the records API and the bulk lifecycle. Each test
// here failed on the code it was written against; each says what a client
// relies on and what happened.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// truncatedRequest sends method path with a Content-Length 100 bytes more
// than body, then closes its side of the connection (a client whose upload
// broke off), and returns bulkd's answer.
func truncatedRequest(t *testing.T, s *service, method, path, key, contentType, body string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: bulkd\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
		method, path, key, contentType, len(body)+100, body)
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: no answer: %v", method, path, err)
	}
	return resp
}

// A body shorter than its Content-Length (the client's upload broke off, a
// proxy cut it) is the client's fault: POST /api/v1/bulk answers it 400
// ("The request body must be valid JSON.") and logs nothing at ERROR. The
// records API and the webhook route return the read error as it is, so bulkd
// answers 500 "Internal server error." and logs `ERROR request failed
// err="unexpected EOF"` for each: a client is told to retry a server fault
// that is its own, and an operator is paged for every dropped upload.
func TestHostileFinalTruncatedBodiesAreNotServerErrors(t *testing.T) {
	t.Parallel()
	s := startService(t, "RATE_LIMIT=0")
	_, key := s.newOrg("Acme", "ops@acme.example")
	s.waitCompleted(key, s.submit(key, []byte(recordsBulk)))
	c1 := s.recordID(t, "customers", "c1")
	for _, tc := range []struct{ method, path, contentType, body string }{
		{http.MethodPost, "/api/v1/bulk", "application/json", `[{"customer":{"external_id":"a","name":"b"}}]`}, // holds: 400
		{http.MethodPatch, "/api/v1/customers/" + c1, "application/merge-patch+json", `{"name":"Half"}`},
		{http.MethodPatch, "/api/v1/customers/" + c1, "application/json-patch+json", `[{"op":"replace","path":"/name","value":"Half"}]`},
		{http.MethodPost, "/api/v1/batch", "application/json", `{"operations":[{"operation":"create","resource":"locations","object":{"external_id":"half"}}]}`},
		{http.MethodPut, "/api/v1/webhook", "application/json", `{"url":"https://hooks.example.com/bulkd"}`},
	} {
		resp := truncatedRequest(t, s, tc.method, tc.path, key, tc.contentType, tc.body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s %s with a body 100 bytes short of its Content-Length: %d, want 400 as POST /api/v1/bulk answers",
				tc.method, tc.path, resp.StatusCode)
		}
	}
	time.Sleep(100 * time.Millisecond)
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, "unexpected EOF") {
			t.Errorf("a client's truncated upload is logged as a server error: %s", line)
		}
	}
	if got := s.record(t, `SELECT name FROM customers WHERE id = $1`, c1); got != "Ann" {
		t.Errorf("the customer's name is %q after truncated patches, want Ann", got)
	}
}

// The README's request errors say a Content-Encoding other than gzip or
// identity is a 415 naming Content-Encoding, and POST /api/v1/bulk decodes
// gzip bodies. PATCH and POST /api/v1/batch ignore the header: a patch sent
// gzip-compressed (as a client that compresses every upload sends it) is a
// 422 "The patch must be JSON.", and a body labelled with an encoding bulkd
// does not decode (br) is read as if it were plain: here a 200 that writes
// the patch, where a client whose body really is Brotli gets a misleading
// 422 or 400 instead of being told the encoding is not supported.
func TestHostileFinalRecordsHonourContentEncoding(t *testing.T) {
	t.Parallel()
	s := startService(t, "RATE_LIMIT=0")
	_, key := s.newOrg("Acme", "ops@acme.example")
	s.waitCompleted(key, s.submit(key, []byte(recordsBulk)))
	c1 := s.recordID(t, "customers", "c1")

	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	_, _ = w.Write([]byte(`{"name":"Zed"}`))
	_ = w.Close()
	r := s.call(http.MethodPatch, "/api/v1/customers/"+c1, key,
		map[string]string{"Content-Type": "application/merge-patch+json", "Content-Encoding": "gzip"}, gz.String())
	if r.status != http.StatusOK || s.record(t, `SELECT name FROM customers WHERE id = $1`, c1) != "Zed" {
		t.Errorf("a gzip-encoded merge patch: %d %.300s, want 200 and the name patched, as a gzip bulk is decoded", r.status, r.body)
	}

	r = s.call(http.MethodPatch, "/api/v1/customers/"+c1, key,
		map[string]string{"Content-Type": "application/merge-patch+json", "Content-Encoding": "br"}, `{"name":"Brotli"}`)
	if r.status != http.StatusUnsupportedMediaType || errorFields(t, r)["Content-Encoding"] == nil {
		t.Errorf("PATCH with Content-Encoding: br: %d %.300s, want 415 naming Content-Encoding", r.status, r.body)
	}
	if got := s.record(t, `SELECT name FROM customers WHERE id = $1`, c1); got == "Brotli" {
		t.Errorf("a body in an encoding bulkd does not decode was applied as if plain")
	}

	r = s.call(http.MethodPost, "/api/v1/batch", key, map[string]string{"Content-Encoding": "br"},
		`{"operations":[{"operation":"create","resource":"locations","object":{"external_id":"brl"}}]}`)
	if r.status != http.StatusUnsupportedMediaType || errorFields(t, r)["Content-Encoding"] == nil {
		t.Errorf("POST /api/v1/batch with Content-Encoding: br: %d %.300s, want 415 naming Content-Encoding", r.status, r.body)
	}
	if n := s.record(t, `SELECT count(*)::text FROM locations WHERE external_id = 'brl'`); n != "0" {
		t.Errorf("the batch in an unsupported encoding created %s locations, want none", n)
	}
}

// A patch that adds a member with an empty name (JSON Patch path "/", the
// member "" in RFC 6901, or a merge patch {"": 1}) is refused, but the
// answer names no field: errors has the key "" and the message reads "The
// field is unknown." (with a double space). A client showing the message,
// or mapping errors to its form's fields, has nothing to show. It must name
// something the client sent, as every other refusal does (the patch, or the
// member as written, quoted).
func TestHostileFinalEmptyMemberNameIsNamedInTheError(t *testing.T) {
	t.Parallel()
	s := startService(t, "RATE_LIMIT=0")
	_, key := s.newOrg("Acme", "ops@acme.example")
	s.waitCompleted(key, s.submit(key, []byte(recordsBulk)))
	c1 := s.recordID(t, "customers", "c1")
	for _, tc := range []struct{ contentType, body string }{
		{"application/json-patch+json", `[{"op":"add","path":"/","value":"X"}]`},
		{"application/merge-patch+json", `{"":"X"}`},
	} {
		r := s.call(http.MethodPatch, "/api/v1/customers/"+c1, key, map[string]string{"Content-Type": tc.contentType}, tc.body)
		fields := errorFields(t, r)
		if r.status != http.StatusUnprocessableEntity || len(fields) == 0 || fields[""] != nil ||
			strings.Contains(string(r.body), "The  field") {
			t.Errorf("%s %s: %d %.300s, want 422 naming a field the client can tell", tc.contentType, tc.body, r.status, r.body)
		}
	}
	// A batch create's object, read by the same code, answers the same.
	a := s.batch(t, key, `[{"operation":"create","resource":"locations","object":{"external_id":"l9","":"X"}}]`)
	if res := a.Results[0]; res.Errors[""] != nil || strings.Contains(res.ErrorMessage, "The  field") {
		t.Errorf("batch create of an object with a member named \"\": %d %q %v, want a field the client can tell", res.Status, res.ErrorMessage, res.Errors)
	}
}

// "An unknown query parameter … is a 400 naming it" (README, Request
// errors), and GET /api/v1/bulk/{id}, /results, the lists, PATCH, DELETE of
// a record and the batch hold to it. Other routes ignore what they do not
// know: a client that sends POST /api/v1/bulk/{id}/cancel?validate_only=true
// (or DELETE /api/v1/webhook?dry_run=true, or a misspelt parameter) has its
// bulk canceled, its webhook removed or its secret rotated for real, with a
// success answer. Each must be 400 naming the parameter, and nothing done.
func TestHostileFinalUnknownQueryParametersAreRefusedEverywhere(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api", "RATE_LIMIT=0", "WEBHOOK_ALLOW_PRIVATE=true")
	_, key := s.newOrg("Acme", "ops@acme.example")
	bid := s.submit(key, []byte(recordsBulk)) // stays pending: no worker
	if r := s.call(http.MethodPut, "/api/v1/webhook", key, nil, `{"url":"https://hooks.example.com/bulkd"}`); r.status != http.StatusOK {
		t.Fatalf("PUT webhook: %d %s", r.status, r.body)
	}
	secret := s.record(t, `SELECT encode(sha256(secret), 'hex') FROM webhooks`)
	for _, tc := range []struct{ method, path, param string }{
		{http.MethodGet, "/api/v1/bulk/" + bid + "/errors?bogus=1", "bogus"},
		{http.MethodPost, "/api/v1/bulk/" + bid + "/cancel?validate_only=true", "validate_only"},
		{http.MethodGet, "/api/v1/webhook?bogus=1", "bogus"},
		{http.MethodPost, "/api/v1/webhook/rotate?dry_run=true", "dry_run"},
		{http.MethodDelete, "/api/v1/webhook?dry_run=true", "dry_run"},
	} {
		r := s.call(tc.method, tc.path, key, nil, "")
		if r.status != http.StatusBadRequest || errorFields(t, r)[tc.param] == nil {
			t.Errorf("%s %s: %d %.200s, want 400 naming %s", tc.method, tc.path, r.status, r.body, tc.param)
		}
	}
	if st := s.record(t, `SELECT status FROM bulks WHERE id = $1`, bid); st != "pending" {
		t.Errorf("the bulk is %s after a cancel with an unknown parameter, want pending", st)
	}
	if n := s.record(t, `SELECT count(*)::text FROM webhooks`); n != "1" {
		t.Errorf("%s webhooks after a DELETE with an unknown parameter, want 1", n)
	} else if now := s.record(t, `SELECT encode(sha256(secret), 'hex') FROM webhooks`); now != secret {
		t.Errorf("the webhook secret was rotated by a request with an unknown parameter")
	}
}
