package handlers

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/records"
	"github.com/bulkd/bulkd/pkg/store"
)

// What a request brings: its body (bounded, decoded, of the type it says),
// its query parameters (each endpoint names those it takes), the id of its
// path and its headers.

// body is the request body, decoded as its Content-Encoding says, bounded
// by maxBytes both as sent and once decoded, so that a small gzip body
// cannot unpack into more than the limit.
func body(c echo.Context, maxBytes int64) (io.Reader, error) {
	gzipped, err := gzipEncoded(c.Request().Header.Values(echo.HeaderContentEncoding))
	if err != nil {
		return nil, err
	}
	raw := http.MaxBytesReader(c.Response(), c.Request().Body, maxBytes)
	if !gzipped {
		return raw, nil
	}
	zr, err := gzip.NewReader(raw)
	if err != nil {
		return nil, gzipError(err)
	}
	return http.MaxBytesReader(c.Response(), io.NopCloser(gzipReader{zr}), maxBytes), nil
}

// readBody reads a small request body whole (see body). A body that ends
// before its Content-Length is the client's error, a 400.
func readBody(c echo.Context, maxBytes int64) ([]byte, error) {
	r, err := body(c, maxBytes)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(r)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, newError(http.StatusBadRequest, "body", "The request body ended before its Content-Length.")
	}
	return b, err
}

// readObject reads a small JSON body (see readBody) into v, a pointer to a
// struct: one object, of members named exactly as v's fields are tagged
// (encoding/json alone would take "URL" for "url"), and nothing after it. A
// member v does not name is a 400 naming that member; anything else is a
// 400 naming the body, with msg.
func readObject(c echo.Context, maxBytes int64, v any, msg string) error {
	if err := jsonContentType(c.Request().Header.Get(echo.HeaderContentType)); err != nil {
		return err
	}
	b, err := readBody(c, maxBytes)
	if err != nil {
		return err
	}
	if names := memberNames(v); names != nil {
		if err := knownMembers(b, names); err != nil {
			return err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return newError(http.StatusBadRequest, "body", msg)
	}
	if _, err := dec.Token(); err != io.EOF {
		return newError(http.StatusBadRequest, "body", msg) // data after the object
	}
	return nil
}

// knownMembers refuses, in one 400 naming each, the members of the object
// b that are not among names. It says nothing of a b that is no object,
// which the decoding that follows refuses.
func knownMembers(b []byte, names []string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	var bad *Error
	fail := func(field, msg string) {
		if bad == nil {
			bad = &Error{Status: http.StatusBadRequest, Message: msg, Errors: map[string][]string{}}
		}
		bad.Errors[field] = []string{msg}
	}
	for dec.More() {
		tok, err := dec.Token()
		name, _ := tok.(string)
		if err != nil || dec.Decode(&skipValue{}) != nil {
			return nil
		}
		switch {
		case name == "":
			fail("body", "The request body has a member with an empty name; its members are "+inWords(names)+".")
		case !slices.Contains(names, name):
			fail(name, "The "+name+" member is unknown; the request body's members are "+inWords(names)+".")
		}
	}
	if bad == nil {
		return nil
	}
	return bad
}

// skipValue reads past a JSON value without keeping it.
type skipValue struct{}

func (skipValue) UnmarshalJSON([]byte) error { return nil }

// memberNames are the JSON member names of the struct v points to, as its
// fields' tags write them (the field's name when untagged); nil when v
// points to no struct.
func memberNames(v any) []string {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for f := range t.Elem().Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case !f.IsExported() || name == "-":
			continue
		case name == "":
			name = f.Name
		}
		names = append(names, name)
	}
	return names
}

var errCorruptGzip = newError(http.StatusBadRequest, "body", "The request body must be valid gzip data, as its Content-Encoding says.")

// gzipReader names the errors of a corrupt or truncated gzip stream, which
// are the client's, apart from those of reading the body (a body too large,
// a dropped connection).
type gzipReader struct{ r *gzip.Reader }

func (g gzipReader) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if err != nil && err != io.EOF {
		err = gzipError(err)
	}
	return n, err
}

func gzipError(err error) error {
	var corrupt flate.CorruptInputError
	if errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) || errors.As(err, &corrupt) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errCorruptGzip
	}
	return err
}

