package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/testenv"
)

// Any credential that is not a well-formed key is a 401 naming the header,
// answered before any query (bytes that are not UTF-8 would make Postgres
// fail: a 500 and an ERROR line at will, without a key); the scheme is
// case-insensitive.
func TestMalformedCredentialsAre401(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	unknown := "/api/v1/bulk/" + uuid.NewString() // 404 once authenticated
	for _, tt := range []struct {
		name, authorization string
		status              int
		field               string
	}{
		{"multi-byte prefix", "Bearer bk_aaaaaaaaé", 401, "authorization"},
		{"not UTF-8", "Bearer bk_aaaaaaaa\xe9\xff" + strings.Repeat("a", 38), 401, "authorization"},
		{"over-long", "Bearer bk_" + strings.Repeat("a", 20_000), 401, "authorization"},
		{"not base32", "Bearer bk_" + strings.Repeat("1", 48), 401, "authorization"},
		{"no scheme separator", "Bearer" + key, 401, "authorization"},
		{"another scheme", "Basic " + key, 401, "authorization"},
		{"scheme only", "Bearer ", 401, "authorization"},
		{"a tab inside", "Bearer bk_aaaaaaaa\t" + strings.Repeat("a", 39), 401, "authorization"},
		{"lower-case scheme", "bearer " + key, 404, "id"},
		{"upper-case scheme and a tab", "BEARER \t " + key, 404, "id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := s.request(t, http.MethodGet, unknown, nil, "Authorization: "+tt.authorization)
			assertError(t, r, tt.status, tt.field)
			if tt.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	t.Run("two Authorization fields", func(t *testing.T) {
		r := s.rawRequest(t, "GET "+unknown+" HTTP/1.1\r\nHost: bulkd\r\nAuthorization: Bearer "+key+
			"\r\nAuthorization: Bearer "+key+"\r\nConnection: close\r\n\r\n", false)
		if r.status != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", r.status)
		}
	})
	// Go's server itself answers 400 to other control characters in a header,
	// before bulkd reads it: still no 500, and nothing logged.
	t.Run("other control characters", func(t *testing.T) {
		r := s.rawRequest(t, "GET "+unknown+" HTTP/1.1\r\nHost: bulkd\r\nAuthorization: Bearer bk_aaaaaaaa\x01\x7f"+
			strings.Repeat("a", 38)+"\r\nConnection: close\r\n\r\n", false)
		if r.status != http.StatusBadRequest {
			t.Errorf("status %d, want net/http's 400", r.status)
		}
	})
	assertNoErrorLines(t, s)
}

// slowBody sends body in pieces over about total, as a slow link does.
func slowBody(body []byte, pieces int, total time.Duration) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		size := (len(body) + pieces - 1) / pieces
		for len(body) > 0 {
			n := min(size, len(body))
			if _, err := pw.Write(body[:n]); err != nil {
				return
			}
			body = body[n:]
			time.Sleep(total / time.Duration(pieces))
		}
		pw.Close()
	}()
	return pr
}

// REQUEST_TIMEOUT bounds the server's work, not the client's upload: a body
// that takes three times the timeout to arrive is accepted and imported.
func TestSlowUploadIsNotBoundByRequestTimeout(t *testing.T) {
	t.Parallel()
	s := startService(t, "REQUEST_TIMEOUT=1s")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	r := s.request(t, http.MethodPost, "/api/v1/bulk", slowBody(testenv.SeedExample(t), 6, 3*time.Second), bearer(key))
	if r.status != http.StatusAccepted {
		t.Fatalf("slow upload: %d %s", r.status, r.body)
	}
	id := r.json(t)["data"].(map[string]any)["bulk_id"].(string)
	if got := s.waitCompleted(t, key, id); got["rows_succeeded"] != 1.0 {
		t.Errorf("slow upload imported: %v", got)
	}
}

