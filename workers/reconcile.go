package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/logattr"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/workers/tasks"
)

// reconcileBatch bounds the bulks one pass looks at; the next pass takes the rest.
const reconcileBatch = 1000

// eraseBatches bounds the erasing one pass does: at most this many
// store.DefaultEraseBatch transactions (400 000 submitted rows, each with
// its result: 2 to 3 s of work), the next pass going on where it stopped.
// Each transaction is short, so that the pass never holds a lock or a
// transaction long. At one pass a minute a worker process erases up to 24
// million rows an hour, about what a 2-core machine imports at its peak
// (6 000 to 10 000 rows/s, docs/performance.md): the erasing keeps up with
// any import rate that lasts, and a backlog (a database older than
// RETENTION when retention first runs) goes down at that pace without
// taking the database's whole attention.
const eraseBatches = 200

// Reconciler puts back on track the bulks whose task the queue lost or never
// got: Postgres holds the truth, Redis only the work in flight. Every worker
// process runs one; they do not get in each other's way, since queuing a
// task that exists already is a no-op. It also erases what retention no
// longer keeps.
type Reconciler struct {
	bulks     *bulksvc.Service
	store     *store.Store
	queue     *tasks.Queue
	inspector *asynq.Inspector
	interval  time.Duration
	retention time.Duration
	log       *slog.Logger
}

// ReconcileConfig is how a reconciler runs.
type ReconcileConfig struct {
	// Interval is how often it runs; it leaves alone what changed within
	// the last interval (its task may be on the way).
	Interval time.Duration
	// Retention is how long a finished bulk's rows as submitted and its
	// results are kept before it erases them; 0 keeps them.
	Retention time.Duration
}

// NewReconciler returns a reconciler. It fails a bulk through the service,
// as the import's error handler does; the store and the queue are those the
// service runs on.
func NewReconciler(svc *bulksvc.Service, s *store.Store, q *tasks.Queue, in *asynq.Inspector, cfg ReconcileConfig, log *slog.Logger) *Reconciler {
	return &Reconciler{bulks: svc, store: s, queue: q, inspector: in, interval: cfg.Interval, retention: cfg.Retention, log: log}
}

// Reconciled counts what one pass did.
type Reconciled struct {
	ImportsQueued       int   // unfinished bulks that had no import task
	Failed              int   // bulks whose import used its last retry without being marked failed
	DeliveriesQueued    int   // deliveries of the outbox still to make that had no task
	DeliveriesAbandoned int   // deliveries whose task gave up without saying so
	ExpiredKeys         int64 // idempotency keys past their 24 hours, deleted
	ReportsErased       int   // finished bulks past the retention whose rows and results were erased
	RowsErased          int64 // their submitted rows and results, deleted
}

// Run reconciles every interval until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			res, err := r.Once(ctx)
			if err != nil && ctx.Err() == nil {
				r.log.WarnContext(ctx, "reconcile", "err", err)
			}
			if res != (Reconciled{}) {
				r.log.InfoContext(ctx, "reconciled", "imports_queued", res.ImportsQueued, "failed", res.Failed,
					"deliveries_queued", res.DeliveriesQueued, "deliveries_abandoned", res.DeliveriesAbandoned,
					"expired_idempotency_keys", res.ExpiredKeys, "reports_erased", res.ReportsErased, "rows_erased", res.RowsErased)
			}
		}
	}
}

// Once makes one pass:
//   - a bulk pending or processing with no import task in Redis (Redis was
//     down when it was submitted, or lost its data) gets its task again;
//   - a bulk whose import task was archived after its last retry, but which
//     is not marked failed (Postgres was down when the task gave up), is
//     marked failed, and its email queued;
//   - a delivery still to make (email, webhook) with no task gets it again,
//     and one whose task was archived is given up;
//   - idempotency keys older than 24 hours are deleted;
//   - the rows as submitted and the results of bulks that finished more
//     than the retention ago are erased, a short transaction at a time.
func (r *Reconciler) Once(ctx context.Context) (Reconciled, error) {
	var res Reconciled
	unfinished, err := r.store.UnfinishedBulks(ctx, r.interval, reconcileBatch)
	if err != nil {
		return res, err
	}
	for _, id := range unfinished {
		state, err := r.taskState(tasks.QueueImports, tasks.ImportTaskID(id))
		switch {
		case err != nil:
			return res, err
		case state == 0:
			if err := r.queue.EnqueueImport(ctx, id); err != nil {
				return res, err
			}
			res.ImportsQueued++
		case state == asynq.TaskStateArchived:
			bulkCtx := logattr.With(ctx, slog.Any("bulk_id", id))
			f, err := r.bulks.Fail(bulkCtx, id, ReasonRetriesExhausted)
			if err != nil {
				return res, err
			}
			if f.Failed {
				r.log.ErrorContext(logattr.With(bulkCtx, slog.Any("organization_id", f.OrganizationID)),
					"bulk import gave up without marking the bulk failed; marked it now", "bulk_id", id)
				res.Failed++
			}
		}
	}

	// One pass for the deliveries of every channel: queued again when their
	// task is gone, given up when it was archived without a word (the error
	// handler could not reach Postgres then).
	undelivered, err := r.store.UndeliveredDeliveries(ctx, r.interval, reconcileBatch)
	if err != nil {
		return res, err
	}
	for _, d := range undelivered {
		state, err := r.taskState(tasks.QueueNotifications, tasks.DeliveryTaskID(d.ID))
		switch {
		case err != nil:
			return res, err
		case state == 0:
			if err := r.queue.EnqueueDelivery(ctx, d.ID, d.Channel); err != nil {
				return res, err
			}
			res.DeliveriesQueued++
		case state == asynq.TaskStateArchived:
			if _, err := r.store.AbandonDelivery(ctx, d.ID); err != nil {
				return res, err
			}
			res.DeliveriesAbandoned++
		}
	}

	if res.ExpiredKeys, err = r.store.DeleteExpiredIdempotencyKeys(ctx); err != nil {
		return res, err
	}
	return res, r.erase(ctx, &res)
}

// erase erases the reports that retention no longer keeps, batch after
// batch, until none is left or the pass has done eraseBatches.
func (r *Reconciler) erase(ctx context.Context, res *Reconciled) error {
	if r.retention <= 0 {
		return nil
	}
	for range eraseBatches {
		erased, err := r.store.EraseReports(ctx, r.retention, store.DefaultEraseBatch)
		if err != nil {
			return err
		}
		if erased.Bulks == 0 {
			return nil
		}
		res.ReportsErased += erased.Bulks
		res.RowsErased += erased.Rows
	}
	return nil
}

// taskState returns the state of a task in Redis, 0 when there is none.
func (r *Reconciler) taskState(queue, taskID string) (asynq.TaskState, error) {
	info, err := r.inspector.GetTaskInfo(queue, taskID)
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reconcile: task %s: %w", taskID, err)
	}
	return info.State, nil
}
