package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/report"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// reportSecret is the REPORT_SECRET of the report tests.
var reportSecret = []byte("report-secret-report-secret-32by")

// startWithReports starts `bulkd serve` with report links signed under
// reportSecret and BASE_URL set to the service's own address, so that the
// links of its emails open.
func startWithReports(t *testing.T) *service {
	t.Helper()
	s := newService(t, "REPORT_SECRET="+base64.StdEncoding.EncodeToString(reportSecret))
	s.env["BASE_URL"] = s.base
	s.start("serve")
	return s
}

// seedTwice is the seed's row twice in one bulk, submitted after the seed
// itself: each account of both rows is "taken" (12 error lines), and no
// line may show a submitted value.
func seedTwice(t *testing.T) []byte {
	t.Helper()
	var rows []json.RawMessage
	if err := json.Unmarshal(testenv.SeedExample(t), &rows); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal([]json.RawMessage{rows[0], rows[0]})
	return b
}

// personalValues are the seed's personal data, which neither an email nor a
// report page may show.
var personalValues = []string{"tatum.marks@example.com", "+1-489-899-2182", "Tremaine", "1983-", "ssn"}

func assertNoSubmittedValues(t *testing.T, what, s string) {
	t.Helper()
	for _, v := range personalValues {
		if strings.Contains(strings.ToLower(s), strings.ToLower(v)) {
			t.Errorf("%s shows the submitted value %q", what, v)
		}
	}
}

// TestCompletionEmailAndReportPageInABrowser reads the completion email as
// its recipient would, in headless Chromium without network beyond
// loopback: the email shows the counts and the first ten errors and links to
// a report page that opens without an API key, with every error and a CSV
// download of them; neither shows a submitted value.
func TestCompletionEmailAndReportPageInABrowser(t *testing.T) {
	t.Parallel()
	s := startWithReports(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	s.waitCompleted(t, key, s.submit(t, key, testenv.SeedExample(t)))
	id := s.submit(t, key, seedTwice(t))
	s.waitCompleted(t, key, id)
	var email string
	for _, m := range s.smtp.WaitForMessages(t, 2, 30*time.Second) {
		if p := m.Parse(t); strings.HasPrefix(p.Subject, "Bulk "+id) {
			email = p.HTML
			assertNoSubmittedValues(t, "the email's text", p.Text)
			if !strings.Contains(p.Text, "/report/"+id+"?") {
				t.Errorf("the email's text has no report link:\n%s", p.Text)
			}
		}
	}
	if email == "" {
		t.Fatal("no email for the bulk")
	}
	assertNoSubmittedValues(t, "the email", email)
	for _, banned := range []string{"<script", "<img", "<link", "<style", "class="} {
		if strings.Contains(email, banned) {
			t.Errorf("the email's HTML has %q: email clients want inline styles, no scripts, no images", banned)
		}
	}

	browser := newBrowser(t)
	ctx, cancel := chromedp.NewContext(browser)
	defer cancel()
	requests := watchRequests(t, ctx)
	dir := t.TempDir()
	emailFile := filepath.Join(dir, "email.html")
	if err := os.WriteFile(emailFile, []byte(email), 0o600); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancelWait := context.WithTimeout(ctx, 30*time.Second)
	defer cancelWait()
	if err := chromedp.Do(waitCtx, chromedp.Navigate("file://"+emailFile)); err != nil {
		t.Fatalf("open the email: %v", err)
	}
	screenshot(t, ctx, filepath.Join(dir, "email.png"))
	var shown struct {
		Counts map[string]string `json:"counts"`
		Errors [][]string        `json:"errors"`
		Link   string            `json:"link"`
	}
	evaluate(t, waitCtx, `({
		counts: Object.fromEntries([...document.querySelectorAll("[data-count]")].map(e => [e.dataset.count, e.textContent.trim()])),
		errors: [...document.querySelectorAll("#errors tr")].slice(1).map(r => [...r.cells].map(c => c.textContent.trim())),
		link: document.querySelector("a#report")?.href ?? "",
	})`, &shown)
	if shown.Counts["rows"] != "2" || shown.Counts["rows_failed"] != "2" || shown.Counts["rows_succeeded"] != "0" {
		t.Errorf("the email's counts: %v", shown.Counts)
	}
	if len(shown.Errors) != 10 {
		t.Errorf("the email shows %d errors, want the first 10 of 12: %v", len(shown.Errors), shown.Errors)
	} else if e := shown.Errors[0]; e[0] != "1" || e[2] != "external_id" || e[3] != "The external id has already been taken." || e[1] == "" {
		t.Errorf("the email's first error: %v", e)
	}
	if !strings.HasPrefix(shown.Link, s.base+"/report/"+id+"?") {
		t.Fatalf("the email's report link: %q", shown.Link)
	}

	// The link opens the report page, without an API key.
	if err := chromedp.Do(waitCtx, chromedp.Navigate(shown.Link)); err != nil {
		t.Fatalf("open the report: %v", err)
	}
	screenshot(t, ctx, filepath.Join(dir, "report.png"))
	var page struct {
		Title  string            `json:"title"`
		Counts map[string]string `json:"counts"`
		Errors [][]string        `json:"errors"`
		CSV    string            `json:"csv"`
		Text   string            `json:"text"`
	}
	evaluate(t, waitCtx, `({
		title: document.title,
		counts: Object.fromEntries([...document.querySelectorAll("[data-count]")].map(e => [e.dataset.count, e.textContent.trim()])),
		errors: [...document.querySelectorAll("#errors tr")].slice(1).map(r => [...r.cells].map(c => c.textContent.trim())),
		csv: document.querySelector("a#csv")?.href ?? "",
		text: document.body.innerText,
	})`, &page)
	if page.Counts["rows"] != "2" || page.Counts["rows_failed"] != "2" || page.Counts["status"] != "completed" {
		t.Errorf("the report's counts: %v", page.Counts)
	}
	if len(page.Errors) != 12 {
		t.Errorf("the report shows %d errors, want 12: %v", len(page.Errors), page.Errors)
	}
	assertNoSubmittedValues(t, "the report page", page.Text)

	// Its CSV has the same lines.
	r := s.request(t, http.MethodGet, strings.TrimPrefix(page.CSV, s.base), nil)
	records, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil || r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV: %d %s %v", r.status, r.header.Get("Content-Type"), err)
	}
	if len(records) != 13 || strings.Join(records[0], ",") != "row,section,index,external_id,field,message" {
		t.Errorf("CSV: %d records, header %v", len(records), records[0])
	}
	for _, u := range requests() {
		if !strings.HasPrefix(u, "file://") && !strings.HasPrefix(u, s.base+"/") {
			t.Errorf("the browser fetched %s: the email and the report load nothing from elsewhere", u)
		}
	}
}

