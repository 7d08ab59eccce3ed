package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

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
	_, key = s.newOrg(t, "Acme", "ops@acme.example")
	bulkID = s.submit(t, key, []byte(recordsBulk))
	s.waitCompleted(t, key, bulkID)
	return s, key, bulkID
}

func TestRecordsReadWithTreeProvenanceAndETag(t *testing.T) {
	t.Parallel()
	s, key, bulkID := recordsService(t)
	c1 := s.recordID(t, "customers", "c1")

	r := s.request(t, http.MethodGet, "/api/v1/customers/"+c1, nil, bearer(key))
	c := data(t, r, http.StatusOK)
	if c["external_id"] != "c1" || c["name"] != "Ann" || c["email"] != "ann@example.com" || c["version"] != 1.0 ||
		c["created_at"] == nil || c["updated_at"] == nil {
		t.Errorf("customer: %s", r.body)
	}
	prov := c["provenance"].(map[string]any)
	if prov["bulk_id"] != bulkID || prov["bulk_row"] != 1.0 || prov["last_bulk_id"] != bulkID || prov["last_bulk_row"] != 1.0 ||
		prov["last_changed_by"] != "bulk" {
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
	if r := s.request(t, http.MethodGet, "/api/v1/customers/"+c1, nil, bearer(key), "If-None-Match: "+etag); r.status != http.StatusNotModified || len(r.body) != 0 {
		t.Errorf("If-None-Match: %d %s", r.status, r.body)
	}

	// A change of one of its accounts changes the customer's ETag.
	k1 := s.recordID(t, "debt_accounts", "k1")
	if _, err := s.db.Conn.Exec(t.Context(), `UPDATE debt_accounts SET version = version + 1 WHERE id = $1`, k1); err != nil {
		t.Fatal(err)
	}
	if r := s.request(t, http.MethodGet, "/api/v1/customers/"+c1, nil, bearer(key), "If-None-Match: "+etag); r.status != http.StatusOK || r.header.Get("ETag") == etag {
		t.Errorf("after an account changed: %d, ETag %q (was %q)", r.status, r.header.Get("ETag"), etag)
	}

	a := data(t, s.request(t, http.MethodGet, "/api/v1/debt_accounts/"+k1, nil, bearer(key)), http.StatusOK)
	if a["external_id"] != "k1" || a["parent_external_id"] != "p1" || a["customer_id"] != c1 || a["version"] != 2.0 {
		t.Errorf("account: %v", a)
	}
	l1 := s.recordID(t, "locations", "l1")
	r = s.request(t, http.MethodGet, "/api/v1/locations/"+l1, nil, bearer(key))
	if l := data(t, r, http.StatusOK); l["external_id"] != "l1" || r.header.Get("ETag") != `"1"` {
		t.Errorf("location: %v %q", l, r.header.Get("ETag"))
	}
}

func TestRecordsOfAnotherOrganizationAreNotFound(t *testing.T) {
	t.Parallel()
	s, _, _ := recordsService(t)
	_, other := s.newOrg(t, "Other", "ops@other.example")
	for _, path := range []string{
		"/api/v1/customers/" + s.recordID(t, "customers", "c1"),
		"/api/v1/locations/" + s.recordID(t, "locations", "l1"),
		"/api/v1/debt_accounts/" + s.recordID(t, "debt_accounts", "k1"),
		"/api/v1/customers/not-a-uuid",
	} {
		for _, method := range []string{http.MethodGet, http.MethodDelete} {
			r := s.request(t, method, path, nil, bearer(other))
			if r.status != http.StatusNotFound || !strings.Contains(string(r.body), "was not found") {
				t.Errorf("%s %s: %d %s", method, path, r.status, r.body)
			}
		}
		r := s.request(t, http.MethodPatch, path, `{"name": "X"}`, bearer(other), mergePatch)
		if r.status != http.StatusNotFound {
			t.Errorf("PATCH %s: %d %s", path, r.status, r.body)
		}
	}
}

// list reads a list answer: the external ids of its records and links.next.
func list(t *testing.T, r response) (ids []string, next string) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	var v struct {
		Data  []map[string]any
		Links struct{ Next *string }
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatal(err)
	}
	for _, d := range v.Data {
		ids = append(ids, d["external_id"].(string))
	}
	if v.Links.Next != nil {
		next = *v.Links.Next
	}
	return ids, next
}

