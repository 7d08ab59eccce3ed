package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bulkd/bulkd/pkg/testenv"
)

// queryEndpoint is an endpoint and the query parameters it takes.
type queryEndpoint struct {
	method, path string
	params       []string
}

// One rule for every endpoint's query: a parameter it does not take is a
// 400 naming it whose message lists those it takes, and a parameter given
// with an empty value is a 400 naming it, never read as its default. The
// probes take no parameter either, on GET and on HEAD, and answer 200
// without one.
func TestQueryParametersFollowOneRule(t *testing.T) {
	t.Parallel()
	s := startService(t, "RATE_LIMIT=0")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	bulkID := s.submit(t, key, testenv.SeedExample(t))
	s.waitCompleted(t, key, bulkID)
	customer := s.recordID(t, "customers", "70b440dc-5283-3bd5-bb93-8dc599f2288f")
	location := s.recordID(t, "locations", "rerum") // its customer depends on it

	endpoints := []queryEndpoint{
		{http.MethodPost, "/api/v1/bulk", []string{"mode", "atomic", "validate_only", "strict", "wait"}},
		{http.MethodGet, "/api/v1/bulk", []string{"status", "created_after", "created_before", "limit", "cursor"}},
		{http.MethodGet, "/api/v1/bulk/" + bulkID, []string{"wait"}},
		{http.MethodGet, "/api/v1/bulk/" + bulkID + "/errors", nil},
		{http.MethodGet, "/api/v1/bulk/" + bulkID + "/results", []string{"page", "per_page"}},
		{http.MethodPost, "/api/v1/bulk/" + bulkID + "/cancel", nil},
		{http.MethodGet, "/api/v1/locations", []string{"external_id", "limit", "cursor"}},
		{http.MethodGet, "/api/v1/customers", []string{"external_id", "email", "location_id", "bulk_id", "limit", "cursor"}},
		{http.MethodGet, "/api/v1/debt_accounts", []string{"customer_id", "external_id", "parent_id", "bulk_id", "limit", "cursor"}},
		{http.MethodGet, "/api/v1/customers/" + customer + "/debt_accounts", []string{"external_id", "parent_id", "bulk_id", "limit", "cursor"}},
		{http.MethodGet, "/api/v1/customers/" + customer, nil},
		{http.MethodDelete, "/api/v1/locations/" + location, []string{"cascade"}},
		{http.MethodGet, "/api/v1/webhook", nil},
		{http.MethodGet, "/healthz", nil},
		{http.MethodGet, "/readyz", nil},
	}
	for _, e := range endpoints {
		t.Run(e.method+" "+e.path, func(t *testing.T) {
			r := s.request(t, e.method, e.path+"?bogus=1", nil, bearer(key), jsonBody)
			assertError(t, r, http.StatusBadRequest, "bogus")
			want := "The bogus parameter is unknown; this endpoint takes none."
			switch n := len(e.params); {
			case n == 1:
				want = "The bogus parameter is unknown; the parameters are " + e.params[0] + "."
			case n > 1:
				want = "The bogus parameter is unknown; the parameters are " + strings.Join(e.params[:n-1], ", ") + " and " + e.params[n-1] + "."
			}
			if got := r.json(t)["message"]; got != want {
				t.Errorf("message %q, want %q", got, want)
			}
			if r := s.request(t, e.method, e.path+"?=1", nil, bearer(key), jsonBody); r.status != http.StatusBadRequest {
				t.Errorf("?=1, a value without a name: %d %s", r.status, r.body)
			} else {
				assertError(t, r, http.StatusBadRequest, "query")
			}
			for _, p := range e.params {
				for _, query := range []string{p + "=", p} { // ?cascade= and ?cascade
					r := s.request(t, e.method, e.path+"?"+query, nil, bearer(key), jsonBody)
					assertError(t, r, http.StatusBadRequest, p)
					if msg := r.json(t)["message"]; msg != "The "+p+" parameter must have a value; leave it out for its default." {
						t.Errorf("?%s: message %q", query, msg)
					}
				}
			}
		})
	}

	// Load balancers probe with HEAD and GET, without a query.
	for _, path := range []string{"/healthz", "/readyz"} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			if r := s.request(t, method, path, nil); r.status != http.StatusOK {
				t.Errorf("%s %s: %d %s", method, path, r.status, r.body)
			}
			if r := s.request(t, method, path+"?probe=1", nil); r.status != http.StatusBadRequest {
				t.Errorf("%s %s?probe=1: %d, want 400", method, path, r.status)
			}
		}
	}
	if n := s.db.Count(t, `SELECT count(*) FROM bulks`); n != 1 {
		t.Errorf("%d bulks stored, want the first one only", n)
	}
	if n := s.db.Count(t, `SELECT count(*) FROM locations`); n != 1 {
		t.Errorf("the location was deleted")
	}
}
