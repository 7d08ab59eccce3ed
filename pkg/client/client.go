// Package client is the Go client of bulkd's HTTP API: typed requests and
// answers for every endpoint (bulks, their results and errors, the webhook,
// the records API and its batch), each call taking a context.
//
// It is the one package of this module meant for other modules to import;
// it depends on the standard library alone. Its wire types are the API's
// contract as the OpenAPI document describes it.
//
// Calls are retried when the server says it did nothing (429 and 503, after
// the Retry-After it sends) and on connection errors when repeating the
// request cannot do anything twice. A submission always carries an
// Idempotency-Key, generated when SubmitOptions names none and reused by
// every retry of that submission, so a retried submit never makes two bulks.
// A failed call's error is an *Error (use errors.As) with the status, the
// message and the field errors the API answered.
package client

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is what a Client needs; BaseURL and APIKey are required.
type Config struct {
	// BaseURL is where bulkd serves, such as https://bulkd.example.com.
	BaseURL string
	// APIKey is sent as Authorization: Bearer <key>.
	APIKey string
	// HTTPClient sends the requests; nil uses one of its own, which gives
	// up on an answer whose headers have not come WaitStep + 2 minutes after
	// the request was sent (bound a call's whole time with its context).
	// Its Timeout, if any, must outlast a wait (WaitStep).
	HTTPClient *http.Client
	// MaxAttempts is how often one call is tried in all (1: never retried);
	// 0 means 6.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the pause before a retry the server
	// gave no Retry-After for: MinBackoff doubling each attempt, with
	// jitter, up to MaxBackoff. 0 means 250 ms and 15 s.
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps the Retry-After the client honours; 0 means 1 min.
	MaxRetryAfter time.Duration
	// WaitStep is how long each request of WaitBulk asks the server to wait
	// (?wait=); 0 means 30 s. The server refuses more than its MAX_WAIT.
	WaitStep time.Duration
	// UserAgent is sent as User-Agent; empty sends "bulkd-go-client".
	UserAgent string
}

// Client calls one bulkd as one organization (its API key). It is safe for
// concurrent use.
type Client struct {
	base   *url.URL
	key    string
	http   *http.Client
	cfg    Config
	random func() float64 // jitter, in [0, 1)
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("client: Config.BaseURL is required")
	}
	base, err := url.Parse(strings.TrimSuffix(cfg.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("client: Config.BaseURL %q must be an http or https URL such as https://bulkd.example.com", cfg.BaseURL)
	}
	if cfg.APIKey == "" {
		return nil, errors.New("client: Config.APIKey is required")
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 6
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 15 * time.Second
	}
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = time.Minute
	}
	if cfg.WaitStep <= 0 {
		cfg.WaitStep = 30 * time.Second
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "bulkd-go-client"
	}
	if cfg.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = cfg.WaitStep + 2*time.Minute
		cfg.HTTPClient = &http.Client{Transport: t}
	}
	return &Client{base: base, key: cfg.APIKey, http: cfg.HTTPClient, cfg: cfg, random: rand.Float64}, nil
}

// Error is an answer of the API that is not a success:
// {"message": "...", "errors": {"<field>": ["..."]}} and its status. A
// call that failed otherwise (a connection error, a cancelled context) does
// not return an *Error.
type Error struct {
	StatusCode int                 // the HTTP status, such as 422
	Message    string              `json:"message"`
	Errors     map[string][]string `json:"errors"` // messages by field, query parameter, header or JSON pointer
	RequestID  string              // the X-Request-Id the server logged the request under
	// RetryAfter is what the server asked the client to wait before trying
	// again (429, 503), 0 when it did not say.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("bulkd: %d: %s", e.StatusCode, msg)
}

// StatusCode is the HTTP status of err when it is an *Error, else 0.
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// retry says which failures of a request may be retried.
type retry uint8

const (
	// retryIfUndone retries only what cannot have been done: a 429 or 503
	// (the server did nothing) and a request that was never sent whole.
	retryIfUndone retry = iota
	// retryAlways also retries a connection error after the request was
	// sent: doing it twice ends as doing it once (a read, a submission
	// with its Idempotency-Key, a PUT).
	retryAlways
)

// request is one API call, kept whole so that a retry sends it again.
type request struct {
	method      string
	path        string // below the base URL, such as /api/v1/bulk
	query       url.Values
	header      http.Header
	body        []byte
	contentType string
	retry       retry
}

// response is a success: its status and headers, the body decoded.
type response struct {
	status int
	header http.Header
	// attempts is how many times the request was sent.
	attempts int
}

