package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkd/bulkd/pkg/testenv"
)

// TestSlowDeliveriesDoNotDelayImports: deliveries have slots of their own.
// Organization A's webhook receiver holds every delivery without answering;
// while it holds more deliveries than the worker has import slots, another
// organization's bulk is imported at once.
func TestSlowDeliveriesDoNotDelayImports(t *testing.T) {
	t.Parallel()
	var (
		holding atomic.Int32 // deliveries the receiver holds right now
		release = make(chan struct{})
		once    sync.Once
	)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the body first: only then does the server notice a client that
		// hangs up, and end the request's context.
		_, _ = io.Copy(io.Discard, r.Body)
		holding.Add(1)
		defer holding.Add(-1)
		select {
		case <-release:
		case <-r.Context().Done(): // bulkd gave up the attempt
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	releaseAll := func() { once.Do(func() { close(release) }) }
	t.Cleanup(func() { releaseAll(); slow.Close() })

	const importSlots = 2
	s := startService(t, "WORKER_CONCURRENCY=2", "WEBHOOK_ALLOW_PRIVATE=true")
	_, keyA := s.newOrg("Acme", "ops@acme.example")
	_, keyB := s.newOrg("Globex", "ops@globex.example")
	s.putWebhook(keyA, slow.URL)

	const bulksA = 6
	for range bulksA {
		s.submit(keyA, testenv.SeedExample(t))
	}
	eventuallyHolds(t, 30*time.Second, "the receiver holding more deliveries than there are import slots", func() bool {
		return holding.Load() > importSlots
	})

	// With every delivery of A held, B's bulk is imported.
	s.waitCompletedWithin(keyB, s.submit(keyB, testenv.SeedExample(t)), 30*time.Second)
	if n := holding.Load(); n <= importSlots {
		t.Errorf("the receiver held %d deliveries when B's bulk completed; the test wants more than %d held throughout", n, importSlots)
	}
	releaseAll()
}

// eventuallyHolds polls cond until it holds, or fails the test after within
// saying what it waited for.
func eventuallyHolds(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
	}
}
