package workers_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/workers"
	"github.com/bulkd/bulkd/workers/tasks"
)

func TestImporterImportsOnceAndQueuesNotification(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pending := e.createBulk(t)
	notify := &notifications{}
	im := workers.NewImporter(bulksvc.New(e.Store, notify, discard, nil), discard)

	if err := im.Import(t.Context(), pending.ID); err != nil {
		t.Fatalf("Import: %v", err)
	}
	done := e.bulk(t, pending.ID)
	if done.Status != models.StatusCompleted || done.RowsSucceeded != 1 || done.RowsFailed != 0 ||
		done.StartedAt == nil || done.CompletedAt == nil {
		t.Fatalf("bulk after import: %+v", done)
	}
	accounts := e.Count(t, `SELECT count(*) FROM debt_accounts WHERE bulk_id = $1`, pending.ID)
	if accounts != 6 {
		t.Errorf("%d accounts imported, want 6", accounts)
	}
	if diff := cmp.Diff([]uuid.UUID{e.emailOf(t, pending.ID)}, notify.queued()); diff != "" {
		t.Errorf("queued deliveries (-want +got):\n%s", diff)
	}

	// A duplicate task on the completed bulk writes nothing and queues the
	// notification again (its TaskID keeps it single in Redis).
	if err := im.ProcessTask(t.Context(), importTask(t, pending.ID)); err != nil {
		t.Fatalf("ProcessTask of a duplicate: %v", err)
	}
	if diff := cmp.Diff(done, e.bulk(t, pending.ID)); diff != "" {
		t.Errorf("a duplicate task changed the bulk (-before +after):\n%s", diff)
	}
	if n := e.Count(t, `SELECT count(*) FROM debt_accounts`); n != accounts {
		t.Errorf("%d accounts after a duplicate task, want %d", n, accounts)
	}
	if diff := cmp.Diff([]uuid.UUID{e.emailOf(t, pending.ID), e.emailOf(t, pending.ID)}, notify.queued()); diff != "" {
		t.Errorf("queued deliveries (-want +got):\n%s", diff)
	}
}

func TestImporterUnknownBulkIsNotRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	notify := &notifications{}
	im := workers.NewImporter(bulksvc.New(e.Store, notify, discard, nil), discard)

	err := im.Import(t.Context(), uuid.New())
	if !errors.Is(err, asynq.SkipRetry) || !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Import of an unknown bulk: %v, want SkipRetry and ErrNotFound", err)
	}
	err = im.ProcessTask(t.Context(), asynq.NewTask(tasks.TypeImport, []byte(`{}`)))
	if !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("ProcessTask with an empty payload: %v, want SkipRetry", err)
	}
	if got := notify.queued(); len(got) != 0 {
		t.Errorf("queued notifications for no bulk: %v", got)
	}
}

func TestImporterRetriesQueuingTheNotification(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pending := e.createBulk(t)
	notify := &notifications{}
	im := workers.NewImporter(bulksvc.New(e.Store, notify, discard, nil), discard)

	// Redis is down after the import committed: the task fails for a retry.
	down := errors.New("redis: connection refused")
	notify.fail(down)
	if err := im.Import(t.Context(), pending.ID); !errors.Is(err, down) || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("Import with the queue down: %v, want a retryable error wrapping %v", err, down)
	}
	done := e.bulk(t, pending.ID)
	if done.Status != models.StatusCompleted {
		t.Fatalf("bulk after import: %+v", done)
	}
	accounts := e.Count(t, `SELECT count(*) FROM debt_accounts`)

	notify.fail(nil)
	if err := im.Import(t.Context(), pending.ID); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if diff := cmp.Diff([]uuid.UUID{e.emailOf(t, pending.ID)}, notify.queued()); diff != "" {
		t.Errorf("queued deliveries (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(done, e.bulk(t, pending.ID)); diff != "" {
		t.Errorf("the retry changed the bulk (-before +after):\n%s", diff)
	}
	if n := e.Count(t, `SELECT count(*) FROM debt_accounts`); n != accounts {
		t.Errorf("%d accounts after the retry, want %d", n, accounts)
	}
}

func TestImporterQueuesOneNotificationTaskInRedis(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opt := redis(t)
	pending := e.createBulk(t)
	im := workers.NewImporter(bulksvc.New(e.Store, newQueue(t, opt), discard, nil), discard)
	in := newInspector(t, opt)

	for range 2 {
		if err := im.Import(t.Context(), pending.ID); err != nil {
			t.Fatalf("Import: %v", err)
		}
	}
	info, err := in.GetTaskInfo(tasks.QueueNotifications, tasks.DeliveryTaskID(e.emailOf(t, pending.ID)))
	if err != nil {
		t.Fatalf("notification task: %v", err)
	}
	if info.Type != tasks.TypeEmailDelivery || info.MaxRetry != tasks.NotificationMaxRetry {
		t.Errorf("notification task: type %q, max retry %d", info.Type, info.MaxRetry)
	}
	pendingTasks, err := in.ListPendingTasks(tasks.QueueNotifications)
	if err != nil {
		t.Fatal(err)
	}
	if len(pendingTasks) != 1 {
		t.Errorf("%d notification tasks after two imports, want 1", len(pendingTasks))
	}
}
