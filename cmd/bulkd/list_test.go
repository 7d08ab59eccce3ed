package main

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulkd/bulkd/pkg/testenv"
)

// listPage is an answer of GET /api/v1/bulk.
type listPage struct {
	Data  []map[string]any `json:"data"`
	Links struct {
		Next *string `json:"next"`
	} `json:"links"`
}

// list reads GET path (/api/v1/bulk?…), checking that it is a 200 page.
func (s *service) list(t testing.TB, key, path string) listPage {
	t.Helper()
	r := s.request(t, http.MethodGet, path, nil, bearer(key))
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	var p listPage
	if err := json.Unmarshal(r.body, &p); err != nil || p.Data == nil {
		t.Fatalf("GET %s: %v: %s", path, err, r.body)
	}
	return p
}

func (p listPage) ids() []string {
	ids := make([]string, len(p.Data))
	for i, b := range p.Data {
		ids[i], _ = b["bulk_id"].(string)
	}
	return ids
}

// submitBulks submits n bulks and returns their ids, oldest first.
func (s *service) submitBulks(t testing.TB, key string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = s.submit(t, key, testenv.SeedExample(t))
	}
	return ids
}

// newestFirst is ids (oldest first) picked by index, newest first.
func newestFirst(ids []string, picks ...int) []string {
	out := make([]string, len(picks))
	for i, p := range picks {
		out[i] = ids[p]
	}
	return out
}

func TestListBulksNewestFirstWithFilters(t *testing.T) {
	t.Parallel()
	// An API alone: no worker moves the bulks on, so the test gives each
	// the status it wants.
	s := startMode(t, "api")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	ids := s.submitBulks(t, key, 6)
	for i, status := range []string{"completed", "failed", "pending", "processing", "canceled", "completed"} {
		if _, err := s.db.Conn.Exec(t.Context(), `UPDATE bulks SET status = $2 WHERE id = $1`, ids[i], status); err != nil {
			t.Fatal(err)
		}
	}

	all := s.list(t, key, "/api/v1/bulk")
	if diff := cmp.Diff(newestFirst(ids, 5, 4, 3, 2, 1, 0), all.ids()); diff != "" {
		t.Errorf("GET /api/v1/bulk, newest first (-want +got):\n%s", diff)
	}
	if all.Links.Next != nil {
		t.Errorf("one page, yet links.next is %q", *all.Links.Next)
	}
	// Each bulk exactly as GET /api/v1/bulk/{id} shows it.
	for _, b := range all.Data {
		one := s.request(t, http.MethodGet, "/api/v1/bulk/"+b["bulk_id"].(string), nil, bearer(key)).json(t)["data"]
		if diff := cmp.Diff(one, any(b)); diff != "" {
			t.Errorf("listed bulk differs from GET /api/v1/bulk/{id} (-get +list):\n%s", diff)
		}
	}
	createdAt := func(i int) string { return url.QueryEscape(all.Data[5-i]["created_at"].(string)) }

	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"status=completed", newestFirst(ids, 5, 0)},
		{"status=pending,failed", newestFirst(ids, 2, 1)},
		{"status=canceled,completed,completed", newestFirst(ids, 5, 4, 0)},
		{"status=processing", newestFirst(ids, 3)},
		{"created_after=" + createdAt(1), newestFirst(ids, 5, 4, 3, 2)},
		{"created_before=" + createdAt(4), newestFirst(ids, 3, 2, 1, 0)},
		{"created_after=" + createdAt(1) + "&created_before=" + createdAt(4), newestFirst(ids, 3, 2)},
		{"status=pending,processing,canceled&created_after=" + createdAt(2), newestFirst(ids, 4, 3)},
		{"status=completed&created_after=" + createdAt(0) + "&created_before=" + createdAt(5), []string{}},
		// An offset's "+" that was not percent-encoded arrives as a space.
		{"created_before=2000-01-01T00:00:00+01:00", []string{}},
		{"created_after=2000-01-01T00:00:00.5%2B01:00&status=failed", newestFirst(ids, 1)},
	} {
		if diff := cmp.Diff(tc.want, s.list(t, key, "/api/v1/bulk?"+tc.query).ids()); diff != "" {
			t.Errorf("GET /api/v1/bulk?%s (-want +got):\n%s", tc.query, diff)
		}
	}

	// Pages of 2 through the 6 bulks, with a filter the links carry.
	var got []string
	path, pages := "/api/v1/bulk?limit=2", 0
	for {
		p := s.list(t, key, path)
		got = append(got, p.ids()...)
		pages++
		if p.Links.Next == nil {
			break
		}
		path = *p.Links.Next
		if !strings.HasPrefix(path, "/api/v1/bulk?limit=2&cursor=") {
			t.Fatalf("links.next = %q", path)
		}
	}
	if diff := cmp.Diff(newestFirst(ids, 5, 4, 3, 2, 1, 0), got); diff != "" || pages != 3 {
		t.Errorf("%d pages of 2 (-want +got):\n%s", pages, diff)
	}
	filtered := "/api/v1/bulk?status=completed,failed,pending&created_before=" + createdAt(5) + "&limit=1"
	got = nil
	for path = filtered; ; {
		p := s.list(t, key, path)
		got = append(got, p.ids()...)
		if p.Links.Next == nil {
			break
		}
		path = *p.Links.Next
		next, err := url.Parse(path)
		if err != nil {
			t.Fatal(err)
		}
		q := next.Query()
		if q.Get("status") != "completed,failed,pending" || q.Get("created_before") != all.Data[0]["created_at"] || q.Get("limit") != "1" {
			t.Fatalf("links.next does not carry the filters: %q", path)
		}
	}
	if diff := cmp.Diff(newestFirst(ids, 2, 1, 0), got); diff != "" {
		t.Errorf("filtered pages of 1 (-want +got):\n%s", diff)
	}

	if p := s.list(t, key, "/api/v1/bulk?limit=1"); len(p.Data) != 1 || p.Links.Next == nil {
		t.Errorf("limit=1: %d bulks, next %v", len(p.Data), p.Links.Next)
	}
	if p := s.list(t, key, "/api/v1/bulk?limit=500"); len(p.Data) != 6 || p.Links.Next != nil {
		t.Errorf("limit=500: %d bulks, next %v", len(p.Data), p.Links.Next)
	}

	head := s.request(t, http.MethodHead, "/api/v1/bulk?status=pending", nil, bearer(key))
	if head.status != http.StatusOK || len(head.body) != 0 || !strings.HasPrefix(head.header.Get("Content-Type"), "application/json") {
		t.Errorf("HEAD /api/v1/bulk: %d %q %q", head.status, head.header.Get("Content-Type"), head.body)
	}
	if r := s.request(t, http.MethodGet, "/api/v1/bulk", nil); r.status != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/bulk without a key: %d", r.status)
	}
}

