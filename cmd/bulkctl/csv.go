package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A CSV input is one line a debt account, its columns named by the field of
// the row they fill: customer.external_id, customer.address.city,
// debt_account.balance, debt_account.metadata.<key>, … Consecutive lines of
// the same customer.external_id are one row: the customer and its location
// from its lines, one debt account from each line that has any.

// The columns a CSV header may name, besides the metadata ones, in the
// order a header made from rows lists them.
var csvColumns = []string{
	"customer.external_id", "customer.name", "customer.email", "customer.phone", "customer.date_of_birth", "customer.ssn_last4",
	"customer.address.name", "customer.address.line1", "customer.address.line2", "customer.address.city",
	"customer.address.state", "customer.address.postal_code", "customer.address.country", "customer.address.is_primary",
	"location.external_id", "location.name",
	"debt_account.external_id", "debt_account.parent_external_id", "debt_account.balance", "debt_account.current_balance",
	"debt_account.billing_type", "debt_account.external_account_number",
}

const (
	customerMetadata = "customer.metadata."
	accountMetadata  = "debt_account.metadata."
)

// column is one column of a CSV header: the object it fills (customer,
// address, location, account), the JSON key, and how its text becomes a
// value.
type column struct {
	name   string
	object string // customer, address, customer.metadata, location, account, account.metadata
	key    string
	kind   valueKind
}

type valueKind uint8

const (
	kindString valueKind = iota
	kindMoney            // a JSON number when the text is one, else the text (the server says what is wrong)
	kindBool             // true or false, else the text
	kindList             // |-separated
)

// parseHeader reads a CSV header: every column known, none twice, and
// customer.external_id among them.
func parseHeader(names []string) ([]column, error) {
	cols := make([]column, len(names))
	seen := map[string]bool{}
	var unknown []string
	for i, name := range names {
		name = strings.TrimSpace(name)
		if i == 0 {
			name = strings.TrimPrefix(name, "\ufeff")
		}
		if seen[name] {
			return nil, fmt.Errorf("the header names %s twice", name)
		}
		seen[name] = true
		c, ok := columnOf(name)
		if !ok {
			unknown = append(unknown, strconv.Quote(name))
		}
		cols[i] = c
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("the header names unknown columns %s; the columns are %s, customer.metadata.<key> and debt_account.metadata.<key>",
			strings.Join(unknown, ", "), strings.Join(csvColumns, ", "))
	}
	if !seen["customer.external_id"] {
		return nil, errors.New("the header has no customer.external_id column, which groups the lines of each customer")
	}
	return cols, nil
}

func columnOf(name string) (column, bool) {
	c := column{name: name}
	switch {
	case strings.HasPrefix(name, customerMetadata) && len(name) > len(customerMetadata):
		c.object, c.key = "customer.metadata", name[len(customerMetadata):]
		return c, true
	case strings.HasPrefix(name, accountMetadata) && len(name) > len(accountMetadata):
		c.object, c.key = "account.metadata", name[len(accountMetadata):]
		return c, true
	case !slices.Contains(csvColumns, name):
		return c, false
	}
	prefix, key, _ := strings.Cut(name, ".")
	switch prefix {
	case "customer":
		c.object, c.key = "customer", key
		if a, ok := strings.CutPrefix(key, "address."); ok {
			c.object, c.key = "address", a
		}
	case "location":
		c.object, c.key = "location", key
	case "debt_account":
		c.object, c.key = "account", key
	}
	switch c.key {
	case "balance", "current_balance":
		c.kind = kindMoney
	case "is_primary":
		c.kind = kindBool
	case "billing_type":
		c.kind = kindList
	}
	return c, true
}

// maxAccountsPerRow is the server's limit on a row's debt accounts: a row
// over it would fail its whole bulk, so it is a bad line here.
const maxAccountsPerRow = 100

// csvReader groups the lines of a CSV input into rows.
type csvReader struct {
	r         *csv.Reader
	cols      []column
	idCol     int
	next      *csvLine     // read ahead: the first line of the next row
	bad       []*lineError // bad lines met inside the last row, told after it
	lastEnd   int64        // offset after the last record read
	exhausted bool
}

