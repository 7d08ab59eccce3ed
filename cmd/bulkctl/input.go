package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// The input formats.
const (
	formatJSON   = "json"   // one JSON array of rows
	formatNDJSON = "ndjson" // one row a line
	formatCSV    = "csv"    // one line a debt account, dotted column names
)

// formatOf is the format named, or else the one the file's extension says.
func formatOf(path, named string) (string, error) {
	switch strings.ToLower(named) {
	case formatJSON, formatNDJSON, formatCSV:
		return strings.ToLower(named), nil
	case "jsonl":
		return formatNDJSON, nil
	case "":
	default:
		return "", fmt.Errorf("--format %q: must be json, ndjson or csv", named)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return formatJSON, nil
	case ".ndjson", ".jsonl":
		return formatNDJSON, nil
	case ".csv":
		return formatCSV, nil
	}
	return "", fmt.Errorf("%s: cannot tell the format from the extension; name it with --format json, ndjson or csv", path)
}

// row is one row read from an input: its JSON, where it came from, and how
// many debt accounts it holds (when the reader knows; -1 otherwise).
type row struct {
	JSON     []byte
	Line     int     // where it starts, from 1
	Spans    []span  // its bytes in the input, for writing it back as it was
	Accounts int     // debt accounts, or -1
	Customer *string // a CSV row's customer external id
}

// span is a range of bytes of the input.
type span struct{ Start, End int64 }