// gzipEncoded reads Content-Encoding: gzip is decoded, identity (or none)
// is the body as it is, and anything else is refused rather than read as
// JSON it is not.
func gzipEncoded(values []string) (bool, error) {
	var codings []string
	for _, v := range values {
		for _, coding := range strings.Split(v, ",") {
			if coding = strings.ToLower(strings.TrimSpace(coding)); coding != "" && coding != "identity" {
				codings = append(codings, coding)
			}
		}
	}
	switch {
	case len(codings) == 0:
		return false, nil
	case len(codings) == 1 && (codings[0] == "gzip" || codings[0] == "x-gzip"):
		return true, nil
	}
	return false, newError(http.StatusUnsupportedMediaType, echo.HeaderContentEncoding,
		"The Content-Encoding header must be gzip or identity; no other encoding is supported.")
}

// jsonContentType accepts a body declared as JSON (application/json or
// application/<something>+json, in UTF-8) or not declared at all.
func jsonContentType(v string) error {
	if v == "" {
		return nil
	}
	mediaType, ok := utf8MediaType(v)
	isJSON := mediaType == "application/json" ||
		(len(mediaType) > len("application/+json") && strings.HasPrefix(mediaType, "application/") && strings.HasSuffix(mediaType, "+json"))
	if !ok || !isJSON {
		return newError(http.StatusUnsupportedMediaType, echo.HeaderContentType,
			"The Content-Type header must be application/json, in UTF-8.")
	}
	return nil
}

// patchKind is the format a patch's Content-Type names.
func patchKind(contentType string) (records.PatchKind, error) {
	switch mediaType, ok := utf8MediaType(contentType); {
	case ok && mediaType == "application/json-patch+json":
		return records.JSONPatch, nil
	case ok && mediaType == "application/merge-patch+json":
		return records.MergePatch, nil
	}
	return 0, newError(http.StatusUnsupportedMediaType, echo.HeaderContentType,
		"The Content-Type must be application/json-patch+json (RFC 6902) or application/merge-patch+json (RFC 7386), in UTF-8.")
}

// utf8MediaType is the media type of a Content-Type header; ok is false
// when the header does not parse or names a charset other than UTF-8, the
// only one bulkd reads.
func utf8MediaType(v string) (mediaType string, ok bool) {
	mediaType, params, err := mime.ParseMediaType(v)
	charset, hasCharset := params["charset"]
	return mediaType, err == nil && (!hasCharset || strings.EqualFold(charset, "utf-8"))
}

// skipBOM drops a UTF-8 byte-order mark at the start of r, which RFC 8259
// lets a parser ignore and some tools write.
func skipBOM(r io.Reader) io.Reader {
	br := bufio.NewReader(r)
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
	return br
}

// Idempotency-Key lets a client retry a submission safely: a retry with the
// same key and request answers with the first bulk instead of creating
// another.
const (
	headerIdempotencyKey   = "Idempotency-Key"
	headerIdempotentReplay = "Idempotent-Replayed"
	maxIdempotencyKeyLen   = 255
)

// idempotencyKey checks the Idempotency-Key header; "" means none was sent.
func idempotencyKey(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	notVisibleASCII := func(r rune) bool { return r <= ' ' || r > '~' }
	if len(v) > maxIdempotencyKeyLen || strings.ContainsFunc(v, notVisibleASCII) {
		return "", newError(http.StatusBadRequest, headerIdempotencyKey,
			fmt.Sprintf("The %s header must be 1 to %d visible ASCII characters, such as a UUID.", headerIdempotencyKey, maxIdempotencyKeyLen))
	}
	return v, nil
}

// pathID reads the {id} of the path: an id that is no UUID names nothing,
// and is not found as any other.
func pathID(c echo.Context) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return uuid.Nil, store.ErrNotFound
	}
	return id, nil
}

// organization is the organization of the request's API key, set by auth.
func organization(c echo.Context) models.Organization {
	org, _ := c.Get(orgKey).(models.Organization)
	return org
}

// query is a request's query string, read against the parameters its
// endpoint takes. A parameter that is unknown, given more than once or
// given empty, or whose value a reader refuses, is named in the one 400
// answer with all the others (err), so that a misspelt or misplaced option
// is never silently ignored and a client fixes them all at once. An empty
// value (?cascade=, ?page, ?external_id=) is never read as the parameter's
// default nor as a value: a client that means the default leaves the
// parameter out, and one whose value went missing (a variable that was not
// set) learns of it instead of getting an answer to another question.
type query struct {
	values url.Values
	bad    *Error
}

// repeatedHints say how to give several values of a parameter that takes
// them in one.
var repeatedHints = map[string]string{"status": "; separate several statuses with commas"}

