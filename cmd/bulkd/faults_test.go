package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulkgen"
	"github.com/bulkd/bulkd/pkg/testenv"
	"github.com/bulkd/bulkd/workers/tasks"
)

// The tests of this file inject the faults users hit — a worker killed or
// stopped mid-import, Redis or Postgres going away, bulks racing on the same
// ids across worker processes — into real bulkd processes, Postgres and Redis.

// faultBulk is a bulk with a bit of everything an import writes and reports:
// shared locations, parents and children, and rows that fail.
func faultBulk(t testing.TB, prefix string, rows int) []byte {
	t.Helper()
	all := bulkgen.Rows(bulkgen.Options{Seed: 7, Rows: rows, Accounts: 3, Prefix: prefix})
	bad := bulkgen.Rows(bulkgen.Options{Seed: 8, Rows: 3, Accounts: 2, Prefix: prefix + "bad-"})
	bad[0]["customer"].(map[string]any)["email"] = "not an email"
	bad[1]["debt_accounts"].([]any)[1].(map[string]any)["parent_external_id"] = "nobody"
	bad[2]["debt_accounts"].([]any)[0].(map[string]any)["external_id"] = fmt.Sprintf("%sacct-0-0", prefix) // taken earlier in the bulk
	b, err := json.Marshal(append(all, bad...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// outcome is what a bulk's import left behind, comparable across databases.
type outcome struct {
	records []string
	report  string // GET /errors
	results []bulk.ResultRow
	status  map[string]any
}

func (s *service) outcome(t testing.TB, key, id string) outcome {
	t.Helper()
	status := s.waitCompleted(t, key, id)
	for _, k := range []string{"bulk_id", "created_at", "started_at", "completed_at"} {
		delete(status, k)
	}
	o := outcome{records: s.db.Snapshot(t), report: s.errorsReport(t, key, id), status: status}
	for next := "/api/v1/bulk/" + id + "/results?per_page=1000"; next != ""; {
		p := s.results(t, key, next)
		o.results, next = append(o.results, p.Data...), ""
		if p.Links.Next != nil {
			next = *p.Links.Next
		}
	}
	// Record ids are drawn anew in every run; what they name is in records.
	for i := range o.results {
		r := &o.results[i]
		for _, obj := range append([]*bulk.ResultObject{r.Customer, r.Location}, objectRefs(r.ParentDebtAccounts, r.DebtAccounts)...) {
			if obj != nil {
				obj.ID = nil
			}
		}
	}
	return o
}

func objectRefs(lists ...[]bulk.ResultObject) []*bulk.ResultObject {
	var out []*bulk.ResultObject
	for _, l := range lists {
		for i := range l {
			out = append(out, &l[i])
		}
	}
	return out
}

// faultImport is a bulk to import with the options query: in upsert mode
// over what before, imported first in create mode, wrote.
type faultImport struct {
	query        string
	before, body []byte
}

// cleanRun imports the bulk in a `bulkd serve` that nothing disturbs.
func cleanRun(t *testing.T, fi faultImport) outcome {
	t.Helper()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	if fi.before != nil {
		s.waitCompleted(t, key, s.submit(t, key, fi.before))
	}
	return s.outcome(t, key, s.submitWith(t, key, fi.query, fi.body))
}

// faultImports are the bulks every fault is tried on: each mode of the import.
func faultImports(t testing.TB, prefix string, rows int) []faultImport {
	t.Helper()
	body := faultBulk(t, prefix, rows)
	return []faultImport{
		{query: "mode=create", body: body},
		{query: "mode=upsert", before: faultBulk(t, prefix, rows/2), body: changedBulk(t, body)},
		{query: "atomic=true", body: body},
		{query: "validate_only=true", body: body},
		{query: "mode=upsert&atomic=true&strict=true", before: faultBulk(t, prefix, rows/2), body: changedBulk(t, body)},
	}
}

// changedBulk is body with other values in every customer, location and
// account: an upsert of it over body's records changes each.
func changedBulk(t testing.TB, body []byte) []byte {
	t.Helper()
	var rows []map[string]any
	if err := json.Unmarshal(body, &rows); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if c, ok := r["customer"].(map[string]any); ok {
			c["name"] = fmt.Sprint(c["name"], " (changed)")
		}
		if l, ok := r["location"].(map[string]any); ok {
			l["name"] = fmt.Sprint(l["name"], " (changed)")
		}
		for _, section := range []string{"parent_debt_accounts", "debt_accounts"} {
			list, _ := r[section].([]any)
			for _, a := range list {
				if a, ok := a.(map[string]any); ok {
					a["current_balance"] = "0.01"
				}
			}
		}
	}
	b, err := json.Marshal(rows)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (o outcome) diff(want outcome) string {
	return cmp.Diff(want, o, cmp.AllowUnexported(outcome{}))
}

func TestWorkerKilledMidImportIsFinishedByAnother(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits about a minute for asynq to give the dead worker's task back; make test runs it")
	}
	// An upsert over stored records, the mode that changes the most.
	fi := faultImports(t, "k-", 200)[1]
	want := cleanRun(t, fi)

	s := newService(t)
	key, id, doomed, lock := s.importStuckMidTransaction(t, fi)
	doomed.kill()
	lock.release()

	if n := s.db.Count(t, `SELECT (SELECT count(*) FROM locations WHERE last_bulk_id = $1) + (SELECT count(*) FROM customers WHERE last_bulk_id = $1)
		+ (SELECT count(*) FROM debt_accounts WHERE last_bulk_id = $1)`, id); n != 0 {
		t.Errorf("%d records of the bulk visible after the worker died mid-import, want none", n)
	}
	if n := s.db.Count(t, `SELECT count(*) FROM bulks WHERE status = 'processing'`); n != 1 {
		t.Errorf("the bulk must stay processing, not completed, when its worker dies")
	}

	// asynq gives the task back once the dead worker's lease expires (30 s,
	// plus 30 s of allowance for clock skew, checked every minute).
	s.spawn("worker")
	got := s.waitOutcomeWithin(t, key, id, 3*time.Minute)
	if d := got.diff(want); d != "" {
		t.Errorf("after a worker was killed mid-import (-clean run +this run):\n%s", d)
	}
	// One email for the bulk the upsert changes, one for the upsert.
	s.smtp.WaitForMessages(t, 2, time.Minute)
	s.waitQueuesEmpty(t)
	if n := len(s.smtp.Messages()); n != 2 {
		t.Errorf("%d emails, want 2", n)
	}
}

// importStuckMidTransaction starts the API and a worker process, submits the
// bulk and returns once the import has written (or, validate-only, checked)
// every record and waits, inside its transaction, to store its results: held
// there by lock until the test, having struck the worker, releases it.
func (s *service) importStuckMidTransaction(t testing.TB, fi faultImport) (key, id string, worker *process, lock *tableLock) {
	t.Helper()
	s.start("api")
	_, key = s.newOrg(t, "Acme", "ops@acme.example")
	worker = s.spawn("worker")
	if fi.before != nil {
		s.waitCompleted(t, key, s.submit(t, key, fi.before))
	}
	lock = lockTable(t, s.db, "bulk_results")
	id = s.submitWith(t, key, fi.query, fi.body)
	waitForWriteBlockedOn(t, s.db, "bulk_results")
	return key, id, worker, lock
}

func (s *service) waitOutcomeWithin(t testing.TB, key, id string, within time.Duration) outcome {
	t.Helper()
	s.waitCompletedWithin(t, key, id, within)
	return s.outcome(t, key, id)
}

func TestWorkerStoppedMidImportHandsItsTaskBack(t *testing.T) {
	t.Parallel()
	for _, fi := range faultImports(t, "t-", 100) {
		t.Run(fi.query, func(t *testing.T) {
			t.Parallel()
			want := cleanRun(t, fi)

			s := newService(t, "SHUTDOWN_TIMEOUT=2s")
			key, id, stopping, lock := s.importStuckMidTransaction(t, fi)

			took, err := stopping.terminate(30 * time.Second)
			if err != nil {
				t.Errorf("worker after SIGTERM: %v\n%s", err, stopping.logs)
			}
			// SHUTDOWN_TIMEOUT for the import to finish, then a moment to hand it back.
			if took > 10*time.Second {
				t.Errorf("worker took %v to stop with SHUTDOWN_TIMEOUT=2s", took)
			}
			lock.release()
			if n := s.db.Count(t, `SELECT count(*) FROM bulks WHERE id = $1 AND status = 'completed'`, id); n != 0 {
				t.Errorf("a bulk whose import was interrupted is marked completed")
			}
			info, err := asynq.NewInspector(s.redisOpt).GetTaskInfo(tasks.QueueImports, id)
			if err != nil || info.State != asynq.TaskStatePending {
				t.Fatalf("import task after the worker stopped: %+v, %v; want it pending for the next worker", info, err)
			}

			s.spawn("worker")
			if d := s.waitOutcomeWithin(t, key, id, time.Minute).diff(want); d != "" {
				t.Errorf("after a worker stopped mid-import (-clean run +this run):\n%s", d)
			}
		})
	}
}

func TestOverlappingBulksOnTwoWorkerProcesses(t *testing.T) {
	t.Parallel()
	s := newService(t, "WORKER_CONCURRENCY=4")
	s.start("api")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	s.spawn("worker")
	s.spawn("worker")

	// Every bulk has 40 rows of its own and the same 40 shared rows (same
	// external ids, other details), all submitted at once.
	const bulks, own, shared = 8, 40, 40
	ids := make([]string, bulks)
	var wg sync.WaitGroup
	for i := range bulks {
		body := overlappingBulk(t, i, own, shared, bulkgen.Options{Accounts: 3, Locations: 5})
		wg.Go(func() { ids[i] = s.submit(t, key, body) })
	}
	wg.Wait()

	succeeded, failed := 0, 0
	for _, id := range ids {
		b := s.waitCompletedWithin(t, key, id, time.Minute)
		succeeded += int(b["rows_succeeded"].(float64))
		failed += int(b["rows_failed"].(float64))
	}
	// The first import to reach a shared row writes it; the others find its
	// customer and report its accounts as taken.
	if want := bulks*own + shared; succeeded != want {
		t.Errorf("%d rows succeeded, want %d", succeeded, want)
	}
	if want := (bulks - 1) * shared; failed != want {
		t.Errorf("%d rows failed, want %d", failed, want)
	}
	for _, table := range []string{"locations", "customers", "debt_accounts"} {
		if n := s.db.Count(t, `SELECT count(*) - count(DISTINCT external_id) FROM `+table); n != 0 {
			t.Errorf("%s: %d external ids written more than once", table, n)
		}
	}
	if n := s.db.Count(t, `SELECT count(*) FROM debt_accounts`); n != (bulks*own+shared)*3 {
		t.Errorf("%d debt accounts, want %d", n, (bulks*own+shared)*3)
	}
	taken := s.db.Count(t, `SELECT count(*) FROM bulk_results WHERE convert_from(errors, 'UTF8') LIKE '%has already been taken%'`)
	if taken != (bulks-1)*shared {
		t.Errorf("%d rows report taken, want %d", taken, (bulks-1)*shared)
	}
	// No import failed or retried for it: no deadlock, no conflict.
	q, err := asynq.NewInspector(s.redisOpt).GetQueueInfo(tasks.QueueImports)
	if err != nil {
		t.Fatal(err)
	}
	if q.FailedTotal != 0 || q.Retry != 0 || q.Archived != 0 || q.ProcessedTotal != bulks {
		t.Errorf("imports queue: %d processed, %d failed, %d to retry, %d archived; want %d processed and no failure",
			q.ProcessedTotal, q.FailedTotal, q.Retry, q.Archived, bulks)
	}
}

func TestRedisOutageAroundSubmissions(t *testing.T) {
	t.Parallel()
	redis := testenv.StartRedis(t)
	s := newService(t, "REDIS_URL="+redis.URL(), "RECONCILE_INTERVAL=1s")
	s.start("api")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	s.spawn("worker")

	before := s.submit(t, key, faultBulk(t, "before-", 20))
	s.waitCompleted(t, key, before)

	// Redis dies, losing whatever it held; submissions still succeed.
	redis.Kill()
	var during []string
	for i := range 3 {
		start := time.Now()
		during = append(during, s.submit(t, key, faultBulk(t, fmt.Sprintf("during%d-", i), 20)))
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("submission with Redis down took %v", took)
		}
	}
	if r := s.request(t, http.MethodGet, "/readyz", nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with Redis down: %d", r.status)
	}

	// Redis comes back empty: the reconciler queues what it never got.
	redis.Start()
	for _, id := range during {
		b := s.waitCompletedWithin(t, key, id, time.Minute)
		if b["rows_failed"] != 3.0 {
			t.Errorf("bulk %s: %v", id, b)
		}
	}
	// (asynq registers a queue's name once per process, so after Redis lost
	// its data the inspector cannot list the notifications queue: the
	// database tells when every email is done.)
	s.smtp.WaitForMessages(t, 4, time.Minute)
	s.waitAllNotified(t)
	if n := len(s.smtp.Messages()); n != 4 {
		t.Errorf("%d emails for 4 bulks", n)
	}
}

func TestPostgresOutage(t *testing.T) {
	t.Parallel()
	s := newService(t)
	db := s.db
	u, err := url.Parse(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	s.env["DATABASE_URL"] = u.String()
	s.start("api")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	body := faultBulk(t, "pg-", 50)

	// Postgres goes away: open connections break, new ones are refused.
	proxy.Cut()
	r := s.request(t, http.MethodPost, "/api/v1/bulk", body, bearer(key))
	var answer struct {
		Message string              `json:"message"`
		Errors  map[string][]string `json:"errors"`
	}
	err = json.Unmarshal(r.body, &answer)
	if err != nil || r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" ||
		!strings.Contains(answer.Message, "database is unavailable") {
		t.Errorf("submission while Postgres is down: %d %+v (Retry-After %q), %v\n%s", r.status, answer, r.header.Get("Retry-After"), err, s.logs)
	}
	if r := s.request(t, http.MethodGet, "/api/v1/bulk/"+"0190a1b2-0000-7000-8000-000000000000", nil, bearer(key)); r.status != http.StatusServiceUnavailable {
		t.Errorf("GET with Postgres down: %d %s", r.status, r.body)
	}

	proxy.Restore()
	if n := db.Count(t, `SELECT (SELECT count(*) FROM bulks) + (SELECT count(*) FROM bulk_rows)`); n != 0 {
		t.Errorf("%d bulks and rows stored by the failed submission, want none", n)
	}
	// Back: the next submission goes through on fresh connections.
	testenv.Eventually(t, 30*time.Second, func() error {
		r := s.request(t, http.MethodPost, "/api/v1/bulk", body, bearer(key), jsonBody)
		switch r.status {
		case http.StatusAccepted:
			return nil
		case http.StatusServiceUnavailable:
			return fmt.Errorf("a submission after Postgres came back to be accepted; it is %d %s", r.status, r.body)
		}
		t.Fatalf("submission after Postgres came back: %d %s", r.status, r.body)
		return nil
	})
	if n := db.Count(t, `SELECT count(*) FROM bulk_rows`); n != 53 {
		t.Errorf("%d rows stored, want 53", n)
	}
}

// overlappingBulk is the i-th of bulks that each have `shared` rows with
// the same external ids (other details) and `own` rows of their own, shaped
// by o (accounts, locations).
func overlappingBulk(t *testing.T, i, own, shared int, o bulkgen.Options) []byte {
	t.Helper()
	o.Seed = uint64(i)
	sh, mine := o, o
	sh.Rows, sh.Prefix = shared, "shared-"
	mine.Rows, mine.Prefix = own, fmt.Sprintf("own%d-", i)
	body, err := json.Marshal(append(bulkgen.Rows(sh), bulkgen.Rows(mine)...))
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// Overlapping upserts of the same ids from several worker processes end with
// one record per id, every bulk's change applied in the order the imports
// took turns, and each change counted once in the version.
func TestOverlappingUpsertsOnTwoWorkerProcesses(t *testing.T) {
	t.Parallel()
	s := newService(t, "WORKER_CONCURRENCY=4")
	s.start("api")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	s.spawn("worker")
	s.spawn("worker")

	// Every bulk upserts the same 30 rows, its own balance in every account.
	const bulks, rows = 8, 30
	ids := make([]string, bulks)
	var wg sync.WaitGroup
	for i := range bulks {
		all := bulkgen.Rows(bulkgen.Options{Seed: 3, Rows: rows, Accounts: 3, Prefix: "up-", Locations: 4})
		for _, r := range all {
			for _, a := range r["debt_accounts"].([]any) {
				a.(map[string]any)["balance"] = fmt.Sprintf("%d.00", 100+i)
				a.(map[string]any)["current_balance"] = fmt.Sprintf("%d.00", 100+i)
			}
		}
		body, err := json.Marshal(all)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { ids[i] = s.submitWith(t, key, "mode=upsert", body) })
	}
	wg.Wait()
	for _, id := range ids {
		if b := s.waitCompletedWithin(t, key, id, time.Minute); b["rows_failed"] != 0.0 {
			t.Errorf("bulk %s: %v", id, b)
		}
	}
	for _, table := range []string{"locations", "customers", "debt_accounts"} {
		if n := s.db.Count(t, `SELECT count(*) - count(DISTINCT external_id) FROM `+table); n != 0 {
			t.Errorf("%s: %d external ids written more than once", table, n)
		}
	}
	// The import that took its turn last wrote every account's final value;
	// the first created them, each of the other seven changed them once.
	var last string
	if err := s.db.Conn.QueryRow(t.Context(), `SELECT id::text FROM bulks ORDER BY completed_at DESC LIMIT 1`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	if n := s.db.Count(t, `SELECT count(*) FROM debt_accounts a JOIN bulks b ON b.id = $1
		WHERE a.version = $2 AND a.last_bulk_id = b.id`, last, bulks); n != rows*3 {
		t.Errorf("%d accounts at version %d changed last by the last import, want %d", n, bulks, rows*3)
	}
	var balances []string
	rowsOf, err := s.db.Conn.Query(t.Context(), `SELECT DISTINCT balance::text FROM debt_accounts`)
	if err != nil {
		t.Fatal(err)
	}
	for rowsOf.Next() {
		var b string
		_ = rowsOf.Scan(&b)
		balances = append(balances, b)
	}
	rowsOf.Close()
	if len(balances) != 1 {
		t.Errorf("accounts end with balances %v, want one bulk's", balances)
	}
	// Results: one bulk created everything; every later one updated each account.
	created, updated := 0, 0
	for _, id := range ids {
		p := s.results(t, key, "/api/v1/bulk/"+id+"/results")
		created += p.TotalCreated
		updated += p.TotalUpdated
	}
	if created != rows || updated != (bulks-1)*rows {
		t.Errorf("%d rows created and %d updated over all bulks, want %d and %d", created, updated, rows, (bulks-1)*rows)
	}
	q, err := asynq.NewInspector(s.redisOpt).GetQueueInfo(tasks.QueueImports)
	if err != nil {
		t.Fatal(err)
	}
	if q.FailedTotal != 0 || q.Retry != 0 || q.Archived != 0 || q.ProcessedTotal != bulks {
		t.Errorf("imports queue: %d processed, %d failed, %d to retry, %d archived; want %d processed and no failure",
			q.ProcessedTotal, q.FailedTotal, q.Retry, q.Archived, bulks)
	}
}
