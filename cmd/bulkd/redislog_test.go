package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulkd/bulkd/pkg/testenv"
)

// TestRedisDownLogsOnlyJSON runs `bulkd api` as a process of its own (go-redis
// logs through one logger per process, so in-process services would share
// it) with Redis down, makes requests that reach Redis, and reads the
// process's stderr: go-redis' complaints are there, as JSON lines like every
// other, and without Redis' password; so is the queue collector's, whose
// scrape finds Redis down (it prints with the standard logger).
func TestRedisDownLogsOnlyJSON(t *testing.T) {
	t.Parallel()
	const password = "redis-hunter2"
	// Nothing listens on port 1: Redis is down for this API process.
	s := newService(t, "REDIS_URL=redis://:"+password+"@127.0.0.1:1/0", "METRICS_ADDR="+freeAddr(t))
	p := s.spawn("api")
	s.waitHealthy(t, p)
	scrapeMetrics(t, s.env["METRICS_ADDR"]) // the Go and process metrics still answer
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	if r := s.request(t, http.MethodGet, "/readyz", nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with Redis down: %d %s", r.status, r.body)
	}
	s.submit(t, key, testenv.SeedExample(t)) // the enqueue dials Redis, and gives up after a second

	testenv.Eventually(t, 30*time.Second, func() error {
		if !strings.Contains(p.logs.String(), "failed to dial") {
			return withLogs{"a go-redis line about the failed dial on stderr", p.logs}
		}
		if !strings.Contains(p.logs.String(), "Failed to collect metrics data") {
			return withLogs{"the queue collector's line about Redis on stderr", p.logs}
		}
		return nil
	})
	for _, line := range strings.Split(strings.TrimSpace(p.logs.String()), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("stderr line is not a JSON object: %q", line)
			continue
		}
		if strings.Contains(line, "failed to dial") && (entry["level"] != "WARN" || entry["msg"] != "redis client") {
			t.Errorf("go-redis line not at WARN as \"redis client\": %s", line)
		}
	}
	if strings.Contains(p.logs.String(), password) {
		t.Errorf("stderr shows Redis' password:\n%s", p.logs.String())
	}
}
