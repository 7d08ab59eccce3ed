package records

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// patchJSON applies a JSON Patch to a document, both as text.
func patchJSON(doc, patch string) (string, error) {
	ops, err := decodeJSONPatch([]byte(patch))
	if err != nil {
		return "", err
	}
	out, err := applyJSONPatch([]byte(doc), ops)
	return strings.TrimSpace(string(out)), err
}

// The examples of RFC 6902's appendix A, each operation as the RFC says it
// applies, and each error it names.
func TestJSONPatchRFC6902Examples(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, doc, patch, want string // want "" for an error
	}{
		{"A.1 add an object member", `{"foo":"bar"}`, `[{"op":"add","path":"/baz","value":"qux"}]`, `{"baz":"qux","foo":"bar"}`},
		{"A.2 add an array element", `{"foo":["bar","baz"]}`, `[{"op":"add","path":"/foo/1","value":"qux"}]`, `{"foo":["bar","qux","baz"]}`},
		{"A.3 remove an object member", `{"baz":"qux","foo":"bar"}`, `[{"op":"remove","path":"/baz"}]`, `{"foo":"bar"}`},
		{"A.4 remove an array element", `{"foo":["bar","qux","baz"]}`, `[{"op":"remove","path":"/foo/1"}]`, `{"foo":["bar","baz"]}`},
		{"A.5 replace a value", `{"baz":"qux","foo":"bar"}`, `[{"op":"replace","path":"/baz","value":"boo"}]`, `{"baz":"boo","foo":"bar"}`},
		{"A.6 move a value", `{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}`, `[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]`,
			`{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}`},
		{"A.7 move an array element", `{"foo":["all","grass","cows","eat"]}`, `[{"op":"move","from":"/foo/1","path":"/foo/3"}]`, `{"foo":["all","cows","eat","grass"]}`},
		{"A.8 test a value: success", `{"baz":"qux","foo":["a",2,"c"]}`, `[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]`,
			`{"baz":"qux","foo":["a",2,"c"]}`},
		{"A.9 test a value: error", `{"baz":"qux"}`, `[{"op":"test","path":"/baz","value":"bar"}]`, ""},
		{"A.10 add a nested member object", `{"foo":"bar"}`, `[{"op":"add","path":"/child","value":{"grandchild":{}}}]`, `{"child":{"grandchild":{}},"foo":"bar"}`},
		{"A.11 ignore unrecognized elements", `{"foo":"bar"}`, `[{"op":"add","path":"/baz","value":"qux","xyz":123}]`, `{"baz":"qux","foo":"bar"}`},
		{"A.12 add to a nonexistent target", `{"foo":"bar"}`, `[{"op":"add","path":"/baz/bat","value":"qux"}]`, ""},
		{"A.14 ~ escape ordering", `{"/":9,"~1":10}`, `[{"op":"test","path":"/~01","value":10}]`, `{"/":9,"~1":10}`},
		{"A.15 comparing strings and numbers", `{"/":9,"~1":10}`, `[{"op":"test","path":"/~01","value":"10"}]`, ""},
		{"A.16 add an array value", `{"foo":["bar"]}`, `[{"op":"add","path":"/foo/-","value":["abc","def"]}]`, `{"foo":["bar",["abc","def"]]}`},
		{"add replaces a member", `{"a":1}`, `[{"op":"add","path":"/a","value":2}]`, `{"a":2}`},
		{"add the whole document", `{"a":1}`, `[{"op":"add","path":"","value":{"b":2}}]`, `{"b":2}`},
		{"add at the length appends", `{"a":[1]}`, `[{"op":"add","path":"/a/1","value":2}]`, `{"a":[1,2]}`},
		{"add past the length", `{"a":[1]}`, `[{"op":"add","path":"/a/2","value":2}]`, ""},
		{"remove a missing member", `{"a":1}`, `[{"op":"remove","path":"/b"}]`, ""},
		{"replace a missing member", `{"a":1}`, `[{"op":"replace","path":"/b","value":1}]`, ""},
		{"move into itself", `{"a":{"b":1}}`, `[{"op":"move","from":"/a","path":"/a/c"}]`, ""},
		{"move onto itself", `{"a":{"b":1}}`, `[{"op":"move","from":"/a","path":"/a"}]`, `{"a":{"b":1}}`},
		{"copy then change the copy", `{"a":{"b":1}}`, `[{"op":"copy","from":"/a","path":"/c"},{"op":"replace","path":"/c/b","value":2}]`, `{"a":{"b":1},"c":{"b":2}}`},
		{"the member named by /", `{"a":1}`, `[{"op":"add","path":"/","value":2}]`, `{"":2,"a":1}`},
		{"a member named 01 of an object", `{"m":{}}`, `[{"op":"add","path":"/m/01","value":1},{"op":"test","path":"/m/01","value":1}]`, `{"m":{"01":1}}`},
		{"a scalar has no members", `{"a":"x"}`, `[{"op":"add","path":"/a/b","value":1}]`, ""},
		{"strings keep <, > and &", `{"a":1}`, `[{"op":"add","path":"/b","value":"<&>"}]`, `{"a":1,"b":"<&>"}`},
	} {
		got, err := patchJSON(tc.doc, tc.patch)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%s: %s, want an error", tc.name, got)
		case tc.want != "" && (err != nil || got != tc.want):
			t.Errorf("%s: %s %v, want %s", tc.name, got, err, tc.want)
		}
	}
}

