// Package jsonscan reads JSON the way encoding/json accepts and decodes it,
// in one pass and without reflection: a value is checked once, then walked,
// each member, element and value a slice of the input rather than a copy.
// It accepts exactly what encoding/json accepts (nesting up to its 10 000
// levels, UTF-8 left unchecked), matches keys to fields as encoding/json
// matches them to struct fields, and decodes and encodes strings byte for
// byte as it does; FuzzScan holds it to that.
package jsonscan

import (
	"bytes"
	"encoding/json"
	"iter"
	"unicode/utf16"
	"unicode/utf8"
)

// maxNestingDepth is encoding/json's limit on nested objects and arrays.
const maxNestingDepth = 10000

// scanResult is the outcome of scanning a JSON value.
type scanResult uint8

const (
	scanOK        scanResult = iota
	scanInvalid              // not JSON
	scanTruncated            // the data ends inside the value: more bytes may complete it
)

// scanValue checks the JSON value at the start of data and returns where it
// ends. final says that no more data follows, which only matters for a number
// at the very end ("12" may go on to "123").
func scanValue(data []byte, final bool) (int, scanResult) {
	return scanNested(data, final, maxNestingDepth)
}

// scanNested is scanValue for a value that may hold at most maxDepth levels
// of objects and arrays: less than maxNestingDepth when the value is itself
// inside a container, which counts towards the limit.
func scanNested(data []byte, final bool, maxDepth int) (int, scanResult) {
	var openBuf [64]byte
	open := openBuf[:0] // the '{' or '[' of each container around i
	i := 0
	var res scanResult
	for {
		// A value starts at data[i].
		if i >= len(data) {
			return i, scanTruncated
		}
		switch c := data[i]; c {
		case '{', '[':
			if len(open) == maxDepth {
				return i, scanInvalid
			}
			open = append(open, c)
			if i = skipSpace(data, i+1); i >= len(data) {
				return i, scanTruncated
			}
			if data[i] == closing(c) {
				i++
				open = open[:len(open)-1]
				break // an empty container is a value like any other
			}
			if c == '{' {
				if i, res = scanKey(data, i); res != scanOK {
					return i, res
				}
			}
			continue // the first member or element
		case '"':
			i, res = scanString(data, i)
		case 't':
			i, res = scanLiteral(data, i, "true")
		case 'f':
			i, res = scanLiteral(data, i, "false")
		case 'n':
			i, res = scanLiteral(data, i, "null")
		default:
			if c != '-' && !isDigit(c) {
				return i, scanInvalid
			}
			i, res = scanNumber(data, i, final && len(open) == 0)
		}
		if res != scanOK {
			return i, res
		}

		// After a value: close containers until the next member or element.
	next:
		for {
			if len(open) == 0 {
				return i, scanOK
			}
			if i = skipSpace(data, i); i >= len(data) {
				return i, scanTruncated
			}
			c := open[len(open)-1]
			switch data[i] {
			case closing(c):
				i++
				open = open[:len(open)-1]
			case ',':
				i = skipSpace(data, i+1)
				if c == '{' {
					if i, res = scanKey(data, i); res != scanOK {
						return i, res
					}
				}
				break next
			default:
				return i, scanInvalid
			}
		}
	}
}

// closing is the bracket that closes an opening one: '}' for '{', ']' for '['.
func closing(open byte) byte { return open + 2 }

// scanKey checks an object's key and colon and returns where its value starts.
func scanKey(data []byte, i int) (int, scanResult) {
	if i >= len(data) {
		return i, scanTruncated
	}
	if data[i] != '"' {
		return i, scanInvalid
	}
	i, res := scanString(data, i)
	if res != scanOK {
		return i, res
	}
	if i = skipSpace(data, i); i >= len(data) {
		return i, scanTruncated
	}
	if data[i] != ':' {
		return i, scanInvalid
	}
	return skipSpace(data, i+1), scanOK
}

