package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/pkg/bulkgen"
	"github.com/bulkd/bulkd/workers/tasks"
)

type batchResult struct {
	Operation    string              `json:"operation"`
	Resource     string              `json:"resource"`
	ID           string              `json:"id"`
	Outcome      string              `json:"outcome"`
	Status       int                 `json:"status"`
	Object       map[string]any      `json:"object"`
	ErrorMessage string              `json:"error_message"`
	Errors       map[string][]string `json:"errors"`
}

type batchAnswer struct {
	SuccessCount int           `json:"success_count"`
	ErrorCount   int           `json:"error_count"`
	Results      []batchResult `json:"results"`
}

// batch posts operations (a JSON list) and reads the 200 answer.
func (s *service) batch(t testing.TB, key, operations string) batchAnswer {
	t.Helper()
	r := s.request(t, http.MethodPost, "/api/v1/batch", `{"operations": `+operations+`}`, bearer(key), jsonBody)
	if r.status != http.StatusOK {
		t.Fatalf("batch: status %d: %s", r.status, r.body)
	}
	var a batchAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	return a
}

func (a batchAnswer) statuses() []int {
	var out []int
	for _, r := range a.Results {
		out = append(out, r.Status)
	}
	return out
}

func TestRecordsBatchMixedOutcomesInOrder(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	t1, c1, c2 := s.recordID(t, "debt_accounts", "t1"), s.recordID(t, "customers", "c1"), s.recordID(t, "customers", "c2")
	missing := "00000000-0000-4000-8000-000000000000"
	a := s.batch(t, key, `[
		{"operation": "patch", "resource": "debt_accounts", "id": "`+t1+`", "patch_directives": [{"op": "replace", "path": "/current_balance", "value": 5.5}], "if_match": "\"1\""},
		{"operation": "delete", "resource": "customers", "id": "`+c2+`"},
		{"operation": "create", "resource": "debt_accounts", "object": {"external_id": "n1", "balance": 12, "billing_type": ["settlement"], "customer_id": "`+c1+`"}},
		{"operation": "patch", "resource": "customers", "id": "`+missing+`", "patch_directives": [{"op": "replace", "path": "/name", "value": "X"}]},
		{"operation": "delete", "resource": "customers", "id": "`+c1+`"},
		{"operation": "create", "resource": "locations", "object": {"external_id": "l1"}},
		"not an operation",
		{"operation": "upsert", "resource": "customers"},
		{"operation": "patch", "resource": "debt_accounts", "id": "`+t1+`", "patch_directives": [{"op": "replace", "path": "/balance", "value": 1.234}]},
		{"operation": "patch", "resource": "debt_accounts", "id": "`+t1+`", "patch_directives": [], "if_match": "\"7\""}]`)
	want := []int{200, 204, 201, 404, 409, 422, 400, 422, 422, 412}
	if fmt.Sprint(a.statuses()) != fmt.Sprint(want) {
		t.Fatalf("statuses %v, want %v: %+v", a.statuses(), want, a.Results)
	}
	if a.SuccessCount != 3 || a.ErrorCount != 7 {
		t.Errorf("counts %d/%d, want 3/7", a.SuccessCount, a.ErrorCount)
	}
	for i, r := range a.Results {
		if (r.Outcome == "success") != (want[i] < 300) || (r.Outcome == "error" && r.ErrorMessage == "") {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	if r := a.Results[0]; r.ID != t1 || r.Object["current_balance"] != 5.5 || r.Object["version"] != 2.0 || r.Operation != "patch" || r.Resource != "debt_accounts" {
		t.Errorf("patch result: %+v", r)
	}
	if r := a.Results[2]; r.ID == "" || r.Object["external_id"] != "n1" || r.Object["customer_id"] != c1 {
		t.Errorf("create result: %+v", r)
	}
	for i, msg := range map[int]string{
		3: "The customer was not found.",
		5: "The external id has already been taken.",
		8: "The balance field",
	} {
		if !strings.HasPrefix(a.Results[i].ErrorMessage, msg) {
			t.Errorf("result %d: message %q, want %q", i, a.Results[i].ErrorMessage, msg)
		}
	}
	if a.Results[8].Errors["balance"] == nil || a.Results[4].Errors["debt_accounts"] == nil {
		t.Errorf("errors not by field: %+v %+v", a.Results[8], a.Results[4])
	}
	// What succeeded is written; what failed is not.
	if n := s.db.Count(t, `SELECT count(*) FROM customers WHERE external_id = 'c2'`); n != 0 {
		t.Errorf("c2 not deleted")
	}
	if n := s.db.Count(t, `SELECT count(*) FROM customers WHERE external_id = 'c1'`); n != 1 {
		t.Errorf("c1 deleted")
	}
	if n := s.db.Count(t, `SELECT count(*) FROM debt_accounts WHERE external_id = 't1' AND current_balance = 5.5 AND balance = 7 AND version = 2`); n != 1 {
		t.Errorf("t1 not patched once")
	}
}

func TestRecordsBatchLimits(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	ops := make([]string, 101)
	for i := range ops {
		ops[i] = fmt.Sprintf(`{"operation": "create", "resource": "locations", "object": {"external_id": "new-%d"}}`, i)
	}
	for name, c := range map[string]struct {
		body   string
		status int
		field  string
	}{
		"101 operations": {`{"operations": [` + strings.Join(ops, ",") + `]}`, 422, "operations"},
		"no operation":   {`{"operations": []}`, 422, "operations"},
		"no operations":  {`{}`, 422, "operations"},
		"not json":       {`{"operations": [`, 400, "body"},
		"unknown member": {`{"operations": [], "mode": "x"}`, 400, "body"},
	} {
		r := s.request(t, http.MethodPost, "/api/v1/batch", c.body, bearer(key), jsonBody)
		var e struct {
			Message string
			Errors  map[string][]string
		}
		_ = json.Unmarshal(r.body, &e)
		if r.status != c.status || e.Errors[c.field] == nil || e.Message == "" {
			t.Errorf("%s: %d %s, want %d naming %s", name, r.status, r.body, c.status, c.field)
		}
	}
	if n := s.db.Count(t, `SELECT count(*) FROM locations WHERE external_id LIKE 'new-%'`); n != 0 {
		t.Errorf("%d locations created by refused batches", n)
	}
	// 100 is allowed, and each runs.
	a := s.batch(t, key, `[`+strings.Join(ops[:100], ",")+`]`)
	if a.SuccessCount != 100 || s.db.Count(t, `SELECT count(*) FROM locations WHERE external_id LIKE 'new-%'`) != 100 {
		t.Errorf("100 creates: %d succeeded", a.SuccessCount)
	}
	if r := s.request(t, http.MethodPost, "/api/v1/batch", `{"operations": []}`, bearer(key), "Content-Type: text/plain"); r.status != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d", r.status)
	}
}

func TestRecordsBatchCreatesEachResource(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	l1, c1, c2 := s.recordID(t, "locations", "l1"), s.recordID(t, "customers", "c1"), s.recordID(t, "customers", "c2")
	p1 := s.recordID(t, "debt_accounts", "p1")
	a := s.batch(t, key, `[
		{"operation": "create", "resource": "locations", "object": {"external_id": "l9", "name": "South"}},
		{"operation": "create", "resource": "customers", "object": {"external_id": "c9", "name": "Cy", "email": "cy@example.com", "metadata": {"a": 1}, "location_external_id": "l1"}},
		{"operation": "create", "resource": "customers", "object": {"external_id": "c8", "name": "Di", "date_of_birth": "1990-02-03", "location_id": "`+l1+`"}},
		{"operation": "create", "resource": "debt_accounts", "object": {"external_id": "k9", "parent_external_id": "p1", "balance": "10.25", "billing_type": ["full-payment"], "customer_external_id": "c1"}},
		{"operation": "create", "resource": "debt_accounts", "object": {"external_id": "k8", "parent_id": "`+p1+`", "balance": 3, "current_balance": 1, "billing_type": ["settlement"], "customer_id": "`+c1+`"}},
		{"operation": "create", "resource": "customers", "object": {"external_id": "c7", "name": "Ed", "email": "not-an-email", "location_id": "`+l1+`"}},
		{"operation": "create", "resource": "customers", "object": {"external_id": "c6", "name": "Fa"}},
		{"operation": "create", "resource": "customers", "object": {"external_id": "c5", "name": "Ga", "location_external_id": "nowhere"}},
		{"operation": "create", "resource": "debt_accounts", "object": {"external_id": "k7", "parent_external_id": "p1", "balance": 1, "billing_type": ["settlement"], "customer_id": "`+c2+`"}},
		{"operation": "create", "resource": "debt_accounts", "object": {"external_id": "k6", "parent_external_id": "k1", "balance": 1, "billing_type": ["settlement"], "customer_id": "`+c1+`"}},
		{"operation": "create", "resource": "debt_accounts", "object": {"external_id": "k5", "balance": 1.001, "billing_type": ["settlement"], "customer_id": "`+c1+`"}},
		{"operation": "create", "resource": "locations", "object": {"external_id": "l8", "color": "red"}},
		{"operation": "create", "resource": "customers", "object": {"external_id": "c1", "name": "Again", "location_id": "`+l1+`"}},
		{"operation": "create", "resource": "debt_accounts", "object": {"external_id": "t1", "balance": 1, "billing_type": ["settlement"], "customer_id": "`+c1+`"}},
		{"operation": "create", "resource": "locations", "id": "`+l1+`", "object": {"external_id": "l7"}}]`)
	want := []int{201, 201, 201, 201, 201, 422, 422, 422, 422, 422, 422, 422, 422, 422, 422}
	if fmt.Sprint(a.statuses()) != fmt.Sprint(want) {
		t.Fatalf("statuses %v, want %v: %+v", a.statuses(), want, a.Results)
	}
	for i, field := range map[int]string{5: "email", 6: "location_id", 7: "location_external_id", 8: "parent_external_id",
		9: "parent_external_id", 10: "balance", 11: "color", 12: "external_id", 13: "external_id", 14: "id"} {
		if a.Results[i].Errors[field] == nil {
			t.Errorf("result %d does not name %s: %+v", i, field, a.Results[i])
		}
	}
	for _, i := range []int{12, 13} {
		if a.Results[i].ErrorMessage != "The external id has already been taken." {
			t.Errorf("result %d: %q", i, a.Results[i].ErrorMessage)
		}
	}
	// Each created record reads back as created, version 1, no bulk in its
	// provenance.
	for i, c := range []struct{ res, field, value string }{
		{"locations", "name", "South"}, {"customers", "email", "cy@example.com"}, {"customers", "date_of_birth", "1990-02-03"},
		{"debt_accounts", "parent_external_id", "p1"}, {"debt_accounts", "current_balance", "1.00"},
	} {
		r := s.request(t, http.MethodGet, "/api/v1/"+c.res+"/"+a.Results[i].ID, nil, bearer(key))
		d := data(t, r, http.StatusOK)
		if fmt.Sprint(d[c.field]) != c.value && !strings.Contains(string(r.body), `"`+c.field+`":`+c.value) {
			t.Errorf("%s %d: %s = %v, want %s", c.res, i, c.field, d[c.field], c.value)
		}
		if d["version"] != 1.0 || d["provenance"].(map[string]any)["bulk_id"] != nil {
			t.Errorf("%s %d: %s", c.res, i, r.body)
		}
	}
	if n := s.db.Count(t, `SELECT count(*) FROM customers WHERE external_id = 'c9' AND location_id = '`+l1+`'`); n != 1 {
		t.Error("c9 not at l1")
	}
	// Two creates of one external id in one batch: one wins, the other is taken.
	a = s.batch(t, key, `[{"operation": "create", "resource": "locations", "object": {"external_id": "twice"}},
		{"operation": "create", "resource": "locations", "object": {"external_id": "twice"}}]`)
	if a.SuccessCount != 1 || a.ErrorCount != 1 || s.db.Count(t, `SELECT count(*) FROM locations WHERE external_id = 'twice'`) != 1 {
		t.Errorf("twice: %+v", a)
	}
}

func TestRecordsBatchOfAnotherOrganizationIsNotFound(t *testing.T) {
	t.Parallel()
	s, _, _ := recordsService(t)
	_, other := s.newOrg(t, "Other", "ops@other.example")
	c1, t1, l1 := s.recordID(t, "customers", "c1"), s.recordID(t, "debt_accounts", "t1"), s.recordID(t, "locations", "l1")
	a := s.batch(t, other, `[
		{"operation": "patch", "resource": "debt_accounts", "id": "`+t1+`", "patch_directives": [{"op": "replace", "path": "/balance", "value": 1}]},
		{"operation": "delete", "resource": "customers", "id": "`+c1+`"},
		{"operation": "delete", "resource": "locations", "id": "`+l1+`"},
		{"operation": "create", "resource": "debt_accounts", "object": {"external_id": "x", "balance": 1, "billing_type": ["settlement"], "customer_id": "`+c1+`"}},
		{"operation": "create", "resource": "customers", "object": {"external_id": "c1", "name": "Mine", "location_external_id": "l1"}}]`)
	if want := "[404 404 404 422 422]"; fmt.Sprint(a.statuses()) != want {
		t.Fatalf("statuses %v, want %s: %+v", a.statuses(), want, a.Results)
	}
	if a.Results[3].Errors["customer_id"] == nil || a.Results[4].Errors["location_external_id"] == nil {
		t.Errorf("another organization's records are named: %+v", a.Results[3:])
	}
	if n := s.db.Count(t, `SELECT count(*) FROM debt_accounts WHERE external_id = 't1' AND version = 1`); n != 1 {
		t.Error("another organization changed t1")
	}
}

func TestRecordsBatchPatchesOfOneRecordLoseNoUpdate(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	t1 := s.recordID(t, "debt_accounts", "t1")
	data(t, s.request(t, http.MethodPatch, "/api/v1/debt_accounts/"+t1, `{"metadata": {}}`, bearer(key), mergePatch), http.StatusOK) // version 2

	// Without if_match, each patch applies to the version it read (read
	// again when another changed it) or, after too many such races, is 412:
	// what succeeded is all there, nothing else.
	const n = 40
	ops := make([]string, n)
	for i := range ops {
		ops[i] = fmt.Sprintf(`{"operation": "patch", "resource": "debt_accounts", "id": "%s", "patch_directives": [{"op": "add", "path": "/metadata/k%d", "value": %d}]}`, t1, i, i)
	}
	a := s.batch(t, key, "["+strings.Join(ops, ",")+"]")
	applied := map[string]any{}
	for i, r := range a.Results {
		switch r.Status {
		case http.StatusOK:
			applied[fmt.Sprintf("k%d", i)] = float64(i)
		case http.StatusPreconditionFailed:
		default:
			t.Errorf("patch %d: %d %s", i, r.Status, r.ErrorMessage)
		}
	}
	if len(applied) < n/2 {
		t.Errorf("only %d of %d patches applied", len(applied), n)
	}
	d := data(t, s.request(t, http.MethodGet, "/api/v1/debt_accounts/"+t1, nil, bearer(key)), http.StatusOK)
	version := int(d["version"].(float64))
	if m := d["metadata"].(map[string]any); fmt.Sprint(m) != fmt.Sprint(applied) || version != 2+len(applied) {
		t.Errorf("after %d patches applied: version %d, metadata %v", len(applied), version, m)
	}

	// With if_match of one version, exactly one applies; the others are 412.
	// The values differ from the stored one: a patch that changes nothing
	// is 200 without a write, whichever version it read.
	etag := fmt.Sprintf(`\"%d\"`, version)
	for i := range ops {
		ops[i] = fmt.Sprintf(`{"operation": "patch", "resource": "debt_accounts", "id": "%s", "if_match": "%s", "patch_directives": [{"op": "replace", "path": "/current_balance", "value": %d}]}`, t1, etag, 1000+i)
	}
	a = s.batch(t, key, "["+strings.Join(ops, ",")+"]")
	won := -1
	for i, r := range a.Results {
		switch {
		case r.Status == http.StatusOK:
			won = i
		case r.Status != http.StatusPreconditionFailed || !strings.Contains(r.ErrorMessage, fmt.Sprintf("current version is %d", version+1)):
			t.Errorf("result %d: %+v", i, r)
		}
	}
	if a.SuccessCount != 1 || won < 0 {
		t.Fatalf("%d patches of one version succeeded", a.SuccessCount)
	}
	if n := s.db.Count(t, fmt.Sprintf(`SELECT count(*) FROM debt_accounts WHERE id = '%s' AND current_balance = %d AND version = %d`, t1, 1000+won, version+1)); n != 1 {
		t.Errorf("the winning patch is not what is stored")
	}
}

// TestRecordsWritesDuringOverlappingImports creates records, moves external
// ids onto ids the imports bring and deletes records, through the records
// API, while overlapping bulks of the same ids import on two worker
// processes: the writes take the imports' lock, so no import's COPY meets a
// record it did not plan for.
func TestRecordsWritesDuringOverlappingImports(t *testing.T) {
	t.Parallel()
	s := newService(t, "WORKER_CONCURRENCY=4", "RATE_LIMIT=0")
	s.start("api")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	base, err := json.Marshal(bulkgen.Rows(bulkgen.Options{Rows: 40, Accounts: 2, Prefix: "base-", Locations: 2}))
	if err != nil {
		t.Fatal(err)
	}
	s.spawn("worker")
	s.spawn("worker")
	s.waitCompletedWithin(t, key, s.submit(t, key, base), time.Minute)
	custIDs := map[int]string{}
	acctIDs := map[int]string{}
	for i := range 40 {
		custIDs[i] = s.recordID(t, "customers", fmt.Sprintf("base-cust-0-%d", i))
		acctIDs[i] = s.recordID(t, "debt_accounts", fmt.Sprintf("base-acct-0-%d-1", i))
	}
	loc := s.recordID(t, "locations", "base-loc-0")

	const bulks, own, shared = 6, 20, 40
	ids := make([]string, bulks)
	var wg sync.WaitGroup
	for i := range bulks {
		body := overlappingBulk(t, i, own, shared, bulkgen.Options{Accounts: 2, Locations: 3})
		wg.Go(func() { ids[i] = s.submit(t, key, body) })
	}
	// Meanwhile, in batches and single requests: customers and accounts
	// created under the shared ids, base records renamed to shared ids,
	// base accounts deleted.
	var mu sync.Mutex
	var answers []batchAnswer
	for w := range 4 {
		wg.Go(func() {
			for j := w * 10; j < w*10+10; j++ {
				var ops []string
				switch j % 4 {
				case 0:
					ops = append(ops, fmt.Sprintf(`{"operation": "create", "resource": "customers", "object": {"external_id": "shared-cust-0-%d", "name": "API", "location_id": "%s"}}`, j, loc),
						fmt.Sprintf(`{"operation": "create", "resource": "debt_accounts", "object": {"external_id": "shared-acct-0-%d-0", "balance": 1, "billing_type": ["settlement"], "customer_id": "%s"}}`, j, custIDs[j]),
						fmt.Sprintf(`{"operation": "create", "resource": "locations", "object": {"external_id": "shared-loc-%d"}}`, j%3))
				case 1:
					ops = append(ops, fmt.Sprintf(`{"operation": "patch", "resource": "customers", "id": "%s", "patch_directives": [{"op": "replace", "path": "/external_id", "value": "shared-cust-0-%d"}]}`, custIDs[j], j))
				case 2:
					ops = append(ops, fmt.Sprintf(`{"operation": "patch", "resource": "debt_accounts", "id": "%s", "patch_directives": [{"op": "replace", "path": "/external_id", "value": "shared-acct-0-%d-1"}]}`, acctIDs[j], j))
				case 3:
					ops = append(ops, fmt.Sprintf(`{"operation": "delete", "resource": "debt_accounts", "id": "%s"}`, acctIDs[j]))
				}
				// Not s.batch: no t.Fatal off the test's goroutine.
				r := s.request(t, http.MethodPost, "/api/v1/batch", `{"operations": [`+strings.Join(ops, ",")+`]}`, bearer(key), jsonBody)
				var a batchAnswer
				if err := json.Unmarshal(r.body, &a); r.status != http.StatusOK || err != nil {
					t.Errorf("batch: %d %s", r.status, r.body)
				}
				mu.Lock()
				answers = append(answers, a)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, a := range answers {
		for _, r := range a.Results {
			// Taken is the only error a race with an import may give.
			if r.Outcome != "success" && r.ErrorMessage != "The external id has already been taken." {
				t.Errorf("records write: %+v", r)
			}
		}
	}
	for _, id := range ids {
		s.waitCompletedWithin(t, key, id, time.Minute)
	}
	for _, table := range []string{"locations", "customers", "debt_accounts"} {
		if n := s.db.Count(t, `SELECT count(*) - count(DISTINCT external_id) FROM `+table); n != 0 {
			t.Errorf("%s: %d external ids written more than once", table, n)
		}
	}
	q, err := asynq.NewInspector(s.redisOpt).GetQueueInfo(tasks.QueueImports)
	if err != nil {
		t.Fatal(err)
	}
	if q.FailedTotal != 0 || q.Retry != 0 || q.Archived != 0 || q.ProcessedTotal != bulks+1 {
		t.Errorf("imports queue: %d processed, %d failed, %d to retry, %d archived; want %d processed and no failure",
			q.ProcessedTotal, q.FailedTotal, q.Retry, q.Archived, bulks+1)
	}
}

// Without if_match a patch applies to the current version, however many
// patches of the same record race with it: a batch of 100 patches of one
// customer, run several at once, applies all 100, each a version; none is a
// 412 naming an If-Match the client never sent.
func TestRecordsBatchPatchesOfOneRecordWithoutIfMatchAllApply(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	c1 := s.recordID(t, "customers", "c1")
	const n = 100
	var ops []string
	for i := range n {
		ops = append(ops, fmt.Sprintf(`{"operation":"patch","resource":"customers","id":%q,`+
			`"patch_directives":[{"op":"replace","path":"/name","value":"Name %d"}]}`, c1, i))
	}
	r := s.request(t, http.MethodPost, "/api/v1/batch", `{"operations":[`+strings.Join(ops, ",")+`]}`, bearer(key), jsonBody)
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

// A batch body is one JSON object: anything after it (a second object
// pasted by mistake, a truncated concatenation, garbage) makes it not a
// batch, a 400 before any of its operations runs.
func TestRecordsBatchWithDataAfterTheObjectIsRefusedWhole(t *testing.T) {
	t.Parallel()
	s, key, _ := recordsService(t)
	c2 := s.recordID(t, "customers", "c2")
	for i, tail := range []string{` x`, ` {"operations":[]}`, `]`} {
		body := `{"operations":[{"operation":"delete","resource":"customers","id":"` + c2 + `"}]}` + tail
		r := s.request(t, http.MethodPost, "/api/v1/batch", body, bearer(key), jsonBody)
		if r.status != http.StatusBadRequest {
			t.Errorf("body %d, ending %q: %d %.300s, want 400", i, tail, r.status, r.body)
		}
		if n := s.record(t, `SELECT count(*)::text FROM customers WHERE id = $1`, c2); n != "1" {
			t.Fatalf("body %d, ending %q: the customer was deleted", i, tail)
		}
	}
}

// A batch operation that waits for the organization's import lock (an
// import of the organization is running) past REQUEST_TIMEOUT answers what
// the single request would: 503, "try again shortly", so that the client
// retries it; and its failure is in bulkd's own JSON log under the
// request's id, where an operator looks it up.
func TestRecordsBatchOperationWaitingForAnImportIs503(t *testing.T) {
	t.Parallel()
	s := startService(t, "REQUEST_TIMEOUT=1s")
	orgID, key := s.newOrg(t, "Acme", "ops@acme.example")
	// What every import of the organization holds while it writes
	// (store.importLockClass).
	lock := `SELECT pg_advisory_lock(7240002, hashtext($1))`
	if _, err := s.db.Conn.Exec(t.Context(), lock, orgID); err != nil {
		t.Fatal(err)
	}
	r := s.request(t, http.MethodPost, "/api/v1/batch",
		`{"operations":[{"operation":"create","resource":"locations","object":{"external_id":"l9"}}]}`, bearer(key), jsonBody)
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
