package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkd/bulkd/pkg/apidoc/apidoctest"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// TestSentinelFailoverLosesNoBulk runs bulkd on Redis Sentinel (a master, a
// replica, three sentinels), submits bulks without a pause, and kills the
// master in the middle: every submission is still accepted, and every
// accepted bulk completes and is emailed exactly once after the replica
// takes over. Tasks the dead master held and had not yet copied to its
// replica are lost with it; Postgres holds every bulk, and the reconciler
// queues again what Redis lost.
func TestSentinelFailoverLosesNoBulk(t *testing.T) {
	t.Parallel()
	rs := testenv.StartSentinel(t)
	s := startService(t, "REDIS_URL="+rs.URL(), "RECONCILE_INTERVAL=1s", "WORKER_CONCURRENCY=2", "RATE_LIMIT=0")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")
	body := testenv.SeedExample(t)

	// The submitter posts one bulk after another until told to stop; its
	// answers are checked by the test's goroutine.
	type answer struct {
		status int
		id     string
		err    error
	}
	var (
		mu      sync.Mutex
		answers []answer
		stop    = make(chan struct{})
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			a := answer{}
			req, _ := http.NewRequest(http.MethodPost, s.base+"/api/v1/bulk", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
			resp, err := apidoctest.Client(t).Do(req) // checked against the API description, as the harness does
			if err != nil {
				a.err = err
			} else {
				var v struct {
					Data struct {
						BulkID string `json:"bulk_id"`
					} `json:"data"`
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				a.status = resp.StatusCode
				if err := json.Unmarshal(b, &v); err != nil {
					a.err = fmt.Errorf("answer %s: %w", b, err)
				}
				a.id = v.Data.BulkID
			}
			mu.Lock()
			answers = append(answers, a)
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	accepted := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(answers)
	}

	testenv.Eventually(t, time.Minute, func() error {
		return atLeast(accepted(), 10, "bulks submitted before the failover")
	})
	failover := rs.KillMaster()
	atFailover := accepted()
	testenv.Eventually(t, time.Minute, func() error {
		return atLeast(accepted()-atFailover, 10, "bulks submitted after the failover")
	})
	close(stop)
	<-done

	var ids []string
	for i, a := range answers {
		if a.err != nil || a.status != http.StatusAccepted || a.id == "" {
			t.Fatalf("submission %d of %d: %d %v", i+1, len(answers), a.status, a.err)
		}
		ids = append(ids, a.id)
	}
	// A task that was active on the killed master, and whose worker could
	// not move it to retry then, waits for asynq's recoverer: its lease (30 s)
	// must have expired 30 s ago, the recoverer looks once a minute, and the
	// retry waits its delay. That is up to about 2m10s after the kill.
	start := time.Now()
	for _, id := range ids {
		s.waitCompletedWithin(t, key, id, 4*time.Minute)
	}
	t.Logf("failover: the sentinels promoted the replica %s after the master was killed; "+
		"%d bulks submitted (%d after the kill), all completed %s after the last was accepted",
		failover.Round(time.Millisecond), len(ids), len(ids)-atFailover, time.Since(start).Round(time.Millisecond))

	// Exactly one email a bulk: every email delivery is marked delivered,
	// and the SMTP server received one message per bulk, none twice.
	testenv.Eventually(t, 2*time.Minute, func() error {
		n := s.db.Count(t, `SELECT count(*) FROM deliveries WHERE channel = 'email' AND delivered_at IS NOT NULL`)
		return atLeast(n, len(ids), "emails delivered")
	})
	perBulk := map[string]int{}
	for _, m := range s.smtp.Messages() {
		subject := m.Parse(t).Subject
		id, _, ok := strings.Cut(strings.TrimPrefix(subject, "Bulk "), " ")
		if !ok {
			t.Errorf("email with subject %q", subject)
		}
		perBulk[id]++
	}
	for _, id := range ids {
		if perBulk[id] != 1 {
			t.Errorf("bulk %s emailed %d times, want once", id, perBulk[id])
		}
	}
	if len(perBulk) != len(ids) {
		t.Errorf("%d bulks emailed, %d submitted", len(perBulk), len(ids))
	}
}

// TestRedisClusterEndToEnd runs bulkd on a three-node Redis Cluster: a bulk
// is queued, imported, reported and emailed; the reconciler queues a bulk
// whose task never reached Redis; and the queue UI lists the queues.
func TestRedisClusterEndToEnd(t *testing.T) {
	t.Parallel()
	rc := testenv.StartCluster(t)
	s := startService(t, "REDIS_URL="+rc.URL(), "RECONCILE_INTERVAL=1s")
	_, key := s.newOrg(t, "Acme", "ops@acme.example")

	first := s.submit(t, key, testenv.SeedExample(t))
	got := s.waitCompleted(t, key, first)
	if got["rows_succeeded"] != 1.0 || got["rows_failed"] != 0.0 {
		t.Errorf("bulk on Redis Cluster: %v", got)
	}
	second := s.submit(t, key, testenv.SeedExample(t))
	s.waitCompleted(t, key, second)
	if r := s.request(t, http.MethodGet, "/api/v1/bulk/"+second+"/errors", nil, bearer(key)); r.status != http.StatusOK ||
		!strings.Contains(string(r.body), "The external id has already been taken.") {
		t.Errorf("errors of the second bulk: %d %s", r.status, r.body)
	}
	s.smtp.WaitForMessages(t, 2, time.Minute)

	// A bulk stored while its task never reached the queue: the reconciler,
	// reading task states from the cluster, queues it.
	ctx := context.Background()
	var stray string
	if err := s.db.Conn.QueryRow(ctx, `INSERT INTO bulks (id, organization_id, status, count, mode)
		SELECT gen_random_uuid(), organization_id, 'pending', 1, 'create' FROM bulks WHERE id = $1 RETURNING id::text`, first).Scan(&stray); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Conn.Exec(ctx, `INSERT INTO bulk_rows (organization_id, bulk_id, row, payload)
		SELECT organization_id, $1, row, payload FROM bulk_rows WHERE bulk_id = $2`, stray, first); err != nil {
		t.Fatal(err)
	}
	s.waitCompletedWithin(t, key, stray, time.Minute)

	// The queue UI reads the cluster too.
	r := s.request(t, http.MethodGet, "/admin/queues/api/queues", nil, basicAuth("admin", "queue-secret"))
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"imports"`) {
		t.Errorf("queue UI's queues on Redis Cluster: %d %s", r.status, r.body)
	}
}

// atLeast is nil when n >= want, else what a wait is still waiting for.
func atLeast(n, want int, what string) error {
	if n >= want {
		return nil
	}
	return fmt.Errorf("%d of %d %s", n, want, what)
}
