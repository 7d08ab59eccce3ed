package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/testenv"
)

var ctx = context.Background()

type env struct {
	testenv.Database
	org models.Organization
}

func newEnv(t *testing.T) env {
	t.Helper()
	db := testenv.NewDatabase(t)
	org, err := db.Store.CreateOrganization(ctx, "Acme", "ops@acme.example")
	if err != nil {
		t.Fatal(err)
	}
	return env{Database: db, org: org}
}

// submitAndImport stores rows as a bulk of org and imports it as a worker would.
func (e env) submitAndImport(t *testing.T, org uuid.UUID, rows []json.RawMessage) models.Bulk {
	t.Helper()
	b, _, err := e.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: org, Rows: rows})
	if err != nil {
		t.Fatal(err)
	}
	return e.ImportBulk(t, b.ID)
}

func (e env) errorsReport(t *testing.T, org, id uuid.UUID) string {
	t.Helper()
	rows, err := e.Store.BulkErrors(ctx, org, id, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(rows)
	return string(b)
}

func TestImportSeedExample(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.submitAndImport(t, e.org.ID, testenv.SeedRows(t))
	if b.Status != models.StatusCompleted || b.RowsSucceeded != 1 || b.RowsFailed != 0 || b.CompletedAt == nil {
		t.Fatalf("bulk after import: %+v", b)
	}
	got := e.Snapshot(t)
	if len(got) != 8 { // 1 location, 1 customer, 1 parent, 5 accounts
		t.Fatalf("got %d records, want 8:\n%v", len(got), got)
	}
	wantLines := []string{
		`account awfert of 70b440dc-5283-3bd5-bb93-8dc599f2288f under - 100.00/100.00 partial-payment 1rTg2nefvo8J {"quas": "a", "sapiente": "aut", "doloremque": "ut"} row 1 v1 last row 1`,
		`account parent-external-id of 70b440dc-5283-3bd5-bb93-8dc599f2288f under - 0.00/0.00 partial-payment 1rTg2nefvo8G {"quas": "a", "sapiente": "aut", "doloremque": "ut"} row 1 v1 last row 1`,
		`account vel of 70b440dc-5283-3bd5-bb93-8dc599f2288f under parent-external-id 100.00/100.00 partial-payment aCQb2a66LcaX {"et": "reprehenderit", "quia": "quia", "dolorem": "ut"} row 1 v1 last row 1`,
		`customer 70b440dc-5283-3bd5-bb93-8dc599f2288f at rerum Tremaine Abbott tatum.marks@example.com 1990-01-01 9098 {"city": "East Ophelia", "name": "Dr. Pascale Purdy", "line1": "2190 Streich Gateway\nEast Conor, OK 74977-6615", "line2": "Suite 420", "state": "Minnesota", "country": "Serbia", "is_primary": false, "postal_code": "00485-8914"} {"ad": "perspiciatis", "rem": "libero", "culpa": "et", "pariatur": "ipsum"} row 1 v1 last row 1`,
		`location rerum provident row 1 v1 last row 1`,
	}
	for _, w := range wantLines {
		if !slices.Contains(got, w) {
			t.Errorf("missing record:\n  %s\nhave:\n  %v", w, got)
		}
	}
	var provenance int
	if err := e.Conn.QueryRow(ctx, `SELECT count(*) FROM debt_accounts WHERE bulk_id = $1 AND bulk_row = 1`, b.ID).Scan(&provenance); err != nil || provenance != 6 {
		t.Errorf("provenance: %d accounts carry the bulk id (err %v), want 6", provenance, err)
	}
	if got := e.errorsReport(t, e.org.ID, b.ID); got != "null" && got != "[]" {
		t.Errorf("errors report of a clean bulk: %s", got)
	}
}

func TestResubmittedSeedIsTaken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.submitAndImport(t, e.org.ID, testenv.SeedRows(t))
	before := e.Snapshot(t)
	second := e.submitAndImport(t, e.org.ID, testenv.SeedRows(t))
	if second.RowsFailed != 1 || second.RowsSucceeded != 0 {
		t.Fatalf("second bulk: %+v", second)
	}
	if diff := cmp.Diff(before, e.Snapshot(t)); diff != "" {
		t.Errorf("resubmission changed records (-before +after):\n%s", diff)
	}
	report, err := e.Store.BulkErrors(ctx, e.org.ID, second.ID, 0, 1000)
	if err != nil || len(report) != 1 {
		t.Fatalf("report: %v %v", report, err)
	}
	var sections bulk.RowErrors
	if err := json.Unmarshal(report[0].Errors, &sections); err != nil {
		t.Fatal(err)
	}
	if len(sections.Customer) != 0 || len(sections.Location) != 0 {
		t.Errorf("customer and location must be reused, not errors: %+v", sections)
	}
	if len(sections.ParentDebtAccounts) != 1 || len(sections.DebtAccounts) != 5 {
		t.Fatalf("want the parent and 5 accounts taken, got %+v", sections)
	}
	for _, s := range append(sections.ParentDebtAccounts, sections.DebtAccounts...) {
		if diff := cmp.Diff(bulk.Messages{"external_id": {bulk.MsgTaken}}, s.Messages); diff != "" {
			t.Errorf("account %s (-want +got):\n%s", s.Data, diff)
		}
	}
	if string(report[0].Payload) != string(testenv.SeedRows(t)[0]) {
		t.Errorf("payload is not the row as submitted")
	}
}

