package bulk

import (
	"encoding/json"
	"strconv"
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
)

// checkRowLimits holds row, the index-th of the body (from 0) and valid JSON,
// to MaxDepth and MaxAccountsPerSection. Its work is one pass over the row's
// bytes, and it stops counting a section's entries past the limit.
func checkRowLimits(index int, row json.RawMessage) error {
	row = trimSpace(row)
	if depth(row) > MaxDepth {
		return LimitError{
			Field:   "#/" + strconv.Itoa(index),
			Message: "Row " + strconv.Itoa(index+1) + " is nested more than " + strconv.Itoa(MaxDepth) + " levels deep.",
		}
	}
	if len(row) == 0 || row[0] != '{' {
		return nil
	}
	sections := []wireField{{name: "parent_debt_accounts"}, {name: "debt_accounts"}}
	// Keys match as ParseRow matches them, and every occurrence of a
	// duplicate key counts, so that no spelling of a section escapes.
	for key, value := range members(row) {
		f := matchField(unquote(key), sections, false)
		if f == nil || jsonKind(value) != '[' {
			continue
		}
		n := 0
		for range elements(value) {
			if n++; n > MaxAccountsPerSection {
				return LimitError{
					Field: "#/" + strconv.Itoa(index) + "/" + f.name,
					Message: "Row " + strconv.Itoa(index+1) + ": the " + label(f.name) +
						" field must not have more than " + strconv.Itoa(MaxAccountsPerSection) + " items.",
				}
			}
		}
	}
	return nil
}

// depth is how deeply the valid JSON value v nests objects and arrays: 0 for
// a scalar, 1 for {} or [1], 2 for [[]].
func depth(v []byte) int {
	d, deepest := 0, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			i = skipString(v, i) - 1
		case '{', '[':
			if d++; d > deepest {
				deepest = d
			}
		case '}', ']':
			d--
		}
	}
	return deepest
}