// readQuery reads the query string of an endpoint that takes the
// parameters names (none when names is empty). A query string that does not
// parse is refused whole: echo's own reading drops what it cannot parse (a
// ';' separator, a bad %-escape) without a word, which would turn
// ?atomic=true;strict=true into no option at all.
func readQuery(c echo.Context, names ...string) (*query, error) {
	values, err := url.ParseQuery(c.Request().URL.RawQuery)
	if err != nil {
		return nil, newError(http.StatusBadRequest, "query",
			"The query string must be name=value pairs joined by &, with valid %-escapes.")
	}
	q := &query{values: values}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		switch {
		case name == "":
			q.fail("query", "Every query parameter must have a name, as name=value.")
		case !slices.Contains(names, name) && len(names) == 0:
			q.fail(name, "The "+name+" parameter is unknown; this endpoint takes none.")
		case !slices.Contains(names, name):
			q.fail(name, "The "+name+" parameter is unknown; the parameters are "+inWords(names)+".")
		case len(values[name]) > 1:
			q.fail(name, "The "+name+" parameter must be given at most once"+repeatedHints[name]+".")
		case values[name][0] == "":
			q.fail(name, "The "+name+" parameter must have a value; leave it out for its default.")
		default:
			// A value reaches Postgres as text, which holds neither.
			if v := values[name][0]; !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
				q.fail(name, "The "+name+" parameter must be UTF-8 text without NUL characters.")
			}
		}
	}
	return q, nil
}

// noQuery refuses any query parameter, for an endpoint that takes none.
func noQuery(c echo.Context) error {
	q, err := readQuery(c)
	if err != nil {
		return err
	}
	return q.err()
}

// fail names a parameter the answer refuses, with why.
func (q *query) fail(name, msg string) {
	if q.bad == nil {
		q.bad = &Error{Status: http.StatusBadRequest, Message: msg, Errors: map[string][]string{}}
	}
	if _, named := q.bad.Errors[name]; !named {
		q.bad.Errors[name] = []string{msg}
	}
}

// err is the 400 naming every parameter refused, or nil.
func (q *query) err() error {
	if q.bad == nil {
		return nil
	}
	return q.bad
}

// get is the value of a parameter and whether it was given; one already
// refused is not given.
func (q *query) get(name string) (string, bool) {
	if q.bad != nil && q.bad.Errors[name] != nil || len(q.values[name]) == 0 {
		return "", false
	}
	return q.values[name][0], true
}

// pick is the parameters of names that were given, by name.
func (q *query) pick(names ...string) map[string]string {
	out := map[string]string{}
	for _, name := range names {
		if v, ok := q.get(name); ok {
			out[name] = v
		}
	}
	return out
}

// int is a whole-number parameter within [lo, hi]; absent, it is def.
func (q *query) int(name string, def, lo, hi int) int {
	s, ok := q.get(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		q.fail(name, fmt.Sprintf("The %s parameter must be a whole number from %d to %d.", name, lo, hi))
		return def
	}
	return n
}

// bool is a parameter true or false; absent, it is false.
func (q *query) bool(name string) bool {
	s, ok := q.get(name)
	switch {
	case !ok || s == "false":
		return false
	case s == "true":
		return true
	}
	q.fail(name, "The "+name+" parameter must be true or false.")
	return false
}

// cursor is the cursor of a list's page, "" for the first page.
func (q *query) cursor() string {
	s, _ := q.get("cursor")
	return s
}

const msgCursor = "The cursor parameter must be a cursor from a links.next this organization was given."

// inWords lists names as a sentence does: "a, b and c".
func inWords(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// MIMETextCSV is the media type of the CSV answers of /errors and /results.
const MIMETextCSV = "text/csv"

// wantsCSV tells whether the request's Accept header prefers text/csv to
// JSON: only the endpoints that have a CSV form ask. Without Accept, or with
// */*, the answer is JSON, as it always was; a type bulkd does not serve is
// not refused (answered as JSON), as most clients send one by habit.
func wantsCSV(c echo.Context) bool {
	var csvQ, jsonQ float64 = -1, -1
	for _, v := range c.Request().Header.Values(echo.HeaderAccept) {
		for _, part := range strings.Split(v, ",") {
			mediaType, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q := 1.0
			if s, ok := params["q"]; ok {
				if q, err = strconv.ParseFloat(s, 64); err != nil {
					continue
				}
			}
			switch mediaType {
			case MIMETextCSV:
				csvQ = max(csvQ, q)
			case echo.MIMEApplicationJSON, "application/*", "*/*":
				jsonQ = max(jsonQ, q)
			}
		}
	}
	return csvQ > 0 && csvQ > jsonQ
}