func TestImportRunTwiceGivesSameRecordsAndReport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Row 2 repeats ids of row 1 and has invalid fields, so the report is not empty.
	rows := append(testenv.SeedRows(t), json.RawMessage(`{"customer":{"external_id":"c2","name":"Bo","email":"bad"},
		"location":{"external_id":"rerum"},
		"debt_accounts":[{"external_id":"vel","balance":1,"billing_type":["full-payment"]},
		                 {"external_id":"new-one","balance":1,"billing_type":["full-payment"]}]}`),
		json.RawMessage(`{"customer":{"external_id":"c3","name":"Cy"},"location":{"external_id":"l3"},
		"debt_accounts":[{"external_id":"vel","balance":1,"billing_type":["full-payment"]},
		                 {"external_id":"c3-own","balance":"2.50","billing_type":["settlement"]}]}`))
	b := e.submitAndImport(t, e.org.ID, rows)
	records, report := e.Snapshot(t), e.errorsReport(t, e.org.ID, b.ID)

	// A worker that died after the commit of the records but before the bulk
	// was marked done would run the import again.
	if _, err := e.Conn.Exec(ctx, `UPDATE bulks SET status = 'processing' WHERE id = $1`, b.ID); err != nil {
		t.Fatal(err)
	}
	again := e.ImportBulk(t, b.ID)
	if diff := cmp.Diff(records, e.Snapshot(t)); diff != "" {
		t.Errorf("records differ after a second run (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(report, e.errorsReport(t, e.org.ID, b.ID)); diff != "" {
		t.Errorf("report differs after a second run (-first +second):\n%s", diff)
	}
	if again.RowsSucceeded != b.RowsSucceeded || again.RowsFailed != b.RowsFailed || b.RowsFailed != 2 {
		t.Errorf("counts: first %d/%d, second %d/%d", b.RowsSucceeded, b.RowsFailed, again.RowsSucceeded, again.RowsFailed)
	}
}

func TestImportOfCompletedBulkIsANoOp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.submitAndImport(t, e.org.ID, testenv.SeedRows(t))
	records := e.Snapshot(t)
	res, err := e.Store.Import(ctx, b, store.Parsed(bulk.ParseRows(testenv.SeedRows(t), bulk.Options{Today: time.Now()})), bulk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan != nil || res.Bulk.RowsSucceeded != 1 {
		t.Errorf("a duplicate task re-imported a completed bulk: %+v", res.Bulk)
	}
	if diff := cmp.Diff(records, e.Snapshot(t)); diff != "" {
		t.Errorf("records changed:\n%s", diff)
	}
}

func TestConcurrentBulksOnSameExternalIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const bulks = 6
	row := func(i int) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"customer":{"external_id":"shared-customer","name":"N"},
			"location":{"external_id":"shared-location"},
			"debt_accounts":[{"external_id":"shared-account","balance":1,"billing_type":["full-payment"]},
			                 {"external_id":"own-%d","balance":1,"billing_type":["full-payment"]}]}`, i))
	}
	ids := make([]uuid.UUID, bulks)
	for i := range ids {
		b, _, err := e.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: e.org.ID, Rows: []json.RawMessage{row(i), row(i)}})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = b.ID
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.ImportBulk(t, id)
		}()
	}
	wg.Wait()

	var customers, locations, shared, own int
	err := e.Conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM locations),
		(SELECT count(*) FROM debt_accounts WHERE external_id = 'shared-account'),
		(SELECT count(*) FROM debt_accounts WHERE external_id LIKE 'own-%')`).Scan(&customers, &locations, &shared, &own)
	if err != nil {
		t.Fatal(err)
	}
	if customers != 1 || locations != 1 || shared != 1 || own != bulks {
		t.Fatalf("customers %d, locations %d, shared account %d, own accounts %d; want 1, 1, 1, %d", customers, locations, shared, own, bulks)
	}
	// Exactly one bulk won the shared account; every other occurrence says taken.
	taken := 0
	for _, id := range ids {
		report, err := e.Store.BulkErrors(ctx, e.org.ID, id, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range report {
			var s bulk.RowErrors
			if err := json.Unmarshal(r.Errors, &s); err != nil {
				t.Fatal(err)
			}
			for _, a := range s.DebtAccounts {
				if cmp.Equal(a.Messages, bulk.Messages{"external_id": {bulk.MsgTaken}}) {
					taken++
				}
			}
		}
	}
	// 2 rows per bulk: each names shared-account and its own-N twice.
	if want := bulks*2*2 - 1 - bulks; taken != want {
		t.Errorf("%d accounts reported taken, want %d", taken, want)
	}
}