func TestRecordsSearchAndListPages(t *testing.T) {
	t.Parallel()
	s, key, bulkID := recordsService(t)
	// A later bulk: its customer is newer than c1 and c2.
	s.waitCompleted(t, key, s.submit(t, key, []byte(`[{"customer": {"external_id": "c3", "name": "Cy", "email": "cy@example.com"}, "location": {"external_id": "l2"}}]`)))
	c1, p1 := s.recordID(t, "customers", "c1"), s.recordID(t, "debt_accounts", "p1")

	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/api/v1/customers?external_id=c2", []string{"c2"}},
		{"/api/v1/customers?email=cy@example.com", []string{"c3"}},
		{"/api/v1/customers?bulk_id=" + bulkID + "&external_id=c1", []string{"c1"}},
		{"/api/v1/customers?location_id=" + s.recordID(t, "locations", "l2"), []string{"c3"}},
		{"/api/v1/locations?external_id=l1", []string{"l1"}},
		{"/api/v1/debt_accounts?parent_id=" + p1 + "&external_id=k2", []string{"k2"}},
		{"/api/v1/debt_accounts?customer_id=" + s.recordID(t, "customers", "c2"), nil},
		{"/api/v1/customers/" + c1 + "/debt_accounts?external_id=t1", []string{"t1"}},
	} {
		if got, _ := list(t, s.request(t, http.MethodGet, tc.path, nil, bearer(key))); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: %v, want %v", tc.path, got, tc.want)
		}
	}
	if got, _ := list(t, s.request(t, http.MethodGet, "/api/v1/customers/"+c1+"/debt_accounts", nil, bearer(key))); len(got) != 4 {
		t.Errorf("c1's accounts: %v", got)
	}

	// Newest first, a page at a time; a customer added between two pages
	// neither shifts nor repeats the next.
	got, next := list(t, s.request(t, http.MethodGet, "/api/v1/customers?limit=1", nil, bearer(key)))
	if strings.Join(got, ",") != "c3" || next == "" {
		t.Fatalf("page 1: %v %q", got, next)
	}
	s.waitCompleted(t, key, s.submit(t, key, []byte(`[{"customer": {"external_id": "c4", "name": "Di"}, "location": {"external_id": "l2"}}]`)))
	seen := got
	for next != "" {
		got, next = list(t, s.request(t, http.MethodGet, next, nil, bearer(key)))
		seen = append(seen, got...)
	}
	if strings.Join(seen[1:], ",") != "c1,c2" && strings.Join(seen[1:], ",") != "c2,c1" {
		t.Errorf("pages: %v", seen)
	}

	for path, field := range map[string]string{
		"/api/v1/customers?limit=0":                     "limit",
		"/api/v1/customers?limit=1001":                  "limit",
		"/api/v1/customers?location_id=x":               "location_id",
		"/api/v1/customers?parent_id=" + p1:             "parent_id",
		"/api/v1/debt_accounts?cursor=bogus":            "cursor",
		"/api/v1/locations?external_id=a&external_id=b": "external_id",
	} {
		r := s.request(t, http.MethodGet, path, nil, bearer(key))
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `"`+field+`":[`) {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
	if r := s.request(t, http.MethodGet, "/api/v1/customers/"+p1+"/debt_accounts", nil, bearer(key)); r.status != http.StatusNotFound {
		t.Errorf("accounts of no customer: %d %s", r.status, r.body)
	}
}

