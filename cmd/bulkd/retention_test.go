package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/report"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// TestRetentionErasesWhatABulkBrought runs bulkd as configured with a
// retention, and a bulk that finished longer ago than it: the reconciler
// erases its rows as submitted and its results (and nothing of a younger
// bulk), its errors, results and report page answer 410 saying the report
// has expired, GET shows when, its counts and the records it imported stay,
// and a replay of its submission answers as the first time. No ended
// delivery keeps an address.
func TestRetentionErasesWhatABulkBrought(t *testing.T) {
	t.Parallel()
	s := newService(t, "RECONCILE_INTERVAL=100ms", "RETENTION=1h",
		"REPORT_SECRET="+base64.StdEncoding.EncodeToString(reportSecret))
	s.env["BASE_URL"] = s.base
	s.start("serve")
	orgID, key := s.newOrg(t, "Acme", "ops@acme.example")
	young := s.submit(t, key, testenv.SeedExample(t))
	s.waitCompleted(t, key, young)
	// The same row twice again: every account taken, two rows with errors.
	idem := "Idempotency-Key: " + uuid.NewString()
	first := s.request(t, http.MethodPost, "/api/v1/bulk", seedTwice(t), bearer(key), jsonBody, idem)
	if first.status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", first.status, first.body)
	}
	old := first.json(t)["data"].(map[string]any)["bulk_id"].(string)
	before := s.waitCompleted(t, key, old)
	s.waitAllNotified(t)
	records := s.db.Count(t, `SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM debt_accounts) + (SELECT count(*) FROM locations)`)
	if n := s.db.Count(t, `SELECT count(*) FROM bulk_results WHERE bulk_id = $1 AND status = 'failed'`, old); n != 2 {
		t.Fatalf("the old bulk has %d failed rows, want 2", n)
	}

	// It finished two hours ago, more than the retention.
	if _, err := s.db.Conn.Exec(t.Context(), `UPDATE bulks SET completed_at = completed_at - interval '2 hours' WHERE id = $1`, old); err != nil {
		t.Fatal(err)
	}
	var after map[string]any
	testenv.Eventually(t, deadlineForImport, func() error {
		after = data(t, s.request(t, http.MethodGet, "/api/v1/bulk/"+old, nil, bearer(key)), http.StatusOK)
		if after["report_expired_at"] == nil {
			return s.waitingFor("bulk %s's report to expire", old)
		}
		return nil
	})

	t.Run("its rows and results are gone, the younger bulk's stay", func(t *testing.T) {
		for _, table := range []string{"bulk_rows", "bulk_results"} {
			if n := s.db.Count(t, `SELECT count(*) FROM `+table+` WHERE bulk_id = $1`, old); n != 0 {
				t.Errorf("%d of the erased bulk's %s left", n, table)
			}
			if n := s.db.Count(t, `SELECT count(*) FROM `+table+` WHERE bulk_id = $1`, young); n != 1 {
				t.Errorf("the younger bulk has %d %s, want its 1", n, table)
			}
		}
	})
	t.Run("its counts and records stay", func(t *testing.T) {
		for _, field := range []string{"status", "count", "rows_succeeded", "rows_failed", "records_written", "mode", "created_at", "started_at"} {
			if diff := jsonDiff(before[field], after[field]); diff != "" {
				t.Errorf("%s changed (-before +after):\n%s", field, diff)
			}
		}
		if n := s.db.Count(t, `SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM debt_accounts) + (SELECT count(*) FROM locations)`); n != records {
			t.Errorf("%d records after the erasure, %d before", n, records)
		}
	})
	t.Run("its errors and results answer 410 naming the report", func(t *testing.T) {
		for _, path := range []string{"/errors", "/results", "/results?page=2&per_page=1"} {
			for _, accept := range []string{"application/json", "text/csv"} {
				r := s.request(t, http.MethodGet, "/api/v1/bulk/"+old+path, nil, bearer(key), "Accept: "+accept)
				assertError(t, r, http.StatusGone, "report")
				if !strings.Contains(string(r.body), "The bulk's report has expired") {
					t.Errorf("GET %s (%s): %s", path, accept, r.body)
				}
			}
			if r := s.request(t, http.MethodHead, "/api/v1/bulk/"+old+path, nil, bearer(key)); r.status != http.StatusGone {
				t.Errorf("HEAD %s: %d", path, r.status)
			}
		}
		// The younger bulk's report is there.
		if r := s.request(t, http.MethodGet, "/api/v1/bulk/"+young+"/results", nil, bearer(key)); r.status != http.StatusOK {
			t.Errorf("the younger bulk's results: %d %s", r.status, r.body)
		}
	})
	t.Run("a wait on it answers the bulk without results", func(t *testing.T) {
		r := s.request(t, http.MethodGet, "/api/v1/bulk/"+old+"?wait=5s", nil, bearer(key))
		if got := r.json(t); r.status != http.StatusOK || got["results"] != nil || got["data"].(map[string]any)["report_expired_at"] == nil {
			t.Errorf("GET ?wait: %d %s", r.status, r.body)
		}
	})
	t.Run("a replay of its submission answers as the first time", func(t *testing.T) {
		r := s.request(t, http.MethodPost, "/api/v1/bulk", seedTwice(t), bearer(key), jsonBody, idem)
		if r.status != http.StatusAccepted || !bytes.Equal(r.body, first.body) || r.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay: %d %s (replayed %q), want %s", r.status, r.body, r.header.Get("Idempotent-Replayed"), first.body)
		}
	})
	t.Run("its report page says it has expired", func(t *testing.T) {
		links := report.NewLinks(reportSecret, time.Hour, "")
		page := links.URL(uuid.MustParse(orgID), uuid.MustParse(old), time.Now())
		for _, path := range []string{page, strings.Replace(page, "?", ".csv?", 1)} {
			r := s.request(t, http.MethodGet, path, nil)
			if r.status != http.StatusGone || !strings.Contains(string(r.body), "This report has expired") ||
				!strings.Contains(string(r.body), "0 of 2 rows fully imported, 2 with errors") {
				t.Errorf("GET %s: %d %s", path, r.status, r.body)
			}
			assertNoSubmittedValues(t, "the expired report's page", string(r.body))
		}
	})
	t.Run("no ended delivery keeps an address", func(t *testing.T) {
		if n := s.db.Count(t, `SELECT count(*) FROM deliveries`); n != 2 {
			t.Errorf("%d deliveries, want the 2 emails", n)
		}
		if n := s.db.Count(t, `SELECT count(*) FROM deliveries d LEFT JOIN delivery_attempts a ON a.delivery_id = d.id
			WHERE d.target IS NOT NULL OR concat(d.last_error, a.error) LIKE '%@%'`); n != 0 {
			t.Errorf("%d deliveries or attempts keep an address", n)
		}
	})
	if lines := s.logLines(t, "reconciled"); !strings.Contains(fmt.Sprint(lines), "reports_erased:1") {
		t.Errorf("no reconciled line says it erased the report: %v", lines)
	}
}