func TestBulksAreScopedToTheirOrganization(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	other, err := e.Store.CreateOrganization(ctx, "Other", "ops@other.example")
	if err != nil {
		t.Fatal(err)
	}
	b := e.submitAndImport(t, e.org.ID, testenv.SeedRows(t))
	if _, err := e.Store.Bulk(ctx, other.ID, b.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another organization read the bulk: %v", err)
	}
	if _, err := e.Store.BulkErrors(ctx, other.ID, b.ID, 0, 1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another organization read the errors: %v", err)
	}
	// The same external ids in another organization are independent records.
	ob := e.submitAndImport(t, other.ID, testenv.SeedRows(t))
	if ob.RowsSucceeded != 1 {
		t.Errorf("other organization's import: %+v", ob)
	}
}

func TestCreateBulkOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rows := testenv.SeedRows(t)
	key := store.IdempotencyKey{Key: "submit-7", RequestHash: []byte("hash of the body")}
	countBulks := func() int { return e.Count(t, `SELECT count(*) FROM bulks`) }

	first, replayed, err := e.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: e.org.ID, IdempotencyKey: &key, Rows: rows})
	if err != nil || replayed {
		t.Fatalf("first submission: replayed %v, err %v", replayed, err)
	}
	again, replayed, err := e.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: e.org.ID, IdempotencyKey: &key, Rows: rows})
	if err != nil || !replayed || again.ID != first.ID || again.Count != first.Count {
		t.Errorf("retry: bulk %s (count %d), replayed %v, err %v; want bulk %s replayed", again.ID, again.Count, replayed, err, first.ID)
	}
	if n := countBulks(); n != 1 {
		t.Errorf("%d bulks after a retry, want 1", n)
	}
	if n := e.Count(t, `SELECT count(*) FROM bulk_rows`); n != len(rows) {
		t.Errorf("%d rows stored after a retry, want %d", n, len(rows))
	}

	other := key
	other.RequestHash = []byte("another body")
	if _, _, err := e.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: e.org.ID, IdempotencyKey: &other, Rows: rows}); !errors.Is(err, store.ErrIdempotencyKeyReused) {
		t.Errorf("same key, other body: %v, want ErrIdempotencyKeyReused", err)
	}
	if n := countBulks(); n != 1 {
		t.Errorf("%d bulks after a reused key, want 1", n)
	}

	// Keys belong to an organization: another one's equal key is its own.
	org2, err := e.Store.CreateOrganization(ctx, "Other", "ops@other.example")
	if err != nil {
		t.Fatal(err)
	}
	theirs, replayed, err := e.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: org2.ID, IdempotencyKey: &key, Rows: rows})
	if err != nil || replayed || theirs.ID == first.ID {
		t.Errorf("other organization, same key: bulk %s, replayed %v, err %v; want a new bulk", theirs.ID, replayed, err)
	}

	// After 24 hours the key is free again, whatever the body.
	if _, err := e.Conn.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 second'`); err != nil {
		t.Fatal(err)
	}
	later, replayed, err := e.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: e.org.ID, IdempotencyKey: &other, Rows: rows})
	if err != nil || replayed || later.ID == first.ID {
		t.Errorf("key older than 24 h: bulk %s, replayed %v, err %v; want a new bulk", later.ID, replayed, err)
	}
	if n, err := e.Store.DeleteExpiredIdempotencyKeys(ctx); err != nil || n != 1 {
		t.Errorf("DeleteExpiredIdempotencyKeys: %d, %v; want the other organization's old key", n, err)
	}
}

