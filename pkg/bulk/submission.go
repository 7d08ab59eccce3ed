package bulk

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// DecodeSubmission reads a JSON array of rows from r as a stream, keeping each
// row's bytes as submitted. It stops at the first problem; errors from r (such
// as *http.MaxBytesError) are returned as they are.
func DecodeSubmission(r io.Reader) ([]json.RawMessage, error) {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxOr(err)
	}
	if tok != json.Delim('[') {
		return nil, ErrNotArray
	}
	var rows []json.RawMessage
	for dec.More() {
		if len(rows) == MaxRows {
			return nil, ErrTooManyRows
		}
		var row json.RawMessage
		if err := dec.Decode(&row); err != nil {
			return nil, syntaxOr(err)
		}
		if !utf8.Valid(row) {
			return nil, ErrInvalidUTF8
		}
		rows = append(rows, row)
	}
	if _, err := dec.Token(); err != nil { // the closing bracket
		return nil, syntaxOr(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return nil, ErrNotJSON // something after the array
		}
		return nil, syntaxOr(err)
	}
	if len(rows) == 0 {
		return nil, ErrNoRows
	}
	return rows, nil
}

// syntaxOr maps the decoder's syntax errors to ErrNotJSON and leaves reader
// errors (a body too large, a dropped connection) for the caller.
func syntaxOr(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	if errors.As(err, &syn) || errors.As(err, &typ) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrNotJSON
	}
	return err
}
