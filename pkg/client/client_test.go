package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkd/bulkd/pkg/client"
	"github.com/bulkd/bulkd/pkg/client/clienttest"
)

// server is the one bulkd this package's tests and examples call; each
// test makes an organization of its own on it.
var server *clienttest.Server

func TestMain(m *testing.M) {
	os.Exit(clienttest.Main(m, func(s *clienttest.Server) { server = s }))
}

// newClient is a client of a new organization, and its id.
func newClient(t *testing.T, cfg client.Config) (*client.Client, string) {
	t.Helper()
	org, key, err := server.NewOrganization()
	if err != nil {
		t.Fatal(err)
	}
	return server.Client(t, key, cfg), org
}

// row is a valid row: customer c-<n> at location loc-1 with a parent
// account and a child under it.
func row(n int) client.Row {
	id := fmt.Sprintf("c-%d", n)
	return client.Row{
		Customer: client.RowCustomer{ExternalID: id, Name: "Ann Lee", Email: "ann@example.com",
			Address: &client.Address{City: "Lyon"}, Metadata: map[string]any{"tier": "gold"}},
		Location: client.RowLocation{ExternalID: "loc-1", Name: "Main"},
		DebtAccounts: []client.RowDebtAccount{
			{ExternalID: id + "-p", Balance: "100.00", BillingType: []string{"settlement"}},
			{ExternalID: id + "-a", ParentExternalID: id + "-p", Balance: "12.50", CurrentBalance: "10", BillingType: []string{"full-payment", "payment-plan"}},
		},
	}
}

func apiError(t *testing.T, err error, status int, field string) *client.Error {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want a *client.Error", err, err)
	}
	if e.StatusCode != status || e.Message == "" || len(e.Errors[field]) == 0 {
		t.Fatalf("error %d %q %v, want %d naming %s", e.StatusCode, e.Message, e.Errors, status, field)
	}
	return e
}

func TestSubmitWaitsAndReadsResultsAndErrors(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t, client.Config{})
	ctx := context.Background()
	bad := row(2)
	bad.Customer.Email = "not-an-email"
	sub, err := c.Submit(ctx, []client.Row{row(1), bad, row(3)}, client.SubmitOptions{Wait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sub.BulkID == "" || sub.Count != 3 || sub.Replayed || sub.Attempts != 1 || sub.IdempotencyKey == "" {
		t.Fatalf("submitted %+v", sub)
	}
	if sub.Bulk == nil || sub.Results == nil {
		// On a loaded machine the import may outlast the wait: wait again.
		if sub.Bulk, sub.Results, err = c.WaitBulk(ctx, sub.BulkID); err != nil {
			t.Fatal(err)
		}
	}
	b := sub.Bulk
	if b.ID != sub.BulkID || b.Status != client.StatusCompleted || b.RowsSucceeded != 2 || b.RowsFailed != 1 ||
		b.Mode != client.ModeCreate || b.CompletedAt == nil || b.RecordsWritten != (client.RecordsWritten{Locations: 1, Customers: 2, DebtAccounts: 4}) {
		t.Fatalf("bulk %+v", b)
	}
	if r := sub.Results; r.TotalRows != 3 || r.TotalCreated != 2 || r.TotalErrors != 1 || len(r.Data) != 3 || r.Links.Next != nil {
		t.Fatalf("results %+v", r)
	}
	if r := sub.Results.Data[0]; r.Row != 1 || r.Status != "created" || *r.Customer.ExternalID != "c-1" || r.Customer.ID == nil ||
		len(r.DebtAccounts) != 2 || r.DebtAccounts[1].Action != "created" || r.Errors != nil {
		t.Fatalf("row 1's result %+v", r)
	}
	if r := sub.Results.Data[1]; r.Status != "failed" || r.Errors == nil || len(r.Errors.Customer) != 1 {
		t.Fatalf("row 2's result %+v", r)
	}

	got, err := c.GetBulk(ctx, sub.BulkID)
	if err != nil || got.Status != client.StatusCompleted || got.RowsFailed != 1 {
		t.Fatalf("GetBulk: %+v, %v", got, err)
	}

	// Paged one row at a time, the results are the same rows in order.
	var rows []int
	for r, err := range c.AllBulkResults(ctx, sub.BulkID, 1) {
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r.Row)
	}
	if !slices.Equal(rows, []int{1, 2, 3}) {
		t.Fatalf("rows paged one at a time: %v", rows)
	}
	page2, err := c.BulkResults(ctx, sub.BulkID, client.ResultsOptions{Page: 2, PerPage: 2})
	if err != nil || len(page2.Data) != 1 || page2.Data[0].Row != 3 || page2.Links.Next != nil {
		t.Fatalf("page 2 of 2: %+v, %v", page2, err)
	}

	report, err := c.BulkErrors(ctx, sub.BulkID)
	if err != nil {
		t.Fatal(err)
	}
	if report.Status != client.StatusCompleted || len(report.Data) != 1 {
		t.Fatalf("errors report %+v", report)
	}
	e := report.Data[0]
	if e.Row != 2 || len(e.Errors.Customer) != 1 || len(e.Errors.Customer[0].Messages["email"]) != 1 || len(e.Errors.Location) != 0 {
		t.Fatalf("row error %+v", e)
	}
	var payload client.Row
	if err := json.Unmarshal(e.Payload, &payload); err != nil || payload.Customer.Email != "not-an-email" {
		t.Fatalf("payload %s: %v", e.Payload, err)
	}
}

