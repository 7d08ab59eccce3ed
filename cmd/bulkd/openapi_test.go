package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"go.yaml.in/yaml/v3"

	"github.com/bulkd/bulkd/handlers"
	"github.com/bulkd/bulkd/pkg/apidoc"
	"github.com/bulkd/bulkd/pkg/apidoc/apidoctest"
	"github.com/bulkd/bulkd/pkg/records"
	"github.com/bulkd/bulkd/pkg/report"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// docClient sends requests to a bulkd through apidoctest.Transport, which
// fails the test on any exchange the API description does not describe, and
// remembers which operations answered which statuses.
type docClient struct {
	t      *testing.T
	client *http.Client

	mu   sync.Mutex
	seen map[string][]int // operationId ("" for none) → statuses answered
}

func newDocClient(t *testing.T) *docClient {
	c := &docClient{t: t, seen: map[string][]int{}}
	c.client = &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := apidoctest.Transport(t, http.DefaultTransport).RoundTrip(req)
		if err == nil {
			c.mu.Lock()
			op := apidoctest.OperationID(t, req)
			c.seen[op] = append(c.seen[op], resp.StatusCode)
			c.mu.Unlock()
		}
		return resp, err
	})}
	return c
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// send sends a request to s, with the key when there is one, and the headers
// given as "Name: value".
func (c *docClient) send(s *service, method, path, key string, body []byte, headers ...string) response {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ": ")
		req.Header.Set(name, value)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read the answer: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// expect sends a request and checks its status.
func (c *docClient) expect(status int, s *service, method, path, key string, body []byte, headers ...string) response {
	c.t.Helper()
	r := c.send(s, method, path, key, body, headers...)
	if r.status != status {
		c.t.Errorf("%s %s: %d %s, want %d", method, path, r.status, r.body, status)
	}
	return r
}

// untilStatus sends the request again until it answers status (at most
// tries times), for answers that depend on a rate.
func (c *docClient) untilStatus(status, tries int, s *service, method, path, key string) {
	c.t.Helper()
	for range tries {
		if c.send(s, method, path, key, nil).status == status {
			return
		}
	}
	c.t.Errorf("%s %s: never answered %d in %d tries", method, path, status, tries)
}

// dataField reads data.<field> of a JSON answer.
func dataField(t *testing.T, r response, field string) string {
	t.Helper()
	data, _ := r.json(t)["data"].(map[string]any)
	v, _ := data[field].(string)
	if v == "" {
		t.Fatalf("answer has no data.%s: %d %s", field, r.status, r.body)
	}
	return v
}

// firstID reads data[0].id of a list answer.
func firstID(t *testing.T, r response) string {
	t.Helper()
	list, _ := r.json(t)["data"].([]any)
	if len(list) == 0 {
		t.Fatalf("empty list: %d %s", r.status, r.body)
	}
	return list[0].(map[string]any)["id"].(string)
}

