package handlers_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bulkd/bulkd/handlers"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/metrics"
	"github.com/bulkd/bulkd/pkg/store"
)

// metricsAPI is the API with metrics of its own and a store whose database
// does not answer: no request of these tests reaches it.
func metricsAPI(t *testing.T) (http.Handler, *metrics.Metrics) {
	t.Helper()
	s, err := store.Open(t.Context(), "postgres://postgres@127.0.0.1:1/bulkd?sslmode=disable&connect_timeout=2", 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	m := metrics.New(prometheus.NewRegistry())
	discard := slog.New(slog.DiscardHandler)
	return handlers.New(handlers.Config{Store: s, Bulks: bulksvc.New(s, nil, discard, nil), MaxBodyBytes: 1 << 20, Log: discard, Metrics: m}), m
}

// Requests are counted by the pattern of the route they matched, never by
// the path asked for (which carries ids, or whatever a client sends), and
// by a method HTTP defines: a client cannot add series.
func TestRequestMetricsLabelsAreBounded(t *testing.T) {
	t.Parallel()
	api, m := metricsAPI(t)

	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/api/v1/bulk/01a20812-68fd-7edc-8345-0df2970612c2"}, // no key: 401
		{http.MethodGet, "/api/v1/bulk/another-id"},
		{http.MethodGet, "/no/such/path/01a20812"},
		{"BREW", "/healthz"},
	} {
		api.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(r.method, r.path, nil))
	}
	for _, c := range []struct {
		route, method, status string
		want                  float64
	}{
		{"/api/v1/bulk/:id", "GET", "401", 2},
		{"unmatched", "GET", "404", 1},
		{"/healthz", "other", "405", 1},
	} {
		if got := testutil.ToFloat64(m.HTTPRequests.WithLabelValues(c.route, c.method, c.status)); got != c.want {
			t.Errorf("requests{route=%q,method=%q,status=%q} = %v, want %v", c.route, c.method, c.status, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.HTTPRequests); n != 3 {
		t.Errorf("%d series of requests, want 3", n)
	}
}

// A method the route does not serve is any client's choice: it is counted
// as "other", whatever the method and whether it was answered 405 or
// refused before (431), so that an unauthenticated scan of every route
// with every method adds a series per route and status, not one per method.
func TestRequestMetricsCountWrongMethodsAsOne(t *testing.T) {
	t.Parallel()
	api, m := metricsAPI(t)

	for _, method := range []string{http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodTrace, http.MethodConnect} {
		api.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, "/healthz", nil))
		big := httptest.NewRequest(method, "/healthz", nil)
		big.Header.Set("X-Big", strings.Repeat("a", handlers.MaxHeaderBytes))
		api.ServeHTTP(httptest.NewRecorder(), big)
	}
	api.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodOptions, "/healthz", nil)) // a preflight: its own method
	for _, c := range []struct {
		method, status string
		want           float64
	}{{"other", "405", 5}, {"other", "431", 5}, {"OPTIONS", "204", 1}} {
		if got := testutil.ToFloat64(m.HTTPRequests.WithLabelValues("/healthz", c.method, c.status)); got != c.want {
			t.Errorf("requests{route=\"/healthz\",method=%q,status=%q} = %v, want %v", c.method, c.status, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.HTTPRequests); n != 3 {
		t.Errorf("%d series of requests, want 3", n)
	}
}
