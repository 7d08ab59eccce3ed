package bulk

import (
	"errors"
	"strconv"
	"strings"
)

// Money is an exact amount in cents. Balances are stored as numeric(14,2), so a
// float64 would lose cents on large values; an integer number of cents cannot.
type Money int64

// MaxMoney is the largest amount numeric(14,2) holds: 999 999 999 999.99.
const MaxMoney Money = 99_999_999_999_999

var (
	errMoneySyntax   = errors.New("not a number")
	errMoneyNegative = errors.New("negative")
	errMoneyPlaces   = errors.New("more than 2 decimal places")
	errMoneyTooLarge = errors.New("too large")
)

// ParseMoney reads a decimal literal in JSON number syntax ("100", "100.5",
// "1.005e2", "-0") exactly, without going through float64. Any length is
// read in time linear in it: "1.000…0" is 1.00 however many zeros follow.
func ParseMoney(lit string) (Money, error) {
	if len(lit) == 0 {
		return 0, errMoneySyntax
	}
	neg := lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	mant, expPart, hasExp := strings.Cut(lit, "e")
	if !hasExp {
		mant, expPart, hasExp = strings.Cut(lit, "E")
	}
	intPart, frac, hasDot := strings.Cut(mant, ".")
	if !isDigits(intPart) || (hasDot && !isDigits(frac)) || (len(intPart) > 1 && intPart[0] == '0') {
		return 0, errMoneySyntax
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	places := len(frac)
	if hasExp {
		sign := 1
		switch {
		case strings.HasPrefix(expPart, "+"):
			expPart = expPart[1:]
		case strings.HasPrefix(expPart, "-"):
			expPart, sign = expPart[1:], -1
		}
		if !isDigits(expPart) {
			return 0, errMoneySyntax
		}
		exp, err := strconv.Atoi(expPart)
		if err != nil || exp > 1000 {
			// An exponent this large only keeps a non-zero value in range if the
			// digits are all zeros.
			if digits == "" {
				return 0, nil
			}
			if sign < 0 {
				return 0, errMoneyPlaces
			}
			return 0, errMoneyTooLarge
		}
		places -= sign * exp
	}
	for places > 0 && digits != "" && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		places--
	}
	if digits == "" {
		return 0, nil // zero, including -0
	}
	if neg {
		return 0, errMoneyNegative
	}
	if places > 2 {
		return 0, errMoneyPlaces
	}
	zeros := 2 - places
	if len(digits)+zeros > 14 {
		return 0, errMoneyTooLarge
	}
	cents, err := strconv.ParseInt(digits+strings.Repeat("0", zeros), 10, 64)
	if err != nil || Money(cents) > MaxMoney {
		return 0, errMoneyTooLarge
	}
	return Money(cents), nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String formats the amount with exactly two decimal places, as Postgres prints numeric(14,2).
func (m Money) String() string {
	s := strconv.FormatInt(int64(m), 10)
	for len(s) < 3 {
		s = "0" + s
	}
	return s[:len(s)-2] + "." + s[len(s)-2:]
}