func TestRecordsDelete(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	count := func(table string) string { return s.record(t, `SELECT count(*)::text FROM `+table) }
	p1, t1 := s.recordID(t, "debt_accounts", "p1"), s.recordID(t, "debt_accounts", "t1")
	c1, l1 := s.recordID(t, "customers", "c1"), s.recordID(t, "locations", "l1")

	for path, held := range map[string]string{
		"/api/v1/debt_accounts/" + p1: `"debt_accounts":["The debt account has 2 debt accounts;`,
		"/api/v1/customers/" + c1:     `"debt_accounts":["The customer has 4 debt accounts;`,
		"/api/v1/locations/" + l1:     `"customers":["The location has 2 customers;`,
	} {
		if r := s.request(t, http.MethodDelete, path, nil, bearer(key)); r.status != http.StatusConflict || !strings.Contains(string(r.body), held) {
			t.Errorf("DELETE %s: %d %s", path, r.status, r.body)
		}
	}
	if count("debt_accounts") != "4" || count("customers") != "2" {
		t.Fatal("a refused delete deleted something")
	}

	// A stale If-Match is 412 naming the current version; nothing deleted.
	r := s.request(t, http.MethodDelete, "/api/v1/debt_accounts/"+t1, nil, bearer(key), `If-Match: "7"`)
	if r.status != http.StatusPreconditionFailed || !strings.Contains(string(r.body), `its current version is 1 (ETag \"1\")`) {
		t.Errorf("stale If-Match: %d %s", r.status, r.body)
	}
	if r := s.request(t, http.MethodDelete, "/api/v1/debt_accounts/"+t1, nil, bearer(key), `If-Match: "1"`); r.status != http.StatusNoContent {
		t.Errorf("DELETE t1: %d %s", r.status, r.body)
	}
	if r := s.request(t, http.MethodGet, "/api/v1/debt_accounts/"+t1, nil, bearer(key)); r.status != http.StatusNotFound {
		t.Errorf("t1 after delete: %d", r.status)
	}
	if r := s.request(t, http.MethodDelete, "/api/v1/debt_accounts/"+p1+"?cascade=true", nil, bearer(key)); r.status != http.StatusNoContent || count("debt_accounts") != "0" {
		t.Errorf("cascade p1: %d %s, %s accounts left", r.status, r.body, count("debt_accounts"))
	}
	if r := s.request(t, http.MethodDelete, "/api/v1/customers/"+c1+"?cascade=maybe", nil, bearer(key)); r.status != http.StatusBadRequest {
		t.Errorf("cascade=maybe: %d", r.status)
	}
	// A location's cascade removes its customers and their accounts.
	s.waitCompleted(t, key, s.submit(t, key, []byte(`[{"customer": {"external_id": "c2"}, "location": {"external_id": "l1"},
		"debt_accounts": [{"external_id": "x1", "balance": 1, "billing_type": ["settlement"]}]}]`)))
	if r := s.request(t, http.MethodDelete, "/api/v1/locations/"+l1+"?cascade=true", nil, bearer(key)); r.status != http.StatusNoContent ||
		count("customers") != "0" || count("debt_accounts") != "0" || count("locations") != "0" {
		t.Errorf("cascade l1: %d %s", r.status, r.body)
	}
}

