//go:build chaos

package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulkd/bulkd/pkg/testenv"
)

// TestChaosWorkersKilledAgainAndAgain runs `make chaos`: bulks import while,
// round after round, every worker process is killed with SIGKILL in the
// middle of an import (or stopped with SIGTERM), and new ones are started.
// In the end every bulk must be completed with exactly the records and error
// reports of an undisturbed run, and each organization emailed once per bulk.
func TestChaosWorkersKilledAgainAndAgain(t *testing.T) {
	const (
		bulks   = 24
		rows    = 300
		workers = 3
		rounds  = 8
	)
	// The bulks take turns through the import's modes; an upsert changes
	// what a bulk imported before the chaos wrote.
	imports := make([]faultImport, bulks)
	for i := range imports {
		modes := faultImports(t, fmt.Sprintf("c%d-", i), rows)
		imports[i] = modes[i%len(modes)]
	}
	importBefore := func(s *service, key string) (emails int) {
		for _, fi := range imports {
			if fi.before != nil {
				s.waitCompletedWithin(t, key, s.submit(t, key, fi.before), time.Minute)
				emails++
			}
		}
		return emails
	}

	// The reference: the same bulks in a `bulkd serve` that nothing disturbs.
	clean := startService(t, "RATE_LIMIT=0")
	_, cleanKey := clean.newOrg(t, "Acme", "ops@acme.example")
	importBefore(clean, cleanKey)
	cleanOutcomes := make([]outcome, bulks)
	for i, fi := range imports {
		id := clean.submitWith(t, cleanKey, fi.query, fi.body)
		clean.waitCompletedWithin(t, cleanKey, id, time.Minute)
		cleanOutcomes[i] = clean.outcome(t, cleanKey, id)
	}
	want := clean.db.Snapshot(t)

	s := newService(t, "SHUTDOWN_TIMEOUT=1s", "RECONCILE_INTERVAL=5s", "RATE_LIMIT=0")
	s.start("api")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	running := make([]*process, 0, workers)
	for range workers {
		running = append(running, s.spawn("worker"))
	}
	wantEmails := importBefore(s, key)
	// Half the bulks now, half in the middle of the rounds.
	ids := make([]string, bulks)
	submit := func(from, to int) {
		for i := from; i < to; i++ {
			ids[i] = s.submitWith(t, key, imports[i].query, imports[i].body)
		}
	}
	submit(0, bulks/2)

	r := rand.New(rand.NewPCG(1, 2))
	kills, stops, struck := 0, 0, 0
	for round := range rounds {
		if round == rounds/2 {
			submit(bulks/2, bulks)
		}
		// Catch an import in the middle of its transaction, then strike. A
		// killed worker's task comes back after about a minute: wait for it.
		lock := lockTable(t, s.db, "bulk_results")
		if !writeBlockedOn(t, s.db, "bulk_results", 90*time.Second) {
			lock.release()
			t.Logf("round %d: no import in flight within 90 s; every bulk may be done", round)
			break
		}
		struck++
		for _, p := range running {
			if r.IntN(3) == 0 {
				if _, err := p.terminate(30 * time.Second); err != nil {
					t.Errorf("worker after SIGTERM: %v", err)
				}
				stops++
			} else {
				p.kill()
				kills++
			}
		}
		lock.release()
		running = running[:0]
		for range workers {
			running = append(running, s.spawn("worker"))
		}
	}
	t.Logf("faults injected: %d SIGKILLs and %d SIGTERMs of workers, in %d rounds that each caught an import mid-transaction", kills, stops, struck)
	if struck < rounds/2 {
		t.Errorf("only %d rounds caught an import in flight", struck)
	}

	// Killed workers' tasks come back after asynq's lease (about a minute).
	for i, id := range ids {
		s.waitCompletedWithin(t, key, id, 5*time.Minute)
		got := s.outcome(t, key, id)
		got.records, cleanOutcomes[i].records = nil, nil // compared as a whole below
		if d := got.diff(cleanOutcomes[i]); d != "" {
			t.Errorf("bulk %d (%s): report, results or status differ from the clean run's (-clean +chaos):\n%s", i, imports[i].query, d)
		}
	}
	got := s.db.Snapshot(t)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records differ from the clean run's (-clean +chaos):\n%s", diff)
	}
	s.waitAllNotified(t)
	// Every bulk is emailed once but the dry runs.
	for _, fi := range imports {
		if !strings.Contains(fi.query, "validate_only=true") {
			wantEmails++
		}
	}
	if n := len(s.smtp.Messages()); n != wantEmails {
		t.Errorf("%d emails, want %d", n, wantEmails)
	}
	t.Logf("checked: %d bulks, %d records compared with a clean run, %d emails", bulks, len(got), len(s.smtp.Messages()))
}

// writeBlockedOn tells whether a session of db comes to wait to write into
// table (COPY, DELETE, UPDATE) within the given time.
func writeBlockedOn(t testing.TB, db testenv.Database, table string, within time.Duration) bool {
	t.Helper()
	return testenv.Poll(within, 20*time.Millisecond, func() error { return writeBlocked(t, db, table) }) == nil
}