// TestAPIDescriptionMatchesTheServer drives every operation of the API
// description (pkg/apidoc/openapi.yaml) against real bulkd processes
// through apidoctest.Transport: successes and the errors each operation
// gives, so that every status, header and field the server answers is one
// the document describes, and every operation the document describes is
// one the server serves. The webhook it delivers is checked against the
// document's webhooks entry.
func TestAPIDescriptionMatchesTheServer(t *testing.T) {
	t.Parallel()
	c := newDocClient(t)
	reports := "REPORT_SECRET=" + base64.StdEncoding.EncodeToString(reportSecret)
	s := startService(t, "RATE_LIMIT=0", "WEBHOOK_ALLOW_PRIVATE=true", reports)
	orgID, key := s.newOrg(t, "Acme", "ops@acme.example")
	other := uuid.NewString()

	hooks := make(chan *http.Request, 8)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		select {
		case hooks <- r:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)

	t.Log("probes and the reference")
	for _, path := range []string{"/healthz", "/readyz", "/openapi.yaml", "/openapi.json", "/docs", "/docs/swagger-ui.css"} {
		c.expect(200, s, http.MethodGet, path, "", nil)
		c.expect(200, s, http.MethodHead, path, "", nil)
	}
	c.expect(404, s, http.MethodGet, "/docs/no-such-file.js", "", nil)
	c.expect(404, s, http.MethodHead, "/docs/no-such-file.js", "", nil)
	var fromYAML, fromJSON any
	if err := yaml.Unmarshal(c.send(s, http.MethodGet, "/openapi.yaml", "", nil).body, &fromYAML); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(c.send(s, http.MethodGet, "/openapi.json", "", nil).body, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(jsonRoundTrip(t, fromYAML), fromJSON); diff != "" {
		t.Errorf("/openapi.json is not /openapi.yaml (-yaml +json):\n%s", diff)
	}

	t.Log("errors every API route gives")
	c.expect(401, s, http.MethodGet, "/api/v1/bulk", "", nil)
	c.expect(401, s, http.MethodHead, "/api/v1/bulk", "", nil)
	c.expect(401, s, http.MethodGet, "/api/v1/bulk", "bk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", nil)
	c.expect(404, s, http.MethodGet, "/api/v1/nope", key, nil)
	c.expect(405, s, http.MethodDelete, "/api/v1/bulk", key, nil)
	c.expect(405, s, http.MethodPost, "/healthz", "", nil)
	c.expect(204, s, http.MethodOptions, "/api/v1/bulk/"+other, "", nil)
	c.expect(431, s, http.MethodGet, "/api/v1/bulk", key, nil, "X-Padding: "+strings.Repeat("a", handlers.MaxHeaderBytes))
	c.expect(431, s, http.MethodHead, "/healthz", "", nil, "X-Padding: "+strings.Repeat("a", handlers.MaxHeaderBytes))

	t.Log("webhook, before any bulk ends")
	c.expect(404, s, http.MethodGet, "/api/v1/webhook", key, nil)
	c.expect(404, s, http.MethodHead, "/api/v1/webhook", key, nil)
	c.expect(404, s, http.MethodDelete, "/api/v1/webhook", key, nil)
	c.expect(404, s, http.MethodPost, "/api/v1/webhook/rotate", key, nil)
	c.expect(422, s, http.MethodPut, "/api/v1/webhook", key, []byte(`{"url":"ftp://hooks.example.com"}`))
	c.expect(400, s, http.MethodPut, "/api/v1/webhook", key, []byte(`nope`))
	c.expect(400, s, http.MethodPut, "/api/v1/webhook?x=1", key, []byte(`{"url":"https://hooks.example.com"}`))
	c.expect(413, s, http.MethodPut, "/api/v1/webhook", key, []byte(`{"url":"https://hooks.example.com/`+strings.Repeat("a", 20<<10)+`"}`))
	c.expect(415, s, http.MethodPut, "/api/v1/webhook", key, []byte(`{}`), "Content-Encoding: br")
	r := c.expect(200, s, http.MethodPut, "/api/v1/webhook", key, []byte(`{"url":"`+receiver.URL+`/moved"}`))
	dataField(t, r, "secret")
	c.expect(200, s, http.MethodPut, "/api/v1/webhook", key, []byte(`{"url":"`+receiver.URL+`/hooks"}`))
	c.expect(200, s, http.MethodPost, "/api/v1/webhook/rotate", key, nil)

	t.Log("submitting")
	seed := testenv.SeedExample(t)
	c.expect(400, s, http.MethodPost, "/api/v1/bulk", key, []byte(`nope`))
	c.expect(400, s, http.MethodPost, "/api/v1/bulk?atomic=yes", key, seed)
	c.expect(400, s, http.MethodPost, "/api/v1/bulk", key, seed, "Idempotency-Key: "+strings.Repeat("k", 300))
	c.expect(415, s, http.MethodPost, "/api/v1/bulk", key, seed, "Content-Type: text/plain")
	c.expect(413, s, http.MethodPost, "/api/v1/bulk", key, []byte(`[`+strings.Repeat(" ", 1<<20)+`]`))
	c.expect(422, s, http.MethodPost, "/api/v1/bulk", key, []byte(`[]`))
	c.expect(422, s, http.MethodPost, "/api/v1/bulk", key, []byte("["+strings.Repeat(`{},`, 1000)+"{}]"))
	idem := "Idempotency-Key: " + uuid.NewString()
	r = c.expect(202, s, http.MethodPost, "/api/v1/bulk", key, gzipped(t, seed), idem, "Content-Encoding: gzip")
	first := dataField(t, r, "bulk_id")
	r = c.expect(202, s, http.MethodPost, "/api/v1/bulk", key, seed, idem)
	if r.header.Get("Idempotent-Replayed") != "true" || dataField(t, r, "bulk_id") != first {
		t.Errorf("replay: %s %v", r.body, r.header)
	}
	c.expect(422, s, http.MethodPost, "/api/v1/bulk?strict=true", key, seed, idem)

	t.Log("following a bulk")
	c.expect(200, s, http.MethodGet, "/api/v1/bulk/"+first+"?wait=60s", key, nil)
	c.expect(200, s, http.MethodHead, "/api/v1/bulk/"+first, key, nil)
	c.expect(400, s, http.MethodGet, "/api/v1/bulk/"+first+"?wait=forever", key, nil)
	c.expect(400, s, http.MethodHead, "/api/v1/bulk/"+first+"?wait=forever", key, nil)
	c.expect(404, s, http.MethodGet, "/api/v1/bulk/"+other, key, nil)
	c.expect(404, s, http.MethodHead, "/api/v1/bulk/not-a-uuid", key, nil)
	// The same rows again, waited for: finished, every account taken.
	r = c.expect(200, s, http.MethodPost, "/api/v1/bulk?wait=60s", key, seed)
	second := dataField(t, r, "bulk_id")
	if _, ok := r.json(t)["results"]; !ok {
		t.Errorf("a waited submission that finished has no results: %s", r.body)
	}
	c.expect(202, s, http.MethodPost, "/api/v1/bulk?mode=upsert&atomic=true&validate_only=true&strict=true", key,
		[]byte(`[{"customer":{"external_id":"c-1","name":"Ann Lee","company":"Acme"},"location":{"external_id":"rerum"},`+
			`"debt_accounts":[{"external_id":"a-1","balance":"10.50","billing_type":["settlement"]}]},`+
			`{"customer":{"external_id":"c-2","email":"not an address"},"location":{}}]`))

	r = c.expect(200, s, http.MethodGet, "/api/v1/bulk?status=completed&limit=1", key, nil)
	next, _ := r.json(t)["links"].(map[string]any)["next"].(string)
	if next == "" {
		t.Fatalf("no next page: %s", r.body)
	}
	c.expect(200, s, http.MethodGet, next, key, nil)
	c.expect(200, s, http.MethodHead, "/api/v1/bulk?status=pending,completed&created_after=2000-01-01T00:00:00Z", key, nil)
	c.expect(400, s, http.MethodGet, "/api/v1/bulk?limit=0&color=red", key, nil)
	c.expect(400, s, http.MethodHead, "/api/v1/bulk?cursor=forged", key, nil)

	r = c.expect(200, s, http.MethodGet, "/api/v1/bulk/"+second+"/errors", key, nil)
	if !strings.Contains(string(r.body), "The external id has already been taken.") {
		t.Errorf("errors of the second bulk: %s", r.body)
	}
	c.expect(200, s, http.MethodHead, "/api/v1/bulk/"+second+"/errors", key, nil)
	c.expect(400, s, http.MethodGet, "/api/v1/bulk/"+second+"/errors?page=2", key, nil)
	c.expect(404, s, http.MethodGet, "/api/v1/bulk/"+other+"/errors", key, nil)
	c.expect(404, s, http.MethodHead, "/api/v1/bulk/"+other+"/errors", key, nil)
	c.expect(200, s, http.MethodGet, "/api/v1/bulk/"+first+"/results?page=1&per_page=1", key, nil)
	c.expect(200, s, http.MethodGet, "/api/v1/bulk/"+second+"/results", key, nil)
	c.expect(200, s, http.MethodHead, "/api/v1/bulk/"+first+"/results", key, nil)
	c.expect(400, s, http.MethodGet, "/api/v1/bulk/"+first+"/results?per_page=0", key, nil)
	c.expect(404, s, http.MethodGet, "/api/v1/bulk/"+other+"/results", key, nil)
	c.expect(404, s, http.MethodHead, "/api/v1/bulk/"+other+"/results", key, nil)
	c.expect(409, s, http.MethodPost, "/api/v1/bulk/"+first+"/cancel", key, nil)
	c.expect(404, s, http.MethodPost, "/api/v1/bulk/"+other+"/cancel", key, nil)
	c.expect(400, s, http.MethodPost, "/api/v1/bulk/"+first+"/cancel?now=1", key, nil)

	t.Log("the webhook's deliveries")
	select {
	case hook := <-hooks:
		body, _ := io.ReadAll(hook.Body)
		apidoctest.CheckWebhook(t, "bulkFinished", hook.Header, body)
	case <-time.After(30 * time.Second):
		t.Error("no webhook delivery within 30 s of a finished bulk")
	}
	s.waitCompleted(t, key, second)
	c.expect(200, s, http.MethodGet, "/api/v1/webhook", key, nil)
	c.expect(200, s, http.MethodHead, "/api/v1/webhook", key, nil)

	t.Log("records")
	customer := firstID(t, c.expect(200, s, http.MethodGet, "/api/v1/customers?external_id=70b440dc-5283-3bd5-bb93-8dc599f2288f&limit=10", key, nil))
	location := firstID(t, c.expect(200, s, http.MethodGet, "/api/v1/locations?external_id=rerum", key, nil))
	child := firstID(t, c.expect(200, s, http.MethodGet, "/api/v1/debt_accounts?external_id=vel&customer_id="+customer, key, nil))
	for _, list := range []string{"/api/v1/customers", "/api/v1/locations", "/api/v1/debt_accounts", "/api/v1/customers/" + customer + "/debt_accounts"} {
		r := c.expect(200, s, http.MethodGet, list+"?limit=1", key, nil)
		if next, _ := r.json(t)["links"].(map[string]any)["next"].(string); next != "" {
			c.expect(200, s, http.MethodGet, next, key, nil)
		}
		c.expect(200, s, http.MethodHead, list, key, nil)
		c.expect(400, s, http.MethodGet, list+"?limit=1001", key, nil)
		c.expect(400, s, http.MethodHead, list+"?sort=name", key, nil)
	}
	c.expect(400, s, http.MethodGet, "/api/v1/debt_accounts?parent_id=7", key, nil)
	c.expect(404, s, http.MethodGet, "/api/v1/customers/"+other+"/debt_accounts", key, nil)
	c.expect(404, s, http.MethodHead, "/api/v1/customers/"+other+"/debt_accounts", key, nil)
	for res, id := range map[string]string{"customers": customer, "locations": location, "debt_accounts": child} {
		path := "/api/v1/" + res + "/" + id
		r := c.expect(200, s, http.MethodGet, path, key, nil)
		etag := r.header.Get("ETag")
		c.expect(304, s, http.MethodGet, path, key, nil, "If-None-Match: "+etag)
		c.expect(304, s, http.MethodHead, path, key, nil, "If-None-Match: W/"+etag)
		c.expect(200, s, http.MethodHead, path, key, nil)
		c.expect(400, s, http.MethodGet, path+"?expand=all", key, nil)
		c.expect(404, s, http.MethodGet, "/api/v1/"+res+"/"+other, key, nil)
		c.expect(404, s, http.MethodHead, "/api/v1/"+res+"/"+other, key, nil)
		c.expect(415, s, http.MethodPatch, path, key, []byte(`{}`))
		c.expect(404, s, http.MethodPatch, "/api/v1/"+res+"/"+other, key, []byte(`{}`), "Content-Type: application/merge-patch+json")
		c.expect(422, s, http.MethodPatch, path, key, []byte(`{"version":7}`), "Content-Type: application/merge-patch+json")
		c.expect(412, s, http.MethodPatch, path, key, []byte(`{}`), "Content-Type: application/merge-patch+json", `If-Match: "99"`)
		c.expect(412, s, http.MethodDelete, path, key, nil, `If-Match: "99"`)
		c.expect(404, s, http.MethodDelete, "/api/v1/"+res+"/"+other, key, nil)
	}
	big := []byte(`{"name":"` + strings.Repeat("x", 1<<20) + `"}`)
	c.expect(413, s, http.MethodPatch, "/api/v1/locations/"+location, key, big, "Content-Type: application/merge-patch+json")
	c.expect(422, s, http.MethodPatch, "/api/v1/locations/"+location, key, []byte(`{`), "Content-Type: application/merge-patch+json")
	c.expect(400, s, http.MethodPatch, "/api/v1/locations/"+location+"?dry_run=true", key, []byte(`{}`), "Content-Type: application/merge-patch+json")
	c.expect(200, s, http.MethodPatch, "/api/v1/locations/"+location, key, []byte(`{"name":"Main"}`), "Content-Type: application/merge-patch+json")
	c.expect(200, s, http.MethodPatch, "/api/v1/customers/"+customer, key,
		gzipped(t, []byte(`{"phone":null,"address":{"city":"Novi Sad","is_primary":true},"metadata":{"tier":2,"vip":true}}`)),
		"Content-Type: application/merge-patch+json", "Content-Encoding: gzip")
	r = c.expect(200, s, http.MethodPatch, "/api/v1/debt_accounts/"+child, key,
		[]byte(`[{"op":"replace","path":"/current_balance","value":55},{"op":"add","path":"/billing_type/-","value":"settlement"}]`),
		"Content-Type: application/json-patch+json", `If-Match: "1"`)
	if r.header.Get("ETag") != `"2"` {
		t.Errorf("ETag after a patch: %q", r.header.Get("ETag"))
	}
	c.expect(422, s, http.MethodPatch, "/api/v1/debt_accounts/"+child, key, []byte(`{"balance":1.234}`), "Content-Type: application/merge-patch+json")
	c.expect(409, s, http.MethodDelete, "/api/v1/customers/"+customer, key, nil)
	c.expect(409, s, http.MethodDelete, "/api/v1/locations/"+location, key, nil)
	c.expect(400, s, http.MethodDelete, "/api/v1/customers/"+customer+"?cascade=maybe", key, nil)

	t.Log("batch")
	c.expect(200, s, http.MethodPost, "/api/v1/batch", key, []byte(`{"operations":[`+
		`{"operation":"patch","resource":"debt_accounts","id":"`+child+`","if_match":"\"2\"","patch_directives":[{"op":"replace","path":"/current_balance","value":5.5}]},`+
		`{"operation":"create","resource":"locations","object":{"external_id":"l-2","name":"North"}},`+
		`{"operation":"create","resource":"customers","object":{"external_id":"c-9","name":"Bo","location_external_id":"rerum"}},`+
		`{"operation":"create","resource":"locations","object":{"external_id":"rerum"}},`+
		`{"operation":"delete","resource":"locations","id":"`+other+`"},`+
		`{"operation":"merge","resource":"planets"},`+
		`7]}`))
	r = c.expect(200, s, http.MethodGet, "/api/v1/locations?external_id=l-2", key, nil)
	c.expect(200, s, http.MethodPost, "/api/v1/batch", key, []byte(`{"operations":[`+
		`{"operation":"delete","resource":"locations","id":"`+firstID(t, r)+`"},`+
		`{"operation":"create","resource":"debt_accounts","object":{"external_id":"d-9","balance":"12.5","billing_type":["settlement"],"customer_id":"`+customer+`"}}]}`))
	c.expect(422, s, http.MethodPost, "/api/v1/batch", key, []byte(`{"operations":[]}`))
	c.expect(400, s, http.MethodPost, "/api/v1/batch", key, []byte(`[]`))
	c.expect(415, s, http.MethodPost, "/api/v1/batch", key, []byte(`{"operations":[]}`), "Content-Type: text/plain")
	c.expect(413, s, http.MethodPost, "/api/v1/batch", key, []byte(`{"operations":[`+strings.Repeat(" ", 1<<20)+`]}`))

	t.Log("the report page")
	links := report.NewLinks(reportSecret, time.Hour, "")
	page := links.URL(uuid.MustParse(orgID), uuid.MustParse(second), time.Now())
	c.expect(200, s, http.MethodGet, page, "", nil)
	c.expect(200, s, http.MethodHead, page, "", nil)
	c.expect(200, s, http.MethodGet, strings.Replace(page, "?", ".csv?", 1), "", nil)
	c.expect(403, s, http.MethodGet, page+"x", "", nil)
	c.expect(403, s, http.MethodHead, page+"x", "", nil)
	expired := links.URL(uuid.MustParse(orgID), uuid.MustParse(second), time.Now().Add(-2*time.Hour))
	c.expect(410, s, http.MethodGet, expired, "", nil)
	c.expect(410, s, http.MethodHead, expired, "", nil)
	c.expect(404, s, http.MethodGet, "/report/not-a-bulk", "", nil)
	c.expect(404, s, http.MethodHead, "/report/not-a-bulk", "", nil)

	t.Log("deleting")
	c.expect(204, s, http.MethodDelete, "/api/v1/debt_accounts/"+child, key, nil, `If-Match: "3"`)
	c.expect(204, s, http.MethodDelete, "/api/v1/customers/"+customer+"?cascade=true", key, nil)
	c.expect(204, s, http.MethodDelete, "/api/v1/locations/"+location+"?cascade=true", key, nil)
	c.expect(204, s, http.MethodDelete, "/api/v1/webhook", key, nil)

	t.Log("an API process without webhooks, with a rate limit, and no worker")
	api := startMode(t, "api", "WEBHOOK_SECRET_KEY=", "RATE_LIMIT=1", "RATE_LIMIT_BURST=8")
	_, apiKey := api.newOrg(t, "Acme", "ops@acme.example")
	pending := dataField(t, c.expect(202, api, http.MethodPost, "/api/v1/bulk", apiKey, seed), "bulk_id")
	c.expect(200, api, http.MethodPost, "/api/v1/bulk/"+pending+"/cancel", apiKey, nil)
	c.expect(501, api, http.MethodPut, "/api/v1/webhook", apiKey, []byte(`{"url":"https://hooks.example.com"}`))
	// Reads and removal find no endpoint rather than refuse: 404.
	c.expect(404, api, http.MethodGet, "/api/v1/webhook", apiKey, nil)
	c.expect(404, api, http.MethodHead, "/api/v1/webhook", apiKey, nil)
	c.expect(404, api, http.MethodDelete, "/api/v1/webhook", apiKey, nil)
	c.expect(501, api, http.MethodPost, "/api/v1/webhook/rotate", apiKey, nil)
	c.untilStatus(429, 100, api, http.MethodGet, "/api/v1/bulk", apiKey)
	c.untilStatus(429, 100, api, http.MethodHead, "/api/v1/bulk", apiKey)

	t.Log("an API process whose every request runs out of time")
	late := startMode(t, "api", "REQUEST_TIMEOUT=1ns", reports)
	lateOrg, lateKey := late.newOrg(t, "Acme", "ops@acme.example")
	c.expect(503, late, http.MethodGet, "/api/v1/bulk/"+other, lateKey, nil)
	c.expect(503, late, http.MethodHead, "/api/v1/bulk/"+other, lateKey, nil)
	latePage := links.URL(uuid.MustParse(lateOrg), uuid.MustParse(other), time.Now())
	c.expect(503, late, http.MethodGet, latePage, "", nil)
	c.expect(503, late, http.MethodHead, latePage, "", nil)

	// Every operation of the document was driven, and every status the
	// API's error table names was seen.
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, route := range apidoctest.Routes(t) {
		if len(c.seen[route.OperationID]) == 0 {
			t.Errorf("%s %s (%s): no request of this test reached it", route.Method, route.Path, route.OperationID)
		}
	}
	var statuses []int
	for _, got := range c.seen {
		statuses = append(statuses, got...)
	}
	for _, want := range []int{200, 202, 204, 304, 400, 401, 404, 405, 409, 412, 413, 415, 422, 429, 431, 501, 503} {
		if !slices.Contains(statuses, want) {
			t.Errorf("no answer of this test had status %d", want)
		}
	}
}

// jsonRoundTrip gives a YAML-decoded value the types JSON decodes to.
func jsonRoundTrip(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAPIDescriptionListsEveryRoute compares the routes bulkd registers with
// the operations the API description lists, both ways: a route added
// without its description fails here, and so does a description of a route
// that is gone. The queue UI (asynqmon, behind basic auth) is an operator's
// page, not the API, and is left out of the document.
func TestAPIDescriptionListsEveryRoute(t *testing.T) {
	t.Parallel()
	e := handlers.New(handlers.Config{
		Records:       &records.Service{},
		Reports:       report.NewLinks(reportSecret, time.Hour, ""),
		RateLimit:     1,
		QueueUI:       http.NotFoundHandler(),
		AdminPassword: "x",
		Log:           slog.New(slog.DiscardHandler),
	})
	var served []string
	for _, r := range e.Routes() {
		if strings.HasPrefix(r.Path, "/admin/queues") {
			continue
		}
		path := strings.ReplaceAll(r.Path, ":id", "{id}")
		path = strings.ReplaceAll(path, "*", "{file}")
		served = append(served, r.Method+" "+path)
	}
	var documented []string
	for _, r := range apidoctest.Routes(t) {
		documented = append(documented, r.Method+" "+r.Path)
	}
	slices.Sort(served)
	slices.Sort(documented)
	served, documented = slices.Compact(served), slices.Compact(documented)
	if diff := cmp.Diff(documented, served); diff != "" {
		t.Errorf("routes (-documented in pkg/apidoc/openapi.yaml +served by handlers):\n%s", diff)
	}
	if len(apidoc.YAML()) == 0 {
		t.Fatal("the API description is not embedded")
	}
}
