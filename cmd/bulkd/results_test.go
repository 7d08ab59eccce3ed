package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// GET /results answers every row in order with each object's action and id,
// the totals, and pages; a failed row carries the report /errors gives.
func TestResultsOrderActionsTotalsAndPages(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	first := s.submit(t, key, testenv.SeedExample(t))
	s.waitCompleted(t, key, first)

	account := func(id, parent string) string {
		a := `{"external_id":"` + id + `","balance":1,"billing_type":["full-payment"]`
		if parent != "" {
			a += `,"parent_external_id":"` + parent + `"`
		}
		return a + "}"
	}
	row := func(customer, location string, accounts ...string) string {
		return `{"customer":{"external_id":"` + customer + `","name":"N"},"location":{"external_id":"` + location +
			`"},"debt_accounts":[` + strings.Join(accounts, ",") + `]}`
	}
	// The seed's customer (cust-1 stands for its external id) and location
	// exist: row 1 finds both; its accounts:
	// one new, one taken by the seed ("awfert"). Row 2 is all new; row 3 has an
	// invalid customer, so its accounts cascade; rows 4..7 pad the pages.
	rows := []string{
		row("cust-1", "rerum", account("new-1", ""), account("awfert", "")),
		row("c2", "l2", account("p2", ""), account("k2", "p2")),
		`{"customer":{"external_id":"c3"},"location":{"external_id":"l2"},"debt_accounts":[` + account("a3", "") + `]}`,
	}
	for i := 4; i <= 7; i++ {
		rows = append(rows, row(fmt.Sprintf("c%d", i), "l2"))
	}
	var seed []struct {
		Customer struct {
			ExternalID string `json:"external_id"`
		} `json:"customer"`
	}
	if err := json.Unmarshal(testenv.SeedExample(t), &seed); err != nil {
		t.Fatal(err)
	}
	rows[0] = strings.Replace(rows[0], "cust-1", seed[0].Customer.ExternalID, 1)

	id := s.submit(t, key, []byte("["+strings.Join(rows, ",")+"]"))
	s.waitCompleted(t, key, id)

	page1 := s.results(t, key, "/api/v1/bulk/"+id+"/results?per_page=3")
	if page1.Status != "completed" || page1.TotalRows != 7 || page1.TotalCreated != 5 || page1.TotalErrors != 2 ||
		page1.TotalUpdated != 0 || page1.TotalUnchanged != 0 {
		t.Errorf("totals: %+v", page1)
	}
	if len(page1.Data) != 3 || page1.Links.Next == nil || *page1.Links.Next != "/api/v1/bulk/"+id+"/results?page=2&per_page=3" {
		t.Fatalf("page 1: %d rows, next %v", len(page1.Data), page1.Links.Next)
	}
	type obj struct {
		ExternalID string
		HasID      bool
		Action     bulk.Action
	}
	summary := func(o *bulk.ResultObject) obj {
		ext := ""
		if o.ExternalID != nil {
			ext = *o.ExternalID
		}
		return obj{ext, o.ID != nil, o.Action}
	}
	r1, r2, r3 := page1.Data[0], page1.Data[1], page1.Data[2]
	if r1.Row != 1 || r1.Status != bulk.RowFailed || summary(r1.Customer) != (obj{seed[0].Customer.ExternalID, true, bulk.ActionFound}) ||
		summary(r1.Location) != (obj{"rerum", true, bulk.ActionFound}) {
		t.Errorf("row 1: %+v %+v %+v", r1, r1.Customer, r1.Location)
	}
	if got := []obj{summary(&r1.DebtAccounts[0]), summary(&r1.DebtAccounts[1])}; !cmp.Equal(got, []obj{{"new-1", true, bulk.ActionCreated}, {"awfert", false, bulk.ActionFailed}}) {
		t.Errorf("row 1 accounts: %+v", got)
	}
	if r1.Errors == nil || len(r1.Errors.DebtAccounts) != 1 || r1.Errors.DebtAccounts[0].Messages["external_id"][0] != bulk.MsgTaken {
		t.Errorf("row 1 errors: %+v", r1.Errors)
	}
	if r2.Status != bulk.RowCreated || r2.Errors != nil || summary(r2.Customer).Action != bulk.ActionCreated ||
		summary(&r2.DebtAccounts[1]) != (obj{"k2", true, bulk.ActionCreated}) {
		t.Errorf("row 2: %+v", r2)
	}
	if r3.Status != bulk.RowFailed || r3.Customer.Action != bulk.ActionFailed || r3.DebtAccounts[0].Action != bulk.ActionFailed ||
		r3.Location.Action != bulk.ActionFound {
		t.Errorf("row 3: %+v %+v %+v", r3, r3.Customer, r3.DebtAccounts)
	}
	// The ids are the stored records'.
	if n := s.db.Count(t, `SELECT count(*) FROM debt_accounts WHERE id = $1 AND external_id = 'k2'`, r2.DebtAccounts[1].ID.String()); n != 1 {
		t.Errorf("row 2's child id is not the stored record's")
	}
	// /errors is the view of the failed rows of the same results.
	var report struct {
		Data []struct {
			ID     int            `json:"id"`
			Errors bulk.RowErrors `json:"errors"`
		} `json:"data"`
	}
	if err := json.Unmarshal(s.request(t, http.MethodGet, "/api/v1/bulk/"+id+"/errors", nil, bearer(key)).body, &report); err != nil || len(report.Data) != 2 {
		t.Fatalf("errors: %v %+v", err, report)
	}
	if report.Data[0].ID != 1 || report.Data[1].ID != 3 || !cmp.Equal(report.Data[0].Errors, *r1.Errors) || !cmp.Equal(report.Data[1].Errors, *r3.Errors) {
		t.Errorf("errors report is not the results' view: %+v", report.Data)
	}

	var all []bulk.ResultRow
	for next := "/api/v1/bulk/" + id + "/results?per_page=3"; ; {
		p := s.results(t, key, next)
		all = append(all, p.Data...)
		if p.Links.Next == nil {
			break
		}
		next = *p.Links.Next
	}
	for i, r := range all {
		if r.Row != i+1 {
			t.Errorf("row %d answered at position %d", r.Row, i+1)
		}
	}
	if len(all) != 7 {
		t.Errorf("%d rows over all pages, want 7", len(all))
	}
	if p := s.results(t, key, "/api/v1/bulk/"+id+"/results?page=9"); len(p.Data) != 0 || p.Links.Next != nil || p.TotalRows != 7 {
		t.Errorf("a page past the end: %+v", p)
	}
	for _, q := range []string{"page=0", "page=x", "per_page=1001", "per_page=0", "page=1&page=2", "color=red", "query;=1"} {
		r := s.request(t, http.MethodGet, "/api/v1/bulk/"+id+"/results?"+q, nil, bearer(key))
		name, _, _ := strings.Cut(q, "=")
		name = strings.TrimSuffix(name, ";")
		if r.status != http.StatusBadRequest || r.json(t)["errors"].(map[string]any)[name] == nil {
			t.Errorf("?%s: %d %s", q, r.status, r.body)
		}
	}
}