// do sends req, retrying what may be retried, and decodes a 2xx body into
// out (unless out is nil or the answer has no body).
func (c *Client) do(ctx context.Context, req request, out any) (response, error) {
	var last error
	for attempt := 1; ; attempt++ {
		resp, wait, err := c.once(ctx, req, out)
		resp.attempts = attempt
		if err == nil {
			return resp, nil
		}
		last = err
		if wait < 0 || attempt >= c.cfg.MaxAttempts {
			return resp, last
		}
		if wait == 0 {
			wait = c.backoff(attempt)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return resp, fmt.Errorf("%w (after: %w)", ctx.Err(), last)
		case <-t.C:
		}
	}
}

// once sends req once. wait is how long to pause before a retry: -1 when
// the failure must not be retried, 0 for the client's own backoff.
func (c *Client) once(ctx context.Context, req request, out any) (resp response, wait time.Duration, err error) {
	u := *c.base
	u.Path += req.path
	if len(req.query) > 0 {
		u.RawQuery = req.query.Encode()
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	sent := false
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) { sent = info.Err == nil },
	})
	hr, err := http.NewRequestWithContext(ctx, req.method, u.String(), body)
	if err != nil {
		return resp, -1, fmt.Errorf("client: %s %s: %w", req.method, req.path, err)
	}
	for k, vs := range req.header {
		hr.Header[k] = vs
	}
	hr.Header.Set("Authorization", "Bearer "+c.key)
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("User-Agent", c.cfg.UserAgent)
	if req.contentType != "" {
		hr.Header.Set("Content-Type", req.contentType)
	}
	r, err := c.http.Do(hr)
	if err != nil {
		err = fmt.Errorf("client: %s %s: %w", req.method, req.path, err)
		if ctx.Err() != nil || (sent && req.retry != retryAlways) {
			return resp, -1, err
		}
		return resp, 0, err
	}
	defer r.Body.Close()
	resp.status, resp.header = r.StatusCode, r.Header
	if r.StatusCode >= 200 && r.StatusCode < 300 {
		if out != nil && r.StatusCode != http.StatusNoContent {
			if err := json.NewDecoder(r.Body).Decode(out); err != nil {
				// A body cut short is a connection that broke mid-answer.
				err = fmt.Errorf("client: %s %s: read the answer: %w", req.method, req.path, err)
				if req.retry == retryAlways && ctx.Err() == nil {
					return resp, 0, err
				}
				return resp, -1, err
			}
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 4<<10)) // lets the connection be reused
		return resp, 0, nil
	}
	apiErr := &Error{StatusCode: r.StatusCode, RequestID: r.Header.Get("X-Request-Id"),
		RetryAfter: retryAfter(r.Header.Get("Retry-After"), time.Now())}
	if b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20)); len(b) > 0 {
		_ = json.Unmarshal(b, apiErr) // a body that is not the API's shape leaves the status alone
	}
	if r.StatusCode != http.StatusTooManyRequests && r.StatusCode != http.StatusServiceUnavailable {
		return resp, -1, apiErr
	}
	return resp, min(apiErr.RetryAfter, c.cfg.MaxRetryAfter), apiErr
}

// backoff is the pause before retry attempt+1 when the server named none:
// exponential with full jitter, so that many clients do not retry in step.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.MinBackoff << min(attempt-1, 20)
	if d <= 0 || d > c.cfg.MaxBackoff {
		d = c.cfg.MaxBackoff
	}
	return d/2 + time.Duration(c.random()*float64(d/2))
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date; 0 when
// absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// newIdempotencyKey is a random UUID (version 4), for a submission whose
// caller named no key.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = crand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// pathID escapes an id for a path segment: an id with a slash must name no
// other route.
func pathID(id string) string { return url.PathEscape(id) }

// Links points at the next page of a list; Next is nil on the last.
type Links struct {
	Next *string `json:"next"`
}

// cursor is the cursor parameter of a next link, "" when there is none.
func (l Links) cursor() string {
	if l.Next == nil {
		return ""
	}
	u, err := url.Parse(*l.Next)
	if err != nil {
		return ""
	}
	return u.Query().Get("cursor")
}

// Page is one page of a list, newest first, and the link to the next.
type Page[T any] struct {
	Data  []T   `json:"data"`
	Links Links `json:"links"`
}

// NextCursor is the cursor that reads the page after this one, "" on the
// last page.
func (p *Page[T]) NextCursor() string { return p.Links.cursor() }

// envelope is the {"data": …} every answer but a list's wraps its value in.
type envelope[T any] struct {
	Data T `json:"data"`
}
