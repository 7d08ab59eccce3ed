package bulk

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/bulkd/bulkd/pkg/jsonscan"
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
	in := jsonscan.NewArrayReader(r)
	if err := in.Begin(); err != nil {
		return nil, submissionError(err)
	}
	var (
		rows     []json.RawMessage
		accounts int // in the rows so far, for MaxAccountsPerBulk
	)
	for in.More() {
		if len(rows) == MaxRows {
			return nil, ErrTooManyRows
		}
		row, err := in.Next()
		if err != nil {
			return nil, submissionError(err)
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
	if err := in.End(); err != nil {
		return nil, submissionError(err)
	}
	if len(rows) == 0 {
		return nil, ErrNoRows
	}
	return rows, nil
}

// submissionError names the scanner's errors as the package's; reader errors
// (a body too large, a dropped connection) are left for the caller.
func submissionError(err error) error {
	switch {
	case errors.Is(err, jsonscan.ErrSyntax):
		return ErrNotJSON
	case errors.Is(err, jsonscan.ErrNotArray):
		return ErrNotArray
	}
	return err
}
