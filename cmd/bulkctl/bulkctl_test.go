package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkd/bulkd/pkg/client"
	"github.com/bulkd/bulkd/pkg/client/clienttest"
)

// server is the bulkd these tests submit to; each test has an
// organization of its own on it.
var server *clienttest.Server

func TestMain(m *testing.M) {
	os.Exit(clienttest.Main(m, func(s *clienttest.Server) { server = s }))
}

// org is a test's organization: its id and key.
type org struct{ id, key string }

func newOrg(t *testing.T) org {
	t.Helper()
	id, key, err := server.NewOrganization()
	if err != nil {
		t.Fatal(err)
	}
	return org{id, key}
}

// count counts the organization's records in a table.
func (o org) count(t *testing.T, table string, where ...string) int {
	t.Helper()
	q := `SELECT count(*) FROM ` + table + ` WHERE organization_id = $1`
	for _, w := range where {
		q += " AND " + w
	}
	return server.Count(t, q, o.id)
}

// bulkctl runs the command in this process, as the organization, against
// base (the server's URL when empty).
func (o org) bulkctl(t *testing.T, ctx context.Context, base string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	if base == "" {
		base = server.URL
	}
	var out, errOut bytes.Buffer
	c := &cli{stdout: &out, stderr: &errOut, progressEvery: time.Hour,
		getenv: func(k string) string {
			return map[string]string{"BULKD_URL": base, "BULKD_API_KEY": o.key}[k]
		},
		clientConfig: func(cfg *client.Config) { cfg.MinBackoff, cfg.MaxBackoff = 5*time.Millisecond, 50*time.Millisecond }}
	code = c.run(ctx, args)
	return code, out.String(), errOut.String()
}