func TestSubmitCarriesItsOptions(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t, client.Config{})
	ctx := context.Background()
	opts := client.SubmitOptions{Mode: client.ModeUpsert, Atomic: true, ValidateOnly: true, Strict: true}
	sub, err := c.SubmitJSON(ctx, []byte(`[{"customer":{"external_id":"c-1","name":"Ann","nickname":"A"},"location":{"external_id":"l"},"debt_accounts":[]}]`), opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := c.WaitBulk(ctx, sub.BulkID)
	if err != nil {
		t.Fatal(err)
	}
	if b.Mode != client.ModeUpsert || !b.Atomic || !b.ValidateOnly || !b.Strict || !b.RolledBack || b.RowsFailed != 1 {
		t.Fatalf("bulk %+v", b)
	}
	report, err := c.BulkErrors(ctx, sub.BulkID)
	if err != nil || len(report.Data) != 1 || len(report.Data[0].Errors.Customer[0].Messages["nickname"]) != 1 {
		t.Fatalf("strict mode's report %+v, %v", report, err)
	}

	// The same key with other options is another request: a 422 naming it.
	opts.IdempotencyKey = sub.IdempotencyKey
	if _, err := c.SubmitJSON(ctx, []byte(`[{"customer":{"external_id":"c-1","name":"Ann","nickname":"A"},"location":{"external_id":"l"},"debt_accounts":[]}]`), opts); err != nil {
		t.Fatalf("a replay with the same key, body and options: %v", err)
	}
	opts.Strict = false
	_, err = c.SubmitJSON(ctx, []byte(`[{"customer":{"external_id":"c-1","name":"Ann","nickname":"A"},"location":{"external_id":"l"},"debt_accounts":[]}]`), opts)
	apiError(t, err, http.StatusUnprocessableEntity, "Idempotency-Key")
}

func TestRequestErrorsAreTyped(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t, client.Config{})
	ctx := context.Background()

	_, err := c.GetBulk(ctx, "01a20812-68fd-7edc-8345-0df2970612c2")
	if e := apiError(t, err, http.StatusNotFound, "id"); e.RequestID == "" {
		t.Errorf("no request id in %+v", e)
	}
	if client.StatusCode(err) != http.StatusNotFound || client.StatusCode(errors.New("x")) != 0 {
		t.Errorf("StatusCode(%v) = %d", err, client.StatusCode(err))
	}
	_, err = c.Submit(ctx, nil, client.SubmitOptions{})
	apiError(t, err, http.StatusUnprocessableEntity, "body")
	_, err = c.ListBulks(ctx, client.ListBulksOptions{Limit: 501, Statuses: []client.Status{"done"}})
	e := apiError(t, err, http.StatusBadRequest, "limit")
	if len(e.Errors["status"]) != 1 {
		t.Errorf("every bad parameter named at once: %v", e.Errors)
	}
	_, err = c.Submit(ctx, []client.Row{row(1)}, client.SubmitOptions{Wait: time.Hour})
	apiError(t, err, http.StatusBadRequest, "wait")

	wrongKey := server.Client(t, "bk_"+fmt.Sprintf("%048d", 0)[:48], client.Config{})
	_, err = wrongKey.GetBulk(ctx, "01a20812-68fd-7edc-8345-0df2970612c2")
	if client.StatusCode(err) != http.StatusUnauthorized {
		t.Errorf("an unknown key: %v", err)
	}

	if _, err := client.New(client.Config{BaseURL: "ftp://x", APIKey: "k"}); err == nil {
		t.Error("an ftp base URL was accepted")
	}
	if _, err := client.New(client.Config{BaseURL: server.URL}); err == nil {
		t.Error("no API key was accepted")
	}
}

