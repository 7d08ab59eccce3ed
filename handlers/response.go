package handlers

import (
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/pkg/jsonscan"
)

// How answers are written: whole from the wire types of the services
// (bulksvc's views, records' records, page's lists), or, for pages of rows
// that may be large, streamed a row at a time.

// envelope is {"data": ...}, the answer of one thing.
type envelope struct {
	Data any `json:"data"`
}

// respond answers status with v as JSON, encoded whole before anything is
// sent, so that a value that cannot be encoded is an error answer, not a
// cut one. <, > and & are left as they are (see jsonscan.Marshal).
func respond(c echo.Context, status int, v any) error {
	b, err := jsonscan.Marshal(v)
	if err != nil {
		return err
	}
	return c.JSONBlob(status, append(b, '\n'))
}

// stream begins a 200 JSON answer that is written as it is read; from here
// on, a failure can only cut it short, which the client sees as JSON that
// does not end.
func stream(c echo.Context) io.Writer {
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	w.WriteHeader(http.StatusOK)
	return w
}

// streamCSV begins a 200 answer in CSV, to be written as it is read; name
// is the file a browser saves it as.
func streamCSV(c echo.Context, name string) io.Writer {
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, MIMETextCSV+"; charset=utf-8")
	w.Header().Set(echo.HeaderContentDisposition, `attachment; filename="`+name+`"`)
	w.WriteHeader(http.StatusOK)
	return w
}

// pageStream writes a page whose rows are written a chunk at a time, as
// they are read, so that a large page is never held whole:
// {"data":[row,...], <the members of the page's tail>}.
type pageStream struct {
	w    io.Writer
	rows int
}

func beginPage(w io.Writer) *pageStream {
	_, _ = io.WriteString(w, `{"data":[`)
	return &pageStream{w: w}
}

// add writes one row, a wire value.
func (p *pageStream) add(row any) error {
	b, err := jsonscan.Marshal(row)
	if err != nil {
		return err
	}
	if p.rows > 0 {
		_, _ = io.WriteString(p.w, ",")
	}
	p.rows++
	_, err = p.w.Write(b)
	return err
}

// end closes the rows and writes the members of tail, a wire value that is
// an object with at least one member: what follows the rows in the page's
// type (bulksvc.ErrorsStatus, bulksvc.ResultsTotals).
func (p *pageStream) end(tail any) error {
	b, err := jsonscan.Marshal(tail)
	if err != nil {
		return err
	}
	_, _ = io.WriteString(p.w, "],")
	_, err = p.w.Write(b[1:]) // the tail's members and its closing brace
	return err
}

// link is a link to path with a query of pairs of names and values, in
// order, each value escaped where it must be. A time's ':', a list's ','
// and an address' '@' read as written.
func link(path string, pairs ...string) *string {
	var q []string
	for i := 0; i+1 < len(pairs); i += 2 {
		q = append(q, pairs[i]+"="+readable.Replace(url.QueryEscape(pairs[i+1])))
	}
	l := path + "?" + strings.Join(q, "&")
	return &l
}

var readable = strings.NewReplacer("%3A", ":", "%2C", ",", "%40", "@")