func TestListBulksRejectsBadParameters(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	s.submitBulks(t, key, 2)
	for _, tc := range []struct {
		query  string
		fields []string
	}{
		{"status=bogus", []string{"status"}},
		{"status=", []string{"status"}},
		{"status=pending,", []string{"status"}},
		{"status=Pending", []string{"status"}},
		{"status=pending&status=failed", []string{"status"}},
		{"created_after=yesterday", []string{"created_after"}},
		{"created_after=2026-11-23", []string{"created_after"}},
		{"created_before=2026-13-01T00:00:00Z", []string{"created_before"}},
		{"created_before=", []string{"created_before"}},
		{"limit=0", []string{"limit"}},
		{"limit=501", []string{"limit"}},
		{"limit=ten", []string{"limit"}},
		{"limit=", []string{"limit"}},
		{"limit=5&limit=5", []string{"limit"}},
		{"cursor=", []string{"cursor"}},
		{"cursor=not*base64", []string{"cursor"}},
		{"cursor=AAAA", []string{"cursor"}},
		{"cursor=" + strings.Repeat("A", 55), []string{"cursor"}},
		{"page=2", []string{"page"}},
		{"Status=pending", []string{"Status"}},
		{"limit=0&status=x&sort=asc", []string{"limit", "sort", "status"}},
	} {
		r := s.request(t, http.MethodGet, "/api/v1/bulk?"+tc.query, nil, bearer(key))
		var e struct {
			Message string              `json:"message"`
			Errors  map[string][]string `json:"errors"`
		}
		if err := json.Unmarshal(r.body, &e); err != nil || r.status != http.StatusBadRequest {
			t.Errorf("GET /api/v1/bulk?%s: %d %s", tc.query, r.status, r.body)
			continue
		}
		fields := slices.Sorted(maps.Keys(e.Errors))
		if !slices.Equal(fields, tc.fields) || !strings.Contains(e.Message, "The ") || !strings.HasSuffix(e.Message, ".") {
			t.Errorf("GET /api/v1/bulk?%s: %s, want the fields %v named", tc.query, r.body, tc.fields)
		}
	}
	r := s.request(t, http.MethodGet, "/api/v1/bulk?limit=501", nil, bearer(key))
	if want := `{"message":"The limit parameter must be a whole number from 1 to 500.","errors":{"limit":["The limit parameter must be a whole number from 1 to 500."]}}`; strings.TrimSpace(string(r.body)) != want {
		t.Errorf("limit=501: %s", r.body)
	}
}

