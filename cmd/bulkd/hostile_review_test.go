package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Findings of a hostile review. Each test failed on the code it was written
// against and says what a client relies on.

// A query string Go's parser cannot read whole (a ';' separator, a bad
// percent escape) must not be half-read: echo drops the unreadable pairs
// silently, which imported "?atomic=true;strict=true" as a partial,
// non-strict bulk that wrote the rows an all-or-nothing bulk would not have.
func TestMalformedQueryIsRefusedNotIgnored(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg("Acme", "ops@acme.example")
	for _, query := range []string{"atomic=true;strict=true", "atomic=tru%e", "mode=upsert&atomic=%zz", "%zz=1"} {
		before := s.db.Snapshot(t)
		r := s.do(http.MethodPost, "/api/v1/bulk?"+query, key, bytes.NewReader(modeRows("q")))
		if r.status != http.StatusBadRequest {
			t.Errorf("POST ?%s: %d %s, want 400 naming the query", query, r.status, r.body)
		}
		if r.status == http.StatusAccepted {
			s.waitCompleted(key, r.json(t)["data"].(map[string]any)["bulk_id"].(string))
		}
		if diff := cmp.Diff(before, s.db.Snapshot(t)); diff != "" {
			t.Errorf("POST ?%s changed the tables:\n%s", query, diff)
		}
	}
	var n int
	if err := s.db.Conn.QueryRow(context.Background(), `SELECT count(*) FROM bulks`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d bulks stored from refused requests, want 0", n)
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
	_, key := s.newOrg("Acme", "ops@acme.example")
	pad := strings.Repeat("<&>", 30_000)
	// The customer fails (a metadata value that is not a scalar); the
	// unknown field x is echoed with it.
	body := []byte(`[{"customer":{"external_id":"c1","name":"N","metadata":{"k":[]},"x":"` + pad +
		`"},"location":{"external_id":"l1"}}]`)
	id := s.submitWith(key, "", body)
	s.waitCompleted(key, id)
	errs := s.do(http.MethodGet, "/api/v1/bulk/"+id+"/errors", key, nil)
	results := s.do(http.MethodGet, "/api/v1/bulk/"+id+"/results", key, nil)
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

// README: a child may move to the top level ("parent_external_id": null), and
// nesting an account that has children of its own fails. When the only child
// of C2 moves to the top level in the same row, C2 has no children left and
// may be nested (it failed with "has debt accounts nested under it").
func TestUpsertNestsAnAccountWhoseChildMovesAwayInTheSameRow(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg("Acme", "ops@acme.example")
	s.waitCompleted(key, s.submit(key, []byte(`[{"customer":{"external_id":"c1","name":"N"},"location":{"external_id":"l1"},
		"debt_accounts":[{"external_id":"P1","balance":1,"billing_type":["settlement"]},{"external_id":"C2","balance":1,"billing_type":["settlement"]},
		{"external_id":"C1","parent_external_id":"C2","balance":1,"billing_type":["settlement"]}]}]`)))

	id := s.submitWith(key, "mode=upsert", []byte(`[{"customer":{"external_id":"c1"},"location":{"external_id":"l1"},
		"debt_accounts":[{"external_id":"C1","parent_external_id":null},{"external_id":"P1"},{"external_id":"C2","parent_external_id":"P1"}]}]`))
	got := s.waitCompleted(key, id)
	if got["rows_failed"] != 0.0 {
		r := s.do(http.MethodGet, "/api/v1/bulk/"+id+"/errors", key, nil)
		t.Errorf("moving C1 to the top level and C2 under P1 in one row: %v failed row(s): %s", got["rows_failed"], r.body)
	}
	var tree []string
	rows, err := s.db.Conn.Query(context.Background(), `SELECT a.external_id || ' under ' || coalesce(p.external_id, '-')
		FROM debt_accounts a LEFT JOIN debt_accounts p ON p.id = a.parent_id ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		tree = append(tree, s)
	}
	if want := []string{"C1 under -", "C2 under P1", "P1 under -"}; !cmp.Equal(tree, want) {
		t.Errorf("accounts: %v, want %v", tree, want)
	}
}
