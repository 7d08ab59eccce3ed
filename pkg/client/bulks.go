package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Status is a bulk's status.
type Status string

// A bulk goes pending → processing → completed, or ends failed (the import
// could not run after its retries) or canceled.
const (
	StatusPending    Status = "pending"
	StatusProcessing Status = "processing"
	StatusCompleted  Status = "completed"
	StatusFailed     Status = "failed"
	StatusCanceled   Status = "canceled"
)

// Finished tells whether a bulk in this status will not change any more.
func (s Status) Finished() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCanceled
}

// Mode is how a bulk's import treats records that exist already.
type Mode string

// The import modes.
const (
	// ModeCreate finds or creates customers and locations and creates debt
	// accounts; an account whose external id is taken fails.
	ModeCreate Mode = "create"
	// ModeUpsert updates what exists under its external id (only the fields
	// sent) and creates the rest.
	ModeUpsert Mode = "upsert"
)

// Row is one row of a submission: a customer, its location, and its debt
// accounts, some of which may be parents that others name.
type Row struct {
	Customer           RowCustomer      `json:"customer"`
	Location           RowLocation      `json:"location"`
	ParentDebtAccounts []RowDebtAccount `json:"parent_debt_accounts,omitempty"`
	DebtAccounts       []RowDebtAccount `json:"debt_accounts"`
}

// RowCustomer is a row's customer. Empty optional fields are not sent (in
// an upsert, not sending a field keeps it; to clear one, send an explicit
// null with SubmitJSON).
type RowCustomer struct {
	ExternalID  string         `json:"external_id"`
	Name        string         `json:"name,omitempty"`
	Email       string         `json:"email,omitempty"`
	Phone       string         `json:"phone,omitempty"`
	DateOfBirth string         `json:"date_of_birth,omitempty"` // YYYY-MM-DD
	SSNLast4    string         `json:"ssn_last4,omitempty"`
	Address     *Address       `json:"address,omitempty"`
	Metadata    map[string]any `json:"metadata,omitempty"`
}

