package bulksvc_test

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/testenv"
	"github.com/bulkd/bulkd/workers/tasks"
)

var discard = slog.New(slog.DiscardHandler)

// service is the service over a test database and a Redis database of the
// test's own, and an organization.
func service(t *testing.T, redisURL string) (*bulksvc.Service, testenv.Database, models.Organization, *asynq.Inspector) {
	t.Helper()
	db := testenv.NewDatabase(t)
	org, err := db.Store.CreateOrganization(t.Context(), "Acme", "ops@acme.example")
	if err != nil {
		t.Fatal(err)
	}
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	in := asynq.NewInspector(opt)
	t.Cleanup(func() { in.Close() })
	return bulksvc.New(db.Store, tasks.NewQueue(client, in), discard, nil), db, org, in
}

func TestSubmitStoresAndQueues(t *testing.T) {
	t.Parallel()
	svc, _, org, in := service(t, testenv.RedisURL(t))
	opts := bulk.Options{Mode: bulk.ModeUpsert, Atomic: true}
	got, err := svc.Submit(t.Context(), bulksvc.Submission{OrganizationID: org.ID, Options: opts, Rows: testenv.SeedRows(t)})
	if err != nil || got.Replayed {
		t.Fatalf("Submit: %+v, %v", got, err)
	}
	b := got.Bulk
	if b.Status != models.StatusPending || b.Mode != "upsert" || !b.Atomic || b.ValidateOnly || b.Count != 1 {
		t.Errorf("bulk: %+v", b)
	}
	if info, err := in.GetTaskInfo(tasks.QueueImports, tasks.ImportTaskID(b.ID)); err != nil || info.Type != tasks.TypeImport {
		t.Errorf("import task: %+v, %v", info, err)
	}
	// The options the import runs with are those submitted, bounded by the
	// day of submission.
	if o := bulksvc.ImportOptions(b); o.Mode != bulk.ModeUpsert || !o.Atomic || !o.Today.Equal(b.CreatedAt.UTC().Truncate(24*time.Hour)) {
		t.Errorf("import options: %+v", o)
	}
}

// With Redis down, a submission still succeeds within the enqueue timeout:
// the bulk is durable and the reconciler queues it.
func TestSubmitWhileTheQueueIsDown(t *testing.T) {
	t.Parallel()
	svc, db, org, _ := service(t, "redis://127.0.0.1:1/0")
	start := time.Now()
	got, err := svc.Submit(t.Context(), bulksvc.Submission{OrganizationID: org.ID, Rows: testenv.SeedRows(t)})
	if err != nil {
		t.Fatalf("Submit with Redis down: %v", err)
	}
	if took := time.Since(start); took > bulksvc.EnqueueTimeout+5*time.Second {
		t.Errorf("Submit took %v with Redis down", took)
	}
	if n := db.Count(t, `SELECT count(*) FROM bulks WHERE id = $1 AND status = 'pending'`, got.Bulk.ID); n != 1 {
		t.Errorf("bulk not stored pending")
	}
}

func TestSubmitReplaysAnIdempotentSubmission(t *testing.T) {
	t.Parallel()
	svc, db, org, _ := service(t, testenv.RedisURL(t))
	key := &store.IdempotencyKey{Key: "k", RequestHash: []byte("h")}
	sub := bulksvc.Submission{OrganizationID: org.ID, Rows: testenv.SeedRows(t), IdempotencyKey: key}
	first, err := svc.Submit(t.Context(), sub)
	if err != nil {
		t.Fatal(err)
	}
	again, err := svc.Submit(t.Context(), sub)
	if err != nil || !again.Replayed || again.Bulk.ID != first.Bulk.ID {
		t.Errorf("replay: %+v, %v", again, err)
	}
	sub.IdempotencyKey = &store.IdempotencyKey{Key: "k", RequestHash: []byte("other")}
	if _, err := svc.Submit(t.Context(), sub); !errors.Is(err, store.ErrIdempotencyKeyReused) {
		t.Errorf("the key with another request: %v", err)
	}
	if n := db.Count(t, `SELECT count(*) FROM bulks`); n != 1 {
		t.Errorf("%d bulks, want 1", n)
	}
}

// Import is the pipeline: it completes the bulk with its results and queues
// its email, except for a dry run; a second run changes nothing.
func TestImport(t *testing.T) {
	t.Parallel()
	svc, db, org, in := service(t, testenv.RedisURL(t))
	for _, dry := range []bool{false, true} {
		sub, err := svc.Submit(t.Context(), bulksvc.Submission{OrganizationID: org.ID, Rows: testenv.SeedRows(t),
			Options: bulk.Options{ValidateOnly: dry}})
		if err != nil {
			t.Fatal(err)
		}
		id := sub.Bulk.ID
		b, err := svc.Import(t.Context(), id)
		if err != nil || b.Status != models.StatusCompleted || b.Count != 1 {
			t.Fatalf("Import: %+v, %v", b, err)
		}
		if n := db.Count(t, `SELECT count(*) FROM bulk_results WHERE bulk_id = $1`, id); n != 1 {
			t.Errorf("%d results stored, want 1", n)
		}
		var emails int
		if err := db.Conn.QueryRow(t.Context(), `SELECT count(*) FROM deliveries WHERE bulk_id = $1 AND channel = 'email'`, id).Scan(&emails); err != nil {
			t.Fatal(err)
		}
		if emails != map[bool]int{false: 1, true: 0}[dry] {
			t.Errorf("validate-only %v: %d email deliveries", dry, emails)
		}
		if !dry {
			var emailID uuid.UUID
			_ = db.Conn.QueryRow(t.Context(), `SELECT id FROM deliveries WHERE bulk_id = $1`, id).Scan(&emailID)
			if _, err := in.GetTaskInfo(tasks.QueueNotifications, tasks.DeliveryTaskID(emailID)); err != nil {
				t.Errorf("email task: %v", err)
			}
		}
		again, err := svc.Import(t.Context(), id)
		if err != nil || again.CompletedAt == nil || !again.CompletedAt.Equal(*b.CompletedAt) {
			t.Errorf("a second Import changed the bulk: %+v, %v", again, err)
		}
	}
	if _, err := svc.Import(t.Context(), uuid.New()); !errors.Is(err, bulksvc.ErrNotFound) {
		t.Errorf("Import of no bulk: %v", err)
	}
}
