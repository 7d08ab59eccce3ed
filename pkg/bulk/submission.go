package bulk

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// Errors of a submission as a whole; nothing of such a submission is stored.
var (
	ErrNotJSON     = errors.New("the request body must be valid JSON")
	ErrNotArray    = errors.New("the request body must be a JSON array of rows")
	ErrInvalidUTF8 = errors.New("the request body must be valid UTF-8")
	ErrNoRows      = errors.New("the bulk must have at least 1 row")
	ErrTooManyRows = fmt.Errorf("the bulk may not have more than %d rows", MaxRows)
)

// ErrRowLimit is what every *LimitError is: a row over one of the structural
// limits that keep one import's work and report bounded.
var ErrRowLimit = errors.New("a row is over a limit")

// LimitError is a row over a structural limit (MaxDepth,
// MaxAccountsPerSection), found at submit so that nothing of it is stored.
// Field is a JSON pointer into the body ("#/2/debt_accounts", rows counted
// from 0) and Message reads as a sentence naming the row from 1.
type LimitError struct {
	Field   string
	Message string
}

func (e LimitError) Error() string { return e.Message }

// Is makes every LimitError match ErrRowLimit, whatever its row and field.
func (e LimitError) Is(target error) bool { return target == ErrRowLimit }

// DecodeSubmission reads a JSON array of rows from r as a stream, keeping each
// row's bytes as submitted. It stops at the first problem; errors from r (such
// as *http.MaxBytesError) are returned as they are. The rows share the blocks
// the body was read into, so the body is held once, however large.
//
// It answers as encoding/json's Decoder would, reading the array token by
// token and each row as one value, except that a row over a structural limit
// (nested deeper than MaxDepth, more than MaxAccountsPerSection entries in a
// section) is a LimitError as soon as the row has been read.
func DecodeSubmission(r io.Reader) ([]json.RawMessage, error) {
	in := bodyReader{r: r}
	c, err := in.peek()
	if err != nil {
		return nil, syntaxOr(err)
	}
	if c != '[' {
		return nil, in.notArray(c)
	}
	in.pos++

	var (
		rows     []json.RawMessage
		accounts int // in the rows so far, for MaxAccountsPerBulk
	)
	for {
		c, err := in.peek()
		if err != nil || c == ']' || c == '}' {
			break // whichever it is, the closing bracket below says
		}
		if len(rows) == MaxRows {
			return nil, ErrTooManyRows
		}
		if len(rows) > 0 {
			if c != ',' {
				return nil, ErrNotJSON
			}
			in.pos++
		}
		row, err := in.value()
		if err != nil {
			return nil, err
		}
		if !utf8.Valid(row) {
			return nil, ErrInvalidUTF8
		}
		n, err := checkRowLimits(len(rows), row)
		if err != nil {
			return nil, err
		}
		if accounts += n; accounts > MaxAccountsPerBulk {
			return nil, LimitError{Field: "#/" + strconv.Itoa(len(rows)),
				Message: fmt.Sprintf("The bulk must not have more than %d debt accounts in all (parent_debt_accounts and debt_accounts of every row); row %d brings it over.",
					MaxAccountsPerBulk, len(rows)+1)}
		}
		rows = append(rows, row)
	}
	if c, err := in.peek(); err != nil || c != ']' {
		if err != nil {
			return nil, syntaxOr(err)
		}
		return nil, ErrNotJSON
	}
	in.pos++

	switch c, err := in.peek(); {
	case err == io.EOF:
	case err != nil:
		return nil, syntaxOr(err)
	case c == '{' || c == '[':
		return nil, ErrNotJSON // something after the array
	default:
		// Another value after the array; only a read error while reading it
		// changes the answer, as it does for encoding/json.
		if _, err := in.value(); err != nil && !errors.Is(err, ErrNotJSON) {
			return nil, err
		}
		return nil, ErrNotJSON
	}
	if len(rows) == 0 {
		return nil, ErrNoRows
	}
	return rows, nil
}

// notArray is the error of a body that starts with c, not '['. An object is
// not an array whatever follows; any other value must be read first, since a
// broken one is not JSON at all.
func (in *bodyReader) notArray(c byte) error {
	if c == '{' {
		return ErrNotArray
	}
	if _, err := in.value(); err != nil {
		return err
	}
	return ErrNotArray
}

// syntaxOr maps an end of the body in the middle of the JSON to ErrNotJSON
// and leaves reader errors (a body too large, a dropped connection) for the
// caller.
func syntaxOr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrNotJSON
	}
	return err
}

// Blocks grow from firstBlockSize to maxBlockSize, so that a small body costs
// little and a large one is read in few pieces without much left unused at
// the end of the last.
const (
	firstBlockSize = 4 << 10
	maxBlockSize   = 64 << 10
)

// bodyReader reads a body into blocks and scans JSON values in them.
type bodyReader struct {
	r     io.Reader
	block []byte // bytes read into the current block
	pos   int    // the next byte of block to scan
	err   error  // the error that ended reading, io.EOF at the end of the body
}

// peek returns the next byte that is not white space, without consuming it.
func (in *bodyReader) peek() (byte, error) {
	for {
		if in.pos = skipSpace(in.block, in.pos); in.pos < len(in.block) {
			return in.block[in.pos], nil
		}
		if in.err != nil {
			return 0, in.err
		}
		in.fill()
	}
}

// value reads the JSON value at the next byte that is not white space and
// returns it as a slice of the block, of its own capacity so that appending
// to it cannot overwrite what follows.
func (in *bodyReader) value() (json.RawMessage, error) {
	if _, err := in.peek(); err != nil {
		return nil, syntaxOr(err)
	}
	for {
		data := in.block[in.pos:]
		end, res := scanValue(data, in.err == io.EOF)
		if res == scanOK && end == len(data) && data[0] != '{' && data[0] != '[' && in.err != io.EOF {
			// encoding/json takes a string, number or literal only once it
			// has seen the byte after it, or the end of the body.
			res = scanTruncated
		}
		switch res {
		case scanOK:
			in.pos += end
			return data[:end:end], nil
		case scanInvalid:
			return nil, ErrNotJSON
		}
		if in.err != nil {
			return nil, syntaxOr(in.err)
		}
		in.fill()
	}
}

// fill reads more of the body. The block is filled up, so that a value too
// long for one read is scanned again only after it has at least doubled; a
// full block is replaced by a new one, into which the unscanned bytes move.
func (in *bodyReader) fill() {
	if len(in.block) == cap(in.block) {
		rest := in.block[in.pos:]
		size := min(2*cap(in.block), maxBlockSize)
		size = max(size, firstBlockSize, 2*len(rest))
		block := make([]byte, len(rest), size)
		copy(block, rest)
		in.block, in.pos = block, 0
	}
	for len(in.block) < cap(in.block) && in.err == nil {
		var n int
		n, in.err = in.r.Read(in.block[len(in.block):cap(in.block)])
		in.block = in.block[:len(in.block)+n]
	}
}
