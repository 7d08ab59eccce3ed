package client

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"net/url"
	"time"
)

// Resources of the records API, as the batch names them.
const (
	ResourceLocations    = "locations"
	ResourceCustomers    = "customers"
	ResourceDebtAccounts = "debt_accounts"
)

// Provenance names the bulk rows that created a record and changed it last
// (nil for a record the records API created), and what changed it last:
// "bulk" or "api".
type Provenance struct {
	BulkID        *string `json:"bulk_id"`
	BulkRow       *int    `json:"bulk_row"`
	LastBulkID    *string `json:"last_bulk_id"`
	LastBulkRow   *int    `json:"last_bulk_row"`
	LastChangedBy string  `json:"last_changed_by"`
}

// Location is a stored location.
type Location struct {
	ID             string     `json:"id"`
	OrganizationID string     `json:"organization_id"`
	ExternalID     string     `json:"external_id"`
	Name           *string    `json:"name"`
	Version        int        `json:"version"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	Provenance     Provenance `json:"provenance"`
	// ETag is the entity tag the server answered a read or patch of this
	// record with, for PatchOptions.IfMatch; "" in a list.
	ETag string `json:"-"`
}

// Customer is a stored customer. Read alone it includes its location and
// its debt accounts as a tree (each top-level account with its Children);
// in a list, neither.
type Customer struct {
	ID             string         `json:"id"`
	OrganizationID string         `json:"organization_id"`
	ExternalID     string         `json:"external_id"`
	LocationID     string         `json:"location_id"`
	Name           string         `json:"name"`
	Email          *string        `json:"email"`
	Phone          *string        `json:"phone"`
	DateOfBirth    *string        `json:"date_of_birth"` // YYYY-MM-DD
	SSNLast4       *string        `json:"ssn_last4"`
	Address        *Address       `json:"address"`
	Metadata       map[string]any `json:"metadata"`
	Version        int            `json:"version"`
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
	Provenance     Provenance     `json:"provenance"`
	Location       *Location      `json:"location,omitempty"`
	DebtAccounts   []DebtAccount  `json:"debt_accounts,omitempty"`
	// ETag is the entity tag of the customer and what it includes; "" in a
	// list.
	ETag string `json:"-"`
}

// DebtAccount is a stored debt account; balances are exact decimal text.
type DebtAccount struct {
	ID                    string         `json:"id"`
	OrganizationID        string         `json:"organization_id"`
	ExternalID            string         `json:"external_id"`
	CustomerID            string         `json:"customer_id"`
	ParentID              *string        `json:"parent_id"`
	ParentExternalID      *string        `json:"parent_external_id"`
	ExternalAccountNumber *string        `json:"external_account_number"`
	Balance               json.Number    `json:"balance"`
	CurrentBalance        json.Number    `json:"current_balance"`
	BillingType           []string       `json:"billing_type"`
	Metadata              map[string]any `json:"metadata"`
	Version               int            `json:"version"`
	CreatedAt             time.Time      `json:"created_at"`
	UpdatedAt             time.Time      `json:"updated_at"`
	Provenance            Provenance     `json:"provenance"`
	// Children are a top-level account's children, in a customer's tree.
	Children []DebtAccount `json:"children,omitempty"`
	ETag     string        `json:"-"` // as Location.ETag
}

// LocationFilter selects and pages locations.
type LocationFilter struct {
	ExternalID string
	Limit      int    // 1 to 1000 a page; 0: the server's 100
	Cursor     string // from Page.NextCursor
}

// CustomerFilter selects and pages customers; empty fields select all.
type CustomerFilter struct {
	ExternalID, Email, LocationID, BulkID string
	Limit                                 int
	Cursor                                string
}

// DebtAccountFilter selects and pages debt accounts; empty fields select
// all. ListCustomerDebtAccounts ignores CustomerID (the path names it).
type DebtAccountFilter struct {
	CustomerID, ExternalID, ParentID, BulkID string
	Limit                                    int
	Cursor                                   string
}

func (f LocationFilter) query() url.Values {
	q := url.Values{}
	setNonEmpty(q, "external_id", f.ExternalID)
	setPaging(q, f.Limit, f.Cursor)
	return q
}

func (f CustomerFilter) query() url.Values {
	q := url.Values{}
	setNonEmpty(q, "external_id", f.ExternalID)
	setNonEmpty(q, "email", f.Email)
	setNonEmpty(q, "location_id", f.LocationID)
	setNonEmpty(q, "bulk_id", f.BulkID)
	setPaging(q, f.Limit, f.Cursor)
	return q
}

func (f DebtAccountFilter) query() url.Values {
	q := url.Values{}
	setNonEmpty(q, "customer_id", f.CustomerID)
	setNonEmpty(q, "external_id", f.ExternalID)
	setNonEmpty(q, "parent_id", f.ParentID)
	setNonEmpty(q, "bulk_id", f.BulkID)
	setPaging(q, f.Limit, f.Cursor)
	return q
}

func setNonEmpty(q url.Values, name, v string) {
	if v != "" {
		q.Set(name, v)
	}
}

// Patch is the body of a record's PATCH: a JSON Patch or a merge patch.
type Patch struct {
	contentType string
	doc         any
}

// JSONPatch is an RFC 6902 JSON Patch: operations applied in order.
func JSONPatch(ops ...PatchOp) Patch {
	if ops == nil {
		ops = []PatchOp{}
	}
	return Patch{contentType: "application/json-patch+json", doc: ops}
}

// MergePatch is an RFC 7386 merge patch: the members of doc replace the
// record's, a null removes one (clears an optional field).
func MergePatch(doc any) Patch {
	return Patch{contentType: "application/merge-patch+json", doc: doc}
}

// PatchOp is one operation of a JSON Patch: Op is add, remove, replace,
// move, copy or test; Path and From are JSON pointers ("/current_balance",
// "/billing_type/-").
type PatchOp struct {
	Op    string
	Path  string
	From  string // of move and copy
	Value any    // of add, replace and test; nil is JSON null
}

// MarshalJSON writes the operation with the members its op takes, so
// that a null or zero Value is sent as such.
func (p PatchOp) MarshalJSON() ([]byte, error) {
	m := map[string]any{"op": p.Op, "path": p.Path}
	switch p.Op {
	case "add", "replace", "test":
		m["value"] = p.Value
	case "move", "copy":
		m["from"] = p.From
	}
	return json.Marshal(m)
}

// PatchOptions guard a patch.
type PatchOptions struct {
	// IfMatch is the ETag (or "\"3\"", a version) the record must still
	// have: a stale one is a 412 *Error. Empty: the patch applies to the
	// current version.
	IfMatch string
}

// DeleteOptions guard and widen a delete.
type DeleteOptions struct {
	IfMatch string
	// Cascade deletes what depends on the record too (a customer's debt
	// accounts, a parent's children, a location's customers); without it
	// such a record is a 409 *Error.
	Cascade bool
}

// GetLocation reads one location.
func (c *Client) GetLocation(ctx context.Context, id string) (*Location, error) {
	return getRecord(ctx, c, ResourceLocations, id, func(l *Location, etag string) { l.ETag = etag })
}

// GetCustomer reads one customer with its location and debt accounts.
func (c *Client) GetCustomer(ctx context.Context, id string) (*Customer, error) {
	return getRecord(ctx, c, ResourceCustomers, id, func(v *Customer, etag string) { v.ETag = etag })
}

// GetDebtAccount reads one debt account.
func (c *Client) GetDebtAccount(ctx context.Context, id string) (*DebtAccount, error) {
	return getRecord(ctx, c, ResourceDebtAccounts, id, func(v *DebtAccount, etag string) { v.ETag = etag })
}

// PatchLocation changes one location and answers it as it is then.
func (c *Client) PatchLocation(ctx context.Context, id string, p Patch, opts PatchOptions) (*Location, error) {
	return patchRecord(ctx, c, ResourceLocations, id, p, opts, func(v *Location, etag string) { v.ETag = etag })
}

// PatchCustomer changes one customer's own fields (not its location's or
// accounts') and answers it as it is then.
func (c *Client) PatchCustomer(ctx context.Context, id string, p Patch, opts PatchOptions) (*Customer, error) {
	return patchRecord(ctx, c, ResourceCustomers, id, p, opts, func(v *Customer, etag string) { v.ETag = etag })
}

// PatchDebtAccount changes one debt account and answers it as it is then.
func (c *Client) PatchDebtAccount(ctx context.Context, id string, p Patch, opts PatchOptions) (*DebtAccount, error) {
	return patchRecord(ctx, c, ResourceDebtAccounts, id, p, opts, func(v *DebtAccount, etag string) { v.ETag = etag })
}

// DeleteLocation deletes one location.
func (c *Client) DeleteLocation(ctx context.Context, id string, opts DeleteOptions) error {
	return c.deleteRecord(ctx, ResourceLocations, id, opts)
}

// DeleteCustomer deletes one customer.
func (c *Client) DeleteCustomer(ctx context.Context, id string, opts DeleteOptions) error {
	return c.deleteRecord(ctx, ResourceCustomers, id, opts)
}

// DeleteDebtAccount deletes one debt account.
func (c *Client) DeleteDebtAccount(ctx context.Context, id string, opts DeleteOptions) error {
	return c.deleteRecord(ctx, ResourceDebtAccounts, id, opts)
}

// ListLocations reads one page of locations, newest first.
func (c *Client) ListLocations(ctx context.Context, f LocationFilter) (*Page[Location], error) {
	return listRecords[Location](ctx, c, "/api/v1/locations", f.query())
}

// ListCustomers reads one page of customers, newest first.
func (c *Client) ListCustomers(ctx context.Context, f CustomerFilter) (*Page[Customer], error) {
	return listRecords[Customer](ctx, c, "/api/v1/customers", f.query())
}

// ListDebtAccounts reads one page of debt accounts, newest first.
func (c *Client) ListDebtAccounts(ctx context.Context, f DebtAccountFilter) (*Page[DebtAccount], error) {
	return listRecords[DebtAccount](ctx, c, "/api/v1/debt_accounts", f.query())
}

// ListCustomerDebtAccounts reads one page of a customer's debt accounts.
func (c *Client) ListCustomerDebtAccounts(ctx context.Context, customerID string, f DebtAccountFilter) (*Page[DebtAccount], error) {
	f.CustomerID = ""
	return listRecords[DebtAccount](ctx, c, "/api/v1/customers/"+pathID(customerID)+"/debt_accounts", f.query())
}

// AllLocations yields every location f selects, page after page.
func (c *Client) AllLocations(ctx context.Context, f LocationFilter) iter.Seq2[Location, error] {
	return paged(func(cursor string) (*Page[Location], error) {
		f.Cursor = cursor
		return c.ListLocations(ctx, f)
	}, f.Cursor)
}

// AllCustomers yields every customer f selects, page after page.
func (c *Client) AllCustomers(ctx context.Context, f CustomerFilter) iter.Seq2[Customer, error] {
	return paged(func(cursor string) (*Page[Customer], error) {
		f.Cursor = cursor
		return c.ListCustomers(ctx, f)
	}, f.Cursor)
}

// AllDebtAccounts yields every debt account f selects, page after page.
func (c *Client) AllDebtAccounts(ctx context.Context, f DebtAccountFilter) iter.Seq2[DebtAccount, error] {
	return paged(func(cursor string) (*Page[DebtAccount], error) {
		f.Cursor = cursor
		return c.ListDebtAccounts(ctx, f)
	}, f.Cursor)
}

// AllCustomerDebtAccounts yields every debt account of a customer that f
// selects, page after page.
func (c *Client) AllCustomerDebtAccounts(ctx context.Context, customerID string, f DebtAccountFilter) iter.Seq2[DebtAccount, error] {
	return paged(func(cursor string) (*Page[DebtAccount], error) {
		f.Cursor = cursor
		return c.ListCustomerDebtAccounts(ctx, customerID, f)
	}, f.Cursor)
}

func getRecord[T any](ctx context.Context, c *Client, resource, id string, setETag func(*T, string)) (*T, error) {
	var out envelope[T]
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/" + resource + "/" + pathID(id), retry: retryAlways}, &out)
	if err != nil {
		return nil, err
	}
	setETag(&out.Data, resp.header.Get("ETag"))
	return &out.Data, nil
}

// patchRecord sends a patch. Once sent whole it is not retried after a
// connection error: a JSON Patch that adds to a list must not run twice,
// and one guarded by If-Match would fail its own check.
func patchRecord[T any](ctx context.Context, c *Client, resource, id string, p Patch, opts PatchOptions, setETag func(*T, string)) (*T, error) {
	body, err := json.Marshal(p.doc)
	if err != nil {
		return nil, err
	}
	req := request{method: http.MethodPatch, path: "/api/v1/" + resource + "/" + pathID(id), body: body, contentType: p.contentType, retry: retryIfUndone}
	if opts.IfMatch != "" {
		req.header = http.Header{"If-Match": {opts.IfMatch}}
	}
	var out envelope[T]
	resp, err := c.do(ctx, req, &out)
	if err != nil {
		return nil, err
	}
	setETag(&out.Data, resp.header.Get("ETag"))
	return &out.Data, nil
}

func (c *Client) deleteRecord(ctx context.Context, resource, id string, opts DeleteOptions) error {
	req := request{method: http.MethodDelete, path: "/api/v1/" + resource + "/" + pathID(id), retry: retryIfUndone}
	if opts.Cascade {
		req.query = url.Values{"cascade": {"true"}}
	}
	if opts.IfMatch != "" {
		req.header = http.Header{"If-Match": {opts.IfMatch}}
	}
	_, err := c.do(ctx, req, nil)
	return err
}

func listRecords[T any](ctx context.Context, c *Client, path string, q url.Values) (*Page[T], error) {
	var out Page[T]
	if _, err := c.do(ctx, request{method: http.MethodGet, path: path, query: q, retry: retryAlways}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Batch operations.
const (
	OpPatch  = "patch"
	OpDelete = "delete"
	OpCreate = "create"
)

// BatchOperation is one operation of a batch on a Resource… record:
// a patch (ID, PatchDirectives, optional IfMatch), a delete (ID, optional
// IfMatch; it never cascades) or a create (Object: an import row's section;
// a customer names its location by location_id or location_external_id, a
// debt account its customer by customer_id or customer_external_id).
type BatchOperation struct {
	Operation       string    `json:"operation"`
	Resource        string    `json:"resource"`
	ID              string    `json:"id,omitempty"`
	IfMatch         string    `json:"if_match,omitempty"`
	PatchDirectives []PatchOp `json:"patch_directives,omitempty"`
	Object          any       `json:"object,omitempty"`
}

// BatchResult is each operation's outcome, in the order of the operations.
type BatchResult struct {
	SuccessCount int         `json:"success_count"`
	ErrorCount   int         `json:"error_count"`
	Results      []BatchItem `json:"results"`
}

// BatchItem is one operation's outcome: Status is what its single request
// would have answered (200, 201, 204, or the error's), Object the record
// patched or created (decode it as the Resource's type).
type BatchItem struct {
	Operation    string              `json:"operation"`
	Resource     string              `json:"resource"`
	ID           string              `json:"id,omitempty"`
	Outcome      string              `json:"outcome"` // success or error
	Status       int                 `json:"status"`
	Object       json.RawMessage     `json:"object,omitempty"`
	ErrorMessage string              `json:"error_message,omitempty"`
	Errors       map[string][]string `json:"errors,omitempty"`
}

// Batch runs 1 to 100 operations, each as its single request would; one
// failing never stops another, and its error is its item's, not Batch's.
// A batch is not retried after a connection error: its creates are not
// idempotent.
func (c *Client) Batch(ctx context.Context, ops []BatchOperation) (*BatchResult, error) {
	body, err := json.Marshal(struct {
		Operations []BatchOperation `json:"operations"`
	}{ops})
	if err != nil {
		return nil, err
	}
	var out BatchResult
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/api/v1/batch", body: body, contentType: "application/json", retry: retryIfUndone}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
