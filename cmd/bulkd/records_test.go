package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// call is s.do with headers of its own (a patch's Content-Type, If-Match).
func (s *service) call(method, path, key string, header map[string]string, body string) response {
	s.t.Helper()
	all := map[string]string{"Authorization": "Bearer " + key}
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
		all["Content-Type"] = "application/json"
	}
	for k, v := range header {
		all[k] = v
	}
	return s.request(method, path, all, r)
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
		for _, method := range []string{http.MethodGet, http.MethodDelete} {
			r := s.call(method, path, other, nil, "")
			if r.status != http.StatusNotFound || !strings.Contains(string(r.body), "was not found") {
				t.Errorf("%s %s: %d %s", method, path, r.status, r.body)
			}
		}
		r := s.call(http.MethodPatch, path, other, map[string]string{"Content-Type": "application/merge-patch+json"}, `{"name": "X"}`)
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
	s.waitCompleted(key, s.submit(key, []byte(`[{"customer": {"external_id": "c3", "name": "Cy", "email": "cy@example.com"}, "location": {"external_id": "l2"}}]`)))
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
		if got, _ := list(t, s.call(http.MethodGet, tc.path, key, nil, "")); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: %v, want %v", tc.path, got, tc.want)
		}
	}
	if got, _ := list(t, s.call(http.MethodGet, "/api/v1/customers/"+c1+"/debt_accounts", key, nil, "")); len(got) != 4 {
		t.Errorf("c1's accounts: %v", got)
	}

	// Newest first, a page at a time; a customer added between two pages
	// neither shifts nor repeats the next.
	got, next := list(t, s.call(http.MethodGet, "/api/v1/customers?limit=1", key, nil, ""))
	if strings.Join(got, ",") != "c3" || next == "" {
		t.Fatalf("page 1: %v %q", got, next)
	}
	s.waitCompleted(key, s.submit(key, []byte(`[{"customer": {"external_id": "c4", "name": "Di"}, "location": {"external_id": "l2"}}]`)))
	seen := got
	for next != "" {
		got, next = list(t, s.call(http.MethodGet, next, key, nil, ""))
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
		r := s.call(http.MethodGet, path, key, nil, "")
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `"`+field+`":[`) {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
	if r := s.call(http.MethodGet, "/api/v1/customers/"+p1+"/debt_accounts", key, nil, ""); r.status != http.StatusNotFound {
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
		if r := s.call(http.MethodDelete, path, key, nil, ""); r.status != http.StatusConflict || !strings.Contains(string(r.body), held) {
			t.Errorf("DELETE %s: %d %s", path, r.status, r.body)
		}
	}
	if count("debt_accounts") != "4" || count("customers") != "2" {
		t.Fatal("a refused delete deleted something")
	}

	// A stale If-Match is 412 naming the current version; nothing deleted.
	r := s.call(http.MethodDelete, "/api/v1/debt_accounts/"+t1, key, map[string]string{"If-Match": `"7"`}, "")
	if r.status != http.StatusPreconditionFailed || !strings.Contains(string(r.body), `its current version is 1 (ETag \"1\")`) {
		t.Errorf("stale If-Match: %d %s", r.status, r.body)
	}
	if r := s.call(http.MethodDelete, "/api/v1/debt_accounts/"+t1, key, map[string]string{"If-Match": `"1"`}, ""); r.status != http.StatusNoContent {
		t.Errorf("DELETE t1: %d %s", r.status, r.body)
	}
	if r := s.call(http.MethodGet, "/api/v1/debt_accounts/"+t1, key, nil, ""); r.status != http.StatusNotFound {
		t.Errorf("t1 after delete: %d", r.status)
	}
	if r := s.call(http.MethodDelete, "/api/v1/debt_accounts/"+p1+"?cascade=true", key, nil, ""); r.status != http.StatusNoContent || count("debt_accounts") != "0" {
		t.Errorf("cascade p1: %d %s, %s accounts left", r.status, r.body, count("debt_accounts"))
	}
	if r := s.call(http.MethodDelete, "/api/v1/customers/"+c1+"?cascade=maybe", key, nil, ""); r.status != http.StatusBadRequest {
		t.Errorf("cascade=maybe: %d", r.status)
	}
	// A location's cascade removes its customers and their accounts.
	s.waitCompleted(key, s.submit(key, []byte(`[{"customer": {"external_id": "c2"}, "location": {"external_id": "l1"},
		"debt_accounts": [{"external_id": "x1", "balance": 1, "billing_type": ["settlement"]}]}]`)))
	if r := s.call(http.MethodDelete, "/api/v1/locations/"+l1+"?cascade=true", key, nil, ""); r.status != http.StatusNoContent ||
		count("customers") != "0" || count("debt_accounts") != "0" || count("locations") != "0" {
		t.Errorf("cascade l1: %d %s", r.status, r.body)
	}
}

