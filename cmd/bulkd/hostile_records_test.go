package main

// Hostile review of the records API (issue 11). Each test here failed on
// the code it was written against; each says what a client relies on.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

var jsonPatchType = map[string]string{"Content-Type": "application/json-patch+json"}

// errorFields is the errors object of an error answer.
func errorFields(t *testing.T, r response) map[string][]string {
	t.Helper()
	var v struct{ Errors map[string][]string }
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	return v.Errors
}

// A JSON Patch of a few kilobytes whose copy operations double the record
// each time must be refused before it is built: each "copy" of /metadata
// into itself doubles it, so 20 of them build a ~20 MB document (~120 MB of
// the server's memory) and 26 a few GB: one small request can kill the
// process. The patch removes what it copied, so that without a bound it is
// a silent 200. evanphx/json-patch has ApplyOptions.AccumulatedCopySizeLimit
// for exactly this; records.patchOnce passes 0 (unlimited).
func TestHostileRecordsPatchCopiesCannotGrowTheRecordWithoutBound(t *testing.T) {
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
	r := s.call(http.MethodPatch, "/api/v1/customers/"+c1, key, jsonPatchType, body)
	if r.status != http.StatusUnprocessableEntity || errorFields(t, r)["patch"] == nil {
		t.Errorf("a %d-byte patch that grows the customer to %d× its size: %d %.300s, want 422 naming patch",
			len(body), 1<<n, r.status, r.body)
	}
}

// A merge patch costs the server time quadratic in its nesting depth
// (measured on a real bulkd: 2 500 levels 0.16 s, 5 000 0.62 s, 9 990
// 2.6 s; ten siblings of 9 990 levels, a 600 KB body, 38 s of a core and a
// 503, the work going on after it). The import refuses a row nested deeper
// than bulk.MaxDepth (32) at submit, before any work; a patch, which the
// same rules validate, must be held to that limit too, before it is
// applied, and refused naming the patch. Depth 100 keeps this test cheap:
// on the code reviewed the patch is merged and only then refused naming
// metadata.x.
func TestHostileRecordsMergePatchNestingIsLimitedBeforeItIsApplied(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	t1 := s.recordID(t, "debt_accounts", "t1")
	const depth = 100
	body := `{"metadata":{"x":` + strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth) + "}}"
	r := s.call(http.MethodPatch, "/api/v1/debt_accounts/"+t1, key,
		map[string]string{"Content-Type": "application/merge-patch+json"}, body)
	if r.status != http.StatusUnprocessableEntity || errorFields(t, r)["patch"] == nil {
		t.Errorf("a merge patch nested %d levels: %d %.300s, want 422 naming patch (the import's 32-level limit)",
			depth, r.status, r.body)
	}
}

// Without if_match a patch "applies to the current version" (README,
// issue 11 item 4): a batch of 100 patches of one customer, 8 at once, must
// apply all 100. On the code reviewed Patch gives up after maxAttempts (10)
// lost races and answers 412 "read it again and retry" naming an If-Match
// the client never sent (5 of 50 on a real bulkd).
func TestHostileRecordsBatchPatchesOfOneRecordWithoutIfMatchAllApply(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	c1 := s.recordID(t, "customers", "c1")
	const n = 100
	var ops []string
	for i := range n {
		ops = append(ops, fmt.Sprintf(`{"operation":"patch","resource":"customers","id":%q,`+
			`"patch_directives":[{"op":"replace","path":"/name","value":"Name %d"}]}`, c1, i))
	}
	r := s.call(http.MethodPost, "/api/v1/batch", key, nil, `{"operations":[`+strings.Join(ops, ",")+`]}`)
	if r.status != http.StatusOK {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	var v struct {
		SuccessCount int `json:"success_count"`
		ErrorCount   int `json:"error_count"`
		Results      []struct {
			Status       int    `json:"status"`
			ErrorMessage string `json:"error_message"`
		}
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatal(err)
	}
	if v.SuccessCount != n || v.ErrorCount != 0 {
		for i, res := range v.Results {
			if res.Status != http.StatusOK {
				t.Errorf("operation %d: %d %s", i, res.Status, res.ErrorMessage)
				break
			}
		}
		t.Errorf("success_count %d, error_count %d; want %d and 0", v.SuccessCount, v.ErrorCount, n)
	}
	// Every patch changed the name, so each applied one is a version.
	if got := s.record(t, `SELECT version::text FROM customers WHERE id = $1`, c1); got != fmt.Sprint(1+n) {
		t.Errorf("version %s after %d patches from version 1, want %d", got, n, 1+n)
	}
}

// A list filter is a string the client chose: NUL or bytes that are not
// UTF-8 (?external_id=%00, ?email=%ff) are a 400 naming the parameter, not
// a 500 from Postgres ("invalid byte sequence for encoding UTF8").
func TestHostileRecordsListFilterThatIsNotTextIsA400(t *testing.T) {
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
		r := s.call(http.MethodGet, c.path, key, nil, "")
		if r.status != http.StatusBadRequest || errorFields(t, r)[c.param] == nil {
			t.Errorf("GET %s: %d %.200s, want 400 naming %s", c.path, r.status, r.body, c.param)
		}
	}
}

