package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/testenv"
)

// request sends one request with exactly the headers given (no defaults:
// no Content-Type unless given) and returns the answer.
func (s *service) request(method, path string, header map[string]string, body io.Reader) response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// rawRequest writes a request as bytes, for headers Go's client refuses to
// send (control characters), and reads the answer.
func (s *service) rawRequest(raw string) response {
	s.t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		s.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// assertError checks an error answer: the status, JSON, and the documented
// {"message", "errors": {field: [...]}} shape naming field.
func assertError(t *testing.T, r response, status int, field string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %.300s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e struct {
		Message string              `json:"message"`
		Errors  map[string][]string `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Message == "" || len(e.Errors[field]) == 0 {
		t.Errorf("want {message, errors.%s}, got %.300s", field, r.body)
	}
}

func assertNoErrorLines(t *testing.T, s *service) {
	t.Helper()
	if logs := s.logs.String(); strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("logs have ERROR lines:\n%s", logs)
	}
}

// Any credential that is not a well-formed key is a 401 naming the header,
// answered before any query (bytes that are not UTF-8 made Postgres fail: a
// 500 and an ERROR line at will, without a key); the scheme is
// case-insensitive.
func TestMalformedCredentialsAre401(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg("Acme", "ops@acme.example")
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
			r := s.request(http.MethodGet, unknown, map[string]string{"Authorization": tt.authorization}, nil)
			assertError(t, r, tt.status, tt.field)
			if tt.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	t.Run("two Authorization fields", func(t *testing.T) {
		r := s.rawRequest("GET " + unknown + " HTTP/1.1\r\nHost: bulkd\r\nAuthorization: Bearer " + key +
			"\r\nAuthorization: Bearer " + key + "\r\nConnection: close\r\n\r\n")
		if r.status != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", r.status)
		}
	})
	// Go's server itself answers 400 to other control characters in a header,
	// before bulkd reads it: still no 500, and nothing logged.
	t.Run("other control characters", func(t *testing.T) {
		r := s.rawRequest("GET " + unknown + " HTTP/1.1\r\nHost: bulkd\r\nAuthorization: Bearer bk_aaaaaaaa\x01\x7f" +
			strings.Repeat("a", 38) + "\r\nConnection: close\r\n\r\n")
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
	_, key := s.newOrg("Acme", "ops@acme.example")
	r := s.request(http.MethodPost, "/api/v1/bulk", map[string]string{"Authorization": "Bearer " + key},
		slowBody(testenv.SeedExample(t), 6, 3*time.Second))
	if r.status != http.StatusAccepted {
		t.Fatalf("slow upload: %d %s", r.status, r.body)
	}
	id := r.json(t)["data"].(map[string]any)["bulk_id"].(string)
	if got := s.waitCompleted(key, id); got["rows_succeeded"] != 1.0 {
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
			r := s.request(http.MethodGet, "/healthz", map[string]string{"X-Request-Id": tt.id}, nil)
			got := r.header.Get("X-Request-Id")
			if tt.kept != (got == tt.id) || got == "" || len(got) > 64 {
				t.Errorf("X-Request-Id answered %.80q for %.80q", got, tt.id)
			}
			if !strings.Contains(s.logs.String(), `"request_id":"`+got+`"`) {
				t.Errorf("the answered id %q is not logged", got)
			}
		})
	}
	logs := s.logs.String()
	for _, sent := range []string{"huge", "evil", "longyyyy"} {
		if strings.Contains(logs, sent) {
			t.Errorf("logs contain the refused id %q", sent)
		}
	}
}

// A failing /readyz is logged once, as a change of state naming the
// dependency, not as an ERROR line per probe.
func TestReadinessIsLoggedOnChange(t *testing.T) {
	t.Parallel()
	s := newService(t, "REDIS_URL=redis://127.0.0.1:1/0") // nothing listens on port 1
	s.start("api")
	for range 5 {
		r := s.request(http.MethodGet, "/readyz", nil, nil)
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
	_, key := s.newOrg("Acme", "ops@acme.example")
	seed := testenv.SeedExample(t)
	id := s.submit(key, seed)
	s.waitCompleted(key, id)
	auth := "Bearer " + key
	gzSeed := gzipped(t, seed)
	bomb := gzipped(t, []byte("["+strings.Repeat(" ", 2<<20)+"{}]")) // 2 MiB once decoded, a few KB sent

	for _, tt := range []struct {
		name   string
		method string
		path   string
		header map[string]string
		body   []byte
		status int
		field  string // of the error; "" for a success
		allow  string // what Allow must list
	}{
		{"HEAD /healthz", "HEAD", "/healthz", nil, nil, 200, "", ""},
		{"HEAD /readyz", "HEAD", "/readyz", nil, nil, 200, "", ""},
		{"HEAD a bulk", "HEAD", "/api/v1/bulk/" + id, map[string]string{"Authorization": auth}, nil, 200, "", ""},
		{"HEAD its errors", "HEAD", "/api/v1/bulk/" + id + "/errors", map[string]string{"Authorization": auth}, nil, 200, "", ""},
		{"HEAD without a key", "HEAD", "/api/v1/bulk/" + id, nil, nil, 401, "", ""},
		{"DELETE /api/v1/bulk", "DELETE", "/api/v1/bulk", map[string]string{"Authorization": auth}, nil, 405, "method", "POST"},
		{"PATCH /api/v1/bulk", "PATCH", "/api/v1/bulk", nil, nil, 405, "method", "POST"},
		{"HEAD the list of bulks", "HEAD", "/api/v1/bulk", map[string]string{"Authorization": auth}, nil, 200, "", ""},
		{"PUT a bulk", "PUT", "/api/v1/bulk/" + id, map[string]string{"Authorization": auth}, nil, 405, "method", "GET"},
		{"POST its errors", "POST", "/api/v1/bulk/" + id + "/errors", nil, nil, 405, "method", "HEAD"},
		{"POST /healthz", "POST", "/healthz", nil, nil, 405, "method", "GET"},
		{"unknown route", "GET", "/nope", nil, nil, 404, "path", ""},
		{"unknown API route", "GET", "/api/v1/bulks", map[string]string{"Authorization": auth}, nil, 404, "path", ""},
		{"unknown bulk", "GET", "/api/v1/bulk/" + uuid.NewString(), map[string]string{"Authorization": auth}, nil, 404, "id", ""},
		{"headers over 64 KiB", "GET", "/healthz", map[string]string{"X-Padding": strings.Repeat("p", 70<<10)}, nil, 431, "headers", ""},
		{"gzip", "POST", "/api/v1/bulk", map[string]string{"Authorization": auth, "Content-Encoding": "gzip"}, gzSeed, 202, "", ""},
		{"identity", "POST", "/api/v1/bulk", map[string]string{"Authorization": auth, "Content-Encoding": "identity"}, seed, 202, "", ""},
		{"gzip bomb", "POST", "/api/v1/bulk", map[string]string{"Authorization": auth, "Content-Encoding": "gzip"}, bomb, 413, "body", ""},
		{"corrupt gzip", "POST", "/api/v1/bulk", map[string]string{"Authorization": auth, "Content-Encoding": "gzip"}, seed, 400, "body", ""},
		{"truncated gzip", "POST", "/api/v1/bulk", map[string]string{"Authorization": auth, "Content-Encoding": "gzip"}, gzSeed[:len(gzSeed)/2], 400, "body", ""},
		{"gzip with a bad checksum", "POST", "/api/v1/bulk", map[string]string{"Authorization": auth, "Content-Encoding": "gzip"},
			append(bytes.Clone(gzSeed[:len(gzSeed)-8]), 0, 0, 0, 0, 0, 0, 0, 0), 400, "body", ""},
		{"br", "POST", "/api/v1/bulk", map[string]string{"Authorization": auth, "Content-Encoding": "br"}, seed, 415, "Content-Encoding", ""},
		{"deflate", "POST", "/api/v1/bulk", map[string]string{"Authorization": auth, "Content-Encoding": "deflate"}, seed, 415, "Content-Encoding", ""},
		{"compress", "POST", "/api/v1/bulk", map[string]string{"Authorization": auth, "Content-Encoding": "compress"}, seed, 415, "Content-Encoding", ""},
		{"gzip twice", "POST", "/api/v1/bulk", map[string]string{"Authorization": auth, "Content-Encoding": "gzip, gzip"}, gzSeed, 415, "Content-Encoding", ""},
		{"byte-order mark", "POST", "/api/v1/bulk", map[string]string{"Authorization": auth}, append([]byte("\xef\xbb\xbf"), seed...), 202, "", ""},
		{"no Content-Type", "POST", "/api/v1/bulk", map[string]string{"Authorization": auth}, seed, 202, "", ""},
		{"JSON in UTF-8", "POST", "/api/v1/bulk", map[string]string{"Authorization": auth, "Content-Type": "application/json; charset=UTF-8"}, seed, 202, "", ""},
		{"a +json type", "POST", "/api/v1/bulk", map[string]string{"Authorization": auth, "Content-Type": "application/vnd.api+json"}, seed, 202, "", ""},
		{"text/plain", "POST", "/api/v1/bulk", map[string]string{"Authorization": auth, "Content-Type": "text/plain"}, seed, 415, "Content-Type", ""},
		{"a form", "POST", "/api/v1/bulk", map[string]string{"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}, seed, 415, "Content-Type", ""},
		{"JSON in Latin-1", "POST", "/api/v1/bulk", map[string]string{"Authorization": auth, "Content-Type": "application/json; charset=latin1"}, seed, 415, "Content-Type", ""},
		{"malformed Content-Type", "POST", "/api/v1/bulk", map[string]string{"Authorization": auth, "Content-Type": "application/json;;="}, seed, 415, "Content-Type", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := s.request(tt.method, tt.path, tt.header, bytes.NewReader(tt.body))
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

// With an Idempotency-Key, a gzip retry of a plain submission is the same
// submission: the key's hash is of the decoded body.
func TestIdempotencyKeyHashesTheDecodedBody(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg("Acme", "ops@acme.example")
	seed := testenv.SeedExample(t)
	first := s.request(http.MethodPost, "/api/v1/bulk", map[string]string{"Authorization": "Bearer " + key, "Idempotency-Key": "k1"},
		bytes.NewReader(seed))
	retry := s.request(http.MethodPost, "/api/v1/bulk",
		map[string]string{"Authorization": "Bearer " + key, "Idempotency-Key": "k1", "Content-Encoding": "gzip"},
		bytes.NewReader(gzipped(t, seed)))
	if first.status != 202 || retry.status != 202 || retry.header.Get("Idempotent-Replayed") != "true" ||
		!bytes.Equal(first.body, retry.body) {
		t.Errorf("first %d %s, gzip retry %d %s (replayed %q)", first.status, first.body, retry.status, retry.body,
			retry.header.Get("Idempotent-Replayed"))
	}
}

// The errors endpoint answers whatever was stored: a row whose stored report
// or payload cannot be sent (nested beyond what encoders accept, bytes that
// are not JSON) is answered as unreadable, and the other rows as they are.
func TestErrorsEndpointReadsWhateverWasStored(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg("Acme", "ops@acme.example")
	id := s.submit(key, []byte(`[{},{},{}]`))
	s.waitCompleted(key, id)
	deep := strings.Repeat("[", 10_001) + strings.Repeat("]", 10_001)
	for _, q := range []struct {
		sql string
		arg []byte
	}{
		{`UPDATE bulk_results SET errors = $2 WHERE bulk_id = $1 AND row = 1`, []byte(deep)},
		{`UPDATE bulk_results SET result = $2 WHERE bulk_id = $1 AND row = 1`, []byte(deep)},
		{`UPDATE bulk_rows SET payload = $2 WHERE bulk_id = $1 AND row = 2`, []byte("{\"a\":\xff\x00")},
	} {
		if _, err := s.db.Conn.Exec(t.Context(), q.sql, id, q.arg); err != nil {
			t.Fatal(err)
		}
	}
	r := s.do(http.MethodGet, "/api/v1/bulk/"+id+"/errors", key, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET errors: %d %.300s", r.status, r.body)
	}
	var got struct {
		Data []struct {
			ID      int             `json:"id"`
			Payload json.RawMessage `json:"payload"`
			Errors  json.RawMessage `json:"errors"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil || len(got.Data) != 3 {
		t.Fatalf("answer (%v): %.300s", err, r.body)
	}
	for i, row := range got.Data[:2] {
		if row.ID != i+1 || string(row.Payload) != "null" ||
			string(row.Errors) != `{"report":["The errors of this row could not be read."]}` {
			t.Errorf("row %d: %d %s %.100s", i+1, row.ID, row.Payload, row.Errors)
		}
	}
	if row := got.Data[2]; row.ID != 3 || string(row.Payload) != "{}" || !strings.Contains(string(row.Errors), "customer") {
		t.Errorf("row 3 is not answered as stored: %d %s %s", row.ID, row.Payload, row.Errors)
	}
	if !strings.Contains(s.logs.String(), `"row":1`) || !strings.Contains(s.logs.String(), `"row":2`) {
		t.Errorf("unreadable rows are not logged")
	}
	// The results endpoint too answers every row, the unreadable one as such.
	res := s.results(key, "/api/v1/bulk/"+id+"/results")
	if len(res.Data) != 3 || res.Data[0].Row != 1 || res.Data[0].Errors == nil || res.Data[2].Row != 3 {
		t.Errorf("results with an unreadable row: %+v", res.Data)
	}
}
