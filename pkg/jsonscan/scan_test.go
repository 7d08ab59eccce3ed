package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func TestScanValueNestingLimit(t *testing.T) {
	for _, depth := range []int{maxNestingDepth - 1, maxNestingDepth, maxNestingDepth + 1} {
		for _, open := range []string{"[", `{"a":`} {
			closeWith := map[string]string{"[": "]", `{"a":`: "}"}[open]
			v := []byte(strings.Repeat(open, depth) + "1" + strings.Repeat(closeWith, depth))
			end, res := scanValue(v, true)
			if got, want := res == scanOK && end == len(v), json.Valid(v); got != want {
				t.Errorf("%d levels of %s: scanValue accepts: %v, encoding/json: %v", depth, open, got, want)
			}
			if got, want := ScanFields([]byte(`{"x":`+string(v)+`}`), nil, nil), json.Valid(v) && depth < maxNestingDepth; got != want {
				t.Errorf("%d levels of %s inside an object: ScanFields accepts: %v, want %v", depth, open, got, want)
			}
		}
	}
}

// The fields FuzzScan reads from objects: ones that fold to each other
// under Unicode's rules (ſ is s, K is k), as encoding/json folds them.
var (
	fuzzFields = []string{"a", "k", "s_s", "A"}
	fuzzWire   struct {
		A      json.RawMessage `json:"a"`
		K      json.RawMessage `json:"k"`
		SS     json.RawMessage `json:"s_s"`
		UpperA json.RawMessage `json:"A"`
	}
)

