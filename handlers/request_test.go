package handlers

import (
	"bytes"
	"compress/gzip"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/pkg/records"
)

// requestContext is an echo context of a request to target.
func requestContext(method, target string, header map[string]string, body string) echo.Context {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return echo.New().NewContext(req, httptest.NewRecorder())
}

// asError is err as the answer it is, failing the test when it is none.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%v (%T) is no answer", err, err)
	}
	return e
}

// A query is read against the names its endpoint takes: every parameter
// that is unknown, repeated or not text is named in the one 400 answer.
func TestQueryNamesEveryRefusedParameter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		query  string
		names  []string
		fields []string
		msg    string // of the answer, when it matters
	}{
		{"", nil, nil, ""},
		{"page=2&per_page=10", []string{"page", "per_page"}, nil, ""},
		{"bogus=1", nil, []string{"bogus"}, "The bogus parameter is unknown; this endpoint takes none."},
		{"sort=asc", []string{"page", "per_page"}, []string{"sort"}, "The sort parameter is unknown; the parameters are page and per_page."},
		{"x=1", []string{"a", "b", "c"}, []string{"x"}, "The x parameter is unknown; the parameters are a, b and c."},
		{"wait=1&wait=2", []string{"wait"}, []string{"wait"}, "The wait parameter must be given at most once."},
		{"status=pending&status=failed", []string{"status"}, []string{"status"},
			"The status parameter must be given at most once; separate several statuses with commas."},
		{"a=%00", []string{"a"}, []string{"a"}, "The a parameter must be UTF-8 text without NUL characters."},
		{"a=%ff", []string{"a"}, []string{"a"}, ""},
		{"zz=1&a=1&a=2&b=%00", []string{"a", "b"}, []string{"a", "b", "zz"}, ""},
		// An empty value is no value: never the default, never "".
		{"cascade=", []string{"cascade"}, []string{"cascade"}, "The cascade parameter must have a value; leave it out for its default."},
		{"page&per_page=10", []string{"page", "per_page"}, []string{"page"}, "The page parameter must have a value; leave it out for its default."},
		{"=1", []string{"a"}, []string{"query"}, "Every query parameter must have a name, as name=value."},
	} {
		q, err := readQuery(requestContext(http.MethodGet, "/?"+tc.query, nil, ""), tc.names...)
		if err != nil {
			t.Fatalf("%q: %v", tc.query, err)
		}
		if tc.fields == nil {
			if err := q.err(); err != nil {
				t.Errorf("%q: %v, want none refused", tc.query, err)
			}
			continue
		}
		e := asError(t, q.err())
		if got := slices.Sorted(maps.Keys(e.Errors)); e.Status != http.StatusBadRequest || !slices.Equal(got, tc.fields) {
			t.Errorf("%q: %d naming %v, want 400 naming %v", tc.query, e.Status, got, tc.fields)
		}
		if tc.msg != "" && e.Message != tc.msg {
			t.Errorf("%q: %q, want %q", tc.query, e.Message, tc.msg)
		}
	}
}

// A query string that does not parse is refused whole, not read in part.
func TestQueryThatDoesNotParseIsRefused(t *testing.T) {
	t.Parallel()
	for _, query := range []string{"atomic=true;strict=true", "a=%zz"} {
		_, err := readQuery(requestContext(http.MethodGet, "/?"+query, nil, ""), "atomic", "strict", "a")
		if e := asError(t, err); e.Status != http.StatusBadRequest || e.Errors["query"] == nil {
			t.Errorf("%q: %+v, want 400 naming query", query, e)
		}
	}
}

// The readers of values: a refused value is named, and reads as absent.
func TestQueryValues(t *testing.T) {
	t.Parallel()
	q, _ := readQuery(requestContext(http.MethodGet, "/?limit=5&page=0&cascade=yes&cursor=&x=1&x=2", nil, ""),
		"limit", "page", "cascade", "cursor", "x", "per_page")
	if n := q.int("limit", 50, 1, 500); n != 5 {
		t.Errorf("limit=5 read as %d", n)
	}
	if n := q.int("per_page", 100, 1, 1000); n != 100 {
		t.Errorf("no per_page read as %d, want the default", n)
	}
	if n := q.int("page", 1, 1, 10); n != 1 {
		t.Errorf("page=0 read as %d, want the default once refused", n)
	}
	if q.bool("cascade") {
		t.Errorf("cascade=yes read as true")
	}
	if c := q.cursor(); c != "" {
		t.Errorf("cursor= read as %q", c)
	}
	if v, ok := q.get("x"); ok {
		t.Errorf("a repeated x reads as %q", v)
	}
	e := asError(t, q.err())
	for _, field := range []string{"page", "cascade", "cursor", "x"} {
		if len(e.Errors[field]) != 1 {
			t.Errorf("%s is not named once: %v", field, e.Errors)
		}
	}
	if e.Errors["limit"] != nil || e.Errors["per_page"] != nil {
		t.Errorf("good values named: %v", e.Errors)
	}
}