func TestListBulksFiltersAndPages(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t, client.Config{})
	ctx := context.Background()
	var ids []string
	for i := range 3 {
		sub, err := c.Submit(ctx, []client.Row{row(i)}, client.SubmitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.WaitBulk(ctx, sub.BulkID); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sub.BulkID)
	}
	slices.Reverse(ids) // newest first

	first, err := c.ListBulks(ctx, client.ListBulksOptions{Limit: 2})
	if err != nil || len(first.Data) != 2 || first.Data[0].ID != ids[0] || first.NextCursor() == "" {
		t.Fatalf("first page: %+v, %v", first, err)
	}
	second, err := c.ListBulks(ctx, client.ListBulksOptions{Limit: 2, Cursor: first.NextCursor()})
	if err != nil || len(second.Data) != 1 || second.Data[0].ID != ids[2] || second.NextCursor() != "" {
		t.Fatalf("second page: %+v, %v", second, err)
	}

	var all []string
	for b, err := range c.AllBulks(ctx, client.ListBulksOptions{Limit: 1, Statuses: []client.Status{client.StatusCompleted}}) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b.ID)
	}
	if !slices.Equal(all, ids) {
		t.Fatalf("every completed bulk, one a page: %v, want %v", all, ids)
	}
	none, err := c.ListBulks(ctx, client.ListBulksOptions{Statuses: []client.Status{client.StatusPending, client.StatusFailed}})
	if err != nil || len(none.Data) != 0 {
		t.Fatalf("pending or failed: %+v, %v", none, err)
	}
	later, err := c.ListBulks(ctx, client.ListBulksOptions{CreatedAfter: first.Data[1].CreatedAt})
	if err != nil || len(later.Data) != 1 || later.Data[0].ID != ids[0] {
		t.Fatalf("created after the second: %+v, %v", later, err)
	}
	earlier, err := c.ListBulks(ctx, client.ListBulksOptions{CreatedBefore: first.Data[1].CreatedAt})
	if err != nil || len(earlier.Data) != 1 || earlier.Data[0].ID != ids[2] {
		t.Fatalf("created before the second: %+v, %v", earlier, err)
	}
}