// RFC 6901 writes an array index as 0 or digits without a leading zero, and
// "-" for the end, where add appends: any other token is refused on an
// array, naming the pointer, and is a member name on an object.
func TestJSONPatchArrayIndices(t *testing.T) {
	t.Parallel()
	const doc = `{"a":["x","y"]}`
	for _, path := range []string{"/a/-1", "/a/01", "/a/00", "/a/+1", "/a/1.0", "/a/ 1", "/a/1e0", "/a/", "/a/99999999999999999999"} {
		for _, op := range []string{
			`{"op":"add","path":"` + path + `","value":"z"}`, `{"op":"replace","path":"` + path + `","value":"z"}`,
			`{"op":"remove","path":"` + path + `"}`, `{"op":"test","path":"` + path + `","value":"x"}`,
			`{"op":"copy","from":"` + path + `","path":"/b"}`, `{"op":"move","from":"` + path + `","path":"/b"}`,
		} {
			_, err := patchJSON(doc, "["+op+"]")
			var pe *patchError
			if !errors.As(err, &pe) || !strings.Contains(pe.msg, path) {
				t.Errorf("%s: %v, want an error naming %s", op, err, path)
			}
		}
	}
	for _, op := range []string{`{"op":"remove","path":"/a/-"}`, `{"op":"replace","path":"/a/2","value":"z"}`, `{"op":"test","path":"/a/-","value":"x"}`} {
		if _, err := patchJSON(doc, "["+op+"]"); err == nil || !strings.Contains(err.Error(), "past the end") {
			t.Errorf("%s: %v, want past the end", op, err)
		}
	}
	if got, err := patchJSON(doc, `[{"op":"remove","path":"/a/0"},{"op":"add","path":"/a/-","value":"z"},{"op":"test","path":"/a/1","value":"z"}]`); err != nil || got != `{"a":["y","z"]}` {
		t.Errorf("indices RFC 6901 writes: %s %v", got, err)
	}
}

// A test compares numbers by value, exactly: every spelling of one number
// is equal, and no rounding makes two numbers equal.
func TestJSONPatchTestComparesNumbersByValue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"7.00", "7", true}, {"7.00", "7.0", true}, {"7.00", "700e-2", true}, {"7.00", "0.7E1", true}, {"7.00", "0.07e+2", true},
		{"0", "-0", true}, {"0", "0e99", true}, {"0.0", "-0.000e-5", true}, {"100", "1e2", true}, {"1e400", "10e399", true},
		{"1E+99999999999999999999", "10e99999999999999999998", true}, {"-12.50", "-1250e-2", true},
		{"7.00", "7.01", false}, {"7", "-7", false}, {"0.1", "0.10000000000000001", false}, {"1e400", "1e401", false},
		{"1E+99999999999999999999", "1E+99999999999999999998", false}, {"10", "1", false}, {"123", "1230e-2", false},
	} {
		doc := fmt.Sprintf(`{"n":%s,"o":{"k":[%s]}}`, tc.a, tc.a)
		for _, patch := range []string{
			fmt.Sprintf(`[{"op":"test","path":"/n","value":%s}]`, tc.b),
			fmt.Sprintf(`[{"op":"test","path":"/o","value":{"k":[%s]}}]`, tc.b),
		} {
			if _, err := patchJSON(doc, patch); (err == nil) != tc.same {
				t.Errorf("%s against %s (%s): %v, want equal %v", tc.b, tc.a, patch, err, tc.same)
			}
		}
	}
	// Of different types nothing is equal: a number and its text, null and
	// false, objects of other members.
	for _, tc := range []struct{ doc, value string }{
		{`{"n":7}`, `"7"`}, {`{"n":null}`, `false`}, {`{"n":{"a":1}}`, `{"a":1,"b":2}`}, {`{"n":{"a":1}}`, `{"b":1}`},
		{`{"n":[1,2]}`, `[2,1]`}, {`{"n":[1]}`, `[1,1]`}, {`{"n":true}`, `1`},
	} {
		if _, err := patchJSON(tc.doc, `[{"op":"test","path":"/n","value":`+tc.value+`}]`); err == nil {
			t.Errorf("%s tests %s as equal", tc.value, tc.doc)
		}
	}
}

