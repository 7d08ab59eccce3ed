package jsonscan

import (
	"bytes"
	"encoding/json"
)

// Marshal encodes v as json.Marshal does, except that it leaves <, > and &
// as they are instead of escaping them for HTML: what a client sent is
// echoed as it was sent (not six bytes for each such character: an echo of
// a body full of them was 7 times its size), and a link's query reads as
// written, not as \u0026.
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
