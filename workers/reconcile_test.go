package workers_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/testenv"
	"github.com/bulkd/bulkd/workers"
	"github.com/bulkd/bulkd/workers/tasks"
)

func TestReconcilerRepairsWhatTheQueueLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opt := redis(t)
	queue := newQueue(t, opt)
	in := newInspector(t, opt)
	ctx := t.Context()
	start := func(b models.Bulk) models.Bulk {
		t.Helper()
		b, err := e.Store.StartBulk(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	pendingNoTask := e.createBulk(t)           // Redis was down at submit
	processingNoTask := start(e.createBulk(t)) // Redis lost the task mid-import
	pendingQueued := e.createBulk(t)           // on its way: left alone
	if err := queue.EnqueueImport(ctx, pendingQueued.ID); err != nil {
		t.Fatal(err)
	}
	gaveUp := start(e.createBulk(t)) // last retry archived, but Postgres was down for the failure handler
	if err := queue.EnqueueImport(ctx, gaveUp.ID); err != nil {
		t.Fatal(err)
	}
	if err := in.ArchiveTask(tasks.QueueImports, tasks.ImportTaskID(gaveUp.ID)); err != nil {
		t.Fatal(err)
	}
	finishedNotEmailed := e.importedBulk(t)
	emailed := e.importedBulk(t)
	c, err := e.Store.ClaimDelivery(ctx, e.emailOf(t, emailed.ID), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Store.FinishDelivery(ctx, c, store.Attempt{StartedAt: time.Now()}, true); err != nil {
		t.Fatal(err)
	}
	keyed, _, err := e.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: e.org.ID,
		IdempotencyKey: &store.IdempotencyKey{Key: "old", RequestHash: []byte{1}}, Rows: testenv.SeedRows(t)})
	if err != nil {
		t.Fatal(err)
	}
	// A day later its key has expired; the bulk it made is still pending with no task.
	if _, err := e.Conn.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '25 hours'`); err != nil {
		t.Fatal(err)
	}

	// Within the interval every bulk may still have its task on the way.
	if got, err := workers.NewReconciler(bulksvc.New(e.Store, queue, discard, nil), e.Store, queue, in, workers.ReconcileConfig{Interval: time.Hour}, discard).Once(ctx); err != nil || got != (workers.Reconciled{ExpiredKeys: 1}) {
		t.Errorf("Once with a 1h interval: %+v, %v; want only the expired key", got, err)
	}

	time.Sleep(5 * time.Millisecond)
	r := workers.NewReconciler(bulksvc.New(e.Store, queue, discard, nil), e.Store, queue, in, workers.ReconcileConfig{Interval: time.Millisecond}, discard)
	got, err := r.Once(ctx)
	if err != nil {
		t.Fatalf("Once: %v", err)
	}
	if want := (workers.Reconciled{ImportsQueued: 3, Failed: 1, DeliveriesQueued: 1}); got != want {
		t.Errorf("Once: %+v, want %+v", got, want)
	}
	for _, b := range []models.Bulk{pendingNoTask, processingNoTask, pendingQueued, keyed} {
		info, err := in.GetTaskInfo(tasks.QueueImports, tasks.ImportTaskID(b.ID))
		if err != nil || info.State != asynq.TaskStatePending || info.Type != tasks.TypeImport || info.MaxRetry != tasks.ImportMaxRetry {
			t.Errorf("import task of %s bulk: %+v, %v", b.Status, info, err)
		}
	}
	if b := e.bulk(t, gaveUp.ID); b.Status != models.StatusFailed || b.FailureReason == nil || *b.FailureReason != workers.ReasonRetriesExhausted {
		t.Errorf("bulk whose import gave up: status %s, reason %v", b.Status, b.FailureReason)
	}
	for _, b := range []models.Bulk{gaveUp, finishedNotEmailed} {
		if _, err := in.GetTaskInfo(tasks.QueueNotifications, tasks.DeliveryTaskID(e.emailOf(t, b.ID))); err != nil {
			t.Errorf("email task of bulk %s: %v", b.ID, err)
		}
	}
	if _, err := in.GetTaskInfo(tasks.QueueNotifications, tasks.DeliveryTaskID(e.emailOf(t, emailed.ID))); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("notification task of a bulk already emailed: %v, want none", err)
	}

	// Every task is in place now: a second pass, or another worker's, changes nothing.
	if got, err := r.Once(ctx); err != nil || got != (workers.Reconciled{}) {
		t.Errorf("second Once: %+v, %v; want nothing done", got, err)
	}
}

func TestReconcilerStopsAtRedisOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createBulk(t)
	// Nothing listens on port 1: Redis is down.
	down := asynq.RedisClientOpt{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond}
	r := workers.NewReconciler(bulksvc.New(e.Store, newQueue(t, down), discard, nil), e.Store, newQueue(t, down), newInspector(t, down), workers.ReconcileConfig{Interval: time.Nanosecond}, discard)
	time.Sleep(time.Millisecond)
	if got, err := r.Once(t.Context()); err == nil || got.ImportsQueued != 0 {
		t.Errorf("Once with Redis down: %+v, %v; want an error and nothing queued", got, err)
	}
}

func TestReconcilerRunUntilCanceled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opt := redis(t)
	in := newInspector(t, opt)
	pending := e.createBulk(t)
	r := workers.NewReconciler(bulksvc.New(e.Store, newQueue(t, opt), discard, nil), e.Store, newQueue(t, opt), in, workers.ReconcileConfig{Interval: 10 * time.Millisecond}, discard)

	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		r.Run(ctx)
	}()
	testenv.Eventually(t, deadline, func() error {
		if _, err := in.GetTaskInfo(tasks.QueueImports, pending.ID.String()); err != nil {
			return fmt.Errorf("Run to queue the pending bulk: %w", err)
		}
		return nil
	})
	cancel()
	select {
	case <-stopped:
	case <-time.After(deadline):
		t.Fatalf("Run did not return within %v of its context ending", deadline)
	}
}

// A pass erases the rows and results of the bulks that finished more than
// the retention ago, and only those; without a retention it erases nothing.
func TestReconcilerErasesReportsPastTheRetention(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opt := redis(t)
	queue := newQueue(t, opt)
	in := newInspector(t, opt)
	ctx := t.Context()
	old, young := e.importedBulk(t), e.importedBulk(t)
	if _, err := e.Conn.Exec(ctx, `UPDATE bulks SET completed_at = completed_at - interval '2 hours' WHERE id = $1`, old.ID); err != nil {
		t.Fatal(err)
	}
	reconciler := func(retention time.Duration) *workers.Reconciler {
		return workers.NewReconciler(bulksvc.New(e.Store, queue, discard, nil), e.Store, queue, in,
			workers.ReconcileConfig{Interval: time.Hour, Retention: retention}, discard)
	}
	if got, err := reconciler(0).Once(ctx); err != nil || got != (workers.Reconciled{}) {
		t.Errorf("Once without a retention: %+v, %v; want nothing done", got, err)
	}
	got, err := reconciler(time.Hour).Once(ctx)
	if want := (workers.Reconciled{ReportsErased: 1, RowsErased: 2}); err != nil || got != want {
		t.Errorf("Once: %+v, %v; want %+v", got, err, want)
	}
	for id, want := range map[uuid.UUID]int{old.ID: 0, young.ID: 2} {
		if n := e.Count(t, `SELECT (SELECT count(*) FROM bulk_rows WHERE bulk_id = $1) + (SELECT count(*) FROM bulk_results WHERE bulk_id = $1)`, id); n != want {
			t.Errorf("bulk %s: %d rows and results, want %d", id, n, want)
		}
	}
}

// A failed bulk retried has its import queued again, the failed task that
// held its task id gone: the reconciler does not fail it a second time.
func TestRetriedBulkIsQueuedAndNotFailedAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opt := redis(t)
	queue := newQueue(t, opt)
	in := newInspector(t, opt)
	ctx := t.Context()
	svc := bulksvc.New(e.Store, queue, discard, nil)
	b := e.createBulk(t)
	if err := queue.EnqueueImport(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if err := in.ArchiveTask(tasks.QueueImports, tasks.ImportTaskID(b.ID)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	r := workers.NewReconciler(svc, e.Store, queue, in, workers.ReconcileConfig{Interval: time.Millisecond}, discard)
	if got, err := r.Once(ctx); err != nil || got.Failed != 1 {
		t.Fatalf("Once: %+v, %v; want the bulk failed", got, err)
	}

	retried, err := svc.Retry(ctx, b.ID)
	if err != nil || retried.Status != models.StatusPending {
		t.Fatalf("Retry: %+v, %v", retried, err)
	}
	info, err := in.GetTaskInfo(tasks.QueueImports, tasks.ImportTaskID(b.ID))
	if err != nil || info.State != asynq.TaskStatePending {
		t.Fatalf("the retried bulk's import task: %+v, %v; want one pending", info, err)
	}
	time.Sleep(5 * time.Millisecond)
	if got, err := r.Once(ctx); err != nil || got.Failed != 0 {
		t.Errorf("Once after the retry: %+v, %v; want the bulk left pending", got, err)
	}
	if b := e.bulk(t, b.ID); b.Status != models.StatusPending {
		t.Errorf("retried bulk: %s", b.Status)
	}
	var notFailed bulksvc.ErrNotRetryable
	if _, err := svc.Retry(ctx, b.ID); !errors.As(err, &notFailed) || notFailed.Bulk.Status != models.StatusPending {
		t.Errorf("a second Retry: %v; want not retryable, pending", err)
	}
}
