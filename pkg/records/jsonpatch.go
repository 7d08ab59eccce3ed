package records

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"
)

// A JSON Patch (RFC 6902) applied to a record as its GET shows it. It is
// written here rather than taken from evanphx/json-patch, which the merge
// patch still uses, because that one breaks the RFC where a client notices:
// its test compares numbers by their text (7 is not 7.00, so no JavaScript
// client can test a balance), and it reads array indices with strconv
// (/billing_type/01 is 1, and -1 counts from the end), where RFC 6901
// allows 0 or digits without a leading zero, and "-" for the end.

// MaxPatchArrayShifts bounds the array elements a JSON Patch's operations
// may shift in all (each insert or removal shifts those after it): without
// a bound, a patch of 16 MiB that adds an array of millions of elements and
// then removes its first one a few hundred thousand times costs hours of a
// core. A patch of a record shifts a handful.
const MaxPatchArrayShifts = 1 << 20

// patchOp is one operation of a JSON Patch, decoded: its pointers split
// into reference tokens, its value with numbers as written.
type patchOp struct {
	op         string
	path, from []string
	rawPath    string
	rawFrom    string
	value      any
}

// decodeJSONPatch reads a JSON Patch: a list of objects, each with an op,
// a path that is a JSON Pointer, and a from (move, copy) or a value (add,
// replace, test) as its op needs; other members are ignored, as RFC 6902
// says. A patch that is none is a *ValidationError naming patch.
func decodeJSONPatch(patch []byte) ([]patchOp, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(patch, &list); err != nil || list == nil {
		return nil, invalid("patch", msgNotJSONPatch)
	}
	ops := make([]patchOp, len(list))
	for i, raw := range list {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			return nil, invalid("patch", fmt.Sprintf("The patch's operation #/%d must be an object with op and path.", i))
		}
		o := &ops[i]
		if err := json.Unmarshal(m["op"], &o.op); err != nil || !slices.Contains([]string{"add", "remove", "replace", "move", "copy", "test"}, o.op) {
			return nil, invalid("patch", fmt.Sprintf("The patch's operation #/%d must have an op: add, remove, replace, move, copy or test.", i))
		}
		var err error
		if o.rawPath, o.path, err = pointerMember(m, "path"); err != nil {
			return nil, invalid("patch", fmt.Sprintf("The patch's operation #/%d (%s) %s.", i, o.op, err))
		}
		switch o.op {
		case "move", "copy":
			if o.rawFrom, o.from, err = pointerMember(m, "from"); err != nil {
				return nil, invalid("patch", fmt.Sprintf("The patch's operation #/%d (%s) %s.", i, o.op, err))
			}
		case "add", "replace", "test":
			v, ok := m["value"]
			if !ok {
				return nil, invalid("patch", fmt.Sprintf("The patch's operation #/%d (%s) must have a value.", i, o.op))
			}
			if o.value, err = decodeValue(v); err != nil {
				return nil, invalid("patch", msgNotJSONPatch)
			}
		}
	}
	return ops, nil
}

// pointerMember reads member name of an operation as a JSON Pointer
// (RFC 6901): "" for the whole record, or "/" and reference tokens in which
// ~1 is "/" and ~0 is "~".
func pointerMember(m map[string]json.RawMessage, name string) (string, []string, error) {
	raw, ok := m[name]
	var s string
	if !ok || json.Unmarshal(raw, &s) != nil {
		return "", nil, fmt.Errorf("must have a %s, a JSON Pointer", name)
	}
	if s == "" {
		return s, nil, nil
	}
	if s[0] != '/' {
		return "", nil, fmt.Errorf("has %s %q, which is no JSON Pointer (RFC 6901): it must be empty or start with /", name, s)
	}
	tokens := strings.Split(s[1:], "/")
	for i, t := range tokens {
		if !strings.Contains(t, "~") {
			continue
		}
		var b strings.Builder
		for j := 0; j < len(t); j++ {
			if t[j] != '~' {
				b.WriteByte(t[j])
				continue
			}
			if j+1 == len(t) || (t[j+1] != '0' && t[j+1] != '1') {
				return "", nil, fmt.Errorf("has %s %q, which is no JSON Pointer (RFC 6901): ~ is written ~0, and / in a name ~1", name, s)
			}
			b.WriteByte("~/"[t[j+1]-'0'])
			j++
		}
		tokens[i] = b.String()
	}
	return s, tokens, nil
}