// Address is a customer's postal address.
type Address struct {
	Name       string `json:"name,omitempty"`
	Line1      string `json:"line1,omitempty"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city,omitempty"`
	State      string `json:"state,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	Country    string `json:"country,omitempty"`
	IsPrimary  *bool  `json:"is_primary,omitempty"`
}

// RowLocation is a row's location.
type RowLocation struct {
	ExternalID string `json:"external_id"`
	Name       string `json:"name,omitempty"`
}

// RowDebtAccount is a debt account of a row. Money is exact decimal text
// (json.Number, such as "100.00"), never a float. A child names its parent,
// an entry of the same row, by ParentExternalID.
type RowDebtAccount struct {
	ExternalID            string         `json:"external_id"`
	ParentExternalID      string         `json:"parent_external_id,omitempty"`
	ExternalAccountNumber string         `json:"external_account_number,omitempty"`
	Balance               json.Number    `json:"balance,omitempty"`
	CurrentBalance        json.Number    `json:"current_balance,omitempty"` // absent: the balance
	BillingType           []string       `json:"billing_type,omitempty"`    // full-payment, partial-payment, payment-plan, settlement
	Metadata              map[string]any `json:"metadata,omitempty"`
}

// SubmitOptions are a submission's import options and how to send it.
type SubmitOptions struct {
	Mode         Mode // "" is ModeCreate
	Atomic       bool // nothing is written if any object of any row fails
	ValidateOnly bool // a dry run: the results of a real import, nothing written
	Strict       bool // unknown keys are errors
	// IdempotencyKey identifies the submission (1–255 visible ASCII
	// characters): the server answers a repeat of it with the same bulk.
	// Empty: the client makes a random one, the same for every retry of
	// this call. A caller that may repeat the call itself (after a crash)
	// names its own.
	IdempotencyKey string
	// Wait asks the server to hold the answer up to this long for the bulk
	// to finish (at most its MAX_WAIT, 60 s by default); 0 answers at once.
	Wait time.Duration
}

func (o SubmitOptions) query() url.Values {
	q := url.Values{}
	if o.Mode != "" && o.Mode != ModeCreate {
		q.Set("mode", string(o.Mode))
	}
	if o.Atomic {
		q.Set("atomic", "true")
	}
	if o.ValidateOnly {
		q.Set("validate_only", "true")
	}
	if o.Strict {
		q.Set("strict", "true")
	}
	if o.Wait > 0 {
		q.Set("wait", waitParam(o.Wait))
	}
	return q
}

// waitParam writes a wait as whole seconds (at least 1), which every
// server reads.
func waitParam(d time.Duration) string {
	return strconv.FormatInt(max(int64((d+time.Second-1)/time.Second), 1), 10) + "s"
}

// Submitted is the answer to a submission. A bulk that finished within
// SubmitOptions.Wait comes whole, with the first page of its results.
type Submitted struct {
	BulkID string `json:"bulk_id"`
	Count  int    `json:"count"` // rows
	Status Status `json:"status"`
	// Replayed: the server had this IdempotencyKey already and answered
	// with the bulk it made then, creating nothing.
	Replayed       bool   `json:"-"`
	IdempotencyKey string `json:"-"` // the key sent
	Attempts       int    `json:"-"` // how many times the request was sent
	// Bulk and Results are set when the bulk finished within the wait.
	Bulk    *Bulk        `json:"-"`
	Results *ResultsPage `json:"-"`
}

// Bulk is a bulk as GET /api/v1/bulk/{id} shows it; times not reached yet
// are nil.
type Bulk struct {
	ID     string `json:"bulk_id"`
	Count  int    `json:"count"` // rows submitted
	Status Status `json:"status"`
	// The options it was submitted with.
	Mode         Mode `json:"mode"`
	Atomic       bool `json:"atomic"`
	ValidateOnly bool `json:"validate_only"`
	Strict       bool `json:"strict"`
	// RolledBack: the bulk is atomic and a row failed, so nothing was written.
	RolledBack bool `json:"rolled_back"`
	// RowsSucceeded counts the rows imported without any error,
	// RowsFailed those with at least one.
	RowsSucceeded int `json:"rows_succeeded"`
	RowsFailed    int `json:"rows_failed"`
	// RecordsWritten is what the import stored, by table: a failed row may
	// still have written part of itself.
	RecordsWritten RecordsWritten `json:"records_written"`
	FailureReason  string         `json:"failure_reason,omitempty"` // of a failed bulk
	CreatedAt      time.Time      `json:"created_at"`
	StartedAt      *time.Time     `json:"started_at"`
	CompletedAt    *time.Time     `json:"completed_at"`
	CanceledAt     *time.Time     `json:"canceled_at"`
	// ReportExpiredAt is set once RETENTION erased the bulk's rows and
	// results: its errors and results then answer 410.
	ReportExpiredAt *time.Time `json:"report_expired_at,omitempty"`
}

// RecordsWritten counts the records a bulk's import created, by table.
type RecordsWritten struct {
	Locations    int `json:"locations"`
	Customers    int `json:"customers"`
	DebtAccounts int `json:"debt_accounts"`
}

// Submit sends rows as one bulk (1 to 1000 rows) and answers once the
// server has stored it.
func (c *Client) Submit(ctx context.Context, rows []Row, opts SubmitOptions) (*Submitted, error) {
	if rows == nil {
		rows = []Row{} // an empty bulk, which the server refuses as such
	}
	body, err := json.Marshal(rows)
	if err != nil {
		return nil, fmt.Errorf("client: encode rows: %w", err)
	}
	return c.SubmitJSON(ctx, body, opts)
}

// SubmitJSON sends body, a JSON array of rows as the API takes it, as one
// bulk: what Row cannot say (an explicit null, a field this client does
// not know) is sent as written.
func (c *Client) SubmitJSON(ctx context.Context, body []byte, opts SubmitOptions) (*Submitted, error) {
	key := opts.IdempotencyKey
	if key == "" {
		key = newIdempotencyKey()
	}
	var answer struct {
		Data    json.RawMessage `json:"data"`
		Results *ResultsPage    `json:"results"`
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/api/v1/bulk", query: opts.query(),
		header: http.Header{"Idempotency-Key": {key}}, body: body, contentType: "application/json", retry: retryAlways}, &answer)
	if err != nil {
		return nil, err
	}
	s := &Submitted{IdempotencyKey: key, Attempts: resp.attempts,
		Replayed: strings.EqualFold(resp.header.Get("Idempotent-Replayed"), "true")}
	if err := json.Unmarshal(answer.Data, s); err != nil {
		return nil, fmt.Errorf("client: read the submission's answer: %w", err)
	}
	if resp.status == http.StatusOK { // finished within the wait
		var b Bulk
		if err := json.Unmarshal(answer.Data, &b); err != nil {
			return nil, fmt.Errorf("client: read the submission's answer: %w", err)
		}
		s.Bulk, s.Results = &b, answer.Results
	}
	return s, nil
}

// GetBulk reads one bulk.
func (c *Client) GetBulk(ctx context.Context, id string) (*Bulk, error) {
	var out envelope[Bulk]
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/bulk/" + pathID(id), retry: retryAlways}, &out); err != nil {
		return nil, err
	}
	return &out.Data, nil
}

// WaitBulk waits until the bulk finishes (completed, failed or canceled),
// or ctx ends, and answers it with the first page of its results (nil for
// a bulk that was not completed). It holds each request at the server for
// up to Config.WaitStep; a server that refuses to wait that long is polled
// instead.
func (c *Client) WaitBulk(ctx context.Context, id string) (*Bulk, *ResultsPage, error) {
	step, poll := c.cfg.WaitStep, false
	for {
		q := url.Values{}
		if !poll {
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < step {
				step = max(time.Until(dl), time.Second)
			}
			q.Set("wait", waitParam(step))
		}
		var out struct {
			Data    Bulk         `json:"data"`
			Results *ResultsPage `json:"results"`
		}
		_, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/bulk/" + pathID(id), query: q, retry: retryAlways}, &out)
		var apiErr *Error
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusBadRequest && apiErr.Errors["wait"] != nil && !poll {
			poll = true // the server waits less, or not at all
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if out.Data.Status.Finished() {
			if out.Results == nil && out.Data.Status == StatusCompleted {
				if out.Results, err = c.BulkResults(ctx, id, ResultsOptions{}); err != nil {
					return &out.Data, nil, err
				}
			}
			return &out.Data, out.Results, nil
		}
		if poll {
			t := time.NewTimer(2 * time.Second)
			select {
			case <-ctx.Done():
				t.Stop()
				return &out.Data, nil, ctx.Err()
			case <-t.C:
			}
		}
	}
}

// CancelBulk cancels a pending or processing bulk and answers it as it is
// then (canceled, with CanceledAt). A bulk finished already is a 409
// *Error naming its status.
func (c *Client) CancelBulk(ctx context.Context, id string) (*Bulk, error) {
	var out envelope[Bulk]
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/api/v1/bulk/" + pathID(id) + "/cancel", retry: retryAlways}, &out)
	if StatusCode(err) == http.StatusConflict && resp.attempts > 1 {
		// An earlier attempt may have canceled it, its answer lost: then
		// the cancel did happen.
		if b, gerr := c.GetBulk(ctx, id); gerr == nil && b.Status == StatusCanceled {
			return b, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return &out.Data, nil
}

// ListBulksOptions filter and page the list of bulks.
type ListBulksOptions struct {
	Statuses      []Status  // any of these; none: every status
	CreatedAfter  time.Time // zero: no bound (strictly after)
	CreatedBefore time.Time // zero: no bound (strictly before)
	Limit         int       // 1 to 500 a page; 0: the server's 50
	Cursor        string    // from Page.NextCursor; "": the first page
}

// ListBulks reads one page of the organization's bulks, newest first.
func (c *Client) ListBulks(ctx context.Context, opts ListBulksOptions) (*Page[Bulk], error) {
	q := url.Values{}
	if len(opts.Statuses) > 0 {
		s := make([]string, len(opts.Statuses))
		for i, st := range opts.Statuses {
			s[i] = string(st)
		}
		q.Set("status", strings.Join(s, ","))
	}
	if !opts.CreatedAfter.IsZero() {
		q.Set("created_after", opts.CreatedAfter.UTC().Format(time.RFC3339Nano))
	}
	if !opts.CreatedBefore.IsZero() {
		q.Set("created_before", opts.CreatedBefore.UTC().Format(time.RFC3339Nano))
	}
	setPaging(q, opts.Limit, opts.Cursor)
	var out Page[Bulk]
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/bulk", query: q, retry: retryAlways}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AllBulks lists every bulk opts select, page after page, newest first;
// it stops at the first error, which it yields.
func (c *Client) AllBulks(ctx context.Context, opts ListBulksOptions) iter.Seq2[Bulk, error] {
	return paged(func(cursor string) (*Page[Bulk], error) {
		opts.Cursor = cursor
		return c.ListBulks(ctx, opts)
	}, opts.Cursor)
}

// paged walks the pages that list reads, from cursor on.
func paged[T any](list func(cursor string) (*Page[T], error), cursor string) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for {
			p, err := list(cursor)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, v := range p.Data {
				if !yield(v, nil) {
					return
				}
			}
			if cursor = p.NextCursor(); cursor == "" {
				return
			}
		}
	}
}

func setPaging(q url.Values, limit int, cursor string) {
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
}

// ResultRow is one row's result: what the import did with each object
// and, for a failed row, the same report BulkErrors gives for it.
type ResultRow struct {
	Row                int            `json:"row"`    // 1-based position in the bulk
	Status             string         `json:"status"` // failed, rolled_back, updated, created or unchanged
	Customer           *ResultObject  `json:"customer"`
	Location           *ResultObject  `json:"location"`
	ParentDebtAccounts []ResultObject `json:"parent_debt_accounts"`
	DebtAccounts       []ResultObject `json:"debt_accounts"`
	Errors             *RowErrors     `json:"errors"`
}

// ResultObject is one object of a row's result. ExternalID is nil when the
// object carried no valid one, ID when no record stands for it.
type ResultObject struct {
	ExternalID *string `json:"external_id"`
	ID         *string `json:"id"`
	// Action is created, found, updated, unchanged, failed or rolled_back.
	Action string `json:"action"`
}

// ResultsPage is a page of a bulk's results, in row order, with the bulk's
// totals. A bulk not completed has no rows: Status tells "nothing yet".
type ResultsPage struct {
	Data           []ResultRow `json:"data"`
	Status         Status      `json:"status"`
	TotalRows      int         `json:"total_rows"`
	TotalCreated   int         `json:"total_created"`
	TotalUpdated   int         `json:"total_updated"`
	TotalUnchanged int         `json:"total_unchanged"`
	TotalErrors    int         `json:"total_errors"`
	Links          Links       `json:"links"`
}

// ResultsOptions page a bulk's results.
type ResultsOptions struct {
	Page    int // from 1; 0: the first
	PerPage int // 1 to 1000; 0: the server's 100
}

// BulkResults reads one page of a bulk's results.
func (c *Client) BulkResults(ctx context.Context, id string, opts ResultsOptions) (*ResultsPage, error) {
	q := url.Values{}
	if opts.Page > 0 {
		q.Set("page", strconv.Itoa(opts.Page))
	}
	if opts.PerPage > 0 {
		q.Set("per_page", strconv.Itoa(opts.PerPage))
	}
	var out ResultsPage
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/bulk/" + pathID(id) + "/results", query: q, retry: retryAlways}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AllBulkResults yields every row's result of a completed bulk, perPage
// rows a request (0: the server's 100); it stops at the first error, which
// it yields.
func (c *Client) AllBulkResults(ctx context.Context, id string, perPage int) iter.Seq2[ResultRow, error] {
	return func(yield func(ResultRow, error) bool) {
		for page := 1; ; page++ {
			p, err := c.BulkResults(ctx, id, ResultsOptions{Page: page, PerPage: perPage})
			if err != nil {
				yield(ResultRow{}, err)
				return
			}
			for _, r := range p.Data {
				if !yield(r, nil) {
					return
				}
			}
			if p.Links.Next == nil {
				return
			}
		}
	}
}

// ErrorsReport is a bulk's errors report: only the rows with an error. An
// empty report of a bulk not finished means "nothing yet", not "nothing
// failed": Status tells them apart.
type ErrorsReport struct {
	Data   []RowError `json:"data"`
	Status Status     `json:"status"`
}

// RowError is one failed row: its number, the row exactly as submitted,
// and its failed objects by section.
type RowError struct {
	Row     int             `json:"id"` // 1-based position in the bulk
	Payload json.RawMessage `json:"payload"`
	Errors  RowErrors       `json:"errors"`
}

// RowErrors lists a row's failed objects, section by section; a section
// that is fine is empty.
type RowErrors struct {
	Customer           []ObjectError `json:"customer"`
	Location           []ObjectError `json:"location"`
	ParentDebtAccounts []ObjectError `json:"parent_debt_accounts"`
	DebtAccounts       []ObjectError `json:"debt_accounts"`
	// Report is set instead when the server could not read the row's
	// stored report.
	Report []string `json:"report,omitempty"`
}

// ObjectError is one failed object: as submitted, and its messages by field.
type ObjectError struct {
	Data     json.RawMessage     `json:"data"`
	Messages map[string][]string `json:"messages"`
}

// BulkErrors reads a bulk's errors report.
func (c *Client) BulkErrors(ctx context.Context, id string) (*ErrorsReport, error) {
	var out ErrorsReport
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/bulk/" + pathID(id) + "/errors", retry: retryAlways}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
