package bulk

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

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
		}
	}
}

// FuzzScan holds the scanner to encoding/json: the same values are valid,
// strings decode and encode the same, and objects and arrays hold the same
// members and elements.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{"a":[1,-2.5e+3,"x\u00e9\ud83d\ude00",true,false,null],"b":{}}`, ` [ ] `, `"\ud800\u0041\udc00\ud800"`,
		`"\"\\\/\b\f\n\r\t"`, `-0`, `01`, `1.`, `1e`, `[1,]`, `{"a" 1}`, `{"a":1,"a":2,"A":3}`, "\"\xff\xc0\x80\"",
		`"<&>` + "\u2028\u2029\x7f" + `"`, "[\"\x00\"]", `tru`, `nul`, `[1 2]`, `{"\u0061":1,"a":2}`, `{"a":1}x`, `{"A":{"b":[]},"a":"\\\""}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v := trimSpace(data)
		end, res := scanValue(v, true)
		valid := len(v) > 0 && res == scanOK && end == len(v)
		if valid != json.Valid(data) {
			t.Fatalf("scanValue(%q) = %d, %d; encoding/json says valid: %v", v, end, res, json.Valid(data))
		}

		// Any string encodes as encoding/json encodes it.
		want, _ := json.Marshal(string(data))
		if got := appendString(nil, data); !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %s, want %s", data, got, want)
		}

		// scanFields checks and reads an object in one pass, as scanValue and
		// readFields do in two.
		var scanned, read json.RawMessage
		if isObject := scanFields(v, []wireField{{"a", &scanned}}, nil); isObject != (valid && v[0] == '{') {
			t.Fatalf("scanFields(%q) = %v, want %v", v, isObject, valid && v[0] == '{')
		} else if isObject {
			readFields(v, []wireField{{"a", &read}}, nil)
			if !bytes.Equal(scanned, read) {
				t.Fatalf("scanFields(%q) reads a = %q, readFields %q", v, scanned, read)
			}
		}

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
		switch v[0] {
		case '"':
			var want string
			if err := json.Unmarshal(v, &want); err != nil {
				t.Fatal(err)
			}
			if got := unquote(v); string(got) != want {
				t.Fatalf("unquote(%q) = %q, want %q", v, got, want)
			}
		case '[':
			var want []json.RawMessage
			if err := json.Unmarshal(v, &want); err != nil {
				t.Fatal(err)
			}
			got := []json.RawMessage{}
			for e := range elements(v) {
				got = append(got, e)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("elements(%q) (-want +got):\n%s", v, diff)
			}
		case '{':
			var want map[string]json.RawMessage
			if err := json.Unmarshal(v, &want); err != nil {
				t.Fatal(err)
			}
			got := map[string]json.RawMessage{}
			for k, e := range members(v) {
				got[string(unquote(k))] = e
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("members(%q) (-want +got):\n%s", v, diff)
			}
		}
	})
}