// TestCancel runs on a server without a worker, so that a bulk stays
// pending until it is canceled.
func TestCancel(t *testing.T) {
	t.Parallel()
	api := clienttest.Start(t, server.Bin, "api")
	c := api.Client(t, "", client.Config{})
	ctx := context.Background()
	sub, err := c.Submit(ctx, []client.Row{row(1)}, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.CancelBulk(ctx, sub.BulkID)
	if err != nil || b.Status != client.StatusCanceled || b.CanceledAt == nil {
		t.Fatalf("cancel: %+v, %v", b, err)
	}
	_, err = c.CancelBulk(ctx, sub.BulkID)
	apiError(t, err, http.StatusConflict, "status")
	b, _, err = c.WaitBulk(ctx, sub.BulkID)
	if err != nil || b.Status != client.StatusCanceled {
		t.Fatalf("waiting on a canceled bulk: %+v, %v", b, err)
	}
}

func TestWebhook(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t, client.Config{})
	ctx := context.Background()
	events := make(chan client.WebhookEvent, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e client.WebhookEvent
		if json.NewDecoder(r.Body).Decode(&e) == nil && r.Header.Get("webhook-signature") != "" {
			events <- e
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	_, err := c.GetWebhook(ctx)
	apiError(t, err, http.StatusNotFound, "webhook")
	_, err = c.PutWebhook(ctx, "not a url")
	apiError(t, err, http.StatusUnprocessableEntity, "url")

	hook, err := c.PutWebhook(ctx, receiver.URL+"/first")
	if err != nil || hook.URL != receiver.URL+"/first" || hook.Secret == "" {
		t.Fatalf("put: %+v, %v", hook, err)
	}
	moved, err := c.PutWebhook(ctx, receiver.URL)
	if err != nil || moved.URL != receiver.URL || moved.Secret != "" {
		t.Fatalf("moved: %+v, %v", moved, err)
	}
	rotated, err := c.RotateWebhookSecret(ctx)
	if err != nil || rotated.Secret == "" || rotated.Secret == hook.Secret {
		t.Fatalf("rotated: %+v, %v", rotated, err)
	}

	sub, err := c.Submit(ctx, []client.Row{row(1)}, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := <-events // the worker delivers the bulk's end
	if e.Type != "bulk.completed" || e.Data.ID != sub.BulkID || e.Data.RowsSucceeded != 1 {
		t.Fatalf("event %+v", e)
	}
	for {
		got, err := c.GetWebhook(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.Secret != "" || got.URL != receiver.URL {
			t.Fatalf("get: %+v", got)
		}
		if len(got.Deliveries) == 1 && got.Deliveries[0].Status == "delivered" {
			d := got.Deliveries[0]
			if d.BulkID != sub.BulkID || d.Event != "bulk.completed" || len(d.Attempts) != 1 || *d.Attempts[0].StatusCode != 204 {
				t.Fatalf("delivery %+v", d)
			}
			break
		}
		time.Sleep(50 * time.Millisecond) // the answer arrived; its record follows at once
	}
	if err := c.DeleteWebhook(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetWebhook(ctx)
	apiError(t, err, http.StatusNotFound, "webhook")
}

// imported submits rows and waits for them.
func imported(t *testing.T, c *client.Client, rows ...client.Row) *client.Bulk {
	t.Helper()
	sub, err := c.Submit(context.Background(), rows, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := c.WaitBulk(context.Background(), sub.BulkID)
	if err != nil || b.RowsSucceeded != len(rows) {
		t.Fatalf("import: %+v, %v", b, err)
	}
	return b
}

func TestRecords(t *testing.T) {
	t.Parallel()
	c, org := newClient(t, client.Config{})
	ctx := context.Background()
	b := imported(t, c, row(1), row(2))

	page, err := c.ListCustomers(ctx, client.CustomerFilter{ExternalID: "c-1"})
	if err != nil || len(page.Data) != 1 || page.NextCursor() != "" {
		t.Fatalf("customers c-1: %+v, %v", page, err)
	}
	cust, err := c.GetCustomer(ctx, page.Data[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if cust.ExternalID != "c-1" || cust.OrganizationID != org || *cust.Email != "ann@example.com" || cust.Address.City != "Lyon" ||
		cust.Metadata["tier"] != "gold" || cust.ETag == "" || cust.Location.ExternalID != "loc-1" ||
		*cust.Provenance.BulkID != b.ID || *cust.Provenance.BulkRow != 1 || cust.Provenance.LastChangedBy != "bulk" {
		t.Fatalf("customer %+v", cust)
	}
	if len(cust.DebtAccounts) != 1 || len(cust.DebtAccounts[0].Children) != 1 || cust.DebtAccounts[0].Children[0].ExternalID != "c-1-a" ||
		cust.DebtAccounts[0].Balance != "100.00" || cust.DebtAccounts[0].Children[0].CurrentBalance != "10.00" {
		t.Fatalf("the customer's tree %+v", cust.DebtAccounts)
	}

	var customers []string
	for v, err := range c.AllCustomers(ctx, client.CustomerFilter{BulkID: b.ID, Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		customers = append(customers, v.ExternalID)
	}
	slices.Sort(customers) // one import writes them at the same moment, in no set order
	if !slices.Equal(customers, []string{"c-1", "c-2"}) {
		t.Fatalf("the bulk's customers, one a page: %v", customers)
	}
	accounts, err := c.ListCustomerDebtAccounts(ctx, cust.ID, client.DebtAccountFilter{})
	if err != nil || len(accounts.Data) != 2 {
		t.Fatalf("the customer's accounts: %+v, %v", accounts, err)
	}
	var own []string
	for a, err := range c.AllCustomerDebtAccounts(ctx, cust.ID, client.DebtAccountFilter{ExternalID: "c-1-p", Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		own = append(own, a.ExternalID)
	}
	if !slices.Equal(own, []string{"c-1-p"}) {
		t.Fatalf("the customer's account c-1-p: %v", own)
	}
	var locations []string
	for l, err := range c.AllLocations(ctx, client.LocationFilter{Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		locations = append(locations, l.ExternalID)
	}
	if !slices.Equal(locations, []string{"loc-1"}) {
		t.Fatalf("locations: %v", locations)
	}
	var children []string
	for a, err := range c.AllDebtAccounts(ctx, client.DebtAccountFilter{ParentID: cust.DebtAccounts[0].ID}) {
		if err != nil {
			t.Fatal(err)
		}
		children = append(children, a.ExternalID)
	}
	if !slices.Equal(children, []string{"c-1-a"}) {
		t.Fatalf("children of c-1-p: %v", children)
	}

	// A JSON Patch guarded by the account's ETag; the same ETag again is stale.
	child, err := c.GetDebtAccount(ctx, cust.DebtAccounts[0].Children[0].ID)
	if err != nil || child.ETag != `"1"` {
		t.Fatalf("child: %+v, %v", child, err)
	}
	patched, err := c.PatchDebtAccount(ctx, child.ID, client.JSONPatch(
		client.PatchOp{Op: "replace", Path: "/current_balance", Value: 5.5},
		client.PatchOp{Op: "add", Path: "/billing_type/-", Value: "settlement"},
		client.PatchOp{Op: "replace", Path: "/external_account_number", Value: nil},
	), client.PatchOptions{IfMatch: child.ETag})
	if err != nil {
		t.Fatal(err)
	}
	if patched.Version != 2 || patched.ETag != `"2"` || patched.CurrentBalance != "5.50" || patched.ExternalAccountNumber != nil ||
		!slices.Equal(patched.BillingType, []string{"full-payment", "payment-plan", "settlement"}) || patched.Provenance.LastChangedBy != "api" {
		t.Fatalf("patched %+v", patched)
	}
	_, err = c.PatchDebtAccount(ctx, child.ID, client.JSONPatch(client.PatchOp{Op: "replace", Path: "/balance", Value: 1}), client.PatchOptions{IfMatch: child.ETag})
	apiError(t, err, http.StatusPreconditionFailed, "If-Match")
	_, err = c.PatchDebtAccount(ctx, child.ID, client.JSONPatch(client.PatchOp{Op: "replace", Path: "/balance", Value: "1.001"}), client.PatchOptions{})
	apiError(t, err, http.StatusUnprocessableEntity, "balance")

	// A merge patch: null clears a field.
	named, err := c.PatchCustomer(ctx, cust.ID, client.MergePatch(map[string]any{"name": "Ann Smith", "phone": nil}), client.PatchOptions{})
	if err != nil || named.Name != "Ann Smith" || named.Phone != nil || named.Version != 2 || named.ETag == "" {
		t.Fatalf("merge patched: %+v, %v", named, err)
	}
	loc, err := c.GetLocation(ctx, cust.LocationID)
	if err != nil || loc.ExternalID != "loc-1" || *loc.Name != "Main" {
		t.Fatalf("location: %+v, %v", loc, err)
	}
	loc, err = c.PatchLocation(ctx, loc.ID, client.MergePatch(map[string]any{"name": "HQ"}), client.PatchOptions{IfMatch: loc.ETag})
	if err != nil || *loc.Name != "HQ" || loc.Version != 2 {
		t.Fatalf("patched location: %+v, %v", loc, err)
	}
	locs, err := c.ListLocations(ctx, client.LocationFilter{ExternalID: "loc-1"})
	if err != nil || len(locs.Data) != 1 || locs.Data[0].ID != loc.ID {
		t.Fatalf("locations loc-1: %+v, %v", locs, err)
	}

	// Deletes: a record others depend on is a 409 unless cascaded.
	if err := c.DeleteDebtAccount(ctx, child.ID, client.DeleteOptions{IfMatch: `"2"`}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetDebtAccount(ctx, child.ID)
	apiError(t, err, http.StatusNotFound, "id")
	err = c.DeleteCustomer(ctx, cust.ID, client.DeleteOptions{})
	apiError(t, err, http.StatusConflict, "debt_accounts")
	if err := c.DeleteCustomer(ctx, cust.ID, client.DeleteOptions{Cascade: true}); err != nil {
		t.Fatal(err)
	}
	err = c.DeleteLocation(ctx, loc.ID, client.DeleteOptions{})
	apiError(t, err, http.StatusConflict, "customers")
	if n := server.Count(t, `SELECT count(*) FROM customers WHERE organization_id = $1`, org); n != 1 {
		t.Fatalf("%d customers left, want c-2", n)
	}
}

func TestBatch(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t, client.Config{})
	ctx := context.Background()
	imported(t, c, row(1))
	accounts, err := c.ListDebtAccounts(ctx, client.DebtAccountFilter{ExternalID: "c-1-a"})
	if err != nil || len(accounts.Data) != 1 {
		t.Fatalf("c-1-a: %+v, %v", accounts, err)
	}
	res, err := c.Batch(ctx, []client.BatchOperation{
		{Operation: client.OpPatch, Resource: client.ResourceDebtAccounts, ID: accounts.Data[0].ID, IfMatch: `"1"`,
			PatchDirectives: []client.PatchOp{{Op: "replace", Path: "/current_balance", Value: 3}}},
		{Operation: client.OpCreate, Resource: client.ResourceDebtAccounts, Object: map[string]any{
			"external_id": "n-1", "balance": 12, "billing_type": []string{"settlement"}, "customer_external_id": "c-1", "parent_external_id": "c-1-p"}},
		{Operation: client.OpCreate, Resource: client.ResourceLocations, Object: map[string]any{"external_id": "loc-1"}},
		{Operation: client.OpDelete, Resource: client.ResourceCustomers, ID: "00000000-0000-4000-8000-000000000000"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.SuccessCount != 2 || res.ErrorCount != 2 || len(res.Results) != 4 {
		t.Fatalf("batch %+v", res)
	}
	var patched client.DebtAccount
	if r := res.Results[0]; r.Outcome != "success" || r.Status != 200 || json.Unmarshal(r.Object, &patched) != nil || patched.CurrentBalance != "3.00" {
		t.Fatalf("patch %+v", r)
	}
	if r := res.Results[1]; r.Status != 201 || r.ID == "" {
		t.Fatalf("create %+v", r)
	}
	if r := res.Results[2]; r.Outcome != "error" || r.Status != 422 || len(r.Errors["external_id"]) != 1 {
		t.Fatalf("taken %+v", r)
	}
	if r := res.Results[3]; r.Status != 404 || r.ErrorMessage == "" {
		t.Fatalf("missing %+v", r)
	}
	_, err = c.Batch(ctx, nil)
	apiError(t, err, http.StatusUnprocessableEntity, "operations")
}

// flaky stands in front of bulkd: each request that fail picks is sent on
// to bulkd and its answer thrown away, the client getting instead what
// fail says (a 503 with Retry-After, a 429, or a connection closed
// mid-answer), so that the server did the work and the client does not
// know it.
type flaky struct {
	proxy    *httputil.ReverseProxy
	mu       sync.Mutex
	requests []flakyRequest
	fail     func(n int, r *http.Request) string // "", "503", "429", "drop"; n counts from 1
}

type flakyRequest struct {
	method, path, key string
	at                time.Time
}

func newFlaky(t *testing.T, fail func(n int, r *http.Request) string) (*flaky, string) {
	target, _ := url.Parse(server.URL)
	f := &flaky{proxy: httputil.NewSingleHostReverseProxy(target), fail: fail}
	s := httptest.NewServer(f)
	t.Cleanup(s.Close)
	return f, s.URL
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, flakyRequest{r.Method, r.URL.Path, r.Header.Get("Idempotency-Key"), time.Now()})
	n := len(f.requests)
	f.mu.Unlock()
	how := f.fail(n, r)
	if how == "" {
		f.proxy.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	f.proxy.ServeHTTP(rec, r) // bulkd does the work
	switch how {
	case "503", "429":
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "application/json")
		if how == "503" {
			w.WriteHeader(http.StatusServiceUnavailable)
		} else {
			w.WriteHeader(http.StatusTooManyRequests)
		}
		fmt.Fprint(w, `{"message":"Try again.","errors":{"service":["Try again."]}}`)
	case "drop":
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}
}

func (f *flaky) seen() []flakyRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

func TestSubmitRetriedMakesOneBulk(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"503", "429", "drop"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			org, key, err := server.NewOrganization()
			if err != nil {
				t.Fatal(err)
			}
			f, front := newFlaky(t, func(n int, r *http.Request) string {
				if n <= 2 {
					return how
				}
				return ""
			})
			c, err := client.New(client.Config{BaseURL: front, APIKey: key, MinBackoff: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			sub, err := c.Submit(context.Background(), []client.Row{row(1)}, client.SubmitOptions{})
			if err != nil {
				t.Fatal(err)
			}
			reqs := f.seen()
			if sub.Attempts != 3 || len(reqs) != 3 || !sub.Replayed {
				t.Fatalf("submitted %+v after %d requests, want the third a replay", sub, len(reqs))
			}
			for _, r := range reqs {
				if r.key != sub.IdempotencyKey {
					t.Fatalf("request with key %q, want %q every time", r.key, sub.IdempotencyKey)
				}
			}
			if how != "drop" {
				for i := 1; i < len(reqs); i++ {
					if gap := reqs[i].at.Sub(reqs[i-1].at); gap < time.Second {
						t.Fatalf("retried after %v, before the Retry-After of 1 s", gap)
					}
				}
			}
			if n := server.Bulks(t, org); n != 1 {
				t.Fatalf("%d bulks stored, want 1", n)
			}
			b, err := server.Client(t, key, client.Config{}).GetBulk(context.Background(), sub.BulkID)
			if err != nil || b.Count != 1 {
				t.Fatalf("the bulk: %+v, %v", b, err)
			}
		})
	}
}

// TestWhatIsNotRetried: a request that may have been done and must not be
// done twice (a patch, a batch) is not sent again after its connection
// broke, nor is anything after an answer that is not 429 or 503, and
// retries stop at MaxAttempts.
func TestWhatIsNotRetried(t *testing.T) {
	t.Parallel()
	org, key, err := server.NewOrganization()
	if err != nil {
		t.Fatal(err)
	}
	_ = org
	always := func(how string) func(int, *http.Request) string {
		return func(int, *http.Request) string { return how }
	}
	ctx := context.Background()

	f, front := newFlaky(t, always("drop"))
	c, _ := client.New(client.Config{BaseURL: front, APIKey: key, MinBackoff: time.Millisecond})
	_, err = c.PatchCustomer(ctx, "00000000-0000-4000-8000-000000000000", client.MergePatch(map[string]any{"name": "X"}), client.PatchOptions{})
	var netErr net.Error
	if err == nil || client.StatusCode(err) != 0 || len(f.seen()) != 1 {
		t.Fatalf("a patch whose connection broke: %v after %d requests, want 1 (%v)", err, len(f.seen()), errors.As(err, &netErr))
	}
	_, err = c.Batch(ctx, []client.BatchOperation{{Operation: client.OpDelete, Resource: client.ResourceCustomers, ID: "00000000-0000-4000-8000-000000000000"}})
	if err == nil || len(f.seen()) != 2 {
		t.Fatalf("a batch whose connection broke: %v after %d requests in all, want 2", err, len(f.seen()))
	}

	f, front = newFlaky(t, always("503"))
	c, _ = client.New(client.Config{BaseURL: front, APIKey: key, MaxAttempts: 2, MaxRetryAfter: time.Millisecond})
	_, err = c.GetBulk(ctx, "01a20812-68fd-7edc-8345-0df2970612c2")
	if e := apiError(t, err, http.StatusServiceUnavailable, "service"); e.RetryAfter != time.Second || len(f.seen()) != 2 {
		t.Fatalf("503 every time: %+v after %d requests, want MaxAttempts 2", e, len(f.seen()))
	}

	var n atomic.Int32
	_, front = newFlaky(t, func(int, *http.Request) string { n.Add(1); return "" })
	c, _ = client.New(client.Config{BaseURL: front, APIKey: key})
	_, err = c.GetBulk(ctx, "01a20812-68fd-7edc-8345-0df2970612c2")
	if client.StatusCode(err) != http.StatusNotFound || n.Load() != 1 {
		t.Fatalf("a 404 was retried: %v, %d requests", err, n.Load())
	}
}

// TestContextEndsTheWait: a call gives up when its context ends, even in
// the pause before a retry.
func TestContextEndsTheWait(t *testing.T) {
	t.Parallel()
	_, key, err := server.NewOrganization()
	if err != nil {
		t.Fatal(err)
	}
	_, front := newFlaky(t, func(int, *http.Request) string { return "503" })
	c, _ := client.New(client.Config{BaseURL: front, APIKey: key, MaxRetryAfter: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	_, err = c.GetBulk(ctx, "01a20812-68fd-7edc-8345-0df2970612c2")
	if !errors.Is(err, context.Canceled) || client.StatusCode(err) != http.StatusServiceUnavailable {
		t.Fatalf("canceled in the pause after a 503: %v", err)
	}
}
