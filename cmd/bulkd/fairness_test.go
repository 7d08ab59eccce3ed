package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkd/bulkd/pkg/bulkgen"
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
	s := startService(t, fmt.Sprintf("WORKER_CONCURRENCY=%d", importSlots), "WEBHOOK_ALLOW_PRIVATE=true")
	_, keyA := s.newOrg(t, "Acme", "ops@acme.example")
	_, keyB := s.newOrg(t, "Globex", "ops@globex.example")
	s.putWebhook(t, keyA, slow.URL)

	for range 6 {
		s.submit(t, keyA, testenv.SeedExample(t))
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := holding.Load(); n <= importSlots {
			return fmt.Errorf("the receiver to hold more than %d deliveries at once; it holds %d", importSlots, n)
		}
		return nil
	})

	// With every delivery of A held, B's bulk is imported.
	s.waitCompletedWithin(t, keyB, s.submit(t, keyB, testenv.SeedExample(t)), 30*time.Second)
	if n := holding.Load(); n <= importSlots {
		t.Errorf("the receiver held %d deliveries when B's bulk completed; the test wants more than %d held throughout", n, importSlots)
	}
	releaseAll()
}

// TestOneOrganizationsBulksDoNotStallAnother: an import never holds a
// worker's slot waiting for another import of its organization. A submits
// more large bulks than the worker has slots, then B one row, all before
// the worker starts; the queue holds A's bulks first, yet B's completes
// while most of A's are still waiting their turn.
func TestOneOrganizationsBulksDoNotStallAnother(t *testing.T) {
	t.Parallel()
	const importSlots, bulksA = 2, 6
	s := startMode(t, "api", "MAX_BODY_BYTES=16777216")
	_, keyA := s.newOrg(t, "Acme", "ops@acme.example")
	_, keyB := s.newOrg(t, "Globex", "ops@globex.example")
	var idsA []string
	for i := range bulksA {
		body := bulkgen.Body(bulkgen.Options{Rows: 1000, Accounts: 5, Prefix: "fair", Bulk: i, Seed: 1})
		idsA = append(idsA, s.submit(t, keyA, body))
	}
	idB := s.submit(t, keyB, testenv.SeedExample(t))
	s.spawn("worker", fmt.Sprintf("WORKER_CONCURRENCY=%d", importSlots))

	s.waitCompletedWithin(t, keyB, idB, time.Minute)
	unfinished := s.db.Count(t, `SELECT count(*) FROM bulks WHERE id = ANY($1) AND status IN ('pending', 'processing')`, idsA)
	if unfinished < bulksA-importSlots {
		t.Errorf("B's bulk completed when only %d of A's %d bulks were unfinished: it waited behind A's imports", unfinished, bulksA)
	}
	for _, id := range idsA {
		s.waitCompletedWithin(t, keyA, id, 3*time.Minute)
	}
}