// A client's X-Request-Id is kept only when short and of safe characters;
// otherwise bulkd answers with, and logs, an id of its own.
func TestRequestIDs(t *testing.T) {
	t.Parallel()
	s := startService(t)
	for _, tt := range []struct {
		name, id string
		kept     bool
	}{
		{"30 KB", "huge" + strings.Repeat("z", 30_000), false},
		{"spaces and quotes", `evil id "quoted" level=ERROR`, false},
		{"65 characters", "long" + strings.Repeat("y", 61), false},
		{"a good id", "req-42.a_b:C", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := s.request(t, http.MethodGet, "/healthz", nil, "X-Request-Id: "+tt.id)
			got := r.header.Get("X-Request-Id")
			if tt.kept != (got == tt.id) || got == "" || len(got) > 64 {
				t.Errorf("X-Request-Id answered %.80q for %.80q", got, tt.id)
			}
			// The id answered is the one logged; once its line is there, so
			// is every line of the request.
			s.requestLine(t, got)
		})
	}
	logs := s.logs.String()
	for _, sent := range []string{"huge", "evil", "longyyyy"} {
		if strings.Contains(logs, sent) {
			t.Errorf("logs contain the refused id %q", sent)
		}
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// HTTP semantics through the real API: HEAD, 405 with Allow, the JSON shape
// of every error, request header limits, content encodings, a byte-order
// mark and content types.
func TestHTTPSemantics(t *testing.T) {
	t.Parallel()
	s := startService(t) // MAX_BODY_BYTES is 1 MiB
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	seed := testenv.SeedExample(t)
	id := s.submit(t, key, seed)
	s.waitCompleted(t, key, id)
	auth := bearer(key)
	gzSeed := gzipped(t, seed)
	bomb := gzipped(t, []byte("["+strings.Repeat(" ", 2<<20)+"{}]")) // 2 MiB once decoded, a few KB sent

	for _, tt := range []struct {
		name   string
		method string
		path   string
		header []string
		body   []byte
		status int
		field  string // of the error; "" for a success
		allow  string // what Allow must list
	}{
		{"HEAD /healthz", "HEAD", "/healthz", nil, nil, 200, "", ""},
		{"HEAD /readyz", "HEAD", "/readyz", nil, nil, 200, "", ""},
		{"HEAD a bulk", "HEAD", "/api/v1/bulk/" + id, []string{auth}, nil, 200, "", ""},
		{"HEAD its errors", "HEAD", "/api/v1/bulk/" + id + "/errors", []string{auth}, nil, 200, "", ""},
		{"HEAD without a key", "HEAD", "/api/v1/bulk/" + id, nil, nil, 401, "", ""},
		{"DELETE /api/v1/bulk", "DELETE", "/api/v1/bulk", []string{auth}, nil, 405, "method", "POST"},
		{"PATCH /api/v1/bulk", "PATCH", "/api/v1/bulk", nil, nil, 405, "method", "POST"},
		{"HEAD the list of bulks", "HEAD", "/api/v1/bulk", []string{auth}, nil, 200, "", ""},
		{"PUT a bulk", "PUT", "/api/v1/bulk/" + id, []string{auth}, nil, 405, "method", "GET"},
		{"POST its errors", "POST", "/api/v1/bulk/" + id + "/errors", nil, nil, 405, "method", "HEAD"},
		{"POST /healthz", "POST", "/healthz", nil, nil, 405, "method", "GET"},
		{"unknown route", "GET", "/nope", nil, nil, 404, "path", ""},
		{"unknown API route", "GET", "/api/v1/bulks", []string{auth}, nil, 404, "path", ""},
		{"unknown bulk", "GET", "/api/v1/bulk/" + uuid.NewString(), []string{auth}, nil, 404, "id", ""},
		{"headers over 64 KiB", "GET", "/healthz", []string{"X-Padding: " + strings.Repeat("p", 70<<10)}, nil, 431, "headers", ""},
		{"gzip", "POST", "/api/v1/bulk", []string{auth, "Content-Encoding: gzip"}, gzSeed, 202, "", ""},
		{"identity", "POST", "/api/v1/bulk", []string{auth, "Content-Encoding: identity"}, seed, 202, "", ""},
		{"gzip bomb", "POST", "/api/v1/bulk", []string{auth, "Content-Encoding: gzip"}, bomb, 413, "body", ""},
		{"corrupt gzip", "POST", "/api/v1/bulk", []string{auth, "Content-Encoding: gzip"}, seed, 400, "body", ""},
		{"truncated gzip", "POST", "/api/v1/bulk", []string{auth, "Content-Encoding: gzip"}, gzSeed[:len(gzSeed)/2], 400, "body", ""},
		{"gzip with a bad checksum", "POST", "/api/v1/bulk", []string{auth, "Content-Encoding: gzip"},
			append(bytes.Clone(gzSeed[:len(gzSeed)-8]), 0, 0, 0, 0, 0, 0, 0, 0), 400, "body", ""},
		{"br", "POST", "/api/v1/bulk", []string{auth, "Content-Encoding: br"}, seed, 415, "Content-Encoding", ""},
		{"deflate", "POST", "/api/v1/bulk", []string{auth, "Content-Encoding: deflate"}, seed, 415, "Content-Encoding", ""},
		{"compress", "POST", "/api/v1/bulk", []string{auth, "Content-Encoding: compress"}, seed, 415, "Content-Encoding", ""},
		{"gzip twice", "POST", "/api/v1/bulk", []string{auth, "Content-Encoding: gzip, gzip"}, gzSeed, 415, "Content-Encoding", ""},
		{"byte-order mark", "POST", "/api/v1/bulk", []string{auth}, append([]byte("\xef\xbb\xbf"), seed...), 202, "", ""},
		{"no Content-Type", "POST", "/api/v1/bulk", []string{auth}, seed, 202, "", ""},
		{"JSON in UTF-8", "POST", "/api/v1/bulk", []string{auth, "Content-Type: application/json; charset=UTF-8"}, seed, 202, "", ""},
		{"a +json type", "POST", "/api/v1/bulk", []string{auth, "Content-Type: application/vnd.api+json"}, seed, 202, "", ""},
		{"text/plain", "POST", "/api/v1/bulk", []string{auth, "Content-Type: text/plain"}, seed, 415, "Content-Type", ""},
		{"a form", "POST", "/api/v1/bulk", []string{auth, "Content-Type: application/x-www-form-urlencoded"}, seed, 415, "Content-Type", ""},
		{"JSON in Latin-1", "POST", "/api/v1/bulk", []string{auth, "Content-Type: application/json; charset=latin1"}, seed, 415, "Content-Type", ""},
		{"malformed Content-Type", "POST", "/api/v1/bulk", []string{auth, "Content-Type: application/json;;="}, seed, 415, "Content-Type", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := s.request(t, tt.method, tt.path, tt.body, tt.header...)
			if tt.method == http.MethodHead {
				if r.status != tt.status || len(r.body) != 0 {
					t.Errorf("HEAD: %d with %d bytes, want %d and none", r.status, len(r.body), tt.status)
				}
				if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("HEAD: Content-Type %q", ct)
				}
				return
			}
			if tt.field == "" {
				if r.status != tt.status {
					t.Fatalf("status %d, want %d: %.300s", r.status, tt.status, r.body)
				}
				return
			}
			assertError(t, r, tt.status, tt.field)
			if allow := r.header.Get("Allow"); tt.allow != "" && !strings.Contains(allow, tt.allow) {
				t.Errorf("Allow %q, want it to list %s", allow, tt.allow)
			}
			if tt.field == "Content-Encoding" && !strings.Contains(r.json(t)["message"].(string), "gzip") {
				t.Errorf("415 does not name gzip: %s", r.body)
			}
			if tt.field == "Content-Type" && !strings.Contains(r.json(t)["message"].(string), "application/json") {
				t.Errorf("415 does not name application/json: %s", r.body)
			}
			if tt.status == 413 && !strings.Contains(r.json(t)["message"].(string), "1 MiB") {
				t.Errorf("413 does not name the limit: %s", r.body)
			}
		})
	}
	assertNoErrorLines(t, s)
}