func TestContentTypesAndEncodings(t *testing.T) {
	t.Parallel()
	for v, ok := range map[string]bool{
		"": true, "application/json": true, "application/json; charset=UTF-8": true, "application/vnd.api+json": true,
		"application/json; charset=latin1": false, "text/plain": false, "application/+json": false, "application/json; =": false,
	} {
		if err := jsonContentType(v); (err == nil) != ok {
			t.Errorf("Content-Type %q: %v", v, err)
		}
	}
	for v, want := range map[string]records.PatchKind{
		"application/json-patch+json": records.JSONPatch, "application/merge-patch+json; charset=utf-8": records.MergePatch,
	} {
		if got, err := patchKind(v); err != nil || got != want {
			t.Errorf("patch Content-Type %q: %v, %v", v, got, err)
		}
	}
	for _, v := range []string{"", "application/json", "application/merge-patch+json; charset=utf-16"} {
		if _, err := patchKind(v); asError(t, err).Status != http.StatusUnsupportedMediaType {
			t.Errorf("patch Content-Type %q: %v, want 415", v, err)
		}
	}
	for _, tc := range []struct {
		values  []string
		gzipped bool
		ok      bool
	}{
		{nil, false, true}, {[]string{"identity"}, false, true}, {[]string{"GZIP"}, true, true}, {[]string{"x-gzip, identity"}, true, true},
		{[]string{"br"}, false, false}, {[]string{"gzip", "gzip"}, false, false}, {[]string{"gzip, deflate"}, false, false},
	} {
		gzipped, err := gzipEncoded(tc.values)
		if gzipped != tc.gzipped || (err == nil) != tc.ok {
			t.Errorf("Content-Encoding %q: %v, %v", tc.values, gzipped, err)
		}
	}
}

// A gzip body is read decoded, bounded once decoded too; a corrupt one is
// the client's 400.
func TestBodyDecodesGzipWithinTheLimit(t *testing.T) {
	t.Parallel()
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write(bytes.Repeat([]byte("a"), 4096))
	_ = zw.Close()
	gz := map[string]string{"Content-Encoding": "gzip"}
	if b, err := readBody(requestContext(http.MethodPost, "/", gz, zipped.String()), 4096); err != nil || len(b) != 4096 {
		t.Errorf("gzip body of 4096 bytes within 4096: %d bytes, %v", len(b), err)
	}
	var tooBig *http.MaxBytesError
	if _, err := readBody(requestContext(http.MethodPost, "/", gz, zipped.String()), 4095); !errors.As(err, &tooBig) {
		t.Errorf("gzip body of 4096 bytes within 4095: %v, want too large", err)
	}
	if _, err := readBody(requestContext(http.MethodPost, "/", gz, "not gzip"), 4096); err != errCorruptGzip {
		t.Errorf("corrupt gzip: %v", err)
	}
}

func TestReadObjectIsStrict(t *testing.T) {
	t.Parallel()
	for body, field := range map[string]string{
		`{"operations": []}`: "", `{"operations": [], "mode": "x"}`: "mode", `{"operations": []} {}`: "body",
		`[]`: "body", `{`: "body", `{"Operations": []}`: "Operations", `{"": 1}`: "body",
	} {
		var v struct {
			Operations []any `json:"operations"`
		}
		err := readObject(requestContext(http.MethodPost, "/", nil, body), 1<<10, &v, "msg")
		var e *Error
		if field == "" && err != nil || field != "" && (!errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Errors[field] == nil) {
			t.Errorf("%s: %v; want a 400 naming %q", body, err, field)
		}
	}
}

func TestSkipBOM(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"\xef\xbb\xbf[1]": "[1]", "[1]": "[1]", "\xef\xbb": "\xef\xbb"} {
		var b bytes.Buffer
		_, _ = b.ReadFrom(skipBOM(strings.NewReader(in)))
		if b.String() != want {
			t.Errorf("skipBOM(%q) = %q", in, b.String())
		}
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	for v, ok := range map[string]bool{"": true, "a-uuid-4f1c": true, strings.Repeat("k", 255): true,
		strings.Repeat("k", 256): false, "has space": false, "tab\t": false, "é": false} {
		if _, err := idempotencyKey(v); (err == nil) != ok {
			t.Errorf("Idempotency-Key %q: %v", v, err)
		}
	}
}

// A next link keeps what the client reads (a time, a list of statuses, an
// address) as written, and escapes what would change the query.
func TestLink(t *testing.T) {
	t.Parallel()
	got := *link("/api/v1/bulk", "status", "pending,failed", "created_after", "2026-11-23T11:08:42.5Z", "email", "a+b c&d@x.example", "cursor", "AbC-_9")
	want := "/api/v1/bulk?status=pending,failed&created_after=2026-11-23T11:08:42.5Z&email=a%2Bb+c%26d@x.example&cursor=AbC-_9"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("link (-want +got):\n%s", diff)
	}
}

// Only an Accept header that prefers text/csv to JSON asks for CSV.
func TestWantsCSV(t *testing.T) {
	t.Parallel()
	for accept, want := range map[string]bool{
		"":                                  false,
		"*/*":                               false,
		"application/json":                  false,
		"text/html":                         false,
		"text/csv":                          true,
		"text/csv; charset=utf-8":           true,
		"text/csv, */*;q=0.1":               true,
		"application/json, text/csv;q=0.9":  false,
		"text/csv;q=0.5, application/json":  false,
		"text/csv;q=0":                      false,
		"text/csv;q=nonsense, text/csv":     true,
		"application/*;q=0.2, text/csv;q=1": true,
	} {
		c := requestContext(http.MethodGet, "/api/v1/bulk/x/errors", map[string]string{"Accept": accept}, "")
		if got := wantsCSV(c); got != want {
			t.Errorf("Accept %q: wantsCSV = %v, want %v", accept, got, want)
		}
	}
}
