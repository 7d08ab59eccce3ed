package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/smtptest"
	"github.com/bulkd/bulkd/pkg/testenv"
	"github.com/bulkd/bulkd/workers/tasks"
)

func TestSeedExampleEndToEnd(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")

	first := s.submit(t, key, testenv.SeedExample(t))
	got := s.waitCompleted(t, key, first)
	for _, field := range []string{"created_at", "started_at", "completed_at"} {
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(got[field])); err != nil {
			t.Errorf("%s = %v, want a timestamp", field, got[field])
		}
	}
	if got["count"] != 1.0 || got["rows_succeeded"] != 1.0 || got["rows_failed"] != 0.0 {
		t.Errorf("first bulk: %v", got)
	}
	if r := s.request(t, http.MethodGet, "/api/v1/bulk/"+first+"/errors", nil, bearer(key)); r.status != 200 || string(r.body) != `{"data":[],"status":"completed"}`+"\n" {
		t.Errorf("errors of a clean bulk: %d %s", r.status, r.body)
	}

	// The same submission again: customer and location reused, every account taken.
	second := s.submit(t, key, testenv.SeedExample(t))
	got = s.waitCompleted(t, key, second)
	if got["rows_succeeded"] != 0.0 || got["rows_failed"] != 1.0 {
		t.Errorf("second bulk: %v", got)
	}
	if n := s.db.Count(t, `SELECT count(*) FROM customers`) + s.db.Count(t, `SELECT count(*) FROM locations`); n != 2 {
		t.Errorf("customer and location written again: %d records", n)
	}
	if n := s.db.Count(t, `SELECT count(*) FROM debt_accounts WHERE bulk_id = $1`, first); n != 6 {
		t.Errorf("first bulk owns %d accounts, want 6", n)
	}
	r := s.request(t, http.MethodGet, "/api/v1/bulk/"+second+"/errors", nil, bearer(key))
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
	s.waitQueuesEmpty(t)
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
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	account := func(id, balance string) string {
		return `{"external_id":"` + id + `","balance":` + balance + `,"billing_type":["full-payment"]}`
	}
	body := `[{"customer":{"external_id":"c1","name":"Ann"},"location":{"external_id":"l1"},"debt_accounts":[` +
		account("a1", "1") + "," + account("a2", "2") + "," + account("a3", "3") + "," + account("bad", "-1") + `]}]`
	id := s.submit(t, key, []byte(body))
	got := s.waitCompleted(t, key, id)
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

// Rows of any shape a client can send (NUL bytes, lone surrogates, numbers
// out of range, duplicate keys, thousands of metadata keys, wrong types,
// markup and SQL in strings, the deepest nesting allowed) become row
// errors, or are stored exactly as sent: never a failed import. A failed
// object as deep as a row may nest reads back whole in the report.
func TestHostileRowsBecomeRowErrorsNotFailures(t *testing.T) {
	t.Parallel()
	s := startService(t)
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
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
	id := s.submit(t, key, []byte("["+strings.Join(parts, ",")+"]"))
	got := s.waitCompleted(t, key, id)
	if got["rows_failed"] != float64(wantFailed) || got["rows_succeeded"] != float64(len(rows)-wantFailed) {
		t.Errorf("rows succeeded %v, failed %v; want %d, %d", got["rows_succeeded"], got["rows_failed"], len(rows)-wantFailed, wantFailed)
	}
	r := s.request(t, http.MethodGet, "/api/v1/bulk/"+id+"/errors", nil, bearer(key))
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
