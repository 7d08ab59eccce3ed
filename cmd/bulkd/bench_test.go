package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/bulkd/bulkd/pkg/bulkgen"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// BenchmarkBulk1000Rows measures one 1000-row bulk (3 debt accounts per
// customer: a parent and two children) from POST to status completed, through
// HTTP, Postgres, Redis and the worker of a real `bulkd serve`.
func BenchmarkBulk1000Rows(b *testing.B) {
	s := startService(b, "MAX_BODY_BYTES=16777216", "RATE_LIMIT=0") // it polls every 5 ms
	_, key := s.newOrg(b, "Bench", "bench@example.com")
	var accept time.Duration
	n := 0
	for b.Loop() {
		b.StopTimer()
		body := bulkgen.Body(bulkgen.Options{Seed: uint64(n), Rows: 1000, Accounts: 3, Prefix: fmt.Sprintf("b%d-", n)})
		n++
		b.StartTimer()
		start := time.Now()
		id := s.submit(b, key, body)
		accept += time.Since(start)
		s.waitCompletedQuick(b, key, id)
	}
	b.ReportMetric(float64(accept.Milliseconds())/float64(n), "accept-ms/op")
	b.ReportMetric(float64(n*1000)/b.Elapsed().Seconds(), "rows/s")
}

// waitCompletedQuick polls every 5 ms, so the wait adds little to the measure.
func (s *service) waitCompletedQuick(b *testing.B, key, id string) {
	b.Helper()
	err := testenv.Poll(time.Minute, 5*time.Millisecond, func() error {
		r := s.request(b, http.MethodGet, "/api/v1/bulk/"+id, nil, bearer(key))
		data, ok := r.json(b)["data"].(map[string]any)
		if !ok || data["status"] != "completed" {
			return fmt.Errorf("bulk %s to be completed", id)
		}
		if data["rows_failed"] != 0.0 {
			b.Fatalf("generated rows failed: %v", data)
		}
		return nil
	})
	if err != nil {
		b.Fatalf("waited a minute for %v", err)
	}
}