func TestRecordsPatch(t *testing.T) {
	t.Parallel()
	s, key, bulkID := recordsService(t)
	jp := map[string]string{"Content-Type": "application/json-patch+json"}
	mp := map[string]string{"Content-Type": "application/merge-patch+json"}
	c1, k1, t1 := "/api/v1/customers/"+s.recordID(t, "customers", "c1"), "/api/v1/debt_accounts/"+s.recordID(t, "debt_accounts", "k1"),
		"/api/v1/debt_accounts/"+s.recordID(t, "debt_accounts", "t1")

	// Each of the six operations, validated and written as one new version.
	c := data(t, s.call(http.MethodPatch, c1, key, jp, `[
		{"op": "test", "path": "/name", "value": "Ann"},
		{"op": "replace", "path": "/name", "value": "Anne"},
		{"op": "add", "path": "/phone", "value": "555"},
		{"op": "remove", "path": "/email"},
		{"op": "add", "path": "/metadata/tier2", "value": 2},
		{"op": "copy", "from": "/metadata/tier", "path": "/metadata/copied"},
		{"op": "move", "from": "/metadata/tier2", "path": "/metadata/moved"}]`), http.StatusOK)
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
	r := s.call(http.MethodPatch, c1, key, mp, `{"name": "Anne"}`)
	if c := data(t, r, http.StatusOK); c["version"] != 2.0 {
		t.Errorf("no-op patch: %v", c)
	}
	etag := r.header.Get("ETag")

	for _, tc := range []struct {
		path, patch, field, msg string
		header                  map[string]string
	}{
		{c1, `{"email": "nope"}`, "email", "The email field must be a valid email address.", mp},
		{c1, `{"name": null}`, "name", "The name field is required.", mp},
		{c1, `{"date_of_birth": "2999-01-01"}`, "date_of_birth", "The date of birth field must be a date before today.", mp},
		{c1, `{"version": 9}`, "version", "The version field is read-only.", mp},
		{c1, `{"provenance": null}`, "provenance", "The provenance field is read-only.", mp},
		{c1, `{"external_id": "c2"}`, "external_id", "The external id has already been taken.", mp},
		{c1, `{"nickname": "A"}`, "nickname", "#: extraneous key [nickname] is not permitted", mp},
		{k1, `[{"op": "replace", "path": "/balance", "value": 1.005}]`, "balance", "The balance field must have at most 2 decimal places.", jp},
		{k1, `[{"op": "replace", "path": "/billing_type", "value": ["cash"]}]`, "billing_type", "The selected billing type is invalid.", jp},
		{k1, `[{"op": "replace", "path": "/customer_id", "value": "x"}]`, "customer_id", "The customer id field is read-only.", jp},
		{k1, `[{"op": "replace", "path": "/parent_external_id", "value": "k2"}]`, "parent_external_id", "only one level of nesting is allowed", jp},
		{k1, `[{"op": "replace", "path": "/parent_external_id", "value": "nope"}]`, "parent_external_id", "The selected parent external id is invalid.", jp},
		{k1, `[{"op": "test", "path": "/balance", "value": 99}]`, "patch", "cannot be applied", jp},
	} {
		r := s.call(http.MethodPatch, tc.path, key, tc.header, tc.patch)
		if r.status != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), `"`+tc.field+`":["`) || !strings.Contains(string(r.body), tc.msg) {
			t.Errorf("%s: %d %s", tc.patch, r.status, r.body)
		}
	}
	if r := s.call(http.MethodPatch, c1, key, map[string]string{"Content-Type": "application/json"}, `{}`); r.status != http.StatusUnsupportedMediaType {
		t.Errorf("application/json: %d %s", r.status, r.body)
	}
	if got := s.record(t, customerRecord, "c1"); got != `Anne|NULL|555|{"tier": 1, "moved": 2, "copied": 1}|l1|v2` {
		t.Errorf("c1 after refused patches: %s", got)
	}

	// If-Match: the current ETag applies, a stale one is 412.
	stale := map[string]string{"Content-Type": "application/merge-patch+json", "If-Match": `"1-0"`}
	if r := s.call(http.MethodPatch, c1, key, stale, `{"name": "X"}`); r.status != http.StatusPreconditionFailed ||
		!strings.Contains(string(r.body), "its current version is 2") {
		t.Errorf("stale If-Match: %d %s", r.status, r.body)
	}
	fresh := map[string]string{"Content-Type": "application/merge-patch+json", "If-Match": etag}
	if c := data(t, s.call(http.MethodPatch, c1, key, fresh, `{"name": "Ann"}`), http.StatusOK); c["version"] != 3.0 {
		t.Errorf("If-Match current: %v", c)
	}

	// k1 moves from p1 to t1, a top-level account of the same customer.
	a := data(t, s.call(http.MethodPatch, k1, key, mp, `{"parent_external_id": "t1", "current_balance": "4.25"}`), http.StatusOK)
	if a["parent_external_id"] != "t1" || a["version"] != 2.0 || s.record(t, accountRecord, "k1") != "10.50|4.25|full-payment|t1|NULL|v2" {
		t.Errorf("moved k1: %v", a)
	}
	// t1 now has a child, so it cannot be nested itself.
	if r := s.call(http.MethodPatch, t1, key, mp, `{"parent_external_id": "p1"}`); r.status != http.StatusUnprocessableEntity {
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
			r := s.call(http.MethodPatch, c1, key, map[string]string{"Content-Type": "application/json-patch+json"},
				`[{"op": "add", "path": "/metadata/`+k+`", "value": `+strconv.Itoa(i)+`}]`)
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
	c := data(t, s.call(http.MethodGet, c1, key, nil, ""), http.StatusOK)
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
	mp := map[string]string{"Content-Type": "application/merge-patch+json"}
	prov := func(rec map[string]any) string {
		p := rec["provenance"].(map[string]any)
		return fmt.Sprint(p["bulk_id"] == bulkID, " ", p["last_bulk_id"], " ", p["last_changed_by"])
	}
	if got := prov(data(t, s.call(http.MethodPatch, l1, key, mp, `{"name": "Patched"}`), http.StatusOK)); got != "true "+bulkID+" api" {
		t.Errorf("after a patch: %s", got)
	}
	a := s.batch(t, key, `[{"operation": "create", "resource": "locations", "object": {"external_id": "l9"}}]`)
	if p := a.Results[0].Object["provenance"].(map[string]any); p["bulk_id"] != nil || p["last_changed_by"] != "api" {
		t.Errorf("a record the API created: %v", p)
	}
	upsert := s.submitWith(key, "mode=upsert", []byte(`[{"location": {"external_id": "l1", "name": "Upserted"},
		"customer": {"external_id": "c1", "name": "Ann"}, "debt_accounts": []}]`))
	s.waitCompleted(key, upsert)
	if got := prov(data(t, s.call(http.MethodGet, l1, key, nil, ""), http.StatusOK)); got != "true "+upsert+" bulk" {
		t.Errorf("after an upsert: %s", got)
	}
}