// plainInString marks the bytes that stand for themselves in a JSON string:
// everything but control characters, the quote and the backslash. Like
// encoding/json, the scanner leaves UTF-8 to be checked elsewhere.
var plainInString = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanString checks the string at data[i], which is '"'.
func scanString(data []byte, i int) (int, scanResult) {
	i++
	for {
		for i < len(data) && plainInString[data[i]] {
			i++
		}
		if i >= len(data) {
			return i, scanTruncated
		}
		switch data[i] {
		case '"':
			return i + 1, scanOK
		case '\\':
			i++
			if i >= len(data) {
				return i, scanTruncated
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				i++
				for range 4 {
					if i >= len(data) {
						return i, scanTruncated
					}
					if hexValue(data[i]) < 0 {
						return i, scanInvalid
					}
					i++
				}
			default:
				return i, scanInvalid
			}
		default: // a control character
			return i, scanInvalid
		}
	}
}

// scanNumber checks the number at data[i]: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(data []byte, i int, final bool) (int, scanResult) {
	// digits requires at least one digit at i and returns the end of the run.
	digits := func(i int) (int, scanResult) {
		if i >= len(data) {
			return i, scanTruncated
		}
		if !isDigit(data[i]) {
			return i, scanInvalid
		}
		for i < len(data) && isDigit(data[i]) {
			i++
		}
		return i, scanOK
	}
	var res scanResult
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	default:
		if i, res = digits(i); res != scanOK {
			return i, res
		}
	}
	if i < len(data) && data[i] == '.' {
		if i, res = digits(i + 1); res != scanOK {
			return i, res
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i, res = digits(i); res != scanOK {
			return i, res
		}
	}
	if i >= len(data) && !final {
		return i, scanTruncated // more digits, a fraction or an exponent may follow
	}
	return i, scanOK
}

// scanLiteral checks that data[i:] begins with lit (true, false or null).
func scanLiteral(data []byte, i int, lit string) (int, scanResult) {
	for j := range len(lit) {
		if i+j >= len(data) {
			return i + j, scanTruncated
		}
		if data[i+j] != lit[j] {
			return i + j, scanInvalid
		}
	}
	return i + len(lit), scanOK
}

