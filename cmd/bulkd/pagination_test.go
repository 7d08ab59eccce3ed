package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/page"
)

// pagedBulk gives every list two items or more: two locations, two
// customers and four debt accounts, two of each customer.
const pagedBulk = `[
	{"customer": {"external_id": "c1", "name": "Ann"}, "location": {"external_id": "l1"},
	 "debt_accounts": [{"external_id": "a1", "balance": 1, "billing_type": ["settlement"]},
	                   {"external_id": "a2", "balance": 2, "billing_type": ["settlement"]}]},
	{"customer": {"external_id": "c2", "name": "Bob"}, "location": {"external_id": "l2"},
	 "debt_accounts": [{"external_id": "a3", "balance": 3, "billing_type": ["settlement"]},
	                   {"external_id": "a4", "balance": 4, "billing_type": ["settlement"]}]}]`

// nextCursor reads the cursor of links.next of a 200 list page.
func nextCursor(t *testing.T, r response) string {
	t.Helper()
	var p struct {
		Data  []json.RawMessage `json:"data"`
		Links struct{ Next *string }
	}
	if err := json.Unmarshal(r.body, &p); err != nil || r.status != http.StatusOK || p.Links.Next == nil {
		t.Fatalf("want a 200 page with a next link: %d %.300s", r.status, r.body)
	}
	u, err := url.Parse(*p.Links.Next)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("cursor")
}

// Every list takes back only the cursors it gave to the organization: one
// that is not base64url, of another length, another organization's or
// another list's, or edited to name a time no item can have (before 2000,
// after 9999, or beyond what Postgres can store) is a 400 naming cursor,
// never a 500, and logs no error. The list's own cursor reads the next
// page.
func TestForgedCursorsAre400OnEveryList(t *testing.T) {
	t.Parallel()
	s := startService(t, "RATE_LIMIT=0")
	orgID, key := s.newOrg(t, "Acme", "ops@acme.example")
	otherID, _ := s.newOrg(t, "Other", "ops@other.example")
	s.waitCompleted(t, key, s.submit(t, key, []byte(pagedBulk)))
	s.waitCompleted(t, key, s.submit(t, key, []byte(pagedBulk))) // a second bulk: two bulks to page through
	org, other := mustUUID(t, orgID), mustUUID(t, otherID)
	c1 := s.recordID(t, "customers", "c1")

	for _, tc := range []struct {
		path     string
		resource page.Resource
		sibling  page.Resource // another list's cursors
	}{
		{"/api/v1/bulk", page.Bulks, page.Customers},
		{"/api/v1/locations", page.Locations, page.Customers},
		{"/api/v1/customers", page.Customers, page.Locations},
		{"/api/v1/debt_accounts", page.DebtAccounts, page.Customers},
		{"/api/v1/customers/" + c1 + "/debt_accounts", page.DebtAccounts, page.Customers},
	} {
		t.Run(strings.TrimPrefix(tc.path, "/api/v1/"), func(t *testing.T) {
			cursor := nextCursor(t, s.request(t, http.MethodGet, tc.path+"?limit=1", nil, bearer(key)))
			if r := s.request(t, http.MethodGet, tc.path+"?limit=1&cursor="+cursor, nil, bearer(key)); r.status != http.StatusOK {
				t.Fatalf("the list's own cursor: %d %.300s", r.status, r.body)
			}
			pos, err := page.Decode(tc.resource, org, cursor)
			if err != nil {
				t.Fatalf("the list's cursor does not decode: %v", err)
			}
			at := func(tm time.Time) string {
				return page.Encode(tc.resource, org, page.Position{CreatedAt: tm, ID: pos.ID})
			}
			for name, forged := range map[string]string{
				"not base64url":          "not*base64",
				"padded":                 cursor + "==",
				"too short":              cursor[:len(cursor)-2],
				"too long":               cursor + "AAAA",
				"another organization's": page.Encode(tc.resource, other, pos),
				"another list's":         page.Encode(tc.sibling, org, pos),
				"before 2000":            at(time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC)),
				"before Postgres' range": at(time.UnixMicro(-210866803200000001)),
				"after 9999":             at(time.Date(9999, 12, 31, 0, 0, 1, 0, time.UTC)),
				"beyond Postgres' range": at(time.UnixMicro(1<<63 - 1)),
			} {
				r := s.request(t, http.MethodGet, tc.path+"?limit=1&cursor="+url.QueryEscape(forged), nil, bearer(key))
				if r.status != http.StatusBadRequest || len(errorFields(t, r)["cursor"]) == 0 {
					t.Errorf("%s cursor %q: %d %.300s, want 400 naming cursor", name, forged, r.status, r.body)
				}
			}
		})
	}
	assertNoErrorLines(t, s)
}

// An empty cursor is no cursor a list gave: a 400 naming it on every list,
// as a limit out of range is.
func TestEmptyCursorAndBadLimitAre400OnEveryList(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api", "RATE_LIMIT=0")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	for _, path := range []string{"/api/v1/bulk", "/api/v1/locations", "/api/v1/customers", "/api/v1/debt_accounts",
		"/api/v1/customers/" + uuid.NewString() + "/debt_accounts"} {
		for _, q := range []struct{ query, field string }{
			{"cursor=", "cursor"}, {"limit=", "limit"}, {"limit=0", "limit"}, {"limit=ten", "limit"}, {"limit=1001", "limit"},
		} {
			r := s.request(t, http.MethodGet, path+"?"+q.query, nil, bearer(key))
			assertError(t, r, http.StatusBadRequest, q.field)
		}
	}
}