// lineError is an input line (or row) that cannot be read. Fatal: the
// reader cannot go on past it.
type lineError struct {
	Line  int
	Msg   string
	Fatal bool
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// rowReader reads the rows of an input one at a time: Next returns a row,
// a *lineError (after which another Next goes on, unless it is fatal), io.EOF
// at the end, or another error that ends the reading.
type rowReader interface {
	Next() (row, error)
}

// goodRows yields the rows of rr, past its bad lines (the first pass has
// told them), then the error that ended the reading, if it is not the end.
func goodRows(rr rowReader) iter.Seq2[row, error] {
	return func(yield func(row, error) bool) {
		for {
			r, err := rr.Next()
			switch {
			case err == io.EOF:
				return
			case errors.As(err, new(*lineError)):
				continue
			case err != nil:
				yield(row{}, err)
				return
			}
			if !yield(r, nil) {
				return
			}
		}
	}
}

// newRowReader reads r, an input in format. A reader holds one row (and its
// read buffer) at a time, whatever the size of the input.
func newRowReader(r io.Reader, format string) (rowReader, error) {
	switch format {
	case formatJSON:
		return newJSONReader(r), nil
	case formatNDJSON:
		return &ndjsonReader{r: bufio.NewReaderSize(r, 64<<10)}, nil
	case formatCSV:
		return newCSVReader(r)
	}
	return nil, fmt.Errorf("unknown format %q", format)
}

// maxRowBytes bounds one row as read: the server takes 16 MiB a bulk.
const maxRowBytes = 16 << 20

// ndjsonReader reads one JSON object a line; blank lines are skipped.
type ndjsonReader struct {
	r    *bufio.Reader
	line int
	off  int64
	buf  []byte
}

func (n *ndjsonReader) Next() (row, error) {
	for {
		n.buf = n.buf[:0]
		tooLong := false
		for {
			chunk, err := n.r.ReadSlice('\n')
			if len(n.buf)+len(chunk) > maxRowBytes {
				tooLong = true
			} else {
				n.buf = append(n.buf, chunk...)
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil && err != io.EOF {
				return row{}, err
			}
			if err == io.EOF && len(n.buf) == 0 && !tooLong {
				return row{}, io.EOF
			}
			break
		}
		n.line++
		start := n.off
		n.off += int64(len(n.buf))
		if tooLong {
			return row{}, &lineError{Line: n.line, Msg: fmt.Sprintf("the line is longer than %d MiB", maxRowBytes>>20)}
		}
		text := bytes.TrimSpace(bytes.TrimPrefix(n.buf, []byte("\xef\xbb\xbf")))
		if len(text) == 0 {
			continue
		}
		if msg := jsonRowProblem(text); msg != "" {
			return row{}, &lineError{Line: n.line, Msg: msg}
		}
		return row{JSON: bytes.Clone(text), Line: n.line, Spans: []span{{start, n.off}}, Accounts: -1}, nil
	}
}

// jsonRowProblem says what makes text no row the server can read, "" when
// it is one: a JSON object in UTF-8.
func jsonRowProblem(text []byte) string {
	switch {
	case !utf8.Valid(text):
		return "not UTF-8 text"
	case !json.Valid(text):
		return "not valid JSON"
	case text[0] != '{':
		return "a row must be a JSON object"
	}
	return ""
}

// jsonReader reads the elements of one JSON array.
type jsonReader struct {
	dec     *json.Decoder
	bom     int64 // bytes of a byte-order mark before what dec reads
	lines   *lineCounter
	started bool
	done    bool
}

func newJSONReader(r io.Reader) *jsonReader {
	lc := &lineCounter{}
	r, bom := skipBOM(r)
	return &jsonReader{dec: json.NewDecoder(io.TeeReader(r, lc)), lines: lc, bom: bom}
}

func (j *jsonReader) Next() (row, error) {
	if j.done {
		return row{}, io.EOF
	}
	if !j.started {
		j.started = true
		tok, err := j.dec.Token()
		if err == io.EOF {
			return row{}, j.fatal(0, "the file is empty; a JSON input is one array of rows")
		}
		if d, ok := tok.(json.Delim); err != nil || !ok || d != '[' {
			return row{}, j.fatal(j.dec.InputOffset(), "a JSON input must be one array of rows")
		}
	}
	if !j.dec.More() {
		j.done = true
		if _, err := j.dec.Token(); err != nil { // the closing bracket
			return row{}, j.syntax(err)
		}
		if _, err := j.dec.Token(); err != io.EOF {
			return row{}, j.fatal(j.dec.InputOffset(), "data after the array's closing bracket")
		}
		return row{}, io.EOF
	}
	var raw json.RawMessage
	if err := j.dec.Decode(&raw); err != nil {
		j.done = true
		return row{}, j.syntax(err)
	}
	end := j.dec.InputOffset()
	start := end - int64(len(raw))
	line := j.lines.lineAt(start)
	if !utf8.Valid(raw) {
		return row{}, &lineError{Line: line, Msg: "the row is not UTF-8 text"}
	}
	if raw[0] != '{' {
		return row{}, &lineError{Line: line, Msg: "a row must be a JSON object"}
	}
	return row{JSON: raw, Line: line, Spans: []span{{start + j.bom, end + j.bom}}, Accounts: -1}, nil
}

func (j *jsonReader) syntax(err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return j.fatal(syn.Offset, "not valid JSON: "+syn.Error())
	}
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return j.fatal(j.dec.InputOffset(), "the JSON array ends before its closing bracket")
	}
	return err
}

func (j *jsonReader) fatal(off int64, msg string) error {
	j.done = true
	return &lineError{Line: j.lines.lineAt(off), Msg: msg, Fatal: true}
}

// lineCounter counts the lines of what is written through it, keeping the
// offsets where lines start only as far back as it must: lineAt is asked
// for offsets that never go back before the last one asked.
type lineCounter struct {
	starts []int64 // offsets of the lines' starts not yet passed, after base
	base   int     // the line of the first offset in starts, minus one
	n      int64   // bytes seen
}

func (c *lineCounter) Write(p []byte) (int, error) {
	for i, b := range p {
		if b == '\n' {
			c.starts = append(c.starts, c.n+int64(i)+1)
		}
	}
	c.n += int64(len(p))
	return len(p), nil
}

// lineAt is the line (from 1) of the byte at off.
func (c *lineCounter) lineAt(off int64) int {
	i := 0
	for i < len(c.starts) && c.starts[i] <= off {
		i++
	}
	c.base += i
	c.starts = c.starts[i:]
	return c.base + 1
}

// skipBOM drops a UTF-8 byte-order mark at the start of r and says how
// many bytes it dropped.
func skipBOM(r io.Reader) (io.Reader, int64) {
	br := bufio.NewReaderSize(r, 64<<10)
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
		return br, 3
	}
	return br, 0
}