func TestRecordsPatch(t *testing.T) {
	t.Parallel()
	s, key, bulkID := recordsService(t)
	c1, k1, t1 := "/api/v1/customers/"+s.recordID(t, "customers", "c1"), "/api/v1/debt_accounts/"+s.recordID(t, "debt_accounts", "k1"),
		"/api/v1/debt_accounts/"+s.recordID(t, "debt_accounts", "t1")

	// Each of the six operations, validated and written as one new version.
	c := data(t, s.request(t, http.MethodPatch, c1, `[
		{"op": "test", "path": "/name", "value": "Ann"},
		{"op": "replace", "path": "/name", "value": "Anne"},
		{"op": "add", "path": "/phone", "value": "555"},
		{"op": "remove", "path": "/email"},
		{"op": "add", "path": "/metadata/tier2", "value": 2},
		{"op": "copy", "from": "/metadata/tier", "path": "/metadata/copied"},
		{"op": "move", "from": "/metadata/tier2", "path": "/metadata/moved"}]`, bearer(key), jsonPatch), http.StatusOK)
	if c["name"] != "Anne" || c["phone"] != "555" || c["email"] != nil || c["version"] != 2.0 {
		t.Errorf("patched customer: %v", c)
	}
	if m := c["metadata"].(map[string]any); m["tier"] != 1.0 || m["copied"] != 1.0 || m["moved"] != 2.0 || m["tier2"] != nil {
		t.Errorf("metadata: %v", m)
	}
	// A patch keeps the bulk provenance (the bulk created it and was the
	// last bulk to change it) and says the API changed it last.
	if p := c["provenance"].(map[string]any); p["bulk_id"] != bulkID || p["last_bulk_id"] != bulkID || p["last_changed_by"] != "api" {
		t.Errorf("provenance: %v", p)
	}
	// A patch that changes nothing answers 200 at the same version.
	r := s.request(t, http.MethodPatch, c1, `{"name": "Anne"}`, bearer(key), mergePatch)
	if c := data(t, r, http.StatusOK); c["version"] != 2.0 {
		t.Errorf("no-op patch: %v", c)
	}
	etag := r.header.Get("ETag")

	for _, tc := range []struct {
		path, patch, field, msg string
		header                  string
	}{
		{c1, `{"email": "nope"}`, "email", "The email field must be a valid email address.", mergePatch},
		{c1, `{"name": null}`, "name", "The name field is required.", mergePatch},
		{c1, `{"date_of_birth": "2999-01-01"}`, "date_of_birth", "The date of birth field must be a date before today.", mergePatch},
		{c1, `{"version": 9}`, "version", "The version field is read-only.", mergePatch},
		{c1, `{"provenance": null}`, "provenance", "The provenance field is read-only.", mergePatch},
		{c1, `{"external_id": "c2"}`, "external_id", "The external id has already been taken.", mergePatch},
		{c1, `{"nickname": "A"}`, "nickname", "#: extraneous key [nickname] is not permitted", mergePatch},
		{k1, `[{"op": "replace", "path": "/balance", "value": 1.005}]`, "balance", "The balance field must have at most 2 decimal places.", jsonPatch},
		{k1, `[{"op": "replace", "path": "/billing_type", "value": ["cash"]}]`, "billing_type", "The selected billing type is invalid.", jsonPatch},
		{k1, `[{"op": "replace", "path": "/customer_id", "value": "x"}]`, "customer_id", "The customer id field is read-only.", jsonPatch},
		{k1, `[{"op": "replace", "path": "/parent_external_id", "value": "k2"}]`, "parent_external_id", "only one level of nesting is allowed", jsonPatch},
		{k1, `[{"op": "replace", "path": "/parent_external_id", "value": "nope"}]`, "parent_external_id", "The selected parent external id is invalid.", jsonPatch},
		{k1, `[{"op": "test", "path": "/balance", "value": 99}]`, "patch", "cannot be applied", jsonPatch},
	} {
		r := s.request(t, http.MethodPatch, tc.path, tc.patch, bearer(key), tc.header)
		if r.status != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), `"`+tc.field+`":["`) || !strings.Contains(string(r.body), tc.msg) {
			t.Errorf("%s: %d %s", tc.patch, r.status, r.body)
		}
	}
	if r := s.request(t, http.MethodPatch, c1, `{}`, bearer(key), jsonBody); r.status != http.StatusUnsupportedMediaType {
		t.Errorf("application/json: %d %s", r.status, r.body)
	}
	if got := s.record(t, customerRecord, "c1"); got != `Anne|NULL|555|{"tier": 1, "moved": 2, "copied": 1}|l1|v2` {
		t.Errorf("c1 after refused patches: %s", got)
	}

	// If-Match: the current ETag applies, a stale one is 412.
	if r := s.request(t, http.MethodPatch, c1, `{"name": "X"}`, bearer(key), mergePatch, `If-Match: "1-0"`); r.status != http.StatusPreconditionFailed ||
		!strings.Contains(string(r.body), "its current version is 2") {
		t.Errorf("stale If-Match: %d %s", r.status, r.body)
	}
	if c := data(t, s.request(t, http.MethodPatch, c1, `{"name": "Ann"}`, bearer(key), mergePatch, "If-Match: "+etag), http.StatusOK); c["version"] != 3.0 {
		t.Errorf("If-Match current: %v", c)
	}

	// k1 moves from p1 to t1, a top-level account of the same customer.
	a := data(t, s.request(t, http.MethodPatch, k1, `{"parent_external_id": "t1", "current_balance": "4.25"}`, bearer(key), mergePatch), http.StatusOK)
	if a["parent_external_id"] != "t1" || a["version"] != 2.0 || s.record(t, accountRecord, "k1") != "10.50|4.25|full-payment|t1|NULL|v2" {
		t.Errorf("moved k1: %v", a)
	}
	// t1 now has a child, so it cannot be nested itself.
	if r := s.request(t, http.MethodPatch, t1, `{"parent_external_id": "p1"}`, bearer(key), mergePatch); r.status != http.StatusUnprocessableEntity {
		t.Errorf("nesting a parent: %d %s", r.status, r.body)
	}
}