func write(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// customersCSV is n customers c-<prefix><i>, each a line for a parent
// account and one for a child under it; the customers named in bad get an
// email the server refuses.
func customersCSV(prefix string, n int, bad ...int) string {
	var b strings.Builder
	b.WriteString("customer.external_id,customer.name,customer.email,location.external_id,debt_account.external_id,debt_account.parent_external_id,debt_account.balance,debt_account.billing_type,debt_account.metadata.source\n")
	isBad := map[int]bool{}
	for _, i := range bad {
		isBad[i] = true
	}
	for i := range n {
		email := fmt.Sprintf("c%d@example.com", i)
		if isBad[i] {
			email = "not-an-email"
		}
		id := fmt.Sprintf("c-%s%d", prefix, i)
		fmt.Fprintf(&b, "%s,Customer %d,%s,loc-%d,%s-p,,100.00,settlement|payment-plan,crm\n", id, i, email, i%7, id)
		fmt.Fprintf(&b, "%s,,,,%s-a,%s-p,25.50,full-payment,\n", id, id, id)
	}
	return b.String()
}

func TestSubmitEachFormat(t *testing.T) {
	t.Parallel()
	rowsJSON := []string{
		`{"customer":{"external_id":"c-1","name":"Ann Lee"},"location":{"external_id":"l-1"},
		  "parent_debt_accounts":[{"external_id":"p-1","balance":10,"billing_type":["settlement"]}],
		  "debt_accounts":[{"external_id":"a-1","parent_external_id":"p-1","balance":5,"billing_type":["settlement"]}]}`,
		`{"customer":{"external_id":"c-2","name":"Bo Chen"},"location":{"external_id":"l-1"},
		  "debt_accounts":[{"external_id":"p-2","balance":10,"billing_type":["settlement"]},{"external_id":"a-2","parent_external_id":"p-2","balance":"5.25","billing_type":["settlement"]}]}`,
	}
	oneLine := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	for _, tc := range []struct{ name, content string }{
		{"rows.json", "[\n" + rowsJSON[0] + ",\n" + rowsJSON[1] + "\n]\n"},
		{"rows.ndjson", oneLine(rowsJSON[0]) + "\n" + oneLine(rowsJSON[1]) + "\n"},
		{"rows.csv", customersCSV("", 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := newOrg(t)
			path := write(t, tc.name, tc.content)
			code, out, errOut := o.bulkctl(t, t.Context(), "", "submit", path, "--wait")
			if code != exitOK {
				t.Fatalf("exit %d\n%s%s", code, out, errOut)
			}
			if !strings.Contains(out, "imported") || !strings.Contains(out, "1 completed") {
				t.Errorf("summary:\n%s", out)
			}
			if n := o.count(t, "customers"); n != 2 {
				t.Errorf("%d customers, want 2", n)
			}
			if n := o.count(t, "debt_accounts", "parent_id IS NOT NULL"); n != 2 {
				t.Errorf("%d nested accounts, want 2", n)
			}
			if _, err := os.Stat(path + ".bulkctl.json"); err != nil {
				t.Errorf("no state file beside the input: %v", err)
			}
		})
	}
}

func TestSubmitSplitsIntoBulksAndRunsOnce(t *testing.T) {
	t.Parallel()
	o := newOrg(t)
	path := write(t, "customers.csv", customersCSV("", 2500))
	code, out, errOut := o.bulkctl(t, t.Context(), "", "submit", path, "--wait")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if n := o.count(t, "bulks"); n != 3 {
		t.Fatalf("%d bulks, want 3", n)
	}
	for _, want := range []string{"count = 1000", "count = 500"} {
		if n := o.count(t, "bulks", want); (want == "count = 1000" && n != 2) || (want == "count = 500" && n != 1) {
			t.Errorf("%d bulks with %s", n, want)
		}
	}
	if n := o.count(t, "debt_accounts"); n != 5000 {
		t.Errorf("%d debt accounts, want 5000", n)
	}
	if !strings.Contains(out, "2500") || !strings.Contains(out, "3 completed") {
		t.Errorf("summary:\n%s", out)
	}

	// The same command again has nothing left to send.
	code, out, errOut = o.bulkctl(t, t.Context(), "", "submit", path, "--wait")
	if code != exitOK || !strings.Contains(errOut, "3 of 3 bulks were accepted by an earlier run") {
		t.Fatalf("again: exit %d\n%s%s", code, out, errOut)
	}
	if n := o.count(t, "bulks"); n != 3 {
		t.Fatalf("%d bulks after running again, want 3", n)
	}
	// Other options are another run, which the state file does not mix up.
	code, _, errOut = o.bulkctl(t, t.Context(), "", "submit", path, "--mode", "upsert")
	if code != exitError || !strings.Contains(errOut, "is of a run with other options") {
		t.Fatalf("other options: exit %d: %s", code, errOut)
	}
}

func TestSubmitRefusesBadInputBeforeSending(t *testing.T) {
	t.Parallel()
	good := customersCSV("", 3)
	lines := strings.Split(good, "\n")
	for _, tc := range []struct {
		name, content, want string
	}{
		{"unknown column", strings.Replace(good, "customer.email", "customer.mail", 1), `unknown columns "customer.mail"`},
		{"malformed line", strings.Join(append(lines[:3:3], "c-9,x", lines[3]), "\n"), "line 4: 2 fields, but the header has 9 columns"},
		{"customer not together", strings.Join([]string{lines[0], lines[1], lines[3], lines[2], ""}, "\n"),
			`line 4: customer "c-0"'s lines are not together: they start at line 2, and again here`},
		{"json syntax", "[\n{\"customer\":{}},\n{\"customer\"}\n]", "line 3: not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := newOrg(t)
			name := "in.csv"
			if strings.HasPrefix(tc.content, "[") {
				name = "in.json"
			}
			path := write(t, name, tc.content)
			code, out, errOut := o.bulkctl(t, t.Context(), "", "submit", path, "--wait")
			if code != exitError || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, want 1 saying %q:\n%s%s", code, tc.want, out, errOut)
			}
			if n := o.count(t, "bulks"); n != 0 {
				t.Fatalf("%d bulks sent", n)
			}
		})
	}

	t.Run("skip bad lines", func(t *testing.T) {
		t.Parallel()
		o := newOrg(t)
		path := write(t, "in.csv", strings.Join(append(lines[:3:3], "c-9,x", strings.Join(lines[3:], "\n")), "\n"))
		code, out, errOut := o.bulkctl(t, t.Context(), "", "submit", path, "--wait", "--skip-bad-lines")
		if code != exitOK || !strings.Contains(errOut, "line 4: 2 fields, but the header has 9 columns (malformed, left out)") {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		if n := o.count(t, "customers"); n != 3 {
			t.Fatalf("%d customers, want 3", n)
		}
	})
}

// front is a proxy in front of bulkd that counts the submissions it lets
// through; after sends the answer of the nth POST, to stop the client there.
type front struct {
	proxy *httputil.ReverseProxy
	posts atomic.Int32
	after func(n int32, w http.ResponseWriter) bool // true: the answer was dealt with
}

