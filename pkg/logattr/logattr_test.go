package logattr_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/bulkd/bulkd/pkg/logattr"
)

// A line logged with a context carries the context's attributes, each key
// once: a later With replaces an earlier value, and a line that names a key
// itself keeps its own value.
func TestLinesCarryTheirContextsAttributes(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := logattr.Handler(slog.NewJSONHandler(&buf, nil))
	if logattr.Handler(h) != h {
		t.Error("Handler wraps a wrapped handler again")
	}
	log := slog.New(h)
	ctx := logattr.With(context.Background(), slog.String("bulk_id", "b1"), slog.Int("attempt", 1))
	ctx = logattr.With(ctx, slog.Int("attempt", 2), slog.String("organization_id", "o1"))
	log.InfoContext(ctx, "one")
	log.InfoContext(ctx, "two", "bulk_id", "b2")
	log.InfoContext(context.Background(), "three")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	for _, c := range []struct {
		line string
		want map[string]any
	}{
		{lines[0], map[string]any{"bulk_id": "b1", "attempt": 2.0, "organization_id": "o1"}},
		{lines[1], map[string]any{"bulk_id": "b2", "attempt": 2.0, "organization_id": "o1"}},
		{lines[2], map[string]any{"bulk_id": nil, "attempt": nil, "organization_id": nil}},
	} {
		var got map[string]any
		if err := json.Unmarshal([]byte(c.line), &got); err != nil {
			t.Fatal(err)
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%s: %s = %v, want %v", c.line, k, got[k], v)
			}
		}
		if strings.Count(c.line, `"bulk_id"`) > 1 || strings.Count(c.line, `"attempt"`) > 1 {
			t.Errorf("a key twice: %s", c.line)
		}
	}
}