func TestBulksAreVisibleOnlyToTheirOrganization(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, keyA := s.newOrg(t, "A", "a@example.com")
	_, keyB := s.newOrg(t, "B", "b@example.com")
	id := s.submit(t, keyA, testenv.SeedExample(t))
	s.waitCompleted(t, keyA, id)
	for _, path := range []string{"/api/v1/bulk/" + id, "/api/v1/bulk/" + id + "/errors",
		"/api/v1/bulk/" + uuid.NewString(), "/api/v1/bulk/not-a-uuid/errors"} {
		r := s.request(t, http.MethodGet, path, nil, bearer(keyB))
		if r.status != http.StatusNotFound || r.json(t)["message"] == nil {
			t.Errorf("GET %s with another organization's key: %d %s", path, r.status, r.body)
		}
	}
	revoked := s.cli(t, "apikey", "revoke", "--prefix", keyA[:12])
	if revoked != "revoked" {
		t.Errorf("apikey revoke printed %q", revoked)
	}
	if r := s.request(t, http.MethodGet, "/api/v1/bulk/"+id, nil, bearer(keyA)); r.status != http.StatusUnauthorized {
		t.Errorf("revoked key: %d", r.status)
	}
}

func TestRateLimitPerAPIKey(t *testing.T) {
	t.Parallel()
	s := startService(t, "RATE_LIMIT=1", "RATE_LIMIT_BURST=3")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	_, otherKey := s.newOrg(t, "Other", "ops@other.example")
	missing := "/api/v1/bulk/0190a1b2-0000-7000-8000-000000000000"

	var statuses []int
	for range 4 {
		statuses = append(statuses, s.request(t, http.MethodGet, missing, nil, bearer(key)).status)
	}
	if diff := cmp.Diff([]int{404, 404, 404, 429}, statuses); diff != "" {
		t.Errorf("4 requests at once with a burst of 3 (-want +got):\n%s", diff)
	}
	r := s.request(t, http.MethodGet, missing, nil, bearer(key))
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "1" || !strings.Contains(r.json(t)["message"].(string), "Too many requests") {
		t.Errorf("over the limit: %d %s (Retry-After %q)", r.status, r.body, r.header.Get("Retry-After"))
	}
	if r := s.request(t, http.MethodGet, missing, nil, bearer(otherKey)); r.status != http.StatusNotFound {
		t.Errorf("another key is limited too: %d", r.status)
	}
	if r := s.request(t, http.MethodGet, "/healthz", nil); r.status != http.StatusOK {
		t.Errorf("probes are limited: %d", r.status)
	}
}

