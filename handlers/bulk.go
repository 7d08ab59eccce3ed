package handlers

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/store"
)

// Bulks serves the bulk endpoints.
type Bulks struct {
	bulks        *bulksvc.Service
	maxBodyBytes int64
	timeout      time.Duration   // of each phase of the server's work; 0: none
	waiter       *bulksvc.Waiter // hears that bulks finished; nil: a wait only reads
	maxWait      time.Duration   // the longest ?wait= allowed
	log          *slog.Logger
}

type envelope struct {
	Data any `json:"data"`
}

// Idempotency-Key lets a client retry a submission safely: a retry with the
// same key and body answers with the first bulk instead of creating another.
const (
	headerIdempotencyKey   = "Idempotency-Key"
	headerIdempotentReplay = "Idempotent-Replayed"
	maxIdempotencyKeyLen   = 255
)

// Create stores a submission and queues its import: 202 with the bulk id.
// With an Idempotency-Key that this organization used in the last 24 hours
// for the same body, it answers as the first time, creating nothing.
func (h *Bulks) Create(c echo.Context) error {
	req := c.Request()
	if err := jsonContentType(req.Header.Get(echo.HeaderContentType)); err != nil {
		return err
	}
	gzipped, err := gzipEncoded(req.Header.Values(echo.HeaderContentEncoding))
	if err != nil {
		return err
	}
	q, err := queryValues(c)
	if err != nil {
		return err
	}
	opts, err := bulk.ParseOptions(q, waitParam)
	if err != nil {
		return err
	}
	wait, err := h.wait(q)
	if err != nil {
		return err
	}
	key, err := idempotencyKey(req.Header.Get(headerIdempotencyKey))
	if err != nil {
		return err
	}
	in, err := body(c, gzipped, h.maxBodyBytes)
	if err != nil {
		return err
	}
	bodyHash := sha256.New()
	if key != "" {
		// A retry must send the same request: the same options and body.
		// The body is hashed as it streams by, decoded.
		bodyHash.Write([]byte(opts.Query() + "\n"))
		in = io.TeeReader(in, bodyHash)
	}
	rows, err := bulk.DecodeSubmission(skipBOM(in))
	if err != nil {
		return err
	}

	// The body is read: from here on the time is the server's own.
	sub := bulksvc.Submission{OrganizationID: organization(c).ID, Options: opts, Rows: rows}
	if key != "" {
		sub.IdempotencyKey = &store.IdempotencyKey{Key: key, RequestHash: bodyHash.Sum(nil)}
	}
	var done bulksvc.Submitted
	err = work(req.Context(), h.timeout, func(ctx context.Context) (err error) {
		done, err = h.bulks.Submit(ctx, sub)
		return err
	})
	if err != nil {
		return err
	}
	b := done.Bulk
	replayed := done.Replayed
	if replayed {
		c.Response().Header().Set(headerIdempotentReplay, "true")
	}
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/bulk/"+b.ID.String())
	if wait > 0 {
		// The bulk is stored and queued: a client that asked to wait gets
		// it finished, with its results, if the import is quick enough. If
		// the reads of the wait fail, the bulk is still stored: the answer is
		// the 202 it has earned, never an error that invites a duplicate.
		waited, err := h.await(c, b.ID, wait)
		if err == nil && waited.Status.Finished() {
			if err = h.answerFinished(c, waited); err == nil || c.Response().Committed {
				return err
			}
		}
		if err != nil {
			h.log.WarnContext(req.Context(), "waiting for a stored bulk failed; answered 202", "bulk_id", b.ID, "err", err)
		}
	}
	// A replay repeats the first answer; GET shows how the bulk has moved on.
	return c.JSON(http.StatusAccepted, envelope{bulksvc.Accepted{BulkID: b.ID, Count: b.Count, Status: models.StatusPending}})
}

