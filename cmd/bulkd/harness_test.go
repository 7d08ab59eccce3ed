package main

// The harness of bulkd's end-to-end tests: a real bulkd (in this process or
// as processes of its own) on a database, a Redis database and an SMTP
// server of the test's own; the one way a test sends it a request; the CLI;
// the waits; and the glue the fault tests hold the import with.
//
// A service belongs to the test that started it: start and spawn act on
// that test. Every helper that sends a request or checks something takes the
// t of its caller, which may be a subtest, or a goroutine's test: request
// reports a request that got no answer with t.Errorf, safe in any goroutine.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"

	"github.com/bulkd/bulkd/pkg/apidoc/apidoctest"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/redisconn"
	"github.com/bulkd/bulkd/pkg/scratch"
	"github.com/bulkd/bulkd/pkg/smtptest"
	"github.com/bulkd/bulkd/pkg/testenv"
	"github.com/bulkd/bulkd/workers/tasks"
)

// Waits on what bulkd does in the background. They are generous, so that a
// slow or busy machine never fails a correct test.
const (
	// deadlineForImport bounds the wait for a small bulk to be imported.
	deadlineForImport = 30 * time.Second
	// deadlineForEmail bounds the wait for an email sent in the background.
	deadlineForEmail = 30 * time.Second
	// deadlineForStart bounds the wait for bulkd to answer /healthz.
	deadlineForStart = time.Minute
)

// runAsBulkd makes the test binary run main instead of the tests, so that
// the fault tests can start bulkd as processes of its own, to kill.
const runAsBulkd = "BULKD_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsBulkd) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// service is a running `bulkd serve`, wired exactly as main wires it, on a
// database, Redis database and SMTP server of the test's own.
type service struct {
	t        testing.TB
	base     string
	env      map[string]string
	smtp     *smtptest.Server
	db       testenv.Database // the database bulkd runs on, for checking what it wrote
	logs     *testenv.LogBuffer
	redisOpt asynq.RedisConnOpt
	// stop sends the process what SIGTERM sends main; stopped reports run's
	// result once it returns.
	stop    context.CancelFunc
	stopped chan error
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
	s := &service{t: t, base: "http://" + addr, db: testenv.NewDatabase(t), smtp: smtp, logs: &testenv.LogBuffer{}}
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
// and then bulkd starts again on another (and on another METRICS_ADDR, if
// it has one: read it from s.env once started).
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
		if s.env["METRICS_ADDR"] != "" { // either listener may have lost its port
			s.env["METRICS_ADDR"] = freeAddr(t)
		}
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
	var exitErr error
	testenv.Eventually(t, deadlineForStart, func() error {
		if s.answersHealthz() {
			return nil
		}
		select {
		case exitErr = <-done:
			exited = true
			if exitErr == nil {
				exitErr = errors.New("stopped before it answered")
			}
			return nil // no use waiting longer
		default:
		}
		return s.waitingFor("bulkd %s to answer /healthz", mode)
	})
	return exitErr
}

// answersHealthz tells whether the service answers /healthz now.
func (s *service) answersHealthz() bool {
	resp, err := http.Get(s.base + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// freeAddr is a loopback address no listener holds at the moment.
func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := scratch.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func (s *service) getenv(k string) string { return s.env[k] }

// waitingFor is what a wait on the service says when it ends before what it
// waited for came: what it waited for, and the service's logs, read only
// then.
func (s *service) waitingFor(format string, args ...any) error {
	return withLogs{fmt.Sprintf(format, args...), s.logs}
}

type withLogs struct {
	waitingFor string
	logs       fmt.Stringer
}

func (w withLogs) Error() string { return w.waitingFor + "; the logs:\n" + w.logs.String() }

// process is `bulkd <mode>` running as an operating-system process.
type process struct {
	t      testing.TB
	mode   string
	cmd    *exec.Cmd
	logs   *testenv.LogBuffer
	exited chan struct{}
	err    error // how it exited, once exited is closed
}

// spawn starts `bulkd <mode>` as a process with the service's environment
// plus overrides ("NAME=value"). It is killed, if still running, when the
// test ends.
func (s *service) spawn(mode string, overrides ...string) *process {
	s.t.Helper()
	cmd := exec.Command(os.Args[0], mode)
	cmd.Env = append(os.Environ(), runAsBulkd+"=1")
	for k, v := range s.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, overrides...) // the last value of a name wins
	p := &process{t: s.t, mode: mode, cmd: cmd, logs: &testenv.LogBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = io.Discard, p.logs
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start bulkd %s: %v", mode, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	s.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
		assertNoPersonalData(s.t, p.logs.String())
	})
	return p
}

