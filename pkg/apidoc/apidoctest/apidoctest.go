// Package apidoctest holds bulkd's HTTP exchanges to its API description: a
// test that sends its requests through Transport fails when the server
// answers a status, a header or a field the document does not describe, or
// when the document describes an answer the server does not give. Wrapped
// around the client of every end-to-end test, it keeps the document and the
// server from drifting apart.
package apidoctest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/content"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/helpers"
	"github.com/pb33f/libopenapi-validator/paths"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/bulkd/bulkd/pkg/apidoc"
)

// Transport returns a RoundTripper that sends each request through next
// (http.DefaultTransport when nil) and checks the exchange against the
// document, reporting every mismatch with t.Errorf, in the validator's words:
//
//   - The answer must be documented for the operation: its status, each of
//     its headers (strict mode: an undeclared one fails, apart from those of
//     HTTP itself, listed in ignoredHeaders), and its body, whose objects the
//     document closes with additionalProperties: false, so an extra field
//     fails. Formats are asserted (uuid, date-time, …).
//   - The request must be one the document describes: its path and method,
//     its parameters and headers (strict: an undeclared one fails) and its
//     body. A request the document refuses may still be sent, to test the
//     server's refusal: its mismatches are reported only when the server
//     accepted it (a status below 400). The items of a bulk's rows and of a
//     batch's operations are validated after acceptance and reported per
//     row or per operation, so their mismatches are never the request's.
//   - A path the document does not have must be answered 404, and a method
//     a documented path does not take 405 with an Allow header that lists
//     exactly the documented methods; both with the {"message","errors"} shape.
//     OPTIONS, which echo answers on every path, must be 204 with that Allow.
//     The queue UI under /admin/queues is not the API and is not checked.
//
// The request body streams to the server as the caller sends it (a gzip
// body stays gzip, and is validated decoded), a copy kept aside; the answer
// is buffered whole, validated, and handed to the caller as an equal body
// (a streamed answer too; one cut short reaches the caller with its error,
// unvalidated).
func Transport(t testing.TB, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	d, err := loadDocument()
	if err != nil {
		t.Fatalf("apidoctest: %v", err)
	}
	return &transport{t: t, next: next, doc: d}
}

// Client returns an HTTP client whose requests go through Transport(t, nil):
// what a test harness uses in place of http.DefaultClient.
func Client(t testing.TB) *http.Client {
	return &http.Client{Transport: Transport(t, nil)}
}

// ignoredHeaders are the headers of HTTP itself, which no operation
// declares: framing, content negotiation, caching and the security headers
// every answer carries. Everything else a request or an answer carries must
// be in the document (X-Request-Id, ETag, Location, Retry-After, …).
var ignoredHeaders = []string{
	"accept", "accept-encoding", "accept-language", "authorization", "cache-control", "connection",
	"content-encoding", "content-length", "content-type", "date", "expect", "host", "transfer-encoding",
	"user-agent", "vary",
	"referrer-policy", "x-content-type-options", "x-frame-options", "x-xss-protection",
}

// outside lists the path prefixes that are not the API and that the
// document leaves out: the queue UI, asynqmon's own page and API behind
// basic auth, for operators.
var outside = []string{"/admin/queues"}

func outsideTheAPI(path string) bool {
	return slices.ContainsFunc(outside, func(prefix string) bool {
		return path == prefix || strings.HasPrefix(path, prefix+"/")
	})
}

// itemsDepth names the operations whose request bodies list items that the
// server accepts whatever they hold and reports on one by one: a mismatch
// at this depth of the body or deeper is an item's, not the request's.
var itemsDepth = map[string]int{
	"submitBulk":   1, // [<row>, …]
	"batchRecords": 2, // {"operations": [<operation>, …]}
}

// jsonNumbers decodes one JSON value, numbers as json.Number.
var jsonNumbers = content.DecoderFunc(func(in *content.DecodeInput) (any, error) {
	if in == nil || in.Body == nil {
		return nil, nil
	}
	dec := json.NewDecoder(in.Body)
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("JSON body contains more than one value")
	}
	return float64s(v), nil
})

// float64s turns the numbers of a decoded JSON value into the float64s the
// validator holds. A number beyond float64's range (1e309, which JSON
// allows and bulkd echoes in a report) becomes the largest float64 of its
// sign: still a number, and still over any maximum the document sets.
func float64s(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = float64s(x)
		}
	case []any:
		for i, x := range v {
			v[i] = float64s(x)
		}
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			f = math.MaxFloat64
			if strings.HasPrefix(string(v), "-") {
				f = -math.MaxFloat64
			}
		}
		return f
	}
	return v
}

type document struct {
	model     *v3.Document
	validator validator.Validator
}