func TestListBulksPagesStayStableWhileBulksArrive(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	existing := s.submitBulks(t, key, 11)
	slices.Reverse(existing)

	var got []string
	added := 0
	for path := "/api/v1/bulk?limit=3"; ; {
		p := s.list(t, key, path)
		got = append(got, p.ids()...)
		if p.Links.Next == nil {
			break
		}
		path = *p.Links.Next
		// New bulks arrive between the reads of two pages.
		s.submitBulks(t, key, 2)
		added += 2
	}
	if diff := cmp.Diff(existing, got); diff != "" {
		t.Errorf("pages read while %d bulks arrived: duplicates or gaps (-want +got):\n%s", added, diff)
	}
	first := s.list(t, key, "/api/v1/bulk?limit=500")
	if len(first.Data) != len(existing)+added || first.ids()[added] != existing[0] {
		t.Errorf("after: %d bulks listed, want %d, the new ones first", len(first.Data), len(existing)+added)
	}
}

func TestListBulksOfTheirOrganizationOnly(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api")
	_, keyA := s.newOrg(t, "A", "a@example.com")
	_, keyB := s.newOrg(t, "B", "b@example.com")
	idsA := s.submitBulks(t, keyA, 3)

	if p := s.list(t, keyB, "/api/v1/bulk"); len(p.Data) != 0 || p.Links.Next != nil {
		t.Errorf("B lists %v of A's bulks, next %v", p.ids(), p.Links.Next)
	}
	if p := s.list(t, keyB, "/api/v1/bulk?status=pending"); len(p.Data) != 0 {
		t.Errorf("B lists %v of A's pending bulks", p.ids())
	}
	idB := s.submit(t, keyB, testenv.SeedExample(t))
	if diff := cmp.Diff([]string{idB}, s.list(t, keyB, "/api/v1/bulk").ids()); diff != "" {
		t.Errorf("B's list (-want +got):\n%s", diff)
	}
	pageA := s.list(t, keyA, "/api/v1/bulk?limit=1")
	if diff := cmp.Diff(newestFirst(idsA, 2), pageA.ids()); diff != "" || pageA.Links.Next == nil {
		t.Fatalf("A's first page (-want +got):\n%s", diff)
	}
	// A's cursor is A's: B cannot page through A's bulks with it, nor
	// learn from it where B's own list stands.
	r := s.request(t, http.MethodGet, *pageA.Links.Next, nil, bearer(keyB))
	if r.status != http.StatusBadRequest || r.json(t)["errors"].(map[string]any)["cursor"] == nil {
		t.Errorf("A's cursor used by B: %d %s", r.status, r.body)
	}
	rest := s.list(t, keyA, *pageA.Links.Next)
	if diff := cmp.Diff(newestFirst(idsA, 1), rest.ids()); diff != "" || rest.Links.Next == nil {
		t.Errorf("A's next page (-want +got):\n%s", diff)
	}
}

// A cursor is base64url of plain bytes, so a client can edit the time in
// it. Any cursor that is not one the organization was given is a 400 naming
// cursor, one edited to a time out of Postgres' range (before 4714 BC)
// included.
func TestListBulksCursorWithAnEditedTimeIs400(t *testing.T) {
	t.Parallel()
	s := startMode(t, "api")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	s.submitBulks(t, key, 2)
	next := s.list(t, key, "/api/v1/bulk?limit=1").Links.Next
	if next == nil {
		t.Fatal("no next page")
	}
	u, err := url.Parse(*next)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(u.Query().Get("cursor"))
	if err != nil || len(raw) < 9 {
		t.Fatalf("cursor %q: %v", u.Query().Get("cursor"), err)
	}
	// Microseconds since 1970 of one microsecond before 4714-11-24 BC.
	before := int64(-210866803200000001)
	binary.BigEndian.PutUint64(raw[1:9], uint64(before))
	forged := base64.RawURLEncoding.EncodeToString(raw)

	r := s.request(t, http.MethodGet, "/api/v1/bulk?limit=1&cursor="+forged, nil, bearer(key))
	const msg = "The cursor parameter must be a cursor from a links.next this organization was given."
	if want := `{"message":"` + msg + `","errors":{"cursor":["` + msg + `"]}}`; r.status != http.StatusBadRequest || !jsonEqual(t, r.body, []byte(want)) {
		t.Errorf("forged cursor: %d %s, want 400 naming cursor", r.status, r.body)
	}
}