func TestRecordsConcurrentPatchesLoseNoUpdate(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	c1 := "/api/v1/customers/" + s.recordID(t, "customers", "c1")
	const n = 8
	errs := make(chan string, n)
	for i := range n {
		go func() {
			k := string(rune('a' + i))
			r := s.request(t, http.MethodPatch, c1, `[{"op": "add", "path": "/metadata/`+k+`", "value": `+strconv.Itoa(i)+`}]`, bearer(key), jsonPatch)
			if r.status != http.StatusOK {
				errs <- string(r.body)
				return
			}
			errs <- ""
		}()
	}
	for range n {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
	c := data(t, s.request(t, http.MethodGet, c1, nil, bearer(key)), http.StatusOK)
	if m := c["metadata"].(map[string]any); len(m) != n+1 || c["version"] != float64(n+1) {
		t.Errorf("after %d concurrent patches: version %v, metadata %v", n, c["version"], m)
	}
}

// What changed a record last is told whichever it was: a bulk that created
// it, the API that patched or created it, an upsert that changed it again.
func TestRecordsProvenanceTellsWhatChangedItLast(t *testing.T) {
	t.Parallel()
	s, key, bulkID := recordsService(t)
	l1 := "/api/v1/locations/" + s.recordID(t, "locations", "l1")
	prov := func(rec map[string]any) string {
		p := rec["provenance"].(map[string]any)
		return fmt.Sprint(p["bulk_id"] == bulkID, " ", p["last_bulk_id"], " ", p["last_changed_by"])
	}
	if got := prov(data(t, s.request(t, http.MethodPatch, l1, `{"name": "Patched"}`, bearer(key), mergePatch), http.StatusOK)); got != "true "+bulkID+" api" {
		t.Errorf("after a patch: %s", got)
	}
	a := s.batch(t, key, `[{"operation": "create", "resource": "locations", "object": {"external_id": "l9"}}]`)
	if p := a.Results[0].Object["provenance"].(map[string]any); p["bulk_id"] != nil || p["last_changed_by"] != "api" {
		t.Errorf("a record the API created: %v", p)
	}
	upsert := s.submitWith(t, key, "mode=upsert", []byte(`[{"location": {"external_id": "l1", "name": "Upserted"},
		"customer": {"external_id": "c1", "name": "Ann"}, "debt_accounts": []}]`))
	s.waitCompleted(t, key, upsert)
	if got := prov(data(t, s.request(t, http.MethodGet, l1, nil, bearer(key)), http.StatusOK)); got != "true "+upsert+" bulk" {
		t.Errorf("after an upsert: %s", got)
	}
}

// A patch and a batch honour Content-Encoding as a bulk does: a gzip body
// (a client that compresses every upload) is decoded and applied; any other
// encoding (br) is a 415 naming Content-Encoding and changes nothing, never
// read as if it were plain.
func TestRecordsPatchAndBatchHonourContentEncoding(t *testing.T) {
	t.Parallel()
	s := startService(t, "RATE_LIMIT=0")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	s.waitCompleted(t, key, s.submit(t, key, []byte(recordsBulk)))
	c1 := s.recordID(t, "customers", "c1")

	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	_, _ = w.Write([]byte(`{"name":"Zed"}`))
	_ = w.Close()
	r := s.request(t, http.MethodPatch, "/api/v1/customers/"+c1, gz.String(), bearer(key), mergePatch, "Content-Encoding: gzip")
	if r.status != http.StatusOK || s.record(t, `SELECT name FROM customers WHERE id = $1`, c1) != "Zed" {
		t.Errorf("a gzip-encoded merge patch: %d %.300s, want 200 and the name patched, as a gzip bulk is decoded", r.status, r.body)
	}

	r = s.request(t, http.MethodPatch, "/api/v1/customers/"+c1, `{"name":"Brotli"}`, bearer(key), mergePatch, "Content-Encoding: br")
	if r.status != http.StatusUnsupportedMediaType || errorFields(t, r)["Content-Encoding"] == nil {
		t.Errorf("PATCH with Content-Encoding: br: %d %.300s, want 415 naming Content-Encoding", r.status, r.body)
	}
	if got := s.record(t, `SELECT name FROM customers WHERE id = $1`, c1); got == "Brotli" {
		t.Errorf("a body in an encoding bulkd does not decode was applied as if plain")
	}

	r = s.request(t, http.MethodPost, "/api/v1/batch",
		`{"operations":[{"operation":"create","resource":"locations","object":{"external_id":"brl"}}]}`, bearer(key), jsonBody, "Content-Encoding: br")
	if r.status != http.StatusUnsupportedMediaType || errorFields(t, r)["Content-Encoding"] == nil {
		t.Errorf("POST /api/v1/batch with Content-Encoding: br: %d %.300s, want 415 naming Content-Encoding", r.status, r.body)
	}
	if n := s.record(t, `SELECT count(*)::text FROM locations WHERE external_id = 'brl'`); n != "0" {
		t.Errorf("the batch in an unsupported encoding created %s locations, want none", n)
	}
}

// A patch that adds a member with an empty name (JSON Patch path "/", the
// member "" in RFC 6901, or a merge patch {"": 1}) is a 422 that names
// something the client sent (the patch, or the member as written, quoted),
// as every other refusal does: never an errors key "" nor a message "The
// field is unknown." with nothing between its words. A batch create's
// object, read by the same code, answers the same.
func TestRecordsMemberWithAnEmptyNameIsNamedInTheError(t *testing.T) {
	t.Parallel()
	s := startService(t, "RATE_LIMIT=0")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	s.waitCompleted(t, key, s.submit(t, key, []byte(recordsBulk)))
	c1 := s.recordID(t, "customers", "c1")
	for _, tc := range []struct{ contentType, body string }{
		{"application/json-patch+json", `[{"op":"add","path":"/","value":"X"}]`},
		{"application/merge-patch+json", `{"":"X"}`},
	} {
		r := s.request(t, http.MethodPatch, "/api/v1/customers/"+c1, tc.body, bearer(key), "Content-Type: "+tc.contentType)
		fields := errorFields(t, r)
		if r.status != http.StatusUnprocessableEntity || len(fields) == 0 || fields[""] != nil ||
			strings.Contains(string(r.body), "The  field") {
			t.Errorf("%s %s: %d %.300s, want 422 naming a field the client can tell", tc.contentType, tc.body, r.status, r.body)
		}
	}
	a := s.batch(t, key, `[{"operation":"create","resource":"locations","object":{"external_id":"l9","":"X"}}]`)
	if res := a.Results[0]; res.Errors[""] != nil || strings.Contains(res.ErrorMessage, "The  field") {
		t.Errorf("batch create of an object with a member named \"\": %d %q %v, want a field the client can tell", res.Status, res.ErrorMessage, res.Errors)
	}
}

// A JSON Patch whose copy operations would grow the record without bound
// is a 422 naming patch, refused before the document is built: each "copy"
// of /metadata into itself doubles it, so a patch of a few kilobytes with
// 20 of them would build a ~20 MB document (~120 MB of the server's
// memory), and 26 a few GB. The patch removes what it copied, so that only
// the bound (json-patch's AccumulatedCopySizeLimit) refuses it.
func TestRecordsPatchCopiesCannotGrowTheRecordWithoutBound(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	c1 := s.recordID(t, "customers", "c1")
	const n = 20
	var ops []string
	for i := range n {
		ops = append(ops, fmt.Sprintf(`{"op":"copy","from":"/metadata","path":"/metadata/k%d"}`, i))
	}
	for i := n - 1; i >= 0; i-- {
		ops = append(ops, fmt.Sprintf(`{"op":"remove","path":"/metadata/k%d"}`, i))
	}
	body := "[" + strings.Join(ops, ",") + "]"
	if len(body) > 4096 {
		t.Fatalf("the patch is %d bytes; it should be tiny", len(body))
	}
	r := s.request(t, http.MethodPatch, "/api/v1/customers/"+c1, body, bearer(key), jsonPatch)
	if r.status != http.StatusUnprocessableEntity || errorFields(t, r)["patch"] == nil {
		t.Errorf("a %d-byte patch that grows the customer to %d× its size: %d %.300s, want 422 naming patch",
			len(body), 1<<n, r.status, r.body)
	}
}

// A merge patch nested deeper than a row may be (bulk.MaxDepth, 32 levels)
// is a 422 naming patch, refused before it is applied, as the import
// refuses such a row at submit: merging costs time quadratic in the depth
// (on a real bulkd, 9 990 levels took 2.6 s, ten siblings of them 38 s of a
// core). Depth 100 keeps the test cheap; a patch merged first would be
// refused naming metadata.x instead.
func TestRecordsMergePatchNestingIsLimitedBeforeItIsApplied(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	t1 := s.recordID(t, "debt_accounts", "t1")
	const depth = 100
	body := `{"metadata":{"x":` + strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth) + "}}"
	r := s.request(t, http.MethodPatch, "/api/v1/debt_accounts/"+t1, body, bearer(key), mergePatch)
	if r.status != http.StatusUnprocessableEntity || errorFields(t, r)["patch"] == nil {
		t.Errorf("a merge patch nested %d levels: %d %.300s, want 422 naming patch (the import's 32-level limit)",
			depth, r.status, r.body)
	}
}

