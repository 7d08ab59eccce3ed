package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// call is s.do with headers of its own (a patch's Content-Type, If-Match).
func (s *service) call(method, path, key string, header map[string]string, body string) response {
	s.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.base+path, r)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
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

// recordID finds the id of a record by its external id.
func (s *service) recordID(t *testing.T, table, externalID string) string {
	t.Helper()
	return s.record(t, `SELECT id::text FROM `+table+` WHERE external_id = $1`, externalID)
}

// data is the "data" object of an answer that must have status.
func data(t *testing.T, r response, status int) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	var v struct{ Data map[string]any }
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	return v.Data
}

// recordsBulk is a customer with a location, a parent account with two
// children and a top-level account.
const recordsBulk = `[
	{"customer": {"external_id": "c1", "name": "Ann", "email": "ann@example.com", "metadata": {"tier": 1}},
	 "location": {"external_id": "l1", "name": "North"},
	 "debt_accounts": [
		{"external_id": "p1", "balance": 100, "billing_type": ["settlement"]},
		{"external_id": "k1", "parent_external_id": "p1", "balance": 10.5, "current_balance": 5, "billing_type": ["full-payment"]},
		{"external_id": "k2", "parent_external_id": "p1", "balance": 1, "billing_type": ["full-payment"]},
		{"external_id": "t1", "balance": 7, "billing_type": ["payment-plan"]}]},
	{"customer": {"external_id": "c2", "name": "Bob"}, "location": {"external_id": "l1"}}]`

// recordsService starts bulkd with recordsBulk imported for one
// organization and returns its key and the bulk's id.
func recordsService(t *testing.T) (s *service, key, bulkID string) {
	t.Helper()
	s = startService(t)
	_, key = s.newOrg("Acme", "ops@acme.example")
	bulkID = s.submit(key, []byte(recordsBulk))
	s.waitCompleted(key, bulkID)
	return s, key, bulkID
}

func TestRecordsReadWithTreeProvenanceAndETag(t *testing.T) {
	t.Parallel()
	s, key, bulkID := recordsService(t)
	c1 := s.recordID(t, "customers", "c1")

	r := s.call(http.MethodGet, "/api/v1/customers/"+c1, key, nil, "")
	c := data(t, r, http.StatusOK)
	if c["external_id"] != "c1" || c["name"] != "Ann" || c["email"] != "ann@example.com" || c["version"] != 1.0 ||
		c["created_at"] == nil || c["updated_at"] == nil {
		t.Errorf("customer: %s", r.body)
	}
	prov := c["provenance"].(map[string]any)
	if prov["bulk_id"] != bulkID || prov["bulk_row"] != 1.0 || prov["last_bulk_id"] != bulkID || prov["last_bulk_row"] != 1.0 {
		t.Errorf("provenance: %v", prov)
	}
	if loc := c["location"].(map[string]any); loc["external_id"] != "l1" || loc["name"] != "North" {
		t.Errorf("location: %v", loc)
	}
	tree := c["debt_accounts"].([]any)
	if len(tree) != 2 {
		t.Fatalf("tree: %v", tree)
	}
	p1 := tree[0].(map[string]any)
	children := p1["children"].([]any)
	if p1["external_id"] != "p1" || len(children) != 2 || children[0].(map[string]any)["external_id"] != "k1" ||
		children[0].(map[string]any)["parent_external_id"] != "p1" || tree[1].(map[string]any)["external_id"] != "t1" {
		t.Errorf("tree: %v", tree)
	}
	// Money is the exact decimal, as a JSON number.
	if !strings.Contains(string(r.body), `"balance":10.50,"current_balance":5.00`) {
		t.Errorf("balances: %s", r.body)
	}
	etag := r.header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if r := s.call(http.MethodGet, "/api/v1/customers/"+c1, key, map[string]string{"If-None-Match": etag}, ""); r.status != http.StatusNotModified || len(r.body) != 0 {
		t.Errorf("If-None-Match: %d %s", r.status, r.body)
	}

	// A change of one of its accounts changes the customer's ETag.
	k1 := s.recordID(t, "debt_accounts", "k1")
	if _, err := s.db.Conn.Exec(t.Context(), `UPDATE debt_accounts SET version = version + 1 WHERE id = $1`, k1); err != nil {
		t.Fatal(err)
	}
	if r := s.call(http.MethodGet, "/api/v1/customers/"+c1, key, map[string]string{"If-None-Match": etag}, ""); r.status != http.StatusOK || r.header.Get("ETag") == etag {
		t.Errorf("after an account changed: %d, ETag %q (was %q)", r.status, r.header.Get("ETag"), etag)
	}

	a := data(t, s.call(http.MethodGet, "/api/v1/debt_accounts/"+k1, key, nil, ""), http.StatusOK)
	if a["external_id"] != "k1" || a["parent_external_id"] != "p1" || a["customer_id"] != c1 || a["version"] != 2.0 {
		t.Errorf("account: %v", a)
	}
	l1 := s.recordID(t, "locations", "l1")
	r = s.call(http.MethodGet, "/api/v1/locations/"+l1, key, nil, "")
	if l := data(t, r, http.StatusOK); l["external_id"] != "l1" || r.header.Get("ETag") != `"1"` {
		t.Errorf("location: %v %q", l, r.header.Get("ETag"))
	}
}

func TestRecordsOfAnotherOrganizationAreNotFound(t *testing.T) {
	t.Parallel()
	s, _, _ := recordsService(t)
	_, other := s.newOrg("Other", "ops@other.example")
	for _, path := range []string{
		"/api/v1/customers/" + s.recordID(t, "customers", "c1"),
		"/api/v1/locations/" + s.recordID(t, "locations", "l1"),
		"/api/v1/debt_accounts/" + s.recordID(t, "debt_accounts", "k1"),
		"/api/v1/customers/not-a-uuid",
	} {
		for _, method := range []string{http.MethodGet} {
			r := s.call(method, path, other, nil, "")
			if r.status != http.StatusNotFound || !strings.Contains(string(r.body), "was not found") {
				t.Errorf("%s %s: %d %s", method, path, r.status, r.body)
			}
		}
	}
}
