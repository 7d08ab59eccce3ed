package handlers_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bulkd/bulkd/handlers"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/store"
)

// With Postgres unreachable, the API answers 503 with a message the client
// can act on, not a 500.
func TestDatabaseDownIs503(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1.
	s, err := store.Open(t.Context(), "postgres://postgres@127.0.0.1:1/bulkd?sslmode=disable&connect_timeout=2", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	api := handlers.New(handlers.Config{Store: s, Bulks: bulksvc.New(s, nil, slog.New(slog.DiscardHandler), nil), MaxBodyBytes: 1 << 20, Log: slog.New(slog.DiscardHandler)})

	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodPost, "/api/v1/bulk", strings.NewReader(`[{}]`)),
		httptest.NewRequest(http.MethodGet, "/api/v1/bulk/01a20812-68fd-7edc-8345-0df2970612c2", nil),
	} {
		req.Header.Set("Authorization", "Bearer bk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		var body struct {
			Message string              `json:"message"`
			Errors  map[string][]string `json:"errors"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s %s: not JSON: %s", req.Method, req.URL, rec.Body)
		}
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(body.Message, "database is unavailable") ||
			rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s %s: %d %s, Retry-After %q", req.Method, req.URL, rec.Code, rec.Body, rec.Header().Get("Retry-After"))
		}
	}
}
