package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/bulkd/bulkd/handlers"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines are the JSON lines logged, decoded.
func (l *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if n := strings.Count(line, `"request_id"`); n > 1 {
			t.Errorf("request_id %d times in %s", n, line)
		}
		out = append(out, v)
	}
	return out
}

// A WARN a handler logs while serving a request names the request, as its
// request line does, without the handler naming it itself.
func TestHandlerWarningCarriesTheRequestID(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	down := func(context.Context) error { return errors.New("connection refused") }
	api := handlers.New(handlers.Config{Checks: map[string]handlers.Pinger{"postgres": down}, Log: log})

	req := httptest.NewRequest(http.MethodGet, "/readyz", nil)
	req.Header.Set("X-Request-Id", "probe-7")
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with postgres down: %d %s", rec.Code, rec.Body)
	}
	var warned, requested bool
	for _, l := range logs.lines(t) {
		switch l["msg"] {
		case "not ready":
			warned = l["level"] == "WARN" && l["request_id"] == "probe-7"
		case "request":
			requested = l["request_id"] == "probe-7"
		}
	}
	if !warned || !requested {
		t.Errorf("the WARN and the request line do not both name the request (%v, %v):\n%s", warned, requested, logs.b.String())
	}
}

// Outside of a request nothing is added; the wrapper wraps once.
func TestLogRequestIDsOutsideOfARequest(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	h := handlers.LogRequestIDs(slog.NewJSONHandler(&logs, nil))
	if handlers.LogRequestIDs(h) != h {
		t.Errorf("LogRequestIDs wraps a wrapped handler again")
	}
	slog.New(h).With("k", "v").WarnContext(context.Background(), "outside")
	if l := logs.lines(t)[0]; l["request_id"] != nil || l["k"] != "v" {
		t.Errorf("outside of a request: %v", l)
	}
}