// TestReportLinksThatDoNotOpen: a link changed in any part is 403, and an
// expired one 410, each an HTML page a person can read; no link at all, or
// another organization's bulk under a link, opens nothing.
func TestReportLinksThatDoNotOpen(t *testing.T) {
	t.Parallel()
	s := startWithReports(t)
	orgID, key := s.newOrg(t, "Acme", "ops@acme.example")
	id := s.submit(t, key, testenv.SeedExample(t))
	s.waitCompleted(t, key, id)
	org, bulkID := uuid.MustParse(orgID), uuid.MustParse(id)
	links := report.NewLinks(reportSecret, time.Hour, s.base)
	good, err := url.Parse(links.URL(org, bulkID, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	with := func(name, value string) string {
		q := good.Query()
		q.Set(name, value)
		return good.Path + "?" + q.Encode()
	}
	otherOrg, _ := s.newOrg(t, "Globex", "ops@globex.example")
	for _, tc := range []struct {
		name, path string
		status     int
		says       string
	}{
		{"good", good.Path + "?" + good.RawQuery, http.StatusOK, "Bulk import report"},
		{"CSV", good.Path + ".csv?" + good.RawQuery, http.StatusOK, "row,section,index,external_id,field,message"},
		{"changed signature", with("sig", strings.Repeat("A", 43)), http.StatusForbidden, "This link is not valid"},
		{"later expiry", with("expires", "99999999999"), http.StatusForbidden, "This link is not valid"},
		{"other organization", with("org", otherOrg), http.StatusForbidden, "This link is not valid"},
		{"other bulk", "/report/" + uuid.NewString() + "?" + good.RawQuery, http.StatusForbidden, "This link is not valid"},
		{"no signature", "/report/" + id, http.StatusForbidden, "This link is not valid"},
		{"repeated parameter", good.Path + "?" + good.RawQuery + "&sig=x", http.StatusForbidden, "This link is not valid"},
		{"not a bulk id", "/report/x?" + good.RawQuery, http.StatusNotFound, "Report not found"},
		{"expired", "/report/" + id + "?" + mustQuery(t, links.URL(org, bulkID, time.Now().Add(-2*time.Hour))), http.StatusGone, "This link has expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.request(t, http.MethodGet, tc.path, nil)
			if r.status != tc.status || !strings.Contains(string(r.body), tc.says) {
				t.Errorf("%s: %d %.300s, want %d saying %q", tc.path, r.status, r.body, tc.status, tc.says)
			}
			if ct := r.header.Get("Content-Type"); tc.name != "CSV" && ct != "text/html; charset=UTF-8" {
				t.Errorf("Content-Type %q, want an HTML page", ct)
			}
			if r.header.Get("Cache-Control") != "no-store" || !strings.Contains(r.header.Get("Content-Security-Policy"), "default-src 'none'") {
				t.Errorf("headers: %v", r.header)
			}
		})
	}
}

func mustQuery(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.RawQuery
}

// watchRequests records every URL the tab at ctx requests.
func watchRequests(t *testing.T, ctx context.Context) func() []string {
	t.Helper()
	var (
		mu   sync.Mutex
		urls []string
	)
	events := chromedp.Events(ctx, network.RequestWillBeSent)
	go func() {
		for ev, err := range events {
			if err != nil {
				return
			}
			mu.Lock()
			urls = append(urls, ev.Request.URL)
			mu.Unlock()
		}
	}()
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("Network.enable: %v", err)
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), urls...)
	}
}

// evaluate runs a JavaScript expression in the tab and decodes its value.
func evaluate(t *testing.T, ctx context.Context, expr string, v any) {
	t.Helper()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr))
	if err != nil {
		t.Fatalf("evaluate: %v; the page shows: %.300s", err, bodyText(ctx))
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("evaluate: %v: %s", err, raw)
	}
}

// screenshot saves the whole page as a PNG (quality 100 is PNG; less is JPEG), for a person to look at:
// under the test's temporary folder, and also in $BULKD_SCREENSHOTS when it
// names a folder (the temporary one is gone once the test ends).
func screenshot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	paths := []string{path}
	if dir := os.Getenv("BULKD_SCREENSHOTS"); dir != "" {
		paths = append(paths, filepath.Join(dir, t.Name()+"-"+filepath.Base(path)))
	}
	for _, p := range paths {
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
}
