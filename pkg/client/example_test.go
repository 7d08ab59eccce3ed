package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/bulkd/bulkd/pkg/client"
)

// exampleConfig is where the examples find bulkd: the test server, as a
// new organization each, so that what one prints never depends on others.
func exampleConfig() client.Config {
	_, key, err := server.NewOrganization()
	if err != nil {
		log.Fatal(err)
	}
	return client.Config{BaseURL: server.URL, APIKey: key}
}

func Example() {
	c, err := client.New(exampleConfig()) // client.Config{BaseURL: "https://bulkd.example.com", APIKey: os.Getenv("BULKD_API_KEY")}
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	rows := []client.Row{{
		Customer: client.RowCustomer{ExternalID: "cust-1", Name: "Ann Lee", Email: "ann@example.com"},
		Location: client.RowLocation{ExternalID: "hq", Name: "Head office"},
		DebtAccounts: []client.RowDebtAccount{
			{ExternalID: "acct-1", Balance: "120.00", BillingType: []string{"payment-plan"}},
			{ExternalID: "acct-2", ParentExternalID: "acct-1", Balance: "30.50", BillingType: []string{"settlement"}},
		},
	}}
	sub, err := c.Submit(ctx, rows, client.SubmitOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("accepted:", sub.Count, "row,", sub.Status)

	b, results, err := c.WaitBulk(ctx, sub.BulkID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("bulk:", b.Status, "- rows imported:", b.RowsSucceeded, "failed:", b.RowsFailed)
	fmt.Println("written:", b.RecordsWritten.Customers, "customer,", b.RecordsWritten.DebtAccounts, "debt accounts")
	r := results.Data[0]
	fmt.Println("row", r.Row, r.Status, "- customer", *r.Customer.ExternalID, r.Customer.Action)
	// Output:
	// accepted: 1 row, pending
	// bulk: completed - rows imported: 1 failed: 0
	// written: 1 customer, 2 debt accounts
	// row 1 created - customer cust-1 created
}

// A bulk can be asked to wait: if it finishes within the wait, the answer
// carries it whole and the first page of its results.
func ExampleClient_Submit_wait() {
	c, err := client.New(exampleConfig())
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	rows := []client.Row{
		{Customer: client.RowCustomer{ExternalID: "c-1", Name: "Ann Lee"}, Location: client.RowLocation{ExternalID: "hq"},
			DebtAccounts: []client.RowDebtAccount{{ExternalID: "a-1", Balance: "10", BillingType: []string{"settlement"}}}},
		{Customer: client.RowCustomer{ExternalID: "c-2", Name: "Bo Chen"}, Location: client.RowLocation{ExternalID: "hq"},
			DebtAccounts: []client.RowDebtAccount{{ExternalID: "a-2", Balance: "-5", BillingType: []string{"settlement"}}}},
	}
	sub, err := c.Submit(ctx, rows, client.SubmitOptions{Atomic: true, Wait: 30 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	b, results := sub.Bulk, sub.Results
	if b == nil { // it did not finish within the wait
		if b, results, err = c.WaitBulk(ctx, sub.BulkID); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(b.Status, "rolled back:", b.RolledBack, "failed rows:", b.RowsFailed)
	for _, r := range results.Data {
		fmt.Println("row", r.Row, r.Status)
	}
	// Output:
	// completed rolled back: true failed rows: 1
	// row 1 rolled_back
	// row 2 failed
}

// The errors report lists each failed row as submitted, with its failed
// objects and their messages by field.
func ExampleClient_BulkErrors() {
	c, err := client.New(exampleConfig())
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	sub, err := c.SubmitJSON(ctx, []byte(`[
		{"customer": {"external_id": "c-1", "name": "Ann Lee", "email": "ann@"},
		 "location": {"external_id": "hq"},
		 "debt_accounts": [{"external_id": "a-1", "balance": 10, "billing_type": ["weekly"]}]}]`), client.SubmitOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if _, _, err := c.WaitBulk(ctx, sub.BulkID); err != nil {
		log.Fatal(err)
	}
	report, err := c.BulkErrors(ctx, sub.BulkID)
	if err != nil {
		log.Fatal(err)
	}
	for _, row := range report.Data {
		fmt.Println("row", row.Row)
		for _, o := range row.Errors.Customer {
			fmt.Println("  customer email:", o.Messages["email"][0])
		}
		for _, o := range row.Errors.DebtAccounts {
			fmt.Println("  debt account billing_type:", o.Messages["billing_type"][0])
		}
	}
	// Output:
	// row 1
	//   customer email: The email field must be a valid email address.
	//   debt account billing_type: The selected billing type is invalid.
}

// A failed call is an *Error with the status, the message and the
// messages by field.
func ExampleError() {
	c, err := client.New(exampleConfig())
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.ListBulks(context.Background(), client.ListBulksOptions{Limit: 1000})
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.Errors["limit"][0])
	}
	// Output:
	// 400 The limit parameter must be a whole number from 1 to 500.
}

// AllBulks walks every page of the list; the filters apply to each.
func ExampleClient_AllBulks() {
	c, err := client.New(exampleConfig())
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for i := range 3 {
		row := client.Row{Customer: client.RowCustomer{ExternalID: fmt.Sprint("c-", i), Name: "Ann Lee"},
			Location: client.RowLocation{ExternalID: "hq"}, DebtAccounts: []client.RowDebtAccount{}}
		sub, err := c.Submit(ctx, []client.Row{row}, client.SubmitOptions{ValidateOnly: i == 1})
		if err != nil {
			log.Fatal(err)
		}
		if _, _, err := c.WaitBulk(ctx, sub.BulkID); err != nil {
			log.Fatal(err)
		}
	}
	n := 0
	for b, err := range c.AllBulks(ctx, client.ListBulksOptions{Statuses: []client.Status{client.StatusCompleted}, Limit: 2}) {
		if err != nil {
			log.Fatal(err)
		}
		n++
		fmt.Println(b.Status, "validate only:", b.ValidateOnly)
	}
	fmt.Println(n, "bulks")
	// Output:
	// completed validate only: false
	// completed validate only: true
	// completed validate only: false
	// 3 bulks
}

// A patch guarded by the ETag of the read it was based on fails if the
// record changed since.
func ExampleClient_PatchDebtAccount() {
	c, err := client.New(exampleConfig())
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	sub, err := c.Submit(ctx, []client.Row{{Customer: client.RowCustomer{ExternalID: "c-1", Name: "Ann Lee"},
		Location:     client.RowLocation{ExternalID: "hq"},
		DebtAccounts: []client.RowDebtAccount{{ExternalID: "a-1", Balance: "100", BillingType: []string{"settlement"}}}}}, client.SubmitOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if _, _, err := c.WaitBulk(ctx, sub.BulkID); err != nil {
		log.Fatal(err)
	}
	page, err := c.ListDebtAccounts(ctx, client.DebtAccountFilter{ExternalID: "a-1"})
	if err != nil {
		log.Fatal(err)
	}
	a, err := c.GetDebtAccount(ctx, page.Data[0].ID)
	if err != nil {
		log.Fatal(err)
	}
	paid := client.JSONPatch(client.PatchOp{Op: "replace", Path: "/current_balance", Value: "40.00"})
	a2, err := c.PatchDebtAccount(ctx, a.ID, paid, client.PatchOptions{IfMatch: a.ETag})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("version", a2.Version, "current balance", a2.CurrentBalance, "changed by", a2.Provenance.LastChangedBy)
	_, err = c.PatchDebtAccount(ctx, a.ID, paid, client.PatchOptions{IfMatch: a.ETag})
	fmt.Println(client.StatusCode(err))
	// Output:
	// version 2 current balance 40.00 changed by api
	// 412
}