// decodeValue reads one JSON value with its numbers as written.
func decodeValue(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// Where a pointer leads nowhere; each reads after the pointer in a message.
var (
	errMissing  = errors.New("does not exist")
	errBadIndex = errors.New("is no array index as RFC 6901 writes one: 0, or a number without a leading zero (and - past the end, where add appends)")
	errPastEnd  = errors.New("is past the end of the array")
)

// patcher applies operations to one document, counting what they cost.
type patcher struct {
	root   any
	copied int // bytes copy operations added
	shifts int // array elements inserts and removals shifted
}

// applyJSONPatch applies ops in order to doc, a JSON object, and returns
// the result; an operation that cannot apply (a missing member, an index
// RFC 6901 does not allow, a failed test, copies over MaxPatchCopyBytes,
// shifts over MaxPatchArrayShifts) stops the patch with a message that
// names it and its pointer, for "The patch cannot be applied to …".
func applyJSONPatch(doc []byte, ops []patchOp) ([]byte, error) {
	root, err := decodeValue(doc)
	if err != nil {
		return nil, err
	}
	p := &patcher{root: root}
	for i, op := range ops {
		if err := p.apply(op); err != nil {
			return nil, &patchError{msg: fmt.Sprintf("operation #/%d (%s): %s", i, op.op, err)}
		}
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p.root); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// patchError is an operation of a JSON Patch that cannot apply.
type patchError struct{ msg string }

func (e *patchError) Error() string { return e.msg }

// at names a pointer in an error: "/billing_type/01 is past …".
func at(pointer string, err error) error {
	if err == nil {
		return nil
	}
	if pointer == "" {
		pointer = `the pointer ""`
	}
	return fmt.Errorf("%s %w", pointer, err)
}

func (p *patcher) apply(op patchOp) error {
	var err error
	switch op.op {
	case "add":
		p.root, err = p.add(p.root, op.path, op.value)
		return at(op.rawPath, err)
	case "remove":
		if op.path == nil {
			return errors.New("the whole record cannot be removed")
		}
		p.root, _, err = p.remove(p.root, op.path)
		return at(op.rawPath, err)
	case "replace":
		if op.path == nil {
			p.root = op.value
			return nil
		}
		p.root, err = p.edit(p.root, op.path, func(parent any, key string) (any, error) {
			switch c := parent.(type) {
			case map[string]any:
				if _, ok := c[key]; !ok {
					return nil, errMissing
				}
				c[key] = op.value
				return c, nil
			case []any:
				i, err := index(key, len(c), false)
				if err != nil {
					return nil, err
				}
				c[i] = op.value
				return c, nil
			}
			return nil, errMissing
		})
		return at(op.rawPath, err)
	case "move":
		if len(op.from) < len(op.path) && slices.Equal(op.from, op.path[:len(op.from)]) {
			return fmt.Errorf("%s cannot be moved into %s, which is inside it", op.rawFrom, op.rawPath)
		}
		if _, err := get(p.root, op.from); err != nil {
			return at(op.rawFrom, err)
		}
		if slices.Equal(op.from, op.path) {
			return nil
		}
		var v any
		if p.root, v, err = p.remove(p.root, op.from); err != nil {
			return at(op.rawFrom, err)
		}
		p.root, err = p.add(p.root, op.path, v)
		return at(op.rawPath, err)
	case "copy":
		v, err := get(p.root, op.from)
		if err != nil {
			return at(op.rawFrom, err)
		}
		if p.copied += encodedSize(v, MaxPatchCopyBytes-p.copied); p.copied > MaxPatchCopyBytes {
			return fmt.Errorf("copies would add more than %d KiB to the record", MaxPatchCopyBytes>>10)
		}
		p.root, err = p.add(p.root, op.path, deepCopy(v))
		return at(op.rawPath, err)
	case "test":
		v, err := get(p.root, op.path)
		if err != nil {
			return at(op.rawPath, err)
		}
		if !sameValue(v, op.value) {
			return at(op.rawPath, errors.New("is not the value the test gives"))
		}
	}
	return nil
}

// edit finds the container that holds what path names and calls fn with
// it and the last token; fn returns the container as it is to be stored
// back (an array may have grown or shrunk). path is not empty.
func (p *patcher) edit(v any, path []string, fn func(parent any, key string) (any, error)) (any, error) {
	if len(path) == 1 {
		return fn(v, path[0])
	}
	switch c := v.(type) {
	case map[string]any:
		child, ok := c[path[0]]
		if !ok {
			return nil, errMissing
		}
		child, err := p.edit(child, path[1:], fn)
		if err != nil {
			return nil, err
		}
		c[path[0]] = child
		return c, nil
	case []any:
		i, err := index(path[0], len(c), false)
		if err != nil {
			return nil, err
		}
		child, err := p.edit(c[i], path[1:], fn)
		if err != nil {
			return nil, err
		}
		c[i] = child
		return c, nil
	}
	return nil, errMissing // a value that is no container has no members
}

// add sets value at path: a member of an object (replaced if there), or an
// element inserted into an array ("-" or the length append).
func (p *patcher) add(root any, path []string, value any) (any, error) {
	if path == nil {
		return value, nil
	}
	return p.edit(root, path, func(parent any, key string) (any, error) {
		switch c := parent.(type) {
		case map[string]any:
			c[key] = value
			return c, nil
		case []any:
			i, err := index(key, len(c), true)
			if err != nil {
				return nil, err
			}
			if p.shifts += len(c) - i; p.shifts > MaxPatchArrayShifts {
				return nil, errTooManyShifts
			}
			return slices.Insert(c, i, value), nil
		}
		return nil, errMissing
	})
}

// remove takes out what path names and returns it.
func (p *patcher) remove(root any, path []string) (any, any, error) {
	var removed any
	root, err := p.edit(root, path, func(parent any, key string) (any, error) {
		switch c := parent.(type) {
		case map[string]any:
			v, ok := c[key]
			if !ok {
				return nil, errMissing
			}
			delete(c, key)
			removed = v
			return c, nil
		case []any:
			i, err := index(key, len(c), false)
			if err != nil {
				return nil, err
			}
			if p.shifts += len(c) - i - 1; p.shifts > MaxPatchArrayShifts {
				return nil, errTooManyShifts
			}
			removed = c[i]
			return slices.Delete(c, i, i+1), nil
		}
		return nil, errMissing
	})
	return root, removed, err
}

var errTooManyShifts = fmt.Errorf("and the operations before it shift more than %d array elements in all", MaxPatchArrayShifts)

// get is the value path names.
func get(v any, path []string) (any, error) {
	for _, key := range path {
		switch c := v.(type) {
		case map[string]any:
			child, ok := c[key]
			if !ok {
				return nil, errMissing
			}
			v = child
		case []any:
			i, err := index(key, len(c), false)
			if err != nil {
				return nil, err
			}
			v = c[i]
		default:
			return nil, errMissing
		}
	}
	return v, nil
}

// index reads key as the index of an element of an array of n: "0", or
// digits without a leading zero, below n; with end (add's positions), also
// n or "-", past the last element.
func index(key string, n int, end bool) (int, error) {
	if key == "-" {
		if end {
			return n, nil
		}
		return 0, errPastEnd
	}
	if key == "" || len(key) > 1 && key[0] == '0' || strings.Trim(key, "0123456789") != "" {
		return 0, errBadIndex
	}
	i, err := strconv.Atoi(key)
	if err != nil || i > n || i == n && !end {
		return 0, errPastEnd
	}
	return i, nil
}

// sameValue tells whether two JSON values are equal as RFC 6902 §4.6 says:
// of one type, numbers equal by value, objects with the same members (in
// any order), arrays element by element.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		return ok && slices.EqualFunc(x, y, sameValue)
	case json.Number:
		y, ok := b.(json.Number)
		return ok && sameNumber(x, y)
	case string, bool, nil:
		return a == b
	}
	return false
}