// A bulk not imported yet answers no rows and its status, so a client can
// tell "nothing yet" from "nothing failed".
func TestResultsOfAPendingBulk(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api") // no worker: the bulk stays pending
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	id := s.submit(t, key, testenv.SeedExample(t))
	p := s.results(t, key, "/api/v1/bulk/"+id+"/results")
	if p.Status != "pending" || len(p.Data) != 0 || p.TotalRows != 1 || p.Links.Next != nil {
		t.Errorf("results of a pending bulk: %+v", p)
	}
}

// The errors report is read and written a page at a time: a report of more
// rows than a page is whole, in order, and valid JSON.
func TestErrorsReportLongerThanAPage(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	const n = 2*bulksvc.ErrorsPageSize + 50
	rows := make([]string, n)
	for i := range rows {
		rows[i] = `{"customer":{"external_id":"c` + strconv.Itoa(i) + `"},"location":{"external_id":"l"}}` // no name
	}
	id := s.submit(t, key, []byte("["+strings.Join(rows, ",")+"]"))
	s.waitCompleted(t, key, id)
	var report struct {
		Status string `json:"status"`
		Data   []struct {
			ID int `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(s.errorsReport(t, key, id)), &report); err != nil {
		t.Fatal(err)
	}
	if report.Status != "completed" || len(report.Data) != n {
		t.Fatalf("status %q, %d rows, want %d", report.Status, len(report.Data), n)
	}
	for i, r := range report.Data {
		if r.ID != i+1 {
			t.Fatalf("row %d at position %d", r.ID, i+1)
		}
	}
}

// The errors endpoint answers whatever was stored: a row whose stored report
// or payload cannot be sent (nested beyond what encoders accept, bytes that
// are not JSON) is answered as unreadable, and the other rows as they are.
func TestErrorsEndpointReadsWhateverWasStored(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	id := s.submit(t, key, []byte(`[{},{},{}]`))
	s.waitCompleted(t, key, id)
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
	r := s.request(t, http.MethodGet, "/api/v1/bulk/"+id+"/errors", nil, bearer(key))
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
	res := s.results(t, key, "/api/v1/bulk/"+id+"/results")
	if len(res.Data) != 3 || res.Data[0].Row != 1 || res.Data[0].Errors == nil || res.Data[2].Row != 3 {
		t.Errorf("results with an unreadable row: %+v", res.Data)
	}
}

// The report echoes each failed object. Re-encoded with HTML escaping, every
// '<', '>' and '&' a client sent became six bytes, in /errors and again in
// /results: a string of '<' made the stored report and the answers about 7
// times the body (a 16 MiB body gave a 118 MiB /errors and, in strict mode
// with such keys, 253 MiB). The report must stay about the size of what was
// sent.
func TestReportIsNotInflatedByEscaping(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	pad := strings.Repeat("<&>", 30_000)
	// The customer fails (a metadata value that is not a scalar); the
	// unknown field x is echoed with it.
	body := []byte(`[{"customer":{"external_id":"c1","name":"N","metadata":{"k":[]},"x":"` + pad +
		`"},"location":{"external_id":"l1"}}]`)
	id := s.submitWith(t, key, "", body)
	s.waitCompleted(t, key, id)
	errs := s.request(t, http.MethodGet, "/api/v1/bulk/"+id+"/errors", nil, bearer(key))
	results := s.request(t, http.MethodGet, "/api/v1/bulk/"+id+"/results", nil, bearer(key))
	if errs.status != http.StatusOK || results.status != http.StatusOK {
		t.Fatalf("errors %d, results %d", errs.status, results.status)
	}
	// /errors holds the payload and the object's echo; /results the echo.
	if len(errs.body) > 3*len(body) {
		t.Errorf("/errors is %d bytes for a %d-byte body (%.1f times)", len(errs.body), len(body), float64(len(errs.body))/float64(len(body)))
	}
	if len(results.body) > 2*len(body) {
		t.Errorf("/results is %d bytes for a %d-byte body (%.1f times)", len(results.body), len(body), float64(len(results.body))/float64(len(body)))
	}
	if !bytes.Contains(errs.body, []byte(`"data":{"external_id":"c1","name":"N","metadata":{"k":[]},"x":"<&><&>`)) {
		t.Errorf("the failed object is not echoed as submitted: %.200s", errs.body[bytes.Index(errs.body, []byte(`"errors":`)):])
	}
}