var loadDocument = sync.OnceValues(func() (*document, error) {
	doc, err := libopenapi.NewDocument(apidoc.YAML())
	if err != nil {
		return nil, fmt.Errorf("parse the API description: %w", err)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		return nil, fmt.Errorf("build the API description: %w", err)
	}
	v, errs := validator.NewValidator(doc,
		config.WithFormatAssertions(),
		config.WithStrictMode(),
		// Strict mode is for headers and query parameters: bodies are closed
		// by the document itself (additionalProperties: false), and strict
		// mode would also refuse the members of maps such as metadata.
		config.WithStrictIgnorePaths("$.body", "$.body.**"),
		config.WithStrictIgnoredHeaders(ignoredHeaders...),
		// JSON numbers are read as written: a float64 cannot hold every
		// number a client may send (1e309) and bulkd echoes in a report.
		config.WithBodyDecoder("application/json", jsonNumbers),
		config.WithBodyDecoder("application/*+json", jsonNumbers),
	)
	if len(errs) > 0 {
		return nil, fmt.Errorf("validator: %w", joinErrors(errs))
	}
	if ok, docErrs := v.ValidateDocument(); !ok {
		return nil, fmt.Errorf("the API description is not a valid OpenAPI 3.1 document: %s", describe(docErrs))
	}
	return &document{model: &model.Model, validator: v}, nil
})

type transport struct {
	t    testing.TB
	next http.RoundTripper
	doc  *document
}

// RoundTrip implements http.RoundTripper.
func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if outsideTheAPI(req.URL.Path) {
		return tr.next.RoundTrip(req)
	}
	// The request body streams to the server as the caller sends it (a slow
	// upload stays slow); a copy is kept to validate.
	out := req.Clone(req.Context())
	sent := &captured{}
	if req.Body != nil && req.Body != http.NoBody {
		out.Body = teeBody{io.TeeReader(req.Body, sent), req.Body}
		if req.GetBody != nil {
			out.GetBody = func() (io.ReadCloser, error) { // a retry sends it again
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				sent.reset()
				return teeBody{io.TeeReader(body, sent), body}, nil
			}
		}
	}
	resp, err := tr.next.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	got, readErr := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(got), errReader{readErr}))
	if readErr != nil {
		// The answer was cut short (on purpose, in some tests): there is no
		// whole body to validate; the caller sees the same error.
		return resp, nil
	}
	if problems := tr.doc.check(req, sent.bytes(), resp, got); len(problems) > 0 {
		tr.t.Helper()
		tr.t.Errorf("apidoctest: %s %s → %d does not match the API description (pkg/apidoc/openapi.yaml):\n%s",
			req.Method, req.URL.RequestURI(), resp.StatusCode, strings.Join(problems, "\n"))
	}
	return resp, nil
}

// teeBody is a request body that copies what is read of it.
type teeBody struct {
	io.Reader
	io.Closer
}

// captured is what the server was sent of a request body. The HTTP
// transport may still be writing it when the answer has come (an early
// refusal), hence the lock.
type captured struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (c *captured) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.Write(p)
}

func (c *captured) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.b.Reset()
}

func (c *captured) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.b.Bytes())
}

// errReader answers err, or io.EOF when it is nil.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) {
	if r.err == nil {
		return 0, io.EOF
	}
	return 0, r.err
}

// check returns the mismatches between one exchange and the document.
func (d *document) check(req *http.Request, sent []byte, resp *http.Response, got []byte) []string {
	vreq := req.Clone(req.Context())
	vreq.Body = io.NopCloser(bytes.NewReader(decoded(req, sent)))
	if len(sent) > 0 && req.Header.Get("Content-Type") == "" {
		// bulkd reads a body sent without a Content-Type as JSON, as the
		// document says; the validator needs the type said.
		vreq.Header.Set("Content-Type", "application/json")
	}
	vresp := *resp
	vresp.Body = io.NopCloser(bytes.NewReader(got))

	pathItem, pathErrs, _ := paths.FindPath(vreq, d.model, nil)
	if len(pathErrs) > 0 {
		return d.checkUnrouted(req, pathItem, pathErrs, resp, got)
	}
	var operationID string
	if op := operation(pathItem, req.Method); op != nil {
		operationID = op.OperationId
	}

	var problems []string
	// The two halves of ValidateHttpRequestResponse, apart: a request's
	// mismatches count only when the server accepted it.
	_, reqErrs := d.validator.ValidateHttpRequest(vreq)
	if resp.StatusCode < 400 {
		for _, e := range reqErrs {
			if !itemMismatch(e, itemsDepth[operationID]) {
				problems = append(problems, "request: "+describeOne(e))
			}
		}
	}
	vreq.Body = io.NopCloser(bytes.NewReader(decoded(req, sent)))
	if _, respErrs := d.validator.ValidateHttpResponse(vreq, &vresp); len(respErrs) > 0 {
		for _, e := range respErrs {
			problems = append(problems, "answer: "+describeOne(e))
		}
	}
	return problems
}