// sameNumber tells whether two JSON numbers are the same number, exactly:
// 7, 7.00, 700e-2 and 0.7E1 are. Each is read as its significant digits and
// a power of ten, without leading or trailing zeros, and without rounding
// (a float64 would take 0.1 + tiny for 0.1).
func sameNumber(a, b json.Number) bool {
	na, da, ea := decimal(string(a))
	nb, db, eb := decimal(string(b))
	return na == nb && da == db && ea.Cmp(eb) == 0
}

// decimal reads a JSON number as sign, significant digits and exponent:
// the number is ±digits×10^exp, digits has no leading or trailing zero, and
// zero is "" (whatever its sign or exponent). The exponent is exact however
// large it is written.
func decimal(s string) (neg bool, digits string, exp *big.Int) {
	neg = strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mantissa, e, _ := strings.Cut(strings.ToLower(s), "e")
	whole, frac, _ := strings.Cut(mantissa, ".")
	digits = whole + frac
	trimmed := strings.TrimRight(digits, "0")
	exp = big.NewInt(int64(len(digits) - len(trimmed) - len(frac)))
	digits = strings.TrimLeft(trimmed, "0")
	if digits == "" {
		return false, "", new(big.Int)
	}
	if e != "" {
		if n, ok := new(big.Int).SetString(e, 10); ok {
			exp.Add(exp, n)
		}
	}
	return neg, digits, exp
}

// encodedSize is about how many bytes v takes as JSON, counted until it
// passes limit.
func encodedSize(v any, limit int) int {
	switch x := v.(type) {
	case map[string]any:
		n := 2
		for k, e := range x {
			if n > limit {
				break
			}
			n += len(k) + 4 + encodedSize(e, limit-n)
		}
		return n
	case []any:
		n := 2
		for _, e := range x {
			if n > limit {
				break
			}
			n += 1 + encodedSize(e, limit-n)
		}
		return n
	case string:
		return len(x) + 2
	case json.Number:
		return len(x)
	case bool:
		return 5
	}
	return 4 // null
}

// deepCopy is a copy of v that shares nothing with it.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := maps.Clone(x)
		for k, e := range m {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := slices.Clone(x)
		for i, e := range s {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}