// waitHealthy waits until the service's address, served by the spawned
// process p, answers /healthz; it fails at once if p exits.
func (s *service) waitHealthy(t testing.TB, p *process) {
	t.Helper()
	testenv.Eventually(t, deadlineForStart, func() error {
		if s.answersHealthz() {
			return nil
		}
		select {
		case <-p.exited:
			t.Fatalf("bulkd %s exited: %v\n%s", p.mode, p.err, p.logs)
		default:
		}
		return withLogs{fmt.Sprintf("bulkd %s to answer /healthz", p.mode), p.logs}
	})
}

// kill sends SIGKILL and waits for the process to die: no shutdown code runs.
func (p *process) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		p.t.Fatalf("kill bulkd %s: %v", p.mode, err)
	}
	<-p.exited
}

// terminate sends SIGTERM, as an orchestrator does, and returns how long the
// process took to exit and how it exited.
func (p *process) terminate(within time.Duration) (time.Duration, error) {
	p.t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM bulkd %s: %v", p.mode, err)
	}
	select {
	case <-p.exited:
		return time.Since(start), p.err
	case <-time.After(within):
		p.t.Fatalf("bulkd %s still running %v after SIGTERM\n%s", p.mode, within, p.logs)
		return 0, nil
	}
}

// cli runs a bulkd subcommand against the service's database and returns
// what it printed.
func (s *service) cli(t testing.TB, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), args, s.getenv, &out, io.Discard); err != nil {
		t.Fatalf("bulkd %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(out.String())
}

// newOrg creates an organization and an API key for it, as the README does.
func (s *service) newOrg(t testing.TB, name, email string) (orgID, key string) {
	t.Helper()
	orgID = s.cli(t, "org", "create", "--name", name, "--notify-email", email)
	return orgID, s.cli(t, "apikey", "create", "--org", orgID)
}

// response is an answer of bulkd, read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

// Request headers, as request takes them.
const (
	jsonBody   = "Content-Type: application/json"
	mergePatch = "Content-Type: application/merge-patch+json"
	jsonPatch  = "Content-Type: application/json-patch+json"
)

// bearer is the Authorization header of an API key, as request takes it.
func bearer(key string) string { return "Authorization: Bearer " + key }

// basicAuth is the Authorization header of HTTP basic authentication (the
// queue UI's), as request takes it.
func basicAuth(user, password string) string {
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// request sends one request to the service and returns its answer. body is
// nil, a string, a []byte or an io.Reader; each header is "Name: value"
// (bearer(key), jsonBody, "If-Match: \"1\""…), and the request carries
// these and no others (no Content-Type unless given; a later header of the
// same name replaces an earlier one). A request that gets no answer is
// reported with t.Errorf, which any goroutine may call, and answers status 0
// with the error as its body.
func (s *service) request(t testing.TB, method, path string, body any, header ...string) response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		if b != "" {
			r = strings.NewReader(b)
		}
	case []byte:
		r = bytes.NewReader(b)
	case io.Reader:
		r = b
	default:
		panic(fmt.Sprintf("request: a body of type %T", body))
	}
	req, err := http.NewRequest(method, s.base+path, r)
	if err != nil {
		t.Errorf("%s %.100s: %v", method, path, err)
		return response{body: []byte(err.Error())}
	}
	for _, h := range header {
		name, value, ok := strings.Cut(h, ": ")
		if !ok {
			panic(fmt.Sprintf("request: header %q is not \"Name: value\"", h))
		}
		req.Header.Set(name, value)
	}
	// Every exchange is checked against the API description: an answer
	// (status, header, field) it does not describe fails the test.
	resp, err := apidoctest.Client(t).Do(req)
	if err != nil {
		t.Errorf("%s %.100s: %v", method, path, err)
		return response{body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("%s %.100s: reading the answer: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// rawRequest writes raw on a connection of its own and reads the answer: for
// what Go's client refuses to send (control characters in a header, a field
// twice) or cannot (a body shorter than its Content-Length). With hangUp the
// client then closes its side of the connection, as a client whose upload
// broke off does, and waits 10 s at most for the answer.
func (s *service) rawRequest(t testing.TB, raw string, hangUp bool) response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	if hangUp {
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%.60q: no answer: %v", raw, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// json is the answer as a JSON object.
func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("answer is not JSON (%d): %s", r.status, r.body)
	}
	return v
}

// data is the "data" object of an answer that must have status.
func data(t testing.TB, r response, status int) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	var v struct{ Data map[string]any }
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	return v.Data
}

// errorFields is the errors object of an error answer.
func errorFields(t testing.TB, r response) map[string][]string {
	t.Helper()
	var v struct{ Errors map[string][]string }
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	return v.Errors
}

// assertError checks an error answer: the status, JSON, and the documented
// {"message", "errors": {field: [...]}} shape naming field.
func assertError(t testing.TB, r response, status int, field string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %.300s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e struct {
		Message string              `json:"message"`
		Errors  map[string][]string `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Message == "" || len(e.Errors[field]) == 0 {
		t.Errorf("want {message, errors.%s}, got %.300s", field, r.body)
	}
}

// submit posts a bulk and returns its id, checking the 202 answer.
func (s *service) submit(t testing.TB, key string, body []byte) string {
	t.Helper()
	return s.submitWith(t, key, "", body)
}

// submitWith posts a bulk with the options query ("mode=upsert&atomic=true")
// and returns its id, checking the 202 answer.
func (s *service) submitWith(t testing.TB, key, query string, body []byte) string {
	t.Helper()
	path := "/api/v1/bulk"
	if query != "" {
		path += "?" + query
	}
	r := s.request(t, http.MethodPost, path, body, bearer(key), jsonBody)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST %s: %d %s", path, r.status, r.body)
	}
	data := r.json(t)["data"].(map[string]any)
	id := data["bulk_id"].(string)
	if data["status"] != "pending" || r.header.Get("Location") != "/api/v1/bulk/"+id {
		t.Errorf("submit answer: %s, Location %q", r.body, r.header.Get("Location"))
	}
	return id
}

// waitCompleted waits until the bulk is completed and returns it as GET
// shows it.
func (s *service) waitCompleted(t testing.TB, key, id string) map[string]any {
	t.Helper()
	return s.waitCompletedWithin(t, key, id, deadlineForImport)
}

func (s *service) waitCompletedWithin(t testing.TB, key, id string, within time.Duration) map[string]any {
	t.Helper()
	var got map[string]any
	testenv.Eventually(t, within, func() error {
		r := s.request(t, http.MethodGet, "/api/v1/bulk/"+id, nil, bearer(key))
		if r.status != http.StatusOK {
			t.Fatalf("GET bulk: %d %s", r.status, r.body)
		}
		got = r.json(t)["data"].(map[string]any)
		if got["status"] == "completed" {
			return nil
		}
		return s.waitingFor("bulk %s to be completed; it is %v", id, got["status"])
	})
	return got
}

// results reads a page of a bulk's results (path is /api/v1/bulk/{id}/results?…).
func (s *service) results(t testing.TB, key, path string) bulksvc.ResultsPage {
	t.Helper()
	r := s.request(t, http.MethodGet, path, nil, bearer(key))
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	var p bulksvc.ResultsPage
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, r.body)
	}
	return p
}

// errorsReport is a bulk's GET /errors answer.
func (s *service) errorsReport(t testing.TB, key, id string) string {
	t.Helper()
	r := s.request(t, http.MethodGet, "/api/v1/bulk/"+id+"/errors", nil, bearer(key))
	if r.status != http.StatusOK {
		t.Fatalf("GET errors: %d %s", r.status, r.body)
	}
	return string(r.body)
}

// waitQueuesEmpty waits until the service's queues have no task pending,
// scheduled, running or to retry.
func (s *service) waitQueuesEmpty(t testing.TB) {
	t.Helper()
	in := asynq.NewInspector(s.redisOpt)
	defer in.Close()
	testenv.Eventually(t, 30*time.Second, func() error {
		busy := 0
		var state []string
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
			return nil
		}
		return fmt.Errorf("the queues to empty; %s", strings.Join(state, "; "))
	})
}

// waitAllNotified waits until every bulk's deliveries are recorded as made
// (or given up).
func (s *service) waitAllNotified(t testing.TB) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		if n := s.db.Count(t, `SELECT count(*) FROM deliveries WHERE delivered_at IS NULL AND abandoned_at IS NULL`); n > 0 {
			return fmt.Errorf("every delivery to be made; %d are not", n)
		}
		return nil
	})
}

// requestLine waits until the service has logged the "request" line of the
// request with this X-Request-Id, and returns it. requestLog writes it once
// the request is done, after every other line of the request: a test that
// checks that the logs lack something reads them after this line.
func (s *service) requestLine(t testing.TB, id string) string {
	t.Helper()
	var line string
	testenv.Eventually(t, 30*time.Second, func() error {
		for _, l := range strings.Split(s.logs.String(), "\n") {
			if strings.Contains(l, `"msg":"request"`) && strings.Contains(l, `"request_id":"`+id+`"`) {
				line = l
				return nil
			}
		}
		return s.waitingFor(`the "request" line of request %s`, id)
	})
	return line
}

// record reads one value of the service's database as text (the query
// selects one row of one column).
func (s *service) record(t testing.TB, query string, args ...any) string {
	t.Helper()
	var out string
	if err := s.db.Conn.QueryRow(t.Context(), query, args...).Scan(&out); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return out
}

// recordID finds the id of a record by its external id.
func (s *service) recordID(t testing.TB, table, externalID string) string {
	t.Helper()
	return s.record(t, `SELECT id::text FROM `+table+` WHERE external_id = $1`, externalID)
}

// tableLock holds a lock that makes every write to a table wait: an import
// that reaches the table stops there, in the middle of its transaction, for
// the test to crash or stop its worker.
type tableLock struct {
	tx pgx.Tx
}

func lockTable(t testing.TB, db testenv.Database, table string) *tableLock {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	tx, err := conn.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), `LOCK TABLE `+pgx.Identifier{table}.Sanitize()+` IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	return &tableLock{tx: tx}
}

func (l *tableLock) release() { _ = l.tx.Rollback(context.Background()) }

// waitForWriteBlockedOn waits until a session of db waits to write into table.
func waitForWriteBlockedOn(t testing.TB, db testenv.Database, table string) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error { return writeBlocked(t, db, table) })
}

// writeBlocked is nil when a session of db waits to write into table.
func writeBlocked(t testing.TB, db testenv.Database, table string) error {
	t.Helper()
	n := db.Count(t, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ~* ('^\s*(copy|delete from|update)\s+"?' || $1 || '\M')`, table)
	if n == 0 {
		return fmt.Errorf("an import to wait to write into %s", table)
	}
	return nil
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

// assertNoErrorLines checks that the service logged nothing at ERROR.
func assertNoErrorLines(t testing.TB, s *service) {
	t.Helper()
	if logs := s.logs.String(); strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("logs have ERROR lines:\n%s", logs)
	}
}

// jsonEqual tells whether a and b hold the same JSON value.
func jsonEqual(t testing.TB, a, b []byte) bool {
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

// jsonDiff compares two values as JSON would carry them.
func jsonDiff(want, got any) string {
	norm := func(v any) any {
		b, _ := json.Marshal(v)
		var out any
		_ = json.Unmarshal(b, &out)
		return out
	}
	return cmp.Diff(norm(want), norm(got))
}

func mustUUID(t testing.TB, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// prefixed reports a test's errors with a prefix, for checks in a loop.
type prefixed struct {
	*testing.T
	prefix string
}

func (p *prefixed) Errorf(format string, args ...any) {
	p.T.Helper()
	p.T.Errorf(p.prefix+format, args...)
}
