package apidoc

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// The JSON form says what the YAML says, with the keys in the order written.
func TestJSONIsTheYAMLDocument(t *testing.T) {
	b, err := JSON()
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON, fromYAML any
	if err := json.Unmarshal(b, &fromJSON); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if err := yaml.Unmarshal(YAML(), &fromYAML); err != nil {
		t.Fatal(err)
	}
	y, _ := json.Marshal(fromYAML)
	var want any
	_ = json.Unmarshal(y, &want)
	if diff := cmp.Diff(want, fromJSON); diff != "" {
		t.Errorf("JSON differs from YAML (-yaml +json):\n%s", diff)
	}
	if !strings.HasPrefix(string(b), `{"openapi":"3.1.0","info":`) {
		t.Errorf("keys not in the order written: %.60s", b)
	}
	if first, second := strings.Index(string(b), `"/api/v1/bulk":`), strings.Index(string(b), `"/healthz":`); first < 0 || first > second {
		t.Error("paths not in the order written")
	}
}

func TestYAMLToJSON(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"a: 1\nb: [x, 2.5, true, null]\n", `{"a":1,"b":["x",2.5,true,null]}`},
		{"\"200\": {d: <b>&</b>}\n", `{"200":{"d":"<b>&</b>"}}`},
		{"a: &x {k: v}\nb: *x\n", `{"a":{"k":"v"},"b":{"k":"v"}}`},
	}
	for _, tt := range tests {
		got, err := yamlToJSON([]byte(tt.in))
		if err != nil || strings.TrimSpace(string(got)) != tt.want {
			t.Errorf("%q: %s %v, want %s", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"a: .inf\n", "? [a, b]\n: c\n", "a: !!binary aGk=\n"} {
		if got, err := yamlToJSON([]byte(bad)); err == nil {
			t.Errorf("%q converted to %s; want an error", bad, got)
		}
	}
}