func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	// A timeout no query can meet stands for a database that hangs.
	s := startService(t, "REQUEST_TIMEOUT=1ns")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	r := s.request(t, http.MethodPost, "/api/v1/bulk", testenv.SeedExample(t), bearer(key))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" ||
		!strings.Contains(r.json(t)["message"].(string), "did not finish within 1ns") {
		t.Errorf("request over REQUEST_TIMEOUT: %d %s (Retry-After %q)", r.status, r.body, r.header.Get("Retry-After"))
	}
	if n := s.db.Count(t, `SELECT count(*) FROM bulks`); n != 0 {
		t.Errorf("%d bulks stored by a request that timed out", n)
	}
	if r := s.request(t, http.MethodGet, "/healthz", nil); r.status != http.StatusOK {
		t.Errorf("/healthz is not bound by REQUEST_TIMEOUT: %d", r.status)
	}
}

// A body shorter than its Content-Length (the client's upload broke off, a
// proxy cut it) is the client's fault on every route that reads a body: a
// 400, not a server error a client would retry, and nothing logged at
// ERROR, which would page an operator for every dropped upload. A
// truncated patch changes nothing.
func TestTruncatedBodiesAre400(t *testing.T) {
	t.Parallel()
	s := startService(t, "RATE_LIMIT=0")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	s.waitCompleted(t, key, s.submit(t, key, []byte(recordsBulk)))
	c1 := s.recordID(t, "customers", "c1")
	var sent []string // request ids
	for _, tc := range []struct{ method, path, contentType, body string }{
		{http.MethodPost, "/api/v1/bulk", "application/json", `[{"customer":{"external_id":"a","name":"b"}}]`},
		{http.MethodPatch, "/api/v1/customers/" + c1, "application/merge-patch+json", `{"name":"Half"}`},
		{http.MethodPatch, "/api/v1/customers/" + c1, "application/json-patch+json", `[{"op":"replace","path":"/name","value":"Half"}]`},
		{http.MethodPost, "/api/v1/batch", "application/json", `{"operations":[{"operation":"create","resource":"locations","object":{"external_id":"half"}}]}`},
		{http.MethodPut, "/api/v1/webhook", "application/json", `{"url":"https://hooks.example.com/bulkd"}`},
	} {
		id := fmt.Sprintf("truncated-%d", len(sent))
		sent = append(sent, id)
		r := s.rawRequest(t, fmt.Sprintf("%s %s HTTP/1.1\r\nHost: bulkd\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\n"+
			"X-Request-Id: %s\r\nContent-Length: %d\r\n\r\n%s", tc.method, tc.path, key, tc.contentType, id, len(tc.body)+100, tc.body), true)
		if r.status != http.StatusBadRequest {
			t.Errorf("%s %s with a body 100 bytes short of its Content-Length: %d %.200s, want 400", tc.method, tc.path, r.status, r.body)
		}
	}
	// Each request's own line comes last: once all are there, so is any
	// ERROR line they wrote.
	for _, id := range sent {
		s.requestLine(t, id)
	}
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, "unexpected EOF") {
			t.Errorf("a client's truncated upload is logged as a server error: %s", line)
		}
	}
	if got := s.record(t, `SELECT name FROM customers WHERE id = $1`, c1); got != "Ann" {
		t.Errorf("the customer's name is %q after truncated patches, want Ann", got)
	}
}

