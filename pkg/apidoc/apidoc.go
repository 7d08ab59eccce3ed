// Package apidoc is bulkd's API description: one OpenAPI 3.1 document,
// openapi.yaml, embedded in the binary. It is served as written and, for
// generators that read JSON, converted to JSON once, so that the two can
// never differ. The end-to-end tests validate every exchange against it
// (package apidoctest), so it describes what the server answers, not what it
// was meant to.
package apidoc

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"

	"go.yaml.in/yaml/v3"
)

//go:embed openapi.yaml
var document []byte

// YAML returns the document as written. The caller must not modify it.
func YAML() []byte { return document }

// JSON returns the document converted to JSON, with every mapping's keys in
// the order written (so a reader sees the paths as the YAML lists them). It
// is converted on the first call and kept.
func JSON() ([]byte, error) { return jsonOnce() }

var jsonOnce = sync.OnceValues(func() ([]byte, error) { return yamlToJSON(document) })

// yamlToJSON converts a YAML document to JSON. Only what JSON can say is
// accepted: string keys and the core schema's scalars.
func yamlToJSON(src []byte) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, fmt.Errorf("apidoc: parse YAML: %w", err)
	}
	var b bytes.Buffer
	if err := writeJSON(&b, &root); err != nil {
		return nil, fmt.Errorf("apidoc: convert to JSON: %w", err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

func writeJSON(b *bytes.Buffer, n *yaml.Node) error {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return fmt.Errorf("line %d: want one document", n.Line)
		}
		return writeJSON(b, n.Content[0])
	case yaml.AliasNode:
		return writeJSON(b, n.Alias)
	case yaml.MappingNode:
		b.WriteByte('{')
		for i := 0; i < len(n.Content); i += 2 {
			key, value := n.Content[i], n.Content[i+1]
			if key.Kind != yaml.ScalarNode || key.Tag == "!!merge" {
				return fmt.Errorf("line %d: a key must be a plain scalar", key.Line)
			}
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, key.Value)
			b.WriteByte(':')
			if err := writeJSON(b, value); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, item := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeJSON(b, item); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			writeString(b, n.Value)
		case "!!null":
			b.WriteString("null")
		case "!!bool", "!!int", "!!float":
			var v any
			if err := n.Decode(&v); err != nil {
				return fmt.Errorf("line %d: %w", n.Line, err)
			}
			out, err := json.Marshal(v) // refuses .inf and .nan, which JSON cannot say
			if err != nil {
				return fmt.Errorf("line %d: %w", n.Line, err)
			}
			b.Write(out)
		default:
			return fmt.Errorf("line %d: the tag %s has no JSON form", n.Line, n.ShortTag())
		}
	default:
		return fmt.Errorf("line %d: unexpected YAML node", n.Line)
	}
	return nil
}

// writeString writes s as a JSON string, without escaping &, < and > (a
// description reads as written).
func writeString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes
	b.Truncate(b.Len() - 1) // Encode's newline
}