// A list filter is a string the client chose: NUL or bytes that are not
// UTF-8 (?external_id=%00, ?email=%ff) are a 400 naming the parameter,
// refused before Postgres would fail on them.
func TestRecordsListFilterThatIsNotTextIsA400(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	c1 := s.recordID(t, "customers", "c1")
	for _, c := range []struct{ path, param string }{
		{"/api/v1/customers?external_id=%00", "external_id"},
		{"/api/v1/customers?email=%ff", "email"},
		{"/api/v1/customers?email=a%c3", "email"},
		{"/api/v1/locations?external_id=l%001", "external_id"},
		{"/api/v1/debt_accounts?external_id=%fe%ff", "external_id"},
		{"/api/v1/customers/" + c1 + "/debt_accounts?external_id=%00", "external_id"},
	} {
		r := s.request(t, http.MethodGet, c.path, nil, bearer(key))
		if r.status != http.StatusBadRequest || errorFields(t, r)[c.param] == nil {
			t.Errorf("GET %s: %d %.200s, want 400 naming %s", c.path, r.status, r.body, c.param)
		}
	}
}

// An RFC 6902 patch document is an array of operations: null, like the
// other non-patches ({}, 1), is a 422 naming patch, not an empty patch that
// changes nothing.
func TestRecordsNullJSONPatchIsRefused(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	t1 := s.recordID(t, "debt_accounts", "t1")
	for _, body := range []string{`null`, `{}`, `1`} {
		r := s.request(t, http.MethodPatch, "/api/v1/debt_accounts/"+t1, body, bearer(key), jsonPatch)
		if r.status != http.StatusUnprocessableEntity || errorFields(t, r)["patch"] == nil {
			t.Errorf("PATCH %s: %d %.200s, want 422 naming patch", body, r.status, r.body)
		}
	}
}