// csvLine is one line read: its cells and where it is.
type csvLine struct {
	cells []string
	line  int
	span  span
}

func newCSVReader(in io.Reader) (*csvReader, error) {
	r := csv.NewReader(in)
	r.FieldsPerRecord = -1 // counted here, to name the line
	header, err := r.Read()
	if err == io.EOF {
		return nil, errors.New("the file is empty; a CSV input starts with a header line")
	}
	if err != nil {
		return nil, fmt.Errorf("the header: %w", err)
	}
	cols, err := parseHeader(header)
	if err != nil {
		return nil, fmt.Errorf("line 1: %w", err)
	}
	c := &csvReader{r: r, cols: cols, lastEnd: r.InputOffset()}
	for i, col := range cols {
		if col.name == "customer.external_id" {
			c.idCol = i
		}
	}
	return c, nil
}

// read is the next line with as many cells as the header, or a *lineError.
func (c *csvReader) read() (*csvLine, error) {
	cells, err := c.r.Read()
	start := c.lastEnd
	c.lastEnd = c.r.InputOffset()
	line, _ := c.r.FieldPos(0)
	var perr *csv.ParseError
	switch {
	case err == io.EOF:
		return nil, io.EOF
	case errors.As(err, &perr):
		return nil, &lineError{Line: perr.StartLine, Msg: "not valid CSV: " + perr.Err.Error()}
	case err != nil:
		return nil, err
	case len(cells) != len(c.cols):
		return nil, &lineError{Line: line, Msg: fmt.Sprintf("%d fields, but the header has %d columns", len(cells), len(c.cols))}
	}
	for i, s := range cells {
		if !utf8.ValidString(s) {
			return nil, &lineError{Line: line, Msg: "the " + c.cols[i].name + " field is not UTF-8 text"}
		}
		cells[i] = strings.TrimSpace(s)
	}
	if cells[c.idCol] == "" {
		return nil, &lineError{Line: line, Msg: "customer.external_id is empty; it names the customer the line belongs to"}
	}
	return &csvLine{cells: cells, line: line, span: span{start, c.lastEnd}}, nil
}

// Next returns the next customer's row, or the *lineError of a bad line.
// A bad line among a customer's lines is left out of its row and told
// after it.
func (c *csvReader) Next() (row, error) {
	if len(c.bad) > 0 {
		err := c.bad[0]
		c.bad = c.bad[1:]
		return row{}, err
	}
	first := c.next
	c.next = nil
	if first == nil {
		if c.exhausted {
			return row{}, io.EOF
		}
		l, err := c.read()
		if err == io.EOF {
			c.exhausted = true
		}
		if err != nil {
			return row{}, err
		}
		first = l
	}
	g := newCSVGroup(c.cols, c.idCol, first)
	for {
		l, err := c.read()
		if err == io.EOF {
			c.exhausted = true
			break
		}
		var le *lineError
		if errors.As(err, &le) {
			c.bad = append(c.bad, le)
			continue
		}
		if err != nil {
			return row{}, err
		}
		if l.cells[c.idCol] != first.cells[c.idCol] {
			c.next = l
			break
		}
		if err := g.add(l); err != nil {
			c.bad = append(c.bad, err)
		}
	}
	return g.row(), nil
}

// csvGroup is the lines of one customer, becoming one row.
type csvGroup struct {
	cols     []column
	idCol    int
	first    *csvLine
	spans    []span
	accounts [][]string
}

func newCSVGroup(cols []column, idCol int, first *csvLine) *csvGroup {
	g := &csvGroup{cols: cols, idCol: idCol, first: first, spans: []span{first.span}}
	g.addAccount(first)
	return g
}