// body is the request body, decoded, bounded by maxBodyBytes both as sent
// and once decoded, so that a small gzip body cannot unpack into more than
// the limit.
func body(c echo.Context, gzipped bool, maxBytes int64) (io.Reader, error) {
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

// readBody reads a small request body whole, decoded as its
// Content-Encoding says and bounded by maxBytes. A body that ends before
// its Content-Length is the client's error, a 400.
func readBody(c echo.Context, maxBytes int64) ([]byte, error) {
	gzipped, err := gzipEncoded(c.Request().Header.Values(echo.HeaderContentEncoding))
	if err != nil {
		return nil, err
	}
	r, err := body(c, gzipped, maxBytes)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(r)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, newError(http.StatusBadRequest, "body", "The request body ended before its Content-Length.")
	}
	return b, err
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

// Cancel cancels a pending or processing bulk and answers it as GET shows
// it, with canceled_at; a finished one is 409 with its status.
func (h *Bulks) Cancel(c echo.Context) error {
	if _, err := queryParams(c); err != nil {
		return err
	}
	id, err := bulkID(c)
	if err != nil {
		return err
	}
	var b models.Bulk
	err = work(c.Request().Context(), h.timeout, func(ctx context.Context) (err error) {
		b, err = h.bulks.Cancel(ctx, organization(c).ID, id)
		return err
	})
	var done bulksvc.ErrNotCancelable
	if errors.As(err, &done) {
		msg := fmt.Sprintf("The bulk is %s; only a pending or processing bulk can be canceled.", done.Bulk.Status)
		return newError(http.StatusConflict, "status", msg)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, envelope{bulksvc.NewView(b)})
}

// Get shows one bulk's progress. With ?wait=, it first waits that long
// for the bulk to finish, and a finished bulk comes with the first page of
// its results.
func (h *Bulks) Get(c echo.Context) error {
	id, err := bulkID(c)
	if err != nil {
		return err
	}
	q, err := queryParams(c, waitParam)
	if err != nil {
		return err
	}
	wait, err := h.wait(q)
	if err != nil {
		return err
	}
	if wait > 0 {
		b, err := h.await(c, id, wait)
		if err != nil {
			return err
		}
		if b.Status.Finished() {
			return h.answerFinished(c, b)
		}
		return c.JSON(http.StatusOK, envelope{bulksvc.NewView(b)})
	}
	b, err := h.bulk(c, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, envelope{bulksvc.NewView(b)})
}

// bulk reads one of the organization's bulks within the request timeout.
func (h *Bulks) bulk(c echo.Context, id uuid.UUID) (b models.Bulk, err error) {
	err = work(c.Request().Context(), h.timeout, func(ctx context.Context) (err error) {
		b, err = h.bulks.Bulk(ctx, organization(c).ID, id)
		return err
	})
	return b, err
}

// unreadableRow stands for a row whose stored payload or report is not JSON
// that can be sent, so that one such row cannot hide the others.
var unreadableRow = []byte(`"payload":null,"errors":{"report":["The errors of this row could not be read."]}}`)

// Errors lists the failed rows of a bulk with their messages:
// {"data": [{"id": row, "payload": the row as submitted, "errors": report}]}.
// The stored bytes are written as they are, not re-encoded: an encoder
// refuses some valid JSON (nested very deep), and one refused row must not
// make the whole report unreadable.
func (h *Bulks) Errors(c echo.Context) error {
	if _, err := queryParams(c); err != nil {
		return err
	}
	id, err := bulkID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	b, err := h.bulk(c, id)
	if err != nil {
		return err
	}
	// The report is written as it is read, a page of rows at a time, so
	// that a large one is never held whole. The status tells "nothing
	// failed" from "not imported yet".
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(`{"data":[`))
	for after, first := 0, true; ; {
		var rows []store.RowErrors
		err := work(ctx, h.timeout, func(ctx context.Context) (err error) {
			rows, err = h.bulks.Errors(ctx, b.OrganizationID, id, after)
			return err
		})
		if err != nil {
			// The answer has begun: all that is left is to cut it short, which
			// the client sees as JSON that does not end.
			h.log.WarnContext(ctx, "errors report cut short", "bulk_id", id, "after_row", after, "err", err)
			return nil
		}
		for _, r := range rows {
			if !first {
				w.Write([]byte{','})
			}
			first = false
			fmt.Fprintf(w, `{"id":%d,`, r.Row)
			if !sendable(r.Payload) || !sendable(r.Errors) {
				h.log.WarnContext(ctx, "a row's stored errors cannot be read; answered as unreadable", "bulk_id", id, "row", r.Row)
				w.Write(unreadableRow)
				continue
			}
			w.Write([]byte(`"payload":`))
			w.Write(r.Payload)
			w.Write([]byte(`,"errors":`))
			w.Write(r.Errors)
			w.Write([]byte{'}'})
		}
		if len(rows) < bulksvc.ErrorsPageSize {
			break
		}
		after = rows[len(rows)-1].Row
	}
	fmt.Fprintf(w, "],\"status\":%q}\n", b.Status)
	return nil
}

// sendable tells whether stored bytes are one JSON value in UTF-8.
func sendable(b []byte) bool { return utf8.Valid(b) && json.Valid(b) }

// bulkID reads the {id} of the path; an id that is no UUID names no bulk.
func bulkID(c echo.Context) (uuid.UUID, error) {
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