// A patch declared in another charset than UTF-8 is a 415, as a bulk or a
// batch declared so is: bulkd reads every body as UTF-8, and would read a
// client's latin1 é as something else. A Content-Type that does not parse
// is a 415 too.
func TestRecordsPatchInAnotherCharsetIs415(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	t1 := s.recordID(t, "debt_accounts", "t1")
	for _, ct := range []string{"application/json-patch+json; charset=latin1", "application/merge-patch+json; charset=utf-16",
		"application/json-patch+json; foo"} {
		r := s.request(t, http.MethodPatch, "/api/v1/debt_accounts/"+t1, `[]`, bearer(key), "Content-Type: "+ct)
		if r.status != http.StatusUnsupportedMediaType {
			t.Errorf("Content-Type %q: %d %.200s, want 415", ct, r.status, r.body)
		}
	}
}

// A customer's ETag covers what it includes, but a list shows its version
// alone and the 412 names that version: If-Match with the version guards
// the customer's own fields, as it does any record's.
func TestRecordsCustomerIfMatchTakesItsVersion(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	id := s.recordID(t, "customers", "c1")
	c1 := "/api/v1/customers/" + id
	if etag := s.request(t, http.MethodGet, c1, nil, bearer(key)).header.Get("ETag"); etag == `"1"` || !strings.HasPrefix(etag, `"1`) {
		t.Fatalf("a customer's ETag is %s; this test needs one that is more than its version", etag)
	}
	ifVersion1 := `If-Match: "1"`
	if r := s.request(t, http.MethodPatch, c1, `{"name": "Renamed"}`, bearer(key), mergePatch, ifVersion1); r.status != http.StatusOK {
		t.Errorf("PATCH with If-Match of its version: %d %s", r.status, r.body)
	}
	r := s.request(t, http.MethodPatch, c1, `{"name": "Again"}`, bearer(key), mergePatch, ifVersion1)
	if r.status != http.StatusPreconditionFailed || !strings.Contains(string(r.body), "current version is 2") {
		t.Errorf("PATCH with the stale version: %d %s", r.status, r.body)
	}
	if got := s.record(t, `SELECT name FROM customers WHERE id = $1`, id); got != "Renamed" {
		t.Errorf("name %q", got)
	}
}