// ScanFields checks that obj, without surrounding space, is one JSON object
// that encoding/json accepts (nested no deeper than it allows) and reads its
// fields as ReadFields does: one pass both checks the object and finds its
// parts. On anything but such an object it returns false, having possibly
// set some fields and reported some keys.
func ScanFields(obj []byte, fields []Field, strict *Strict) bool {
	if len(obj) == 0 || obj[0] != '{' {
		return false
	}
	i := skipSpace(obj, 1)
	if i < len(obj) && obj[i] == '}' {
		return i+1 == len(obj)
	}
	r := newFieldReader(fields, strict)
	for {
		keyStart := i
		valueStart, res := scanKey(obj, i)
		if res != scanOK {
			return false
		}
		key := obj[keyStart:skipString(obj, keyStart)]
		n, res := scanNested(obj[valueStart:], true, maxNestingDepth-1)
		if res != scanOK {
			return false
		}
		end := valueStart + n
		r.member(key, obj[valueStart:end:end])
		if i = skipSpace(obj, end); i >= len(obj) {
			return false
		}
		switch obj[i] {
		case '}':
			return i+1 == len(obj)
		case ',':
			i = skipSpace(obj, i+1)
		default:
			return false
		}
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipSpace returns the index of the first byte of data at or after i that
// is not JSON white space (space, tab, newline, carriage return).
func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

// TrimSpace returns data without the JSON white space around it.
func TrimSpace(data []byte) []byte {
	i, j := skipSpace(data, 0), len(data)
	for j > i && isSpace(data[j-1]) {
		j--
	}
	return data[i:j]
}

func hexValue(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// The functions below walk JSON that scanValue (or ScanFields) has accepted;
// on anything else their results are meaningless, and they may panic.

// structural marks the bytes that skipValue stops at inside a container.
var structural = [256]bool{'"': true, '{': true, '[': true, '}': true, ']': true}

// skipValue returns the end of the value at data[i].
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			for !structural[data[i]] {
				i++
			}
			switch data[i] {
			case '"':
				i = skipString(data, i) - 1
			case '{', '[':
				depth++
			default:
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	// A number or a literal runs to the next delimiter.
	for i < len(data) && data[i] > ' ' && data[i] != ',' && data[i] != '}' && data[i] != ']' {
		i++
	}
	return i
}

// skipString returns the end of the string at data[i].
func skipString(data []byte, i int) int {
	for i++; ; i++ {
		switch data[i] {
		case '"':
			return i + 1
		case '\\':
			i++ // the escaped byte, which may be a quote
		}
	}
}

// Members yields the key, quoted as written (Unquote decodes it), and the
// value of each member of obj, a valid object without surrounding space, in
// the order written, duplicates included.
func Members(obj []byte) iter.Seq2[[]byte, json.RawMessage] {
	return func(yield func([]byte, json.RawMessage) bool) {
		i := skipSpace(obj, 1)
		if obj[i] == '}' {
			return
		}
		for {
			keyEnd := skipString(obj, i)
			key := obj[i:keyEnd]
			i = skipSpace(obj, skipSpace(obj, keyEnd)+1) // past the colon
			end := skipValue(obj, i)
			if !yield(key, obj[i:end:end]) {
				return
			}
			if i = skipSpace(obj, end); obj[i] == '}' {
				return
			}
			i = skipSpace(obj, i+1) // past the comma
		}
	}
}

// Elements yields each element of arr, a valid array without surrounding
// space, in order.
func Elements(arr []byte) iter.Seq[json.RawMessage] {
	return func(yield func(json.RawMessage) bool) {
		i := skipSpace(arr, 1)
		if arr[i] == ']' {
			return
		}
		for {
			end := skipValue(arr, i)
			if !yield(arr[i:end:end]) {
				return
			}
			if i = skipSpace(arr, end); arr[i] == ']' {
				return
			}
			i = skipSpace(arr, i+1)
		}
	}
}

// Field names a member of an object and where to keep its value: Value is
// left as it is when the object has no such member, and is otherwise set to a
// slice of the object.
type Field struct {
	Name  string
	Value *json.RawMessage
}

// Strict makes ReadFields and ScanFields strict readers: keys match fields
// exactly, and the reader reports, decoded (valid only during the call),
// each key that names no field to Unknown, every time it appears, and each
// key that names a field already read to Duplicate, at its second
// appearance and every later one. Either may be nil. What a strict reader
// reports is for the caller to refuse: of duplicate keys the last still
// sets the field.
type Strict struct {
	Unknown   func(key []byte)
	Duplicate func(key []byte)
}

// ReadFields sets each field to the value of its member in obj, a valid
// object without surrounding space. Keys match as encoding/json matches them
// to struct fields: exactly, or else regardless of case; of duplicate keys
// the last wins, and unknown keys are ignored. With strict, it reads obj as
// Strict says.
func ReadFields(obj []byte, fields []Field, strict *Strict) {
	r := newFieldReader(fields, strict)
	for key, value := range Members(obj) {
		r.member(key, value)
	}
}

// fieldReader sets fields from an object's members one by one, for
// ReadFields and ScanFields.
type fieldReader struct {
	fields []Field
	strict *Strict
	read   uint64 // the fields read so far, for a strict reader of at most 64
	more   []bool // the same, for more fields
}

func newFieldReader(fields []Field, strict *Strict) fieldReader {
	r := fieldReader{fields: fields, strict: strict}
	if strict != nil && len(fields) > 64 {
		r.more = make([]bool, len(fields))
	}
	return r
}

// member reads one member, its key as written (quoted) and its value.
func (r *fieldReader) member(key []byte, value json.RawMessage) {
	k := Unquote(key)
	i := matchField(k, r.fields, r.strict != nil)
	switch {
	case i >= 0:
		*r.fields[i].Value = value
		if r.strict != nil && r.seen(i) && r.strict.Duplicate != nil {
			r.strict.Duplicate(k)
		}
	case r.strict != nil && r.strict.Unknown != nil:
		r.strict.Unknown(k)
	}
}

// seen marks field i read and tells whether it was already.
func (r *fieldReader) seen(i int) bool {
	if r.more != nil {
		was := r.more[i]
		r.more[i] = true
		return was
	}
	bit := uint64(1) << i
	was := r.read&bit != 0
	r.read |= bit
	return was
}

// MatchField finds the field that key, decoded, names: exactly, or unless
// exact is set regardless of case (as encoding/json folds it); nil if none.
func MatchField(key []byte, fields []Field, exact bool) *Field {
	if i := matchField(key, fields, exact); i >= 0 {
		return &fields[i]
	}
	return nil
}

// matchField is MatchField's index of the field, -1 if none.
func matchField(key []byte, fields []Field, exact bool) int {
	for i := range fields {
		if string(key) == fields[i].Name {
			return i
		}
	}
	if exact {
		return -1
	}
	for i := range fields {
		if bytes.EqualFold(key, []byte(fields[i].Name)) {
			return i
		}
	}
	return -1
}

// Unquote decodes s, a valid JSON string with its quotes, as encoding/json
// does: broken UTF-8 and lone surrogates become U+FFFD. The result is a slice
// of s when the string holds nothing to decode, as nearly all do.
func Unquote(s []byte) []byte {
	s = s[1 : len(s)-1]
	plain := 0
	for plain < len(s) {
		if c := s[plain]; c < utf8.RuneSelf {
			if c == '\\' {
				break
			}
			plain++
			continue
		}
		r, size := utf8.DecodeRune(s[plain:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		plain += size
	}
	if plain == len(s) {
		return s
	}

	b := make([]byte, plain, len(s)+utf8.UTFMax)
	copy(b, s)
	for r := plain; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			r++
			switch s[r] {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := utf16Unit(s[r+1:])
				r += 5
				if utf16.IsSurrogate(rr) {
					// A surrogate counts only as the first half of a pair.
					if r+1 < len(s) && s[r] == '\\' && s[r+1] == 'u' {
						if pair := utf16.DecodeRune(rr, utf16Unit(s[r+2:])); pair != utf8.RuneError {
							b = utf8.AppendRune(b, pair)
							r += 6
							continue
						}
					}
					rr = utf8.RuneError
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // '"', '\\' and '/' stand for themselves
				b = append(b, s[r])
			}
			r++
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			b = utf8.AppendRune(b, rr) // U+FFFD for a broken sequence
			r += size
		}
	}
	return b
}

// utf16Unit reads the four hex digits that begin s.
func utf16Unit(s []byte) rune {
	return hexValue(s[0])<<12 | hexValue(s[1])<<8 | hexValue(s[2])<<4 | hexValue(s[3])
}

// htmlSafe marks the ASCII bytes that encoding/json writes as they are in a
// string: it escapes control characters, the quote and the backslash, and
// also <, > and & so that the JSON is safe inside HTML.
var htmlSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// AppendString appends s as a JSON string, byte for byte as encoding/json
// writes it (with <, > and & escaped, and broken UTF-8 as U+FFFD).
func AppendString[Text []byte | string](dst []byte, s Text) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if htmlSafe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune([]byte(s[i:min(i+utf8.UTFMax, len(s))]))
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029': // line breaks to JavaScript
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Kind is the first byte of the JSON value raw, after white space: '"', '{',
// '[', 'n', 't' or 'f', or '0' for any number; 0 when raw is empty or only
// white space (a member that is absent).
func Kind(raw []byte) byte {
	i := skipSpace(raw, 0)
	if i == len(raw) {
		return 0
	}
	if c := raw[i]; c == '-' || isDigit(c) {
		return '0'
	}
	return raw[i]
}

// Depth is how deeply the valid JSON value v nests objects and arrays: 0 for
// a scalar, 1 for {} or [1], 2 for [[]].
func Depth(v []byte) int {
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
