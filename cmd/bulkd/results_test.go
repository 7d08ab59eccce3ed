package main

import (
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

func (s *service) results(key, path string) bulksvc.ResultsPage {
	s.t.Helper()
	r := s.do(http.MethodGet, path, key, nil)
	if r.status != http.StatusOK {
		s.t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	var p bulksvc.ResultsPage
	if err := json.Unmarshal(r.body, &p); err != nil {
		s.t.Fatalf("GET %s: %v: %s", path, err, r.body)
	}
	return p
}

// GET /results answers every row in order with each object's action and id,
// the totals, and pages; a failed row carries the report /errors gives.
func TestResultsOrderActionsTotalsAndPages(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg("Acme", "ops@acme.example")
	first := s.submit(key, testenv.SeedExample(t))
	s.waitCompleted(key, first)

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

	id := s.submit(key, []byte("["+strings.Join(rows, ",")+"]"))
	s.waitCompleted(key, id)

	page1 := s.results(key, "/api/v1/bulk/"+id+"/results?per_page=3")
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
	if err := json.Unmarshal(s.do(http.MethodGet, "/api/v1/bulk/"+id+"/errors", key, nil).body, &report); err != nil || len(report.Data) != 2 {
		t.Fatalf("errors: %v %+v", err, report)
	}
	if report.Data[0].ID != 1 || report.Data[1].ID != 3 || !cmp.Equal(report.Data[0].Errors, *r1.Errors) || !cmp.Equal(report.Data[1].Errors, *r3.Errors) {
		t.Errorf("errors report is not the results' view: %+v", report.Data)
	}

	var all []bulk.ResultRow
	for next := "/api/v1/bulk/" + id + "/results?per_page=3"; ; {
		p := s.results(key, next)
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
	if p := s.results(key, "/api/v1/bulk/"+id+"/results?page=9"); len(p.Data) != 0 || p.Links.Next != nil || p.TotalRows != 7 {
		t.Errorf("a page past the end: %+v", p)
	}
	for _, q := range []string{"page=0", "page=x", "per_page=1001", "per_page=0", "page=1&page=2", "color=red", "query;=1"} {
		r := s.do(http.MethodGet, "/api/v1/bulk/"+id+"/results?"+q, key, nil)
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
	_, key := s.newOrg("Acme", "ops@acme.example")
	id := s.submit(key, testenv.SeedExample(t))
	p := s.results(key, "/api/v1/bulk/"+id+"/results")
	if p.Status != "pending" || len(p.Data) != 0 || p.TotalRows != 1 || p.Links.Next != nil {
		t.Errorf("results of a pending bulk: %+v", p)
	}
}

// The errors report is read and written a page at a time: a report of more
// rows than a page is whole, in order, and valid JSON.
func TestErrorsReportLongerThanAPage(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg("Acme", "ops@acme.example")
	const n = 2*bulksvc.ErrorsPageSize + 50
	rows := make([]string, n)
	for i := range rows {
		rows[i] = `{"customer":{"external_id":"c` + strconv.Itoa(i) + `"},"location":{"external_id":"l"}}` // no name
	}
	id := s.submit(key, []byte("["+strings.Join(rows, ",")+"]"))
	s.waitCompleted(key, id)
	var report struct {
		Status string `json:"status"`
		Data   []struct {
			ID int `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(s.errorsReport(key, id)), &report); err != nil {
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