// checkUnrouted checks the answer to a request the document has no
// operation for: the server must refuse it as the error table says.
func (d *document) checkUnrouted(req *http.Request, pathItem *v3.PathItem, errs []*verrors.ValidationError, resp *http.Response, got []byte) []string {
	var problems []string
	missingOperation := pathItem != nil && slices.ContainsFunc(errs, func(e *verrors.ValidationError) bool {
		return e.ValidationSubType == helpers.ValidationMissingOperation
	})
	switch {
	case missingOperation:
		// OPTIONS is echo's own answer on every path: 204 with Allow.
		status := http.StatusMethodNotAllowed
		if req.Method == http.MethodOptions {
			status = http.StatusNoContent
		}
		if resp.StatusCode != status {
			problems = append(problems, fmt.Sprintf("the document has no %s operation on this path, yet the server answered %d, not %d", req.Method, resp.StatusCode, status))
			break
		}
		want := documentedMethods(pathItem)
		allow := strings.Split(resp.Header.Get("Allow"), ",")
		var have []string
		for _, m := range allow {
			if m = strings.ToUpper(strings.TrimSpace(m)); m != "" && m != http.MethodOptions {
				have = append(have, m)
			}
		}
		slices.Sort(have)
		if !slices.Equal(want, have) {
			problems = append(problems, fmt.Sprintf("Allow: %q lists %v, the document %v", resp.Header.Get("Allow"), have, want))
		}
	case resp.StatusCode != http.StatusNotFound:
		problems = append(problems, fmt.Sprintf("the document has no path %s, yet the server answered %d, not 404: %s", req.URL.Path, resp.StatusCode, describe(errs)))
	}
	if req.Method != http.MethodHead && resp.StatusCode != http.StatusNoContent {
		if err := errorShape(got); err != nil {
			problems = append(problems, "answer: "+err.Error())
		}
	}
	return problems
}

// errorShape checks a body against the error shape, {"message","errors"}.
func errorShape(body []byte) error {
	var e struct {
		Message *string             `json:"message"`
		Errors  map[string][]string `json:"errors"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Message == nil || len(e.Errors) == 0 {
		return fmt.Errorf("the body is not the error shape {\"message\",\"errors\"}: %.200s", body)
	}
	return nil
}

// itemMismatch tells whether a request-body mismatch lies within an item,
// at depth or deeper in the body (0: no items).
func itemMismatch(e *verrors.ValidationError, depth int) bool {
	if depth == 0 || e.ValidationType != helpers.RequestBodyValidation || len(e.SchemaValidationErrors) == 0 {
		return false
	}
	for _, f := range e.SchemaValidationErrors {
		if len(f.InstancePath) < depth {
			return false
		}
		if _, err := strconv.Atoi(f.InstancePath[depth-1]); err != nil { // an index of the list
			return false
		}
	}
	return true
}

// decoded is the request body as the server reads it: gzip decoded, and
// without a UTF-8 byte-order mark, which bulkd skips. A gzip body that does
// not decode is left as it is (the server refuses it).
func decoded(req *http.Request, body []byte) []byte {
	return bytes.TrimPrefix(gunzipped(req, body), []byte("\xef\xbb\xbf"))
}

func gunzipped(req *http.Request, body []byte) []byte {
	for _, v := range req.Header.Values("Content-Encoding") {
		for _, coding := range strings.Split(v, ",") {
			if c := strings.ToLower(strings.TrimSpace(coding)); c == "gzip" || c == "x-gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					return body
				}
				out, err := io.ReadAll(zr)
				if err != nil {
					return body
				}
				return out
			}
		}
	}
	return body
}

func documentedHeader(params []*v3.Parameter, name string) bool {
	return slices.ContainsFunc(params, func(p *v3.Parameter) bool { return p.In == "header" && strings.EqualFold(p.Name, name) })
}

func ignoredHeader(name string) bool {
	return slices.Contains(ignoredHeaders, strings.ToLower(name))
}

func operation(p *v3.PathItem, method string) *v3.Operation {
	if p == nil {
		return nil
	}
	return p.GetOperations().GetOrZero(strings.ToLower(method))
}

// documentedMethods lists the methods of a path, upper-case and sorted.
func documentedMethods(p *v3.PathItem) []string {
	var out []string
	for m := range p.GetOperations().KeysFromOldest() {
		out = append(out, strings.ToUpper(m))
	}
	slices.Sort(out)
	return out
}

func describe(errs []*verrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("\n  ")
		b.WriteString(describeOne(e))
	}
	return b.String()
}

func describeOne(e *verrors.ValidationError) string {
	s := e.Message
	if e.Reason != "" && e.Reason != e.Message {
		s += ": " + e.Reason
	}
	for _, f := range e.SchemaValidationErrors {
		s += fmt.Sprintf("\n    - %s (at %s, rule %s)", f.Reason, f.FieldPath, f.KeywordLocation)
	}
	return s
}

func joinErrors(errs []error) error {
	var b strings.Builder
	for i, err := range errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return fmt.Errorf("%s", b.String())
}