// A patch that is not one is refused before any of it applies, naming the
// operation and what it lacks.
func TestJSONPatchShapes(t *testing.T) {
	t.Parallel()
	for patch, want := range map[string]string{
		`{}`:                                  "must be a JSON Patch",
		`[1]`:                                 "#/0 must be an object",
		`[{"path":"/a"}]`:                     "#/0 must have an op",
		`[{"op":"merge","path":"/a"}]`:        "#/0 must have an op",
		`[{"op":"remove"}]`:                   "#/0 (remove) must have a path",
		`[{"op":"remove","path":1}]`:          "#/0 (remove) must have a path",
		`[{"op":"remove","path":"a"}]`:        `has path "a", which is no JSON Pointer`,
		`[{"op":"remove","path":"/a~2"}]`:     `has path "/a~2", which is no JSON Pointer`,
		`[{"op":"remove","path":"/a~"}]`:      `has path "/a~", which is no JSON Pointer`,
		`[{"op":"copy","path":"/a"}]`:         "#/0 (copy) must have a from",
		`[{"op":"add","path":"/a"}]`:          "#/0 (add) must have a value",
		`[{"op":"test","path":"/a"},{"x":1}]`: "#/0 (test) must have a value",
	} {
		var v *ValidationError
		if _, err := decodeJSONPatch([]byte(patch)); !errors.As(err, &v) || !strings.Contains(v.Messages["patch"][0], want) {
			t.Errorf("%s: %v, want %q", patch, err, want)
		}
	}
	// null is a value.
	if got, err := patchJSON(`{"a":1}`, `[{"op":"replace","path":"/a","value":null}]`); err != nil || got != `{"a":null}` {
		t.Errorf("a null value: %s %v", got, err)
	}
}

// What a patch may cost is bounded: copies add at most MaxPatchCopyBytes,
// and inserts and removals shift at most MaxPatchArrayShifts elements.
func TestJSONPatchCostIsBounded(t *testing.T) {
	t.Parallel()
	var ops []string
	for i := range 20 {
		ops = append(ops, fmt.Sprintf(`{"op":"copy","from":"/m","path":"/m/k%d"}`, i))
	}
	if _, err := patchJSON(`{"m":{"a":"0123456789"}}`, "["+strings.Join(ops, ",")+"]"); err == nil || !strings.Contains(err.Error(), "64 KiB") {
		t.Errorf("copies doubling a member 20 times: %v", err)
	}
	big := "[" + strings.TrimSuffix(strings.Repeat("0,", 1<<16), ",") + "]"
	ops = []string{`{"op":"add","path":"/a","value":` + big + `}`}
	for range 40 {
		ops = append(ops, `{"op":"remove","path":"/a/0"}`)
	}
	if _, err := patchJSON(`{}`, "["+strings.Join(ops, ",")+"]"); err == nil || !strings.Contains(err.Error(), "array elements") {
		t.Errorf("40 removals at the start of 65 536 elements: %v", err)
	}
	ops = ops[:11] // 10 × 65 535 shifts: within the bound
	if _, err := patchJSON(`{}`, "["+strings.Join(ops, ",")+"]"); err != nil {
		t.Errorf("10 removals at the start of 65 536 elements: %v", err)
	}
}

// The patched document keeps numbers as written: a patch that tests a
// balance leaves its text for the import's parser to read.
func TestJSONPatchKeepsNumbersAsWritten(t *testing.T) {
	t.Parallel()
	got, err := patchJSON(`{"balance":7.00,"n":1}`, `[{"op":"test","path":"/balance","value":7},{"op":"add","path":"/x","value":1.50}]`)
	var v map[string]json.RawMessage
	if err != nil || json.Unmarshal([]byte(got), &v) != nil || string(v["balance"]) != "7.00" || string(v["x"]) != "1.50" {
		t.Errorf("%s %v", got, err)
	}
}
