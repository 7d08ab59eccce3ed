package report

import (
	"embed"
	"encoding/csv"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulksvc"
)

// MaxPageLines is the most error lines the page shows, so that its size has
// a bound whatever the bulk; the CSV has every line.
const MaxPageLines = 1000

// Page is what the report page shows: the bulk as GET /api/v1/bulk/{id}
// shows it, the first lines of its errors report and whether there are
// more.
type Page struct {
	Bulk    bulksvc.View
	Lines   []bulk.ErrorLine
	More    bool
	CSVURL  string
	Expires time.Time
}

//go:embed templates/*.tmpl
var templates embed.FS

var (
	pageTmpl   = template.Must(template.ParseFS(templates, "templates/page.html.tmpl"))
	noticeTmpl = template.Must(template.ParseFS(templates, "templates/notice.html.tmpl"))
)

// WritePage writes the report page.
func WritePage(w io.Writer, p Page) error {
	return pageTmpl.Execute(w, pageData{Page: p})
}

type pageData struct{ Page }

func (d pageData) Unfinished() bool {
	return d.Bulk.Status == "pending" || d.Bulk.Status == "processing"
}

func (d pageData) Status() string {
	if d.Bulk.Status == "completed" {
		return fmt.Sprintf("%d of %d rows fully imported, %d with errors", d.Bulk.RowsSucceeded, d.Bulk.Count, d.Bulk.RowsFailed)
	}
	return string(d.Bulk.Status)
}

func (d pageData) Mode() string { return Mode(d.Bulk) }

func (d pageData) Written() string {
	r := d.Bulk.RecordsWritten
	return Written(r.Locations, r.Customers, r.DebtAccounts)
}

// WriteNotice writes a page that only says something: why a link does not
// open.
func WriteNotice(w io.Writer, title, text string) error {
	return noticeTmpl.Execute(w, struct{ Title, Text string }{title, text})
}

// Mode describes the options a bulk was submitted with: "upsert, all or
// nothing, dry run".
func Mode(v bulksvc.View) string {
	parts := []string{v.Mode}
	if v.Atomic {
		parts = append(parts, "all or nothing")
	}
	if v.ValidateOnly {
		parts = append(parts, "dry run (nothing written)")
	}
	if v.Strict {
		parts = append(parts, "strict")
	}
	return strings.Join(parts, ", ")
}

// Written says what an import stored, as a person reads it:
// "5 records (1 location, 1 customer, 3 debt accounts)".
func Written(locations, customers, debtAccounts int) string {
	return fmt.Sprintf("%s (%s, %s, %s)", plural(locations+customers+debtAccounts, "record", "records"),
		plural(locations, "location", "locations"), plural(customers, "customer", "customers"),
		plural(debtAccounts, "debt account", "debt accounts"))
}

// plural writes n and the noun in the number n calls for.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// CSV writes lines of a report as CSV, a header first: the error lines of
// the report's download and of the API's text/csv answers, and the result
// lines of /results. A cell that a spreadsheet would run as a formula (it
// starts with =, +, -, @, a tab or a carriage return) is written with a '
// before it, as OWASP advises: the report repeats text a client sent, and
// whoever opens the file should not run it.
type CSV struct {
	w       *csv.Writer
	columns []string
	header  bool
}

// NewCSV returns a CSV writer to w of lines with the columns.
func NewCSV(w io.Writer, columns []string) *CSV { return &CSV{w: csv.NewWriter(w), columns: columns} }

// ErrorsCSV returns a CSV writer of error lines (bulk.ErrorLineColumns).
func ErrorsCSV(w io.Writer) *CSV { return NewCSV(w, bulk.ErrorLineColumns) }

// Error writes one error line, for ErrorLines' callback.
func (c *CSV) Error(l bulk.ErrorLine) error { return c.Write(l.Record()) }

// Write writes one line (the header before the first).
func (c *CSV) Write(rec []string) error {
	if err := c.writeHeader(); err != nil {
		return err
	}
	for i, v := range rec {
		rec[i] = defuse(v)
	}
	return c.w.Write(rec)
}

// Flush writes what is buffered (the header, when no line was written).
func (c *CSV) Flush() error {
	if err := c.writeHeader(); err != nil {
		return err
	}
	c.w.Flush()
	return c.w.Error()
}

func (c *CSV) writeHeader() error {
	if c.header {
		return nil
	}
	c.header = true
	return c.w.Write(c.columns)
}

// defuse keeps a spreadsheet from reading a cell as a formula.
func defuse(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
