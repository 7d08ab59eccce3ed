package main

import (
	"encoding/csv"
	"net/http"
	"strings"
	"testing"

	"github.com/bulkd/bulkd/pkg/testenv"
)

// TestErrorsAndResultsAsCSV: with Accept: text/csv, /errors answers a line
// per message (row, section, index, external id, field, message) and
// /results a line per object, as files to open; JSON stays the default.
func TestErrorsAndResultsAsCSV(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	s.waitCompleted(t, key, s.submit(t, key, testenv.SeedExample(t)))
	id := s.submit(t, key, seedTwice(t)) // 12 accounts taken
	s.waitCompleted(t, key, id)

	csvOf := func(path, accept string) (string, [][]string) {
		t.Helper()
		r := s.request(t, http.MethodGet, path, nil, bearer(key), "Accept: "+accept)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s (Accept %s): %d %s", path, accept, r.status, r.body)
		}
		ct := r.header.Get("Content-Type")
		if !strings.HasPrefix(ct, "text/csv") {
			return ct, nil
		}
		records, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
		if err != nil {
			t.Fatalf("GET %s: not CSV: %v\n%s", path, err, r.body)
		}
		return ct, records
	}

	ct, lines := csvOf("/api/v1/bulk/"+id+"/errors", "text/csv")
	if ct != "text/csv; charset=utf-8" || len(lines) != 13 {
		t.Fatalf("errors as CSV: %s, %d lines", ct, len(lines))
	}
	if got := strings.Join(lines[0], ","); got != "row,section,index,external_id,field,message" {
		t.Errorf("errors CSV header: %s", got)
	}
	if got := strings.Join(lines[1], ","); got != "1,parent_debt_accounts,0,parent-external-id,external_id,The external id has already been taken." {
		t.Errorf("errors CSV first line: %s", got)
	}
	if got := strings.Join(lines[12], ","); !strings.HasPrefix(got, "2,debt_accounts,4,") {
		t.Errorf("errors CSV last line: %s", got)
	}

	ct, lines = csvOf("/api/v1/bulk/"+id+"/results", "text/csv, application/json;q=0.5")
	// Two rows of a customer, a location, a parent and five accounts each.
	if ct != "text/csv; charset=utf-8" || len(lines) != 1+2*8 {
		t.Fatalf("results as CSV: %s, %d lines: %v", ct, len(lines), lines)
	}
	if got := strings.Join(lines[0], ","); got != "row,row_status,section,index,external_id,action,id" {
		t.Errorf("results CSV header: %s", got)
	}
	if l := lines[1]; l[0] != "1" || l[1] != "failed" || l[2] != "customer" || l[5] != "found" || len(l[6]) != 36 {
		t.Errorf("results CSV first line: %v", l)
	}
	if _, paged := csvOf("/api/v1/bulk/"+id+"/results?per_page=1&page=2", "text/csv"); len(paged) != 1+8 || paged[1][0] != "2" {
		t.Errorf("results CSV, second page of one row: %v", paged)
	}

	// HEAD answers what GET would, CSV headers included, without a body.
	for _, path := range []string{"/api/v1/bulk/" + id + "/errors", "/api/v1/bulk/" + id + "/results"} {
		r := s.request(t, http.MethodHead, path, nil, bearer(key), "Accept: text/csv")
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "text/csv; charset=utf-8" ||
			!strings.HasPrefix(r.header.Get("Content-Disposition"), "attachment; filename=") || len(r.body) != 0 {
			t.Errorf("HEAD %s (Accept text/csv): %d %v %q", path, r.status, r.header, r.body)
		}
	}

	for _, accept := range []string{"", "application/json", "*/*", "text/csv;q=0.1, application/json", "text/html"} {
		if ct, _ := csvOf("/api/v1/bulk/"+id+"/errors", accept); ct != "application/json" {
			t.Errorf("Accept %q: %s, want JSON", accept, ct)
		}
	}
}
