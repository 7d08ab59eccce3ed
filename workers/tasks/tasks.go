// Package tasks defines bulkd's queue tasks: their type names, payloads and
// options, and the Queue that enqueues them. Payloads carry ids only: the data
// lives in Postgres, and asynqmon shows payloads to whoever opens it.
package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
)

// Task types.
const (
	TypeImport           = "bulk:import"
	TypeBulkNotification = "email:bulk_completed"
)

// Queues, with the weights a worker gives them: imports first, but
// notifications are never starved.
const (
	QueueImports       = "imports"
	QueueNotifications = "notifications"
)

// QueueWeights is the asynq server's queue configuration.
var QueueWeights = map[string]int{QueueImports: 3, QueueNotifications: 1}

// Retry policy. An import retries a handful of times (a database hiccup or a
// killed worker), then the bulk is marked failed; an email retries for about a
// day, through an SMTP outage.
const (
	ImportMaxRetry       = 8
	ImportTimeout        = 10 * time.Minute
	NotificationMaxRetry = 20
	NotificationTimeout  = time.Minute
)

// Payload is the payload of both task types: the bulk's id.
type Payload struct {
	BulkID uuid.UUID `json:"bulk_id"`
}

// ImportTaskID is the TaskID of a bulk's import: the bulk id, so that a bulk
// is never queued twice at once.
func ImportTaskID(bulkID uuid.UUID) string { return bulkID.String() }

// NotificationTaskID is the TaskID of a bulk's notification.
func NotificationTaskID(bulkID uuid.UUID) string { return "email:" + bulkID.String() }

// NewImportTask makes the task that imports a bulk.
func NewImportTask(bulkID uuid.UUID) (*asynq.Task, error) {
	return newTask(TypeImport, bulkID, asynq.TaskID(ImportTaskID(bulkID)), asynq.Queue(QueueImports),
		asynq.MaxRetry(ImportMaxRetry), asynq.Timeout(ImportTimeout))
}

// NewNotificationTask makes the task that emails the organization about a
// finished bulk.
func NewNotificationTask(bulkID uuid.UUID) (*asynq.Task, error) {
	return newTask(TypeBulkNotification, bulkID, asynq.TaskID(NotificationTaskID(bulkID)), asynq.Queue(QueueNotifications),
		asynq.MaxRetry(NotificationMaxRetry), asynq.Timeout(NotificationTimeout))
}

func newTask(typ string, bulkID uuid.UUID, opts ...asynq.Option) (*asynq.Task, error) {
	b, err := json.Marshal(Payload{BulkID: bulkID})
	if err != nil {
		return nil, fmt.Errorf("tasks: encode %s payload: %w", typ, err)
	}
	return asynq.NewTask(typ, b, opts...), nil
}

// ParsePayload reads a task's payload.
func ParsePayload(t *asynq.Task) (Payload, error) {
	var p Payload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.BulkID == uuid.Nil {
		return Payload{}, fmt.Errorf("tasks: bad %s payload: %w", t.Type(), errors.Join(err, asynq.SkipRetry))
	}
	return p, nil
}

// RetryDelay backs off exponentially from 5 s to at most 5 min.
func RetryDelay(n int, _ error, _ *asynq.Task) time.Duration {
	d := 5 * time.Second << min(n, 6)
	return min(d, 5*time.Minute)
}

// Queue enqueues tasks.
type Queue struct {
	client *asynq.Client
}

// NewQueue wraps an asynq client.
func NewQueue(client *asynq.Client) *Queue { return &Queue{client: client} }

// EnqueueImport queues the import of a bulk. A task already queued for it is
// success: TaskID makes a second enqueue harmless.
func (q *Queue) EnqueueImport(ctx context.Context, bulkID uuid.UUID) error {
	return q.enqueue(ctx, NewImportTask, bulkID)
}

// EnqueueNotification queues the notification of a finished bulk.
func (q *Queue) EnqueueNotification(ctx context.Context, bulkID uuid.UUID) error {
	return q.enqueue(ctx, NewNotificationTask, bulkID)
}

func (q *Queue) enqueue(ctx context.Context, newTask func(uuid.UUID) (*asynq.Task, error), bulkID uuid.UUID) error {
	t, err := newTask(bulkID)
	if err != nil {
		return err
	}
	_, err = q.client.EnqueueContext(ctx, t)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) && !errors.Is(err, asynq.ErrDuplicateTask) {
		return fmt.Errorf("tasks: enqueue %s for bulk %s: %w", t.Type(), bulkID, err)
	}
	return nil
}