// FuzzScan holds the scanner to encoding/json, which it mirrors: the same
// values are valid, strings decode and encode the same, objects hold the same
// members (read into fields as encoding/json reads them into a struct) and
// arrays the same elements, and an array read from a stream gives what
// encoding/json's Decoder gives, however the stream arrives.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{"a":[1,-2.5e+3,"x\u00e9\ud83d\ude00",true,false,null],"b":{}}`, ` [ ] `, `"\ud800\u0041\udc00\ud800"`,
		`"\"\\\/\b\f\n\r\t"`, `-0`, `01`, `1.`, `1e`, `[1,]`, `{"a" 1}`, `{"a":1,"a":2,"A":3}`, "\"\xff\xc0\x80\"",
		`"<&>` + "\u2028\u2029\x7f" + `"`, "[\"\x00\"]", `tru`, `nul`, `[1 2]`, `{"\u0061":1,"a":2}`, `{"a":1}x`, `{"A":{"b":[]},"a":"\\\""}`,
		`{"K":1,"\u212a":2,"ſ_ſ":3,"S_s":4,"a":5,"A":6,"a":null}`, `[{}] x`, `[{}] 1e400`, `1e400`, `[{},]`, `[{}}`,
		`[1,"a",[]]`, `[{}] [{}]`, `{} x`, `"rows`, "\xef\xbb\xbf[{}]", `[[[[]]],{"a":[{}]}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v := TrimSpace(data)
		end, res := scanValue(v, true)
		valid := len(v) > 0 && res == scanOK && end == len(v)
		if valid != json.Valid(data) {
			t.Fatalf("scanValue(%q) = %d, %d; encoding/json says valid: %v", v, end, res, json.Valid(data))
		}

		// Any string encodes as encoding/json encodes it.
		want, _ := json.Marshal(string(data))
		if got := AppendString(nil, data); !bytes.Equal(got, want) {
			t.Fatalf("AppendString(%q) = %s, want %s", data, got, want)
		}
		if got := AppendString(nil, string(data)); !bytes.Equal(got, want) {
			t.Fatalf("AppendString(%q), a string, = %s, want %s", data, got, want)
		}

		checkArrayReader(t, data)
		checkFields(t, v, valid)
		if !valid {
			return
		}

		// Cut short, a valid value is never invalid: only truncated.
		for _, n := range []int{0, len(v) / 3, len(v) / 2, len(v) - 1} {
			if _, res := scanValue(v[:n], false); res != scanTruncated {
				t.Fatalf("scanValue(%q), a prefix of a valid value: %d", v[:n], res)
			}
		}
		if got := skipValue(v, 0); got != len(v) {
			t.Fatalf("skipValue(%q) = %d, want %d", v, got, len(v))
		}
		if got, want := Depth(v), decoderDepth(t, v); got != want {
			t.Fatalf("Depth(%q) = %d, encoding/json's tokens nest %d deep", v, got, want)
		}
		if k := Kind(data); k != v[0] && !(k == '0' && (v[0] == '-' || '0' <= v[0] && v[0] <= '9')) {
			t.Fatalf("Kind(%q) = %q", data, k)
		}
		switch v[0] {
		case '"':
			var want string
			if err := json.Unmarshal(v, &want); err != nil {
				t.Fatal(err)
			}
			if got := Unquote(v); string(got) != want {
				t.Fatalf("Unquote(%q) = %q, want %q", v, got, want)
			}
		case '[':
			var want []json.RawMessage
			if err := json.Unmarshal(v, &want); err != nil {
				t.Fatal(err)
			}
			got := []json.RawMessage{}
			for e := range Elements(v) {
				got = append(got, e)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("Elements(%q) (-want +got):\n%s", v, diff)
			}
		case '{':
			// Keys are matched exactly in a map, and of duplicates the last
			// wins.
			var want map[string]json.RawMessage
			if err := json.Unmarshal(v, &want); err != nil {
				t.Fatal(err)
			}
			got := map[string]json.RawMessage{}
			for k, e := range Members(v) {
				got[string(Unquote(k))] = e
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("Members(%q) (-want +got):\n%s", v, diff)
			}
		}
	})
}

// checkFields holds ScanFields and ReadFields to encoding/json: the fields
// of an object are what it reads into a struct, or, for a strict reader, the
// last member of exactly each field's name, every other key going to
// Unknown in order and every key of a field after its first to Duplicate,
// in order; and ScanFields accepts exactly the valid objects.
func checkFields(t *testing.T, v []byte, valid bool) {
	t.Helper()
	isObject := valid && v[0] == '{'
	for _, strict := range []bool{false, true} {
		var scanned, read reported
		var strictScanned, strictRead *Strict
		if strict {
			strictScanned, strictRead = scanned.strict(), read.strict()
		}
		scannedValues, scannedFields := newFields()
		if got := ScanFields(v, scannedFields, strictScanned); got != isObject {
			t.Fatalf("ScanFields(%q) = %v, want %v", v, got, isObject)
		}
		if !isObject {
			continue
		}
		readValues, readFields := newFields()
		ReadFields(v, readFields, strictRead)
		readByName, scannedByName := byName(readValues), byName(scannedValues)
		if diff := cmp.Diff(readByName, scannedByName); diff != "" {
			t.Fatalf("strict %v: ScanFields(%q) reads differently from ReadFields (-read +scanned):\n%s", strict, v, diff)
		}
		if diff := cmp.Diff(read, scanned, cmp.AllowUnexported(reported{})); diff != "" {
			t.Fatalf("strict %v: ScanFields(%q) reports other keys than ReadFields (-read +scanned):\n%s", strict, v, diff)
		}

		var want map[string]json.RawMessage
		var wantReported reported
		if !strict {
			w := fuzzWire
			if err := json.Unmarshal(v, &w); err != nil {
				t.Fatal(err)
			}
			want = map[string]json.RawMessage{"a": w.A, "k": w.K, "s_s": w.SS, "A": w.UpperA}
		} else {
			want = map[string]json.RawMessage{"a": nil, "k": nil, "s_s": nil, "A": nil}
			for _, m := range decoderMembers(t, v) {
				if before, known := want[m.key]; !known {
					wantReported.unknown = append(wantReported.unknown, m.key)
				} else {
					if before != nil {
						wantReported.duplicate = append(wantReported.duplicate, m.key)
					}
					want[m.key] = m.value
				}
			}
		}
		if diff := cmp.Diff(want, readByName); diff != "" {
			t.Fatalf("strict %v: ReadFields(%q) (-encoding/json +ReadFields):\n%s", strict, v, diff)
		}
		if diff := cmp.Diff(wantReported, read, cmp.AllowUnexported(reported{})); diff != "" {
			t.Fatalf("ReadFields(%q), strict: keys reported (-encoding/json +ReadFields):\n%s", v, diff)
		}
	}
}

// reported are the keys a strict reader reported, in order.
type reported struct{ unknown, duplicate []string }

// strict is a Strict that records what it is told in r.
func (r *reported) strict() *Strict {
	return &Strict{
		Unknown:   func(k []byte) { r.unknown = append(r.unknown, string(k)) },
		Duplicate: func(k []byte) { r.duplicate = append(r.duplicate, string(k)) },
	}
}

// newFields returns fields reading fuzzFields into the values it returns.
func newFields() ([]json.RawMessage, []Field) {
	values := make([]json.RawMessage, len(fuzzFields))
	fields := make([]Field, len(fuzzFields))
	for i, name := range fuzzFields {
		fields[i] = Field{Name: name, Value: &values[i]}
	}
	return values, fields
}

// byName maps each of fuzzFields to what was read into it.
func byName(values []json.RawMessage) map[string]json.RawMessage {
	m := make(map[string]json.RawMessage, len(values))
	for i, name := range fuzzFields {
		m[name] = values[i]
	}
	return m
}

type member struct {
	key   string
	value json.RawMessage
}

// decoderMembers reads the members of the valid object v in order with
// encoding/json's Decoder.
func decoderMembers(t *testing.T, v []byte) []member {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(v))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			t.Fatal(err)
		}
		out = append(out, member{tok.(string), value})
	}
	return out
}

// decoderDepth is how deeply encoding/json's tokens of v nest.
func decoderDepth(t *testing.T, v []byte) int {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(v))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return deepest
		}
		if err != nil {
			var typ *json.UnmarshalTypeError // a number beyond float64, such as 1e400
			if errors.As(err, &typ) {
				continue
			}
			t.Fatal(err)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// checkArrayReader holds ArrayReader to encoding/json's Decoder reading the
// same stream token by token: the same answer and elements, whether the
// stream arrives whole, a byte at a time, with its end, or fails part way.
func checkArrayReader(t *testing.T, data []byte) {
	t.Helper()
	got, err := readArray(bytes.NewReader(data))
	want, wantErr := decodeArray(bytes.NewReader(data))
	if err != wantErr {
		t.Fatalf("ArrayReader(%q): err = %v, encoding/json's Decoder gives %v", data, err, wantErr)
	}
	if diff := cmp.Diff(want, got, sameBytes); diff != "" {
		t.Fatalf("ArrayReader(%q): elements differ from encoding/json's Decoder's (-want +got):\n%s", data, diff)
	}
	for name, r := range map[string]io.Reader{
		"one byte at a time": iotest.OneByteReader(bytes.NewReader(data)),
		"EOF with the data":  iotest.DataErrReader(bytes.NewReader(data)),
	} {
		again, againErr := readArray(r)
		if againErr != err {
			t.Fatalf("%s: err = %v, want %v", name, againErr, err)
		}
		if diff := cmp.Diff(got, again, sameBytes); diff != "" {
			t.Fatalf("%s: elements differ (-whole +%[1]s):\n%s", name, diff)
		}
	}

	// A reader that fails part way either has its error returned, or the
	// bytes it delivered already decided the outcome, as encoding/json's.
	boom := errors.New("connection reset")
	cut := len(data) / 2
	_, err = readArray(io.MultiReader(bytes.NewReader(data[:cut]), iotest.ErrReader(boom)))
	_, wantErr = decodeArray(io.MultiReader(bytes.NewReader(data[:cut]), iotest.ErrReader(boom)))
	if err != wantErr {
		t.Fatalf("failing reader after %q: err = %v, encoding/json's Decoder gives %v", data[:cut], err, wantErr)
	}
}

// sameBytes compares JSON as bytes, telling an absent value (nil) from an
// empty one.
var sameBytes = cmp.Comparer(func(a, b json.RawMessage) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
})

// readArray reads the array in r with an ArrayReader.
func readArray(r io.Reader) ([]json.RawMessage, error) {
	in := NewArrayReader(r)
	if err := in.Begin(); err != nil {
		return nil, err
	}
	var elems []json.RawMessage
	for in.More() {
		e, err := in.Next()
		if err != nil {
			return nil, err
		}
		elems = append(elems, e)
	}
	if err := in.End(); err != nil {
		return nil, err
	}
	return elems, nil
}

// decodeArray reads the array in r with encoding/json's Decoder, token by
// token and each element as one value, naming its errors as ArrayReader's.
func decodeArray(r io.Reader) ([]json.RawMessage, error) {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) { // a number beyond float64, such as 1e400: valid JSON all the same
			return nil, ErrNotArray
		}
		return nil, decoderError(err)
	}
	if tok != json.Delim('[') {
		return nil, ErrNotArray
	}
	var elems []json.RawMessage
	for dec.More() {
		var e json.RawMessage
		if err := dec.Decode(&e); err != nil {
			return nil, decoderError(err)
		}
		elems = append(elems, e)
	}
	if _, err := dec.Token(); err != nil { // the closing bracket
		return nil, decoderError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return nil, ErrSyntax // something after the array
		}
		return nil, decoderError(err)
	}
	return elems, nil
}

// decoderError maps the Decoder's syntax errors, and an end of the stream
// inside the JSON, to ErrSyntax, leaving the reader's errors as they are.
func decoderError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	if errors.As(err, &syn) || errors.As(err, &typ) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrSyntax
	}
	return err
}

// A strict reader reports each unknown key every time it appears and each
// field's key from its second appearance on, however the key is escaped;
// the field keeps the last value.
func TestStrictReportsUnknownAndRepeatedKeys(t *testing.T) {
	var got reported
	var name, city json.RawMessage
	obj := []byte(`{"name":1,"x":2,"n\u0061me":3,"x":4,"city":5,"name":6,"Name":7}`)
	if !ScanFields(obj, []Field{{Name: "name", Value: &name}, {Name: "city", Value: &city}}, got.strict()) {
		t.Fatal("ScanFields refuses a valid object")
	}
	want := reported{unknown: []string{"x", "x", "Name"}, duplicate: []string{"name", "name"}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(reported{})); diff != "" {
		t.Errorf("reported (-want +got):\n%s", diff)
	}
	if string(name) != "6" || string(city) != "5" {
		t.Errorf("name %s, city %s; want the last values 6 and 5", name, city)
	}
}
