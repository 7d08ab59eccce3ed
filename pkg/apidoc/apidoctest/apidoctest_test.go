package apidoctest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// recorder is a testing.TB that keeps what Transport reports.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) Helper() {}

// answer is what the test server answers: a status, headers and a body,
// written in small flushed pieces as a streamed answer is.
type answer struct {
	status int
	header map[string]string
	body   string
}

var bulkView = `{"bulk_id":"%s","count":1,"status":"completed","mode":"create","atomic":false,"validate_only":false,` +
	`"strict":false,"rolled_back":false,"rows_succeeded":1,"rows_failed":0,` +
	`"records_written":{"locations":1,"customers":1,"debt_accounts":1},"created_at":"2026-12-03T17:53:12.155108Z",` +
	`"started_at":"2026-12-03T17:53:12.321362Z","completed_at":"2026-12-03T17:53:12.337269Z","canceled_at":null}`

const row = `{"customer":{"external_id":"c1","name":"Ann"},"location":{"external_id":"l1"},` +
	`"debt_accounts":[{"external_id":"a1","balance":1,"billing_type":["settlement"]}]}`

func TestTransport(t *testing.T) {
	v7 := uuid.Must(uuid.NewV7()).String()
	ok := map[string]string{"X-Request-Id": "r-1", "Content-Type": "application/json"}
	with := func(extra map[string]string) map[string]string {
		h := map[string]string{}
		for k, v := range ok {
			h[k] = v
		}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	tests := []struct {
		name    string
		method  string
		path    string
		header  map[string]string
		body    string
		gzip    bool
		answer  answer
		mention string // in the report; "" when the exchange matches the document
	}{
		{"a documented answer", "GET", "/healthz", nil, "", false,
			answer{200, ok, `{"status":"ok"}`}, ""},
		{"an extra field", "GET", "/healthz", nil, "", false,
			answer{200, ok, `{"status":"ok","uptime":3}`}, "uptime"},
		{"an undocumented header", "GET", "/healthz", nil, "", false,
			answer{200, with(map[string]string{"X-Debug": "1"}), `{"status":"ok"}`}, "X-Debug"},
		{"a missing required header", "GET", "/healthz", nil, "", false,
			answer{200, map[string]string{"Content-Type": "application/json"}, `{"status":"ok"}`}, "X-Request-Id"},
		{"an undocumented status", "GET", "/healthz", nil, "", false,
			answer{418, ok, `{"message":"x","errors":{"x":["x"]}}`}, "418"},
		{"a UUIDv7 is a uuid", "GET", "/api/v1/bulk/" + v7, map[string]string{"Authorization": "Bearer k"}, "", false,
			answer{200, ok, `{"data":` + fmt.Sprintf(bulkView, v7) + `}`}, ""},
		{"format assertions are on", "GET", "/api/v1/bulk/" + v7, map[string]string{"Authorization": "Bearer k"}, "", false,
			answer{200, ok, `{"data":` + fmt.Sprintf(bulkView, "bulk-1") + `}`}, "uuid"},
		{"an undocumented path answered 404", "GET", "/nope", nil, "", false,
			answer{404, ok, `{"message":"No API endpoint has this path.","errors":{"path":["No API endpoint has this path."]}}`}, ""},
		{"an undocumented path answered 200", "GET", "/nope", nil, "", false,
			answer{200, ok, `{"message":"x","errors":{"x":["x"]}}`}, "not 404"},
		{"a method a path does not take", "DELETE", "/healthz", nil, "", false,
			answer{405, with(map[string]string{"Allow": "OPTIONS, GET, HEAD"}), `{"message":"m","errors":{"method":["m"]}}`}, ""},
		{"an Allow that is not the document's", "DELETE", "/healthz", nil, "", false,
			answer{405, with(map[string]string{"Allow": "GET, HEAD, POST"}), `{"message":"m","errors":{"method":["m"]}}`}, "Allow"},
		{"the queue UI is not the API", "GET", "/admin/queues/api/queues", nil, "", false,
			answer{401, map[string]string{"WWW-Authenticate": `Basic realm="bulkd queues"`}, `{"x":1}`}, ""},
		{"OPTIONS on a path", "OPTIONS", "/healthz", nil, "", false,
			answer{204, map[string]string{"Allow": "OPTIONS, GET, HEAD"}, ""}, ""},
		{"a gzip body, accepted", "POST", "/api/v1/bulk", map[string]string{"Authorization": "Bearer k", "Content-Type": "application/json"},
			"[" + row + "]", true,
			answer{202, with(map[string]string{"Location": "/api/v1/bulk/" + v7}), `{"data":{"bulk_id":"` + v7 + `","count":1,"status":"pending"}}`}, ""},
		{"a body the document refuses, accepted", "POST", "/api/v1/bulk", map[string]string{"Authorization": "Bearer k", "Content-Type": "application/json"},
			`{"rows":[]}`, true,
			answer{202, with(map[string]string{"Location": "/api/v1/bulk/" + v7}), `{"data":{"bulk_id":"` + v7 + `","count":1,"status":"pending"}}`}, "request"},
		{"a body the document refuses, refused", "POST", "/api/v1/bulk", map[string]string{"Authorization": "Bearer k", "Content-Type": "application/json"},
			`{"rows":[]}`, false,
			answer{400, ok, `{"message":"m","errors":{"body":["m"]}}`}, ""},
		{"rows validated after acceptance", "POST", "/api/v1/bulk", map[string]string{"Authorization": "Bearer k", "Content-Type": "application/json"},
			`[{"customer":{"email":7}},{}]`, false,
			answer{202, with(map[string]string{"Location": "/api/v1/bulk/" + v7}), `{"data":{"bulk_id":"` + v7 + `","count":2,"status":"pending"}}`}, ""},
		{"an undocumented parameter, accepted", "GET", "/healthz?verbose=1", nil, "", false,
			answer{200, ok, `{"status":"ok"}`}, "verbose"},
		{"a HEAD answer", "HEAD", "/api/v1/bulk/" + v7, map[string]string{"Authorization": "Bearer k"}, "", false,
			answer{200, ok, ""}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var received []byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				received, _ = io.ReadAll(r.Body)
				for k, v := range tt.answer.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.answer.status)
				for chunk := range slicesOf(tt.answer.body, 7) {
					io.WriteString(w, chunk)
					w.(http.Flusher).Flush()
				}
			}))
			defer srv.Close()
			body := []byte(tt.body)
			if tt.gzip {
				body = gzipBytes(t, body)
			}
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			if tt.gzip {
				req.Header.Set("Content-Encoding", "gzip")
			}
			rec := &recorder{TB: t}
			client := Client(rec)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if tt.method != "HEAD" && string(got) != tt.answer.body {
				t.Errorf("the caller got %q, the server sent %q", got, tt.answer.body)
			}
			if !bytes.Equal(received, body) {
				t.Errorf("the server received %q, the client sent %q", received, body)
			}
			report := strings.Join(rec.errors, "\n")
			switch {
			case tt.mention == "" && report != "":
				t.Errorf("a matching exchange was reported:\n%s", report)
			case tt.mention != "" && !strings.Contains(report, tt.mention):
				t.Errorf("the report does not mention %q:\n%s", tt.mention, report)
			}
		})
	}
}

// TestDocumentListsItsOperations checks the document's helpers: every
// operation has an id, found again from a request.
func TestDocumentListsItsOperations(t *testing.T) {
	routes := Routes(t)
	if len(routes) < 40 {
		t.Fatalf("%d operations", len(routes))
	}
	for _, r := range routes {
		if r.OperationID == "" {
			t.Errorf("%s %s has no operationId", r.Method, r.Path)
		}
	}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/bulk/"+uuid.NewString()+"/cancel", nil)
	if id := OperationID(t, req); id != "cancelBulk" {
		t.Errorf("OperationID = %q, want cancelBulk", id)
	}
}

func slicesOf(s string, n int) func(func(string) bool) {
	return func(yield func(string) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