func TestCreateBulkOnceConcurrently(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rows := testenv.SeedRows(t)
	key := store.IdempotencyKey{Key: "raced", RequestHash: []byte("h")}
	const clients = 8
	ids := make([]uuid.UUID, clients)
	replays := make([]bool, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			b, replayed, err := e.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: e.org.ID, IdempotencyKey: &key, Rows: rows})
			if err != nil {
				t.Errorf("client %d: %v", i, err)
			}
			ids[i], replays[i] = b.ID, replayed
		})
	}
	wg.Wait()
	if n := e.Count(t, `SELECT count(*) FROM bulks`); n != 1 {
		t.Fatalf("%d bulks from %d concurrent submissions with one key, want 1", n, clients)
	}
	fresh := 0
	for _, replayed := range replays {
		if !replayed {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d submissions say they created the bulk, want 1", fresh)
	}
	for i, id := range ids {
		if id != ids[0] {
			t.Errorf("client %d got bulk %s, client 0 got %s", i, id, ids[0])
		}
	}
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key, err := e.Store.CreateAPIKey(ctx, e.org.ID)
	if err != nil {
		t.Fatal(err)
	}
	org, err := e.Store.Authenticate(ctx, key)
	if err != nil || org.ID != e.org.ID {
		t.Fatalf("authenticate: %v %v", org.ID, err)
	}
	var stored []byte
	if err := e.Conn.QueryRow(ctx, `SELECT hash FROM api_keys`).Scan(&stored); err != nil || string(stored) == key || len(stored) != 32 {
		t.Errorf("the key must be stored as a SHA-256 hash only")
	}
	for _, bad := range []string{"", "bk_", key[:12], key + "x", key[:len(key)-1] + "A", "Bearer " + key} {
		if _, err := e.Store.Authenticate(ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Authenticate(%q) = %v, want ErrNotFound", bad, err)
		}
	}
	if _, err := e.Store.CreateAPIKey(ctx, uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("key for an unknown organization: %v", err)
	}
	if err := e.Store.RevokeAPIKey(ctx, key[:12]); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.Authenticate(ctx, key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoked key still works: %v", err)
	}
	if err := e.Store.RevokeAPIKey(ctx, key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoking twice: %v", err)
	}
}

func TestDeliveryIsClaimedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pending, _, err := e.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: e.org.ID, Rows: testenv.SeedRows(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.Store.PendingDeliveries(ctx, pending.ID); err != nil || len(got) != 0 {
		t.Errorf("an unfinished bulk has deliveries: %v, %v", got, err)
	}
	b := e.ImportBulk(t, pending.ID)
	// Completing the bulk recorded its email, in the same transaction; the
	// organization has no webhook.
	outbox, err := e.Store.PendingDeliveries(ctx, b.ID)
	if err != nil || len(outbox) != 1 || outbox[0].Channel != store.ChannelEmail || outbox[0].Event != store.EventCompleted ||
		outbox[0].Target != "ops@acme.example" {
		t.Fatalf("deliveries of a completed bulk: %+v, %v", outbox, err)
	}
	id := outbox[0].ID

	var wg sync.WaitGroup
	var mu sync.Mutex
	claims := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := e.Store.ClaimDelivery(ctx, id, time.Minute)
			if err == nil {
				mu.Lock()
				claims++
				mu.Unlock()
				if c.Organization.NotifyEmail != "ops@acme.example" || c.Bulk.RowsSucceeded != 1 {
					t.Errorf("claim: %+v", c)
				}
			} else if !errors.Is(err, store.ErrDeliveryBusy) {
				t.Errorf("a losing claim: %v, want ErrDeliveryBusy", err)
			}
		}()
	}
	wg.Wait()
	if claims != 1 {
		t.Fatalf("%d concurrent claims succeeded, want 1", claims)
	}
	// A claim abandoned for longer than the lease (its worker died) is taken over.
	c, err := e.Store.ClaimDelivery(ctx, id, 0)
	if err != nil {
		t.Fatalf("taking over an expired claim: %v", err)
	}
	// A failed attempt releases the claim for the retry; a made one is final.
	if err := e.Store.FinishDelivery(ctx, c, store.Attempt{StartedAt: time.Now(), Error: "smtp: 451"}, false); err != nil {
		t.Fatal(err)
	}
	if c, err = e.Store.ClaimDelivery(ctx, id, time.Minute); err != nil {
		t.Fatalf("retry after a failed attempt: %v", err)
	}
	if err := e.Store.FinishDelivery(ctx, c, store.Attempt{StartedAt: time.Now()}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.ClaimDelivery(ctx, id, 0); !errors.Is(err, store.ErrDelivered) {
		t.Errorf("claimed after it was made: %v", err)
	}
	if n := e.Count(t, `SELECT count(*) FROM delivery_attempts WHERE delivery_id = $1`, id); n != 2 {
		t.Errorf("%d attempts recorded, want 2", n)
	}
	// A duplicated import finds the bulk done and records nothing more.
	e.ImportBulk(t, b.ID)
	if n := e.Count(t, `SELECT count(*) FROM deliveries WHERE bulk_id = $1`, b.ID); n != 1 {
		t.Errorf("%d deliveries after a second import, want 1", n)
	}
}