// An unknown query parameter is a 400 naming it, on the routes that take
// none too: a cancel, a webhook rotation or removal sent with a parameter
// the client expected to mean something (validate_only=true, dry_run=true,
// a misspelt name) is refused and does nothing.
func TestUnknownQueryParametersAreRefused(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api", "RATE_LIMIT=0", "WEBHOOK_ALLOW_PRIVATE=true")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	bid := s.submit(t, key, []byte(recordsBulk)) // stays pending: no worker
	hook := `{"url":"https://hooks.example.com/bulkd"}`
	if r := s.request(t, http.MethodPut, "/api/v1/webhook", hook, bearer(key), jsonBody); r.status != http.StatusOK {
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
		r := s.request(t, tc.method, tc.path, nil, bearer(key))
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

// A query string that does not parse whole (a ';' separator, a bad percent
// escape) is a 400 and stores nothing; it is never read in part, which
// would import "?atomic=true;strict=true" as a partial, non-strict bulk
// that writes the rows an all-or-nothing one would not.
func TestMalformedQueryIsRefusedNotIgnored(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	for _, query := range []string{"atomic=true;strict=true", "atomic=tru%e", "mode=upsert&atomic=%zz", "%zz=1"} {
		before := s.db.Snapshot(t)
		r := s.request(t, http.MethodPost, "/api/v1/bulk?"+query, modeRows("q"), bearer(key), jsonBody)
		if r.status != http.StatusBadRequest {
			t.Errorf("POST ?%s: %d %s, want 400 naming the query", query, r.status, r.body)
		}
		if r.status == http.StatusAccepted {
			s.waitCompleted(t, key, r.json(t)["data"].(map[string]any)["bulk_id"].(string))
		}
		if diff := cmp.Diff(before, s.db.Snapshot(t)); diff != "" {
			t.Errorf("POST ?%s changed the tables:\n%s", query, diff)
		}
	}
	var n int
	if err := s.db.Conn.QueryRow(context.Background(), `SELECT count(*) FROM bulks`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d bulks stored from refused requests, want 0", n)
	}
}
