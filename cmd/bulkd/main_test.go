package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/redisconn"
	"github.com/bulkd/bulkd/pkg/smtptest"
	"github.com/bulkd/bulkd/pkg/testenv"
	"github.com/bulkd/bulkd/workers/tasks"
)

// service is a running `bulkd serve`, wired exactly as main wires it, on a
// database, Redis database and SMTP server of the test's own.
type service struct {
	t        testing.TB
	base     string
	env      map[string]string
	smtp     *smtptest.Server
	db       testenv.Database // the database bulkd runs on, for checking what it wrote
	logs     *syncBuffer
	redisOpt asynq.RedisConnOpt
	// stop sends the process what SIGTERM sends main; stopped reports run's
	// result once it returns.
	stop    context.CancelFunc
	stopped chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startService starts `bulkd serve`; overrides are environment variables as
// "NAME=value" that replace the test defaults.
func startService(t testing.TB, overrides ...string) *service {
	t.Helper()
	return startMode(t, "serve", overrides...)
}

// startMode starts `bulkd <mode>` (serve, api or worker) in this process.
func startMode(t testing.TB, mode string, overrides ...string) *service {
	t.Helper()
	s := newService(t, overrides...)
	s.start(mode)
	return s
}

// newService prepares what bulkd runs on — a database, a Redis database and
// an SMTP server of the test's own — and its environment, without starting it.
func newService(t testing.TB, overrides ...string) *service {
	t.Helper()
	// The SMTP server listens first, so the address picked for bulkd is not
	// the one it gets.
	smtp := smtptest.NewServer(t, smtptest.Options{})
	addr := freeAddr(t)
	s := &service{t: t, base: "http://" + addr, db: testenv.NewDatabase(t), smtp: smtp, logs: &syncBuffer{}}
	s.env = map[string]string{
		"DATABASE_URL":   s.db.URL,
		"HTTP_ADDR":      addr,
		"BASE_URL":       "https://bulkd.example.com",
		"SMTP_HOST":      s.smtp.Host(),
		"SMTP_PORT":      fmt.Sprint(s.smtp.Port()),
		"SMTP_TLS":       "none",
		"MAIL_FROM":      "bulkd@example.com",
		"ADMIN_PASSWORD": "queue-secret",
		"MAX_BODY_BYTES": fmt.Sprint(1 << 20),
		// A key of the tests' own; webhooks go to test servers on loopback
		// only where a test allows it.
		"WEBHOOK_SECRET_KEY": "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdC0=",
	}
	for _, kv := range overrides {
		k, v, _ := strings.Cut(kv, "=")
		s.env[k] = v
	}
	if s.env["REDIS_URL"] == "" {
		s.env["REDIS_URL"] = testenv.RedisURL(t)
	}
	conn, err := redisconn.Parse(s.env["REDIS_URL"])
	if err != nil {
		t.Fatal(err)
	}
	s.redisOpt = conn.Asynq()
	return s
}

// start runs `bulkd <mode>` in this process, wired exactly as main wires it,
// and waits until it answers /healthz. The port newService picked is free
// only until something binds it: another test's listener may take it first,
// and then bulkd starts again on another.
func (s *service) start(mode string) {
	t := s.t
	t.Helper()
	for attempt := 1; ; attempt++ {
		err := s.startOnce(mode)
		if err == nil {
			return
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 3 {
			t.Fatalf("bulkd %s exited: %v\n%s", mode, err, s.logs)
		}
		addr := freeAddr(t)
		s.base, s.env["HTTP_ADDR"] = "http://"+addr, addr
	}
}

// startOnce starts bulkd and returns once it answers, or with the error it
// exited with before it did.
func (s *service) startOnce(mode string) error {
	t := s.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	s.stop, s.stopped = cancel, done
	go func() { done <- run(ctx, []string{mode}, s.getenv, io.Discard, s.logs) }()
	exited := false
	t.Cleanup(func() {
		cancel()
		if exited {
			return
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("bulkd %s: %v", mode, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("bulkd %s did not stop within 30 s of SIGTERM", mode)
		}
		s.assertNoPersonalDataInLogs()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case err := <-done:
			exited = true
			if err == nil {
				err = errors.New("stopped before it answered")
			}
			return err
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("bulkd did not start: %v\n%s", err, s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freeAddr is a loopback address no listener holds at the moment.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (s *service) getenv(k string) string { return s.env[k] }

// cli runs a bulkd subcommand against the service's database and returns
// what it printed.
func (s *service) cli(args ...string) string {
	s.t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), args, s.getenv, &out, io.Discard); err != nil {
		s.t.Fatalf("bulkd %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(out.String())
}

// newOrg creates an organization and an API key for it, as the README does.
func (s *service) newOrg(name, email string) (orgID, key string) {
	orgID = s.cli("org", "create", "--name", name, "--notify-email", email)
	return orgID, s.cli("apikey", "create", "--org", orgID)
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("answer is not JSON (%d): %s", r.status, r.body)
	}
	return v
}

// do sends a request with the key, if any, as JSON.
func (s *service) do(method, path, key string, body io.Reader) response {
	s.t.Helper()
	header := map[string]string{"Content-Type": "application/json"}
	if key != "" {
		header["Authorization"] = "Bearer " + key
	}
	return s.request(method, path, header, body)
}

// submit posts a bulk and returns its id, checking the 202 answer.
func (s *service) submit(key string, body []byte) string {
	s.t.Helper()
	r := s.do(http.MethodPost, "/api/v1/bulk", key, bytes.NewReader(body))
	if r.status != http.StatusAccepted {
		s.t.Fatalf("POST /api/v1/bulk: %d %s", r.status, r.body)
	}
	data := r.json(s.t)["data"].(map[string]any)
	id := data["bulk_id"].(string)
	if data["status"] != "pending" || r.header.Get("Location") != "/api/v1/bulk/"+id {
		s.t.Errorf("submit answer: %s, Location %q", r.body, r.header.Get("Location"))
	}
	return id
}

// waitCompleted polls the bulk until it is completed and returns it.
func (s *service) waitCompleted(key, id string) map[string]any {
	s.t.Helper()
	return s.waitCompletedWithin(key, id, 30*time.Second)
}

func (s *service) waitCompletedWithin(key, id string, within time.Duration) map[string]any {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := s.do(http.MethodGet, "/api/v1/bulk/"+id, key, nil)
		if r.status != http.StatusOK {
			s.t.Fatalf("GET bulk: %d %s", r.status, r.body)
		}
		data := r.json(s.t)["data"].(map[string]any)
		if data["status"] == "completed" {
			return data
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("bulk %s still %v after %v\n%s", id, data["status"], within, s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// assertNoPersonalDataInLogs checks the logs for the seed's personal data.
func (s *service) assertNoPersonalDataInLogs() {
	s.t.Helper()
	assertNoPersonalData(s.t, s.logs.String())
}

func assertNoPersonalData(t testing.TB, logs string) {
	t.Helper()
	// No payload reaches the logs: none of the seed's personal values, nor the
	// names of the fields that would carry them.
	for _, secret := range []string{"tatum.marks@example.com", "+1-489-899-2182", "date_of_birth", "ssn_last4", "Tremaine",
		"ops@acme.example", "bk_", "queue-secret"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
}

func TestSeedExampleEndToEnd(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg("Acme", "ops@acme.example")

	first := s.submit(key, testenv.SeedExample(t))
	got := s.waitCompleted(key, first)
	for _, field := range []string{"created_at", "started_at", "completed_at"} {
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(got[field])); err != nil {
			t.Errorf("%s = %v, want a timestamp", field, got[field])
		}
	}
	if got["count"] != 1.0 || got["rows_succeeded"] != 1.0 || got["rows_failed"] != 0.0 {
		t.Errorf("first bulk: %v", got)
	}
	if r := s.do(http.MethodGet, "/api/v1/bulk/"+first+"/errors", key, nil); r.status != 200 || string(r.body) != `{"data":[],"status":"completed"}`+"\n" {
		t.Errorf("errors of a clean bulk: %d %s", r.status, r.body)
	}

	// The same submission again: customer and location reused, every account taken.
	second := s.submit(key, testenv.SeedExample(t))
	got = s.waitCompleted(key, second)
	if got["rows_succeeded"] != 0.0 || got["rows_failed"] != 1.0 {
		t.Errorf("second bulk: %v", got)
	}
	if n := s.db.Count(t, `SELECT count(*) FROM customers`) + s.db.Count(t, `SELECT count(*) FROM locations`); n != 2 {
		t.Errorf("customer and location written again: %d records", n)
	}
	if n := s.db.Count(t, `SELECT count(*) FROM debt_accounts WHERE bulk_id = $1`, first); n != 6 {
		t.Errorf("first bulk owns %d accounts, want 6", n)
	}
	r := s.do(http.MethodGet, "/api/v1/bulk/"+second+"/errors", key, nil)
	var report struct {
		Data []struct {
			ID      int             `json:"id"`
			Payload json.RawMessage `json:"payload"`
			Errors  bulk.RowErrors  `json:"errors"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &report); err != nil || len(report.Data) != 1 {
		t.Fatalf("errors report: %v %s", err, r.body)
	}
	row := report.Data[0]
	if row.ID != 1 || len(row.Errors.Customer) != 0 || len(row.Errors.Location) != 0 {
		t.Errorf("row %d: customer %v, location %v", row.ID, row.Errors.Customer, row.Errors.Location)
	}
	var seed []json.RawMessage
	_ = json.Unmarshal(testenv.SeedExample(t), &seed)
	var wantPayload, gotPayload any
	_ = json.Unmarshal(seed[0], &wantPayload)
	_ = json.Unmarshal(row.Payload, &gotPayload)
	if diff := cmp.Diff(wantPayload, gotPayload); diff != "" {
		t.Errorf("payload is not the row as submitted:\n%s", diff)
	}
	taken := append(row.Errors.ParentDebtAccounts, row.Errors.DebtAccounts...)
	if len(taken) != 6 {
		t.Fatalf("want 6 taken accounts, got %d: %s", len(taken), r.body)
	}
	for _, a := range taken {
		if diff := cmp.Diff(bulk.Messages{"external_id": {"The external id has already been taken."}}, a.Messages); diff != "" {
			t.Errorf("%s: %s", a.Data, diff)
		}
	}

	// One email per bulk, to the organization, naming the counts and the errors URL.
	msgs := s.smtp.WaitForMessages(t, 2, 30*time.Second)
	bySubject := map[string]smtptest.Parsed{}
	for _, m := range msgs {
		if diff := cmp.Diff([]string{"ops@acme.example"}, m.To); diff != "" {
			t.Errorf("recipient: %s", diff)
		}
		p := m.Parse(t)
		bySubject[p.Subject] = p
	}
	for id, subject := range map[string]string{
		first:  "Bulk " + first + " completed: 1 of 1 rows fully imported, 0 with errors",
		second: "Bulk " + second + " completed: 0 of 1 rows fully imported, 1 with errors",
	} {
		p, ok := bySubject[subject]
		if !ok {
			t.Errorf("no email %q; got %v", subject, keys(bySubject))
			continue
		}
		url := "https://bulkd.example.com/api/v1/bulk/" + id + "/errors"
		if !strings.Contains(p.Text, url) || !strings.Contains(p.HTML, url) {
			t.Errorf("email for %s does not link %s:\n%s", id, url, p.Text)
		}
	}

	// A duplicated email task and a duplicated import task change nothing.
	client := asynq.NewClient(s.redisOpt)
	defer client.Close()
	var emailID uuid.UUID
	if err := s.db.Conn.QueryRow(t.Context(), `SELECT id FROM deliveries WHERE bulk_id = $1`, first).Scan(&emailID); err != nil {
		t.Fatal(err)
	}
	emailTask, err := tasks.NewDeliveryTask(emailID, "email")
	if err != nil {
		t.Fatal(err)
	}
	importTask, err := tasks.NewImportTask(uuid.MustParse(first))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range []*asynq.Task{emailTask, importTask} {
		// A new task id: asynq runs it even while the first is retained.
		if _, err := client.Enqueue(task, asynq.TaskID(task.Type()+"-again")); err != nil {
			t.Fatalf("enqueue duplicate %s: %v", task.Type(), err)
		}
	}
	inspector := asynq.NewInspector(s.redisOpt)
	defer inspector.Close()
	waitQueuesEmpty(t, inspector)
	if n := len(s.smtp.Messages()); n != 2 {
		t.Errorf("%d emails after duplicate tasks, want 2", n)
	}
	if n := s.db.Count(t, `SELECT count(*) FROM debt_accounts`); n != 6 {
		t.Errorf("%d accounts after a duplicate import task, want 6", n)
	}
}

// A row with three good accounts and one bad one writes its location, its
// customer and the three accounts: GET and the email say so, instead of
// "0 of 1 rows imported".
func TestPartialRowCountsWhatWasWritten(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg("Acme", "ops@acme.example")
	account := func(id, balance string) string {
		return `{"external_id":"` + id + `","balance":` + balance + `,"billing_type":["full-payment"]}`
	}
	body := `[{"customer":{"external_id":"c1","name":"Ann"},"location":{"external_id":"l1"},"debt_accounts":[` +
		account("a1", "1") + "," + account("a2", "2") + "," + account("a3", "3") + "," + account("bad", "-1") + `]}]`
	id := s.submit(key, []byte(body))
	got := s.waitCompleted(key, id)
	if got["rows_succeeded"] != 0.0 || got["rows_failed"] != 1.0 {
		t.Errorf("rows: %v", got)
	}
	want := map[string]any{"locations": 1.0, "customers": 1.0, "debt_accounts": 3.0}
	if diff := cmp.Diff(want, got["records_written"]); diff != "" {
		t.Errorf("records_written (-want +got):\n%s", diff)
	}
	if n := s.db.Count(t, `SELECT count(*) FROM debt_accounts WHERE bulk_id = $1`, id); n != 3 {
		t.Errorf("%d accounts stored, want 3", n)
	}
	msgs := s.smtp.WaitForMessages(t, 1, 30*time.Second)
	p := msgs[0].Parse(t)
	if want := "Bulk " + id + " completed: 0 of 1 rows fully imported, 1 with errors"; p.Subject != want {
		t.Errorf("subject %q, want %q", p.Subject, want)
	}
	for _, body := range []string{p.Text, p.HTML} {
		if !strings.Contains(body, "5 records (1 location, 1 customer, 3 debt accounts)") {
			t.Errorf("email does not say what was written:\n%s", body)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// waitQueuesEmpty waits until no task is pending, scheduled or running.
func waitQueuesEmpty(t *testing.T, in *asynq.Inspector) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var state []string
	for time.Now().Before(deadline) {
		busy := 0
		state = state[:0]
		for _, q := range []string{tasks.QueueImports, tasks.QueueNotifications} {
			info, err := in.GetQueueInfo(q)
			if err != nil {
				busy++ // the queue does not exist yet
				state = append(state, fmt.Sprintf("%s: %v", q, err))
				continue
			}
			busy += info.Pending + info.Active + info.Scheduled + info.Retry
			state = append(state, fmt.Sprintf("%s: %d pending, %d active, %d scheduled, %d to retry", q, info.Pending, info.Active, info.Scheduled, info.Retry))
		}
		if busy == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("queues still busy after 30 s: %s", strings.Join(state, "; "))
}

func TestRequestErrorsStoreNothing(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg("Acme", "ops@acme.example")
	tooMany := "[" + strings.Repeat(`{},`, 1000) + "{}]"
	tooLarge := `[{"customer":{"name":"` + strings.Repeat("x", 1<<20) + `"}}]`
	tests := []struct {
		name   string
		key    string
		body   string
		status int
		field  string
	}{
		{"no key", "", `[{}]`, 401, "authorization"},
		{"unknown key", "bk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", `[{}]`, 401, "authorization"},
		{"not JSON", key, `customer=1`, 400, "body"},
		{"truncated JSON", key, `[{"customer":`, 400, "body"},
		{"object instead of array", key, `{"customer":{}}`, 400, "body"},
		{"empty array", key, `[]`, 422, "body"},
		{"over 1000 rows", key, tooMany, 422, "body"},
		{"body over the limit", key, tooLarge, 413, "body"},
		{"invalid UTF-8", key, "[{\"customer\":{\"name\":\"\xff\"}}]", 400, "body"},
		{"raw NUL byte in a string", key, "[{\"customer\":{\"name\":\"a\x00b\"}}]", 400, "body"},
		{"nested 100 000 deep", key, "[" + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + "]", 400, "body"},
		{"two arrays", key, `[{}][{}]`, 400, "body"},
		{"a number", key, `1e309`, 400, "body"},
		{"101 debt accounts", key, `[{},{"debt_accounts":[` + strings.Repeat(`{},`, 100) + `{}]}]`, 422, "#/1/debt_accounts"},
		{"101 parent debt accounts", key, `[{"Parent_Debt_Accounts":[` + strings.Repeat(`{},`, 100) + `{}]}]`, 422, "#/0/parent_debt_accounts"},
		{"a row nested 33 deep", key, "[" + strings.Repeat("[", 33) + strings.Repeat("]", 33) + "]", 422, "#/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(http.MethodPost, "/api/v1/bulk", tt.key, strings.NewReader(tt.body))
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			var e struct {
				Message string              `json:"message"`
				Errors  map[string][]string `json:"errors"`
			}
			if err := json.Unmarshal(r.body, &e); err != nil || e.Message == "" || len(e.Errors[tt.field]) == 0 {
				t.Errorf("want {message, errors.%s}, got %s", tt.field, r.body)
			}
		})
	}
	if n := s.db.Count(t, `SELECT count(*) FROM bulks`) + s.db.Count(t, `SELECT count(*) FROM bulk_rows`); n != 0 {
		t.Errorf("rejected requests stored %d records", n)
	}
}

func TestBulksAreVisibleOnlyToTheirOrganization(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, keyA := s.newOrg("A", "a@example.com")
	_, keyB := s.newOrg("B", "b@example.com")
	id := s.submit(keyA, testenv.SeedExample(t))
	s.waitCompleted(keyA, id)
	for _, path := range []string{"/api/v1/bulk/" + id, "/api/v1/bulk/" + id + "/errors",
		"/api/v1/bulk/" + uuid.NewString(), "/api/v1/bulk/not-a-uuid/errors"} {
		r := s.do(http.MethodGet, path, keyB, nil)
		if r.status != http.StatusNotFound || r.json(t)["message"] == nil {
			t.Errorf("GET %s with another organization's key: %d %s", path, r.status, r.body)
		}
	}
	revoked := s.cli("apikey", "revoke", "--prefix", keyA[:12])
	if revoked != "revoked" {
		t.Errorf("apikey revoke printed %q", revoked)
	}
	if r := s.do(http.MethodGet, "/api/v1/bulk/"+id, keyA, nil); r.status != http.StatusUnauthorized {
		t.Errorf("revoked key: %d", r.status)
	}
}

func TestOperationalEndpoints(t *testing.T) {
	t.Parallel()
	s := startService(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := s.do(http.MethodGet, path, "", nil); r.status != 200 {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
	r := s.do(http.MethodGet, "/admin/queues", "", nil)
	if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != `Basic realm="bulkd queues"` {
		t.Errorf("queue UI without credentials: %d, WWW-Authenticate %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	req, _ := http.NewRequest(http.MethodGet, s.base+"/admin/queues", nil)
	req.SetBasicAuth("admin", "wrong")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("queue UI with a wrong password: %v %v", resp.StatusCode, err)
	}
	req.SetBasicAuth("admin", "queue-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<html") {
		t.Errorf("queue UI with credentials: %d %.200s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("security headers missing: %v", resp.Header)
	}
}

func TestHostileRowsBecomeRowErrorsNotFailures(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg("Acme", "ops@acme.example")
	manyKeys := make([]string, 10000)
	for i := range manyKeys {
		manyKeys[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	row := func(customer, account string) string {
		return `{"customer":` + customer + `,"location":{"external_id":"loc"},"debt_accounts":[` + account + `]}`
	}
	// A failed debt account as deep as a row may nest (the row, its
	// debt_accounts and the account are 3 levels): its report wraps it
	// deeper still, and must read back.
	deepBalance := strings.Repeat("[", bulk.MaxDepth-3) + strings.Repeat("]", bulk.MaxDepth-3)
	deepest := `{"external_id":"a13","balance":` + deepBalance + `,"billing_type":["full-payment"]}`
	okAccount := func(id string) string {
		return `{"external_id":"` + id + `","balance":1,"billing_type":["full-payment"]}`
	}
	rows := []struct {
		json string
		ok   bool
	}{
		{row(`{"external_id":"nul\u0000id","name":"x"}`, okAccount("a1")), false},
		{row(`{"external_id":"c2","name":"x","metadata":{"lone":"\ud800","nul":"a\u0000"}}`, okAccount("a2")), false},
		{row(`{"external_id":"c3","name":"x","metadata":{"lone":"\ud800 surrogate","big":1e308}}`, okAccount("a3")), true},
		{row(`{"external_id":"c4","name":"x","metadata":{"huge":1e309}}`, okAccount("a4")), false},
		{row(`{"external_id":"c5","name":"x"}`, `{"external_id":"a5","balance":1e309,"billing_type":["full-payment"]}`), false},
		{row(`{"external_id":"c6","name":"<script>alert(1)</script>'; DROP TABLE customers; --"}`, okAccount("a6")), true},
		{row(`{"external_id":"c7","name":"first","name":"second","ssn_last4":-0}`, okAccount("a7")), false},
		{row(`{"external_id":"c8","name":"x","metadata":{`+strings.Join(manyKeys, ",")+`}}`, okAccount("a8")), false},
		{row(`{"external_id":["c9"],"name":{"first":"x"},"email":12,"date_of_birth":true}`, `"not an account"`), false},
		{row(`{"external_id":"c10","name":"`+strings.Repeat("é", 300)+`"}`, okAccount("a10")), false},
		{strings.Repeat("[", bulk.MaxDepth) + strings.Repeat("]", bulk.MaxDepth), false}, // the deepest row accepted
		{row(`{"external_id":"c12","name":"-0 balance"}`, `{"external_id":"a12","balance":-0,"current_balance":"0.10","billing_type":["settlement"]}`), true},
		{row(`{"external_id":"c13","name":"x"}`, deepest), false},
		{row(`{"external_id":"c14","name":"x"}`, `{"external_id":"a14","balance":1,"billing_type":["full-payment"],"metadata":{`+strings.Join(manyKeys[:bulk.MaxMetadataKeys+1], ",")+`}}`), false},
	}
	parts := make([]string, len(rows))
	wantFailed := 0
	for i, r := range rows {
		parts[i] = r.json
		if !r.ok {
			wantFailed++
		}
	}
	id := s.submit(key, []byte("["+strings.Join(parts, ",")+"]"))
	got := s.waitCompleted(key, id)
	if got["rows_failed"] != float64(wantFailed) || got["rows_succeeded"] != float64(len(rows)-wantFailed) {
		t.Errorf("rows succeeded %v, failed %v; want %d, %d", got["rows_succeeded"], got["rows_failed"], len(rows)-wantFailed, wantFailed)
	}
	r := s.do(http.MethodGet, "/api/v1/bulk/"+id+"/errors", key, nil)
	var report struct {
		Data []struct {
			ID     int `json:"id"`
			Errors struct {
				DebtAccounts []struct {
					Data     json.RawMessage     `json:"data"`
					Messages map[string][]string `json:"messages"`
				} `json:"debt_accounts"`
			} `json:"errors"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &report); err != nil || r.status != 200 {
		t.Fatalf("errors report: %d %v", r.status, err)
	}
	for _, d := range report.Data {
		if d.ID != 13 {
			continue
		}
		if len(d.Errors.DebtAccounts) != 1 || !jsonEqual(t, d.Errors.DebtAccounts[0].Data, []byte(deepest)) ||
			d.Errors.DebtAccounts[0].Messages["balance"] == nil {
			t.Errorf("the deepest failed account did not come back intact: %s", r.body)
		}
	}
	var failedRows []int
	for _, d := range report.Data {
		failedRows = append(failedRows, d.ID)
	}
	var want []int
	for i, r := range rows {
		if !r.ok {
			want = append(want, i+1)
		}
	}
	if diff := cmp.Diff(want, failedRows); diff != "" {
		t.Errorf("failed rows (-want +got):\n%s", diff)
	}
	if n := s.db.Count(t, `SELECT count(*) FROM customers WHERE name = $1`, "<script>alert(1)</script>'; DROP TABLE customers; --"); n != 1 {
		t.Errorf("SQL and HTML in strings must be stored literally, found %d", n)
	}
	if n := s.db.Count(t, `SELECT count(*) FROM debt_accounts WHERE external_id = 'a12' AND balance = 0 AND current_balance = 0.10`); n != 1 {
		t.Errorf("-0 and a numeric string balance not stored exactly")
	}
}

// jsonEqual tells whether a and b hold the same JSON value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%v: %s", err, a)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return reflect.DeepEqual(va, vb)
}

func TestSubmitSucceedsWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: Redis is down for this API process.
	s := startMode(t, "api", "REDIS_URL=redis://127.0.0.1:1/0")
	_, key := s.newOrg("Acme", "ops@acme.example")

	r := s.do(http.MethodGet, "/readyz", "", nil)
	var ready struct {
		Errors map[string][]string `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &ready); err != nil || r.status != http.StatusServiceUnavailable ||
		ready.Errors["redis"] == nil || ready.Errors["postgres"] != nil {
		t.Errorf("/readyz with Redis down: %d %s", r.status, r.body)
	}
	// The bulk is durable in Postgres before the answer; it stays pending
	// for a worker's reconciler to queue once Redis is back.
	id := s.submit(key, testenv.SeedExample(t))
	if n := s.db.Count(t, `SELECT count(*) FROM bulks WHERE id = $1 AND status = 'pending'`, id); n != 1 {
		t.Errorf("bulk not stored as pending")
	}
	if n := s.db.Count(t, `SELECT count(*) FROM bulk_rows WHERE bulk_id = $1`, id); n != 1 {
		t.Errorf("rows not stored")
	}
}

func TestShutdownFinishesRequestsInFlight(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg("Acme", "ops@acme.example")
	body := testenv.SeedExample(t)

	// A submission whose body is still arriving when SIGTERM comes.
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, s.base+"/api/v1/bulk", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	answered := make(chan response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- response{status: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answered <- response{status: resp.StatusCode, body: b}
	}()
	if _, err := pw.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the server start reading the request

	s.stop()
	time.Sleep(200 * time.Millisecond) // shutdown under way: new connections refused
	if _, err := http.Get(s.base + "/healthz"); err == nil {
		t.Errorf("a new request was served after SIGTERM")
	}
	if _, err := pw.Write(body[len(body)/2:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	r := <-answered
	if r.status != http.StatusAccepted {
		t.Fatalf("request in flight at SIGTERM: %d %s", r.status, r.body)
	}
	if err := <-s.stopped; err != nil {
		t.Errorf("bulkd serve after SIGTERM: %v", err)
	}
	s.stopped <- nil // for the cleanup, which waits on it too
	if n := s.db.Count(t, `SELECT count(*) FROM bulks`); n != 1 {
		t.Errorf("%d bulks stored, want the one in flight", n)
	}
}

func TestCommandLineErrors(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": testenv.DatabaseURL(t)}
	for _, args := range [][]string{
		{"org", "create", "--name", "Acme"},
		{"org", "create", "--name", "Acme", "--notify-email", "not an address"},
		{"apikey", "create", "--org", "nope"},
		{"apikey", "create", "--org", uuid.NewString()},
		{"apikey", "revoke", "--prefix", "bk_unknown00"},
		{"frobnicate"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), args, func(k string) string { return env[k] }, &out, io.Discard)
		if err == nil || out.Len() != 0 {
			t.Errorf("bulkd %s: err %v, printed %q; want an error and nothing printed", strings.Join(args, " "), err, out.String())
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), nil, func(string) string { return "" }, &out, io.Discard); err != nil || !strings.Contains(out.String(), "usage: bulkd") {
		t.Errorf("bulkd without arguments: %v %q", err, out.String())
	}
	if err := run(context.Background(), []string{"serve"}, func(k string) string {
		return map[string]string{"WORKER_CONCURRENCY": "many"}[k]
	}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "WORKER_CONCURRENCY") {
		t.Errorf("a bad variable must stop start-up naming it: %v", err)
	}
	// The mail settings stop every mode, api included, though only a worker sends.
	for _, bad := range []map[string]string{
		{"MAIL_FROM": "not an address"},
		{"SMTP_PASSWORD": "secret", "SMTP_HOST": "smtp.example.com"},
	} {
		for _, mode := range []string{"api", "worker", "serve"} {
			err := run(context.Background(), []string{mode}, func(k string) string { return bad[k] }, io.Discard, io.Discard)
			for name := range bad {
				if name == "SMTP_HOST" {
					continue
				}
				if err == nil || !strings.Contains(err.Error(), name) {
					t.Errorf("bulkd %s with %v: %v, want an error naming %s", mode, bad, err, name)
				}
			}
		}
	}

	// apikey revoke takes the exact prefix or the whole key; a longer prefix
	// whose first 12 characters are right, or a whole key that is wrong,
	// revokes nothing.
	cli := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), args, func(k string) string { return env[k] }, &out, io.Discard)
		return strings.TrimSpace(out.String()), err
	}
	orgID, err := cli("org", "create", "--name", "Acme", "--notify-email", "ops@acme.example")
	if err != nil {
		t.Fatal(err)
	}
	key, err := cli("apikey", "create", "--org", orgID)
	if err != nil {
		t.Fatal(err)
	}
	for _, wrong := range []string{key[:20], key[:12] + "x", key[:11], key[:len(key)-1] + "x", key + "x"} {
		out, err := cli("apikey", "revoke", "--prefix", wrong)
		if err == nil || out != "" || !strings.Contains(err.Error(), "first 12 characters or the whole key") {
			t.Errorf("apikey revoke --prefix %s (%d characters): err %v, printed %q; want an error naming what to pass", wrong, len(wrong), err, out)
		}
	}
	// Still active: the exact prefix revokes it now, and then nothing is left.
	if out, err := cli("apikey", "revoke", "--prefix", key[:12]); err != nil || out != "revoked" {
		t.Errorf("apikey revoke --prefix <12 characters> after the wrong attempts: %v %q", err, out)
	}
	if _, err := cli("apikey", "revoke", "--prefix", key); err == nil {
		t.Error("revoking a revoked key succeeded")
	}
	key2, err := cli("apikey", "create", "--org", orgID)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := cli("apikey", "revoke", "--prefix", key2); err != nil || out != "revoked" {
		t.Errorf("apikey revoke --prefix <whole key>: %v %q", err, out)
	}
}
