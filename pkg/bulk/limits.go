package bulk

import (
	"encoding/json"
	"strconv"

	"github.com/bulkd/bulkd/pkg/jsonscan"
)

// Structural limits of a row, checked at submit by DecodeSubmission. Real
// data never comes near them; they bound what one import parses, holds and
// reports whatever a client sends.
const (
	// MaxDepth is how many levels of objects and arrays a row may nest, the
	// row itself being level 1. The errors report wraps each object a few
	// levels deeper than it was submitted, so the limit is kept far below
	// encoding/json's 10 000: any accepted row's report can be encoded and
	// read back.
	MaxDepth = 32
	// MaxAccountsPerSection is the most entries parent_debt_accounts and
	// debt_accounts may each hold.
	MaxAccountsPerSection = 100
	// MaxAccountsPerBulk is the most entries of both sections all the rows of
	// a bulk may hold together: 20 a row on average. It bounds the objects,
	// and so the memory, of one import (see the README's Limits).
	MaxAccountsPerBulk = 20_000
	// MaxMessagesPerObject is the most messages the report gives one object;
	// an object with more problems gets one more message saying so.
	MaxMessagesPerObject = 10
)

// checkRowLimits holds row, the index-th of the body (from 0) and valid JSON,
// to MaxDepth and MaxAccountsPerSection, and returns how many accounts its
// sections hold. Its work is one pass over the row's bytes, and it stops
// counting a section's entries past the limit.
func checkRowLimits(index int, row json.RawMessage) (accounts int, err error) {
	row = jsonscan.TrimSpace(row)
	if jsonscan.Depth(row) > MaxDepth {
		return 0, LimitError{
			Field:   "#/" + strconv.Itoa(index),
			Message: "Row " + strconv.Itoa(index+1) + " is nested more than " + strconv.Itoa(MaxDepth) + " levels deep.",
		}
	}
	if len(row) == 0 || row[0] != '{' {
		return 0, nil
	}
	sections := []jsonscan.Field{{Name: "parent_debt_accounts"}, {Name: "debt_accounts"}}
	// Keys match as ParseRow matches them, and every occurrence of a
	// duplicate key counts, so that no spelling of a section escapes.
	for key, value := range jsonscan.Members(row) {
		f := jsonscan.MatchField(jsonscan.Unquote(key), sections, false)
		if f == nil || jsonscan.Kind(value) != '[' {
			continue
		}
		n := 0
		for range jsonscan.Elements(value) {
			if n++; n > MaxAccountsPerSection {
				return 0, LimitError{
					Field: "#/" + strconv.Itoa(index) + "/" + f.Name,
					Message: "Row " + strconv.Itoa(index+1) + ": the " + Label(f.Name) +
						" field must not have more than " + strconv.Itoa(MaxAccountsPerSection) + " items.",
				}
			}
		}
		accounts += n
	}
	return accounts, nil
}