// add adds a later line of the customer. Its customer and location cells
// must be empty or as on the first line; a line that is not is left out.
func (g *csvGroup) add(l *csvLine) *lineError {
	for i, col := range g.cols {
		if col.object == "account" || col.object == "account.metadata" || l.cells[i] == "" || l.cells[i] == g.first.cells[i] {
			continue
		}
		return &lineError{Line: l.line, Msg: fmt.Sprintf("%s is %q here but %q on line %d, the customer's first line; leave it empty or the same",
			col.name, l.cells[i], g.first.cells[i], g.first.line)}
	}
	if g.hasAccount(l) && len(g.accounts) == maxAccountsPerRow {
		return &lineError{Line: l.line, Msg: fmt.Sprintf("the customer of line %d has more than %d debt accounts, the most a row may have",
			g.first.line, maxAccountsPerRow)}
	}
	if last := &g.spans[len(g.spans)-1]; last.End == l.span.Start {
		last.End = l.span.End
	} else {
		g.spans = append(g.spans, l.span)
	}
	g.addAccount(l)
	return nil
}

func (g *csvGroup) addAccount(l *csvLine) {
	if g.hasAccount(l) {
		g.accounts = append(g.accounts, l.cells)
	}
}

// hasAccount tells whether a line carries a debt account: any of its
// debt_account cells has a value.
func (g *csvGroup) hasAccount(l *csvLine) bool {
	return g.has(l.cells, "account") || g.has(l.cells, "account.metadata")
}

// row writes the customer's row as JSON: its fields in a fixed order,
// empty cells left out.
func (g *csvGroup) row() row {
	cells := g.first.cells
	b := []byte(`{"customer":{`)
	first := true
	b = g.members(b, &first, cells, "customer")
	b = g.nested(b, &first, cells, "address", "address")
	b = g.nested(b, &first, cells, "customer.metadata", "metadata")
	b = append(b, '}')
	if g.has(cells, "location") {
		b = append(b, `,"location":{`...)
		first := true
		b = append(g.members(b, &first, cells, "location"), '}')
	}
	b = append(b, `,"debt_accounts":[`...)
	for i, acc := range g.accounts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		first := true
		b = g.members(b, &first, acc, "account")
		b = g.nested(b, &first, acc, "account.metadata", "metadata")
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	id := cells[g.idCol]
	return row{JSON: b, Line: g.first.line, Spans: g.spans, Accounts: len(g.accounts), Customer: &id}
}

// members appends the members of object's columns that have a value.
func (g *csvGroup) members(b []byte, first *bool, cells []string, object string) []byte {
	for i, col := range g.cols {
		if col.object == object && cells[i] != "" {
			b = appendKey(b, first, col.key)
			b = appendValue(b, cells[i], col.kind)
		}
	}
	return b
}

// nested appends key: the object of object's columns, if any has a value.
func (g *csvGroup) nested(b []byte, first *bool, cells []string, object, key string) []byte {
	if !g.has(cells, object) {
		return b
	}
	b = appendKey(b, first, key)
	b = append(b, '{')
	inner := true
	return append(g.members(b, &inner, cells, object), '}')
}

// has tells whether any column of object has a value.
func (g *csvGroup) has(cells []string, object string) bool {
	for i, col := range g.cols {
		if col.object == object && cells[i] != "" {
			return true
		}
	}
	return false
}

func appendKey(b []byte, first *bool, key string) []byte {
	if !*first {
		b = append(b, ',')
	}
	*first = false
	b = appendString(b, key)
	return append(b, ':')
}

func appendValue(b []byte, s string, kind valueKind) []byte {
	switch kind {
	case kindMoney:
		if isJSONNumber(s) {
			return append(b, s...)
		}
	case kindBool:
		switch strings.ToLower(s) {
		case "true":
			return append(b, "true"...)
		case "false":
			return append(b, "false"...)
		}
	case kindList:
		b = append(b, '[')
		n := 0
		for item := range strings.SplitSeq(s, "|") {
			if item = strings.TrimSpace(item); item == "" {
				continue
			}
			if n > 0 {
				b = append(b, ',')
			}
			b = appendString(b, item)
			n++
		}
		return append(b, ']')
	}
	return appendString(b, s)
}

// appendString appends s, valid UTF-8, as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = fmt.Appendf(b, `\u%04x`, c)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// isJSONNumber tells whether s is a JSON number literal.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	start := i
	if n := digits(); n == 0 || (n > 1 && s[start] == '0') {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}
