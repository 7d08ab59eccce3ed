package main

import (
	"net/http"
	"testing"

	"github.com/google/uuid"
)

// A 404 names what the route looks up: the bulk, the location, the
// customer, the debt account (or the customer whose accounts are listed),
// whether the id is unknown, another organization's or no id at all; and
// each operation of a batch answers as its single request would.
func TestNotFoundNamesTheResourceOfTheRoute(t *testing.T) {
	t.Parallel()
	s, key, bulkID := recordsService(t)
	_, otherKey := s.newOrg(t, "Other", "ops@other.example")
	c1, l1, k1 := s.recordID(t, "customers", "c1"), s.recordID(t, "locations", "l1"), s.recordID(t, "debt_accounts", "k1")
	unknown := uuid.NewString()

	for _, tc := range []struct {
		method, path, msg string
		header            []string
		body              string
	}{
		{http.MethodGet, "/api/v1/bulk/" + unknown, "The bulk was not found.", nil, ""},
		{http.MethodGet, "/api/v1/bulk/not-an-id/errors", "The bulk was not found.", nil, ""},
		{http.MethodGet, "/api/v1/bulk/" + unknown + "/results", "The bulk was not found.", nil, ""},
		{http.MethodPost, "/api/v1/bulk/" + unknown + "/cancel", "The bulk was not found.", nil, ""},
		{http.MethodGet, "/api/v1/locations/" + unknown, "The location was not found.", nil, ""},
		{http.MethodDelete, "/api/v1/locations/not-an-id", "The location was not found.", nil, ""},
		{http.MethodGet, "/api/v1/customers/" + unknown, "The customer was not found.", nil, ""},
		{http.MethodPatch, "/api/v1/customers/" + unknown, "The customer was not found.", []string{mergePatch}, `{"name":"X"}`},
		{http.MethodGet, "/api/v1/customers/" + unknown + "/debt_accounts", "The customer was not found.", nil, ""},
		{http.MethodGet, "/api/v1/debt_accounts/" + unknown, "The debt account was not found.", nil, ""},
		{http.MethodDelete, "/api/v1/debt_accounts/" + unknown, "The debt account was not found.", nil, ""},
	} {
		r := s.request(t, tc.method, tc.path, tc.body, append(tc.header, bearer(key))...)
		assertError(t, r, http.StatusNotFound, "id")
		if got := errorFields(t, r)["id"]; len(got) != 1 || got[0] != tc.msg {
			t.Errorf("%s %s: %s, want %q", tc.method, tc.path, r.body, tc.msg)
		}
	}

	// Another organization's records and bulks are not found, each named.
	for path, msg := range map[string]string{
		"/api/v1/bulk/" + bulkID:                     "The bulk was not found.",
		"/api/v1/locations/" + l1:                    "The location was not found.",
		"/api/v1/customers/" + c1:                    "The customer was not found.",
		"/api/v1/customers/" + c1 + "/debt_accounts": "The customer was not found.",
		"/api/v1/debt_accounts/" + k1:                "The debt account was not found.",
	} {
		r := s.request(t, http.MethodGet, path, nil, bearer(otherKey))
		if got := errorFields(t, r)["id"]; r.status != http.StatusNotFound || len(got) != 1 || got[0] != msg {
			t.Errorf("another organization's GET %s: %d %s, want 404 %q", path, r.status, r.body, msg)
		}
	}

	// A batch's operations answer as their single requests.
	a := s.batch(t, otherKey, `[
		{"operation": "patch", "resource": "customers", "id": "`+c1+`", "patch_directives": [{"op": "replace", "path": "/name", "value": "X"}]},
		{"operation": "delete", "resource": "locations", "id": "`+l1+`"},
		{"operation": "delete", "resource": "debt_accounts", "id": "not-an-id"}]`)
	for i, msg := range []string{"The customer was not found.", "The location was not found.", "The debt account was not found."} {
		if res := a.Results[i]; res.Status != http.StatusNotFound || res.ErrorMessage != msg || len(res.Errors["id"]) != 1 {
			t.Errorf("batch operation %d: %+v, want 404 %q naming id", i, res, msg)
		}
	}

	// An organization without a webhook has none to show or remove.
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		r := s.request(t, method, "/api/v1/webhook", nil, bearer(key))
		if got := errorFields(t, r)["webhook"]; r.status != http.StatusNotFound || len(got) != 1 ||
			got[0] != "The organization has no webhook; PUT one first." {
			t.Errorf("%s /api/v1/webhook without one: %d %s", method, r.status, r.body)
		}
	}
}