func newFront(t *testing.T, after func(n int32, w http.ResponseWriter) bool) string {
	target, _ := url.Parse(server.URL)
	f := &front{proxy: httputil.NewSingleHostReverseProxy(target), after: after}
	s := httptest.NewServer(f)
	t.Cleanup(s.Close)
	return s.URL
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/v1/bulk" {
		f.proxy.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	f.proxy.ServeHTTP(rec, r)
	if f.after(f.posts.Add(1), w) {
		return
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// checkImportedOnce checks that the organization has exactly the bulks of
// 500 customers in bulks of 100, each row imported once.
func checkImportedOnce(t *testing.T, o org) {
	t.Helper()
	if n := o.count(t, "bulks"); n != 5 {
		t.Errorf("%d bulks, want 5: none twice", n)
	}
	if n := o.count(t, "bulks", "status = 'completed'", "rows_failed = 0", "rows_succeeded = 100"); n != 5 {
		t.Errorf("%d bulks of 100 rows imported without errors, want 5", n)
	}
	if c, a := o.count(t, "customers"), o.count(t, "debt_accounts"); c != 500 || a != 1000 {
		t.Errorf("%d customers and %d debt accounts, want 500 and 1000", c, a)
	}
}

// TestSubmitResumesAfterAnInterruption: a run stopped after its second
// bulk was stored, before its answer arrived, is finished by the same
// command: the second bulk is the server's replay, no bulk is made twice.
func TestSubmitResumesAfterAnInterruption(t *testing.T) {
	t.Parallel()
	o := newOrg(t)
	path := write(t, "customers.csv", customersCSV("", 500))
	ctx, cancel := context.WithCancel(t.Context())
	base := newFront(t, func(n int32, w http.ResponseWriter) bool {
		if n == 2 {
			cancel() // the client stops, this answer lost
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	code, out, errOut := o.bulkctl(t, ctx, base, "submit", path, "--rows", "100", "--concurrency", "1", "--wait")
	if code != exitError || !strings.Contains(errOut, "interrupted; run the same command again") {
		t.Fatalf("interrupted run: exit %d\n%s%s", code, out, errOut)
	}
	if n := o.count(t, "bulks"); n != 2 {
		t.Fatalf("%d bulks stored by the interrupted run, want 2", n)
	}
	code, out, errOut = o.bulkctl(t, t.Context(), "", "submit", path, "--rows", "100", "--concurrency", "1", "--wait")
	if code != exitOK || !strings.Contains(errOut, "1 of 5 bulks were accepted by an earlier run") {
		t.Fatalf("run again: exit %d\n%s%s", code, out, errOut)
	}
	checkImportedOnce(t, o)
}

// TestSubmitResumesAfterAKill: the same with a bulkctl process killed
// (SIGKILL) while the answer of its third bulk is on its way.
func TestSubmitResumesAfterAKill(t *testing.T) {
	t.Parallel()
	bin, err := clienttest.Build(t.TempDir(), "cmd/bulkctl")
	if err != nil {
		t.Fatal(err)
	}
	o := newOrg(t)
	path := write(t, "customers.csv", customersCSV("", 500))
	var mu sync.Mutex
	var proc *os.Process
	base := newFront(t, func(n int32, w http.ResponseWriter) bool {
		if n == 3 {
			mu.Lock()
			proc.Kill()
			mu.Unlock()
			return true
		}
		return false
	})
	run := func(url string) (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(bin, "submit", path, "--rows", "100", "--concurrency", "1", "--wait")
		cmd.Env = append(os.Environ(), "BULKD_URL="+url, "BULKD_API_KEY="+o.key)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		mu.Lock()
		defer mu.Unlock()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		proc = cmd.Process
		return cmd, &out
	}
	cmd, out := run(base)
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(interface{ Signaled() bool }); !ok || !ws.Signaled() {
		t.Fatalf("bulkctl was not killed: %v\n%s", err, out)
	}
	if n := o.count(t, "bulks"); n != 3 {
		t.Fatalf("%d bulks stored before the kill, want 3", n)
	}
	cmd, out = run(server.URL)
	if err := cmd.Wait(); err != nil || !strings.Contains(out.String(), "2 of 5 bulks were accepted by an earlier run") {
		t.Fatalf("run again: %v\n%s", err, out)
	}
	checkImportedOnce(t, o)
}

// TestErrorsAndTheResubmitFile: a run with failed rows exits 2; errors
// reports them in each format with their lines; the resubmit file is the
// input's own lines of those rows, which, fixed, import.
func TestErrorsAndTheResubmitFile(t *testing.T) {
	t.Parallel()
	o := newOrg(t)
	content := customersCSV("", 6, 1, 4)
	path := write(t, "customers.csv", content)
	code, out, errOut := o.bulkctl(t, t.Context(), "", "submit", path, "--wait")
	if code != exitRowsFailed || !strings.Contains(errOut, "2 rows failed") || !strings.Contains(errOut, "bulkctl errors --input "+path) {
		t.Fatalf("exit %d, want 2\n%s%s", code, out, errOut)
	}

	code, out, errOut = o.bulkctl(t, t.Context(), "", "errors", "--input", path, "--format", "csv")
	if code != exitOK {
		t.Fatalf("errors --format csv: exit %d: %s", code, errOut)
	}
	records, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(records) != 7 { // per failed row: its customer's message, then its two accounts'

		t.Fatalf("csv report %q: %v", out, err)
	}
	if h := strings.Join(records[0], ","); h != "bulk_id,row,line,section,index,external_id,field,message" {
		t.Errorf("header %s", h)
	}
	if r := records[1]; r[1] != "2" || r[2] != "4" || r[3] != "customer" || r[5] != "c-1" || r[6] != "email" ||
		r[7] != "The email field must be a valid email address." {
		t.Errorf("first message %q", r)
	}
	if r := records[3]; r[3] != "debt_accounts" || r[4] != "1" || r[5] != "c-1-a" || r[6] != "customer" {
		t.Errorf("the child account's message %q", r)
	}
	if r := records[4]; r[1] != "5" || r[2] != "10" || r[5] != "c-4" {
		t.Errorf("the second row's message %q", r)
	}

	report := filepath.Join(t.TempDir(), "errors.json")
	code, _, errOut = o.bulkctl(t, t.Context(), "", "errors", "--input", path, "--format", "json", "-o", report)
	b, _ := os.ReadFile(report)
	var rows []struct {
		BulkID  string          `json:"bulk_id"`
		Row     int             `json:"row"`
		Line    int             `json:"line"`
		Payload json.RawMessage `json:"payload"`
		Errors  client.RowErrors
	}
	if code != exitOK || json.Unmarshal(b, &rows) != nil || len(rows) != 2 || rows[1].Line != 10 || len(rows[1].Errors.Customer) != 1 {
		t.Fatalf("json report (exit %d, %s): %s", code, errOut, b)
	}

	code, out, _ = o.bulkctl(t, t.Context(), "", "errors", rows[0].BulkID)
	if code != exitOK || !strings.Contains(out, "SECTION") || strings.Count(out, "The email field must be a valid email address.") != 2 {
		t.Fatalf("table report: %s", out)
	}

	fix := filepath.Join(t.TempDir(), "fix.csv")
	code, _, errOut = o.bulkctl(t, t.Context(), "", "errors", "--input", path, "--resubmit-file", fix, "-o", os.DevNull)
	got, _ := os.ReadFile(fix)
	lines := strings.Split(content, "\n")
	want := strings.Join([]string{lines[0], lines[3], lines[4], lines[9], lines[10], ""}, "\n")
	if code != exitOK || string(got) != want || !strings.Contains(errOut, "wrote 2 rows") {
		t.Fatalf("resubmit file (exit %d, %s):\n%s\nwant:\n%s", code, errOut, got, want)
	}
	fixed := strings.ReplaceAll(string(got), "not-an-email", "fixed@example.com")
	if err := os.WriteFile(fix, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = o.bulkctl(t, t.Context(), "", "submit", fix, "--mode", "upsert", "--wait")
	if code != exitOK {
		t.Fatalf("the fixed rows: exit %d\n%s%s", code, out, errOut)
	}
	if n := o.count(t, "customers"); n != 6 {
		t.Errorf("%d customers, want 6", n)
	}

	// Without the input, the rows are written back from what the server
	// kept, in the format of the file's extension.
	for _, name := range []string{"fix.ndjson", "fix.json", "again.csv"} {
		out := filepath.Join(t.TempDir(), name)
		code, _, errOut := o.bulkctl(t, t.Context(), "", "errors", rows[0].BulkID, "--resubmit-file", out, "-o", os.DevNull)
		b, _ := os.ReadFile(out)
		if code != exitOK || !strings.Contains(string(b), "not-an-email") {
			t.Errorf("%s (exit %d, %s):\n%s", name, code, errOut, b)
		}
		format, _ := formatOf(out, "")
		rows, _, err := readAll(t, format, string(b))
		if err != nil || len(rows) != 2 || !strings.Contains(string(rows[1].JSON), `"email":"not-an-email"`) {
			t.Errorf("%s reads back as %d rows: %v", name, len(rows), err)
		}
	}
}

func TestBulkCommands(t *testing.T) {
	t.Parallel()
	o := newOrg(t)
	path := write(t, "in.csv", customersCSV("", 2, 1))
	if code, out, errOut := o.bulkctl(t, t.Context(), "", "submit", path, "--wait"); code != exitRowsFailed {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var st state
	b, _ := os.ReadFile(path + ".bulkctl.json")
	if err := json.Unmarshal(b, &st); err != nil || len(st.Entries) != 1 {
		t.Fatalf("state %s: %v", b, err)
	}
	id := st.Entries[0].BulkID

	code, out, _ := o.bulkctl(t, t.Context(), "", "status", id)
	if code != exitOK || !strings.Contains(out, "completed") || !strings.Contains(out, "2: 1 imported, 1 failed") {
		t.Errorf("status:\n%s", out)
	}
	code, out, _ = o.bulkctl(t, t.Context(), "", "list", "--status", "completed")
	if code != exitOK || !strings.Contains(out, id) {
		t.Errorf("list:\n%s", out)
	}
	code, out, _ = o.bulkctl(t, t.Context(), "", "list", "--status", "pending")
	if code != exitOK || strings.Contains(out, id) {
		t.Errorf("list of pending:\n%s", out)
	}
	code, out, _ = o.bulkctl(t, t.Context(), "", "results", id)
	if code != exitOK || !strings.Contains(out, "c-0") || !strings.Contains(out, "failed") || !strings.Contains(out, "c-0-a created") {
		t.Errorf("results:\n%s", out)
	}
	code, _, errOut := o.bulkctl(t, t.Context(), "", "cancel", id)
	if code != exitError || !strings.Contains(errOut, "only a pending or processing bulk can be canceled") {
		t.Errorf("cancel of a completed bulk: exit %d, %s", code, errOut)
	}
	code, _, errOut = org{}.bulkctl(t, t.Context(), "", "status", id)
	if code != exitError || !strings.Contains(errOut, "BULKD_API_KEY") {
		t.Errorf("no key: exit %d, %s", code, errOut)
	}
	code, _, errOut = o.bulkctl(t, t.Context(), "", "bogus")
	if code != exitError || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: exit %d, %s", code, errOut)
	}
}

// TestSubmitProgress: on a terminal the bar is drawn (mpb; off a real
// terminal it only stops at the end), and without --wait the summary says
// what was accepted and the exit status is 0.
func TestSubmitProgress(t *testing.T) {
	t.Parallel()
	o := newOrg(t)
	path := write(t, "in.ndjson", `{"customer":{"external_id":"c-1","name":"Ann"},"location":{"external_id":"l"},"debt_accounts":[]}`+"\n")
	var out, errOut bytes.Buffer
	c := &cli{stdout: &out, stderr: &errOut, terminal: true, progressEvery: time.Hour,
		getenv: func(k string) string { return map[string]string{"BULKD_URL": server.URL, "BULKD_API_KEY": o.key}[k] }}
	if code := c.run(t.Context(), []string{"submit", "--wait", path}); code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, &out, &errOut)
	}
	if !strings.Contains(out.String(), "1 completed") {
		t.Errorf("summary:\n%s", &out)
	}

	path = write(t, "more.ndjson", `{"customer":{"external_id":"c-2","name":"Bo"},"location":{"external_id":"l"},"debt_accounts":[]}`+"\n")
	code, stdout, stderr := o.bulkctl(t, t.Context(), "", "submit", path)
	if code != exitOK || !strings.Contains(stdout, "accepted bulks") || !strings.Contains(stderr, "submitted 1/1 rows (1 bulks)") {
		t.Fatalf("without --wait: exit %d\n%s%s", code, stdout, stderr)
	}
}