// A batch body is one JSON object: anything after it (a second object
// pasted by mistake, a truncated concatenation, garbage) makes it not a
// batch, refused whole with 400 before anything is done. On the code
// reviewed only the first value is decoded and its operations run: here
// the delete of c2 is done and answered 200.
func TestHostileRecordsBatchWithDataAfterTheObjectIsRefusedWhole(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	c2 := s.recordID(t, "customers", "c2")
	for i, tail := range []string{` x`, ` {"operations":[]}`, `]`} {
		body := `{"operations":[{"operation":"delete","resource":"customers","id":"` + c2 + `"}]}` + tail
		r := s.call(http.MethodPost, "/api/v1/batch", key, nil, body)
		if r.status != http.StatusBadRequest {
			t.Errorf("body %d, ending %q: %d %.300s, want 400", i, tail, r.status, r.body)
		}
		if n := s.record(t, `SELECT count(*)::text FROM customers WHERE id = $1`, c2); n != "1" {
			t.Fatalf("body %d, ending %q: the customer was deleted", i, tail)
		}
	}
}

// An RFC 6902 patch document is an array of operations: the JSON null is
// not one and must be refused as the other non-patches ({}, "", 1) are,
// 422 naming patch. On the code reviewed DecodePatch reads null as an empty
// patch and the request is a 200.
func TestHostileRecordsNullJSONPatchIsRefused(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	t1 := s.recordID(t, "debt_accounts", "t1")
	for _, body := range []string{`null`, `{}`, `1`} {
		r := s.call(http.MethodPatch, "/api/v1/debt_accounts/"+t1, key, jsonPatchType, body)
		if r.status != http.StatusUnprocessableEntity || errorFields(t, r)["patch"] == nil {
			t.Errorf("PATCH %s: %d %.200s, want 422 naming patch", body, r.status, r.body)
		}
	}
}

// A patch declared in another charset than UTF-8 is refused 415 as a bulk
// or a batch declared so is (jsonContentType): bulkd reads every body as
// UTF-8, so accepting charset=latin1 silently reads the client's é as
// something else. A Content-Type that does not parse is 415 too.
func TestHostileRecordsPatchInAnotherCharsetIs415(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	t1 := s.recordID(t, "debt_accounts", "t1")
	for _, ct := range []string{"application/json-patch+json; charset=latin1", "application/merge-patch+json; charset=utf-16",
		"application/json-patch+json; foo"} {
		r := s.call(http.MethodPatch, "/api/v1/debt_accounts/"+t1, key, map[string]string{"Content-Type": ct}, `[]`)
		if r.status != http.StatusUnsupportedMediaType {
			t.Errorf("Content-Type %q: %d %.200s, want 415", ct, r.status, r.body)
		}
	}
}

// A batch operation that waits for the organization's import lock (an
// import of the organization is running) past REQUEST_TIMEOUT is what the
// single request would answer: 503, "try again shortly", so that the
// client retries it. On the code reviewed each such operation is a 500
// "Internal server error." and its failure goes to slog's default logger
// (a plain-text line on stderr) instead of bulkd's JSON log, so the
// operator who looks up the request id finds nothing.
func TestHostileRecordsBatchOperationWaitingForAnImportIs503(t *testing.T) {
	t.Parallel()
	s := startService(t, "REQUEST_TIMEOUT=1s")
	orgID, key := s.newOrg("Acme", "ops@acme.example")
	// What every import of the organization holds while it writes
	// (store.importLockClass).
	lock := `SELECT pg_advisory_lock(7240002, hashtext($1))`
	if _, err := s.db.Conn.Exec(t.Context(), lock, orgID); err != nil {
		t.Fatal(err)
	}
	r := s.call(http.MethodPost, "/api/v1/batch", key, nil,
		`{"operations":[{"operation":"create","resource":"locations","object":{"external_id":"l9"}}]}`)
	if _, err := s.db.Conn.Exec(t.Context(), `SELECT pg_advisory_unlock(7240002, hashtext($1))`, orgID); err != nil {
		t.Fatal(err)
	}
	var v struct {
		Results []struct {
			Status int `json:"status"`
		}
	}
	if err := json.Unmarshal(r.body, &v); err != nil || r.status != http.StatusOK || len(v.Results) != 1 {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	if v.Results[0].Status != http.StatusServiceUnavailable {
		t.Errorf("an operation that ran out of time waiting for an import: %s, want status 503", r.body)
	}
	// Whatever its status, a failed operation is in bulkd's own log under
	// its request id, as every failed request is.
	id, logged := r.header.Get("X-Request-Id"), false
	for _, line := range strings.Split(s.logs.String(), "\n") {
		logged = logged || (strings.Contains(line, id) && strings.Contains(line, `"err"`))
	}
	if !logged {
		t.Errorf("the operation's failure is not in bulkd's log under request id %s:\n%s", id, s.logs.String())
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
	if etag := s.call(http.MethodGet, c1, key, nil, "").header.Get("ETag"); etag == `"1"` || !strings.HasPrefix(etag, `"1`) {
		t.Fatalf("a customer's ETag is %s; this test needs one that is more than its version", etag)
	}
	mp := map[string]string{"Content-Type": "application/merge-patch+json", "If-Match": `"1"`}
	if r := s.call(http.MethodPatch, c1, key, mp, `{"name": "Renamed"}`); r.status != http.StatusOK {
		t.Errorf("PATCH with If-Match of its version: %d %s", r.status, r.body)
	}
	r := s.call(http.MethodPatch, c1, key, mp, `{"name": "Again"}`)
	if r.status != http.StatusPreconditionFailed || !strings.Contains(string(r.body), "current version is 2") {
		t.Errorf("PATCH with the stale version: %d %s", r.status, r.body)
	}
	if got := s.record(t, `SELECT name FROM customers WHERE id = $1`, id); got != "Renamed" {
		t.Errorf("name %q", got)
	}
}
