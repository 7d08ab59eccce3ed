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

// Task types. A delivery of the outbox is a task of its channel's type.
const (
	TypeImport          = "bulk:import"
	TypeEmailDelivery   = "delivery:email"
	TypeWebhookDelivery = "delivery:webhook"
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
// killed worker), then the bulk is marked failed; an email retries through
// an SMTP outage of a couple of hours; a webhook on the Standard Webhooks
// schedule, over more than a day.
const (
	ImportMaxRetry       = 8
	ImportTimeout        = 10 * time.Minute
	NotificationMaxRetry = 20
	NotificationTimeout  = time.Minute
	WebhookTimeout       = time.Minute
)

// WebhookSchedule is the wait before each retry of a webhook delivery, after
// a first attempt at once: the Standard Webhooks schedule, 27.6 hours in all.
var WebhookSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// WebhookMaxRetry is how many times a webhook delivery is retried.
var WebhookMaxRetry = len(WebhookSchedule)

// Payload is the payload of an import task: the bulk's id.
type Payload struct {
	BulkID uuid.UUID `json:"bulk_id"`
}

// DeliveryPayload is the payload of a delivery task: the delivery's id.
type DeliveryPayload struct {
	DeliveryID uuid.UUID `json:"delivery_id"`
}

// ImportTaskID is the TaskID of a bulk's import: the bulk id, so that a bulk
// is never queued twice at once.
func ImportTaskID(bulkID uuid.UUID) string { return bulkID.String() }

// DeliveryTaskID is the TaskID of a delivery, so that it is queued once at a
// time.
func DeliveryTaskID(deliveryID uuid.UUID) string { return "delivery:" + deliveryID.String() }

// DeliveryTaskType is the task type of a channel's deliveries.
func DeliveryTaskType(channel string) (string, error) {
	switch channel {
	case "email":
		return TypeEmailDelivery, nil
	case "webhook":
		return TypeWebhookDelivery, nil
	}
	return "", fmt.Errorf("tasks: no delivery task for channel %q", channel)
}

// NewImportTask makes the task that imports a bulk.
func NewImportTask(bulkID uuid.UUID) (*asynq.Task, error) {
	return newTask(TypeImport, bulkID, asynq.TaskID(ImportTaskID(bulkID)), asynq.Queue(QueueImports),
		asynq.MaxRetry(ImportMaxRetry), asynq.Timeout(ImportTimeout))
}

// NewDeliveryTask makes the task that makes a delivery on its channel.
func NewDeliveryTask(deliveryID uuid.UUID, channel string) (*asynq.Task, error) {
	typ, err := DeliveryTaskType(channel)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(DeliveryPayload{DeliveryID: deliveryID})
	if err != nil {
		return nil, fmt.Errorf("tasks: encode %s payload: %w", typ, err)
	}
	maxRetry, timeout := NotificationMaxRetry, NotificationTimeout
	if typ == TypeWebhookDelivery {
		maxRetry, timeout = WebhookMaxRetry, WebhookTimeout
	}
	return asynq.NewTask(typ, b, asynq.TaskID(DeliveryTaskID(deliveryID)), asynq.Queue(QueueNotifications),
		asynq.MaxRetry(maxRetry), asynq.Timeout(timeout)), nil
}

func newTask(typ string, bulkID uuid.UUID, opts ...asynq.Option) (*asynq.Task, error) {
	b, err := json.Marshal(Payload{BulkID: bulkID})
	if err != nil {
		return nil, fmt.Errorf("tasks: encode %s payload: %w", typ, err)
	}
	return asynq.NewTask(typ, b, opts...), nil
}

// ParseDeliveryPayload reads a delivery task's payload.
func ParseDeliveryPayload(t *asynq.Task) (DeliveryPayload, error) {
	var p DeliveryPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.DeliveryID == uuid.Nil {
		return DeliveryPayload{}, fmt.Errorf("tasks: bad %s payload: %w", t.Type(), errors.Join(err, asynq.SkipRetry))
	}
	return p, nil
}

// ParsePayload reads an import task's payload.
func ParsePayload(t *asynq.Task) (Payload, error) {
	var p Payload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.BulkID == uuid.Nil {
		return Payload{}, fmt.Errorf("tasks: bad %s payload: %w", t.Type(), errors.Join(err, asynq.SkipRetry))
	}
	return p, nil
}

// ErrGaveWay is what an import task returns when another import of its
// organization is running: it goes back to the queue for GaveWayDelay, which
// is not a failure and counts as no retry. (The import that ends moves the
// oldest waiting one up, so the delay is a fallback.)
var ErrGaveWay = errors.New("tasks: the import gave way to another import of its organization")

// GaveWayDelay is how long an import that gave way waits at most before it
// looks again (the import that ends first moves it up sooner).
const GaveWayDelay = 5 * time.Second

// IsFailure tells whether a task's error is a failure, counted as a retry:
// giving way is not.
func IsFailure(err error) bool { return !errors.Is(err, ErrGaveWay) }

// RetryDelay is the wait before retry n+1 of a task: an import that gave way
// waits GaveWayDelay; a webhook delivery follows WebhookSchedule; the others
// back off exponentially from 5 s to at most 5 min.
func RetryDelay(n int, err error, t *asynq.Task) time.Duration {
	if errors.Is(err, ErrGaveWay) {
		return GaveWayDelay
	}
	if t != nil && t.Type() == TypeWebhookDelivery {
		return WebhookSchedule[min(max(n, 0), len(WebhookSchedule)-1)]
	}
	d := 5 * time.Second << min(max(n, 0), 6)
	return min(d, 5*time.Minute)
}

// Queue enqueues tasks, and removes an import waiting in the queue.
type Queue struct {
	client    *asynq.Client
	inspector *asynq.Inspector
}

// NewQueue wraps an asynq client and inspector of the same Redis.
func NewQueue(client *asynq.Client, inspector *asynq.Inspector) *Queue {
	return &Queue{client: client, inspector: inspector}
}

// EnqueueImport queues the import of a bulk. A task already queued for it is
// success: TaskID makes a second enqueue harmless.
func (q *Queue) EnqueueImport(ctx context.Context, bulkID uuid.UUID) error {
	t, err := NewImportTask(bulkID)
	if err != nil {
		return err
	}
	return q.enqueue(ctx, t, bulkID)
}

// EnqueueDelivery queues a delivery of the outbox on its channel.
func (q *Queue) EnqueueDelivery(ctx context.Context, deliveryID uuid.UUID, channel string) error {
	t, err := NewDeliveryTask(deliveryID, channel)
	if err != nil {
		return err
	}
	return q.enqueue(ctx, t, deliveryID)
}

// CancelImport removes a bulk's import task from the queue, if it is
// waiting there; one already running (active) is left alone: it sees the
// bulk canceled and stops.
func (q *Queue) CancelImport(_ context.Context, bulkID uuid.UUID) error {
	state, err := q.importState(bulkID)
	if err != nil || state == 0 || state == asynq.TaskStateActive {
		return err
	}
	err = q.inspector.DeleteTask(QueueImports, ImportTaskID(bulkID))
	if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
		return fmt.Errorf("tasks: remove the import of bulk %s: %w", bulkID, err)
	}
	return nil
}

// RunImportNow moves a bulk's import task that waits for a later time (a
// retry, such as one that gave way to another import of its organization)
// to the queue, so that it runs as soon as a worker is free, and says
// whether it did. A task that is pending or running already, or none, is
// left as it is.
func (q *Queue) RunImportNow(_ context.Context, bulkID uuid.UUID) (bool, error) {
	state, err := q.importState(bulkID)
	if err != nil || (state != asynq.TaskStateRetry && state != asynq.TaskStateScheduled) {
		return false, err
	}
	err = q.inspector.RunTask(QueueImports, ImportTaskID(bulkID))
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("tasks: run the import of bulk %s now: %w", bulkID, err)
	}
	return true, nil
}

// importState is the state of a bulk's import task, 0 when there is none.
func (q *Queue) importState(bulkID uuid.UUID) (asynq.TaskState, error) {
	info, err := q.inspector.GetTaskInfo(QueueImports, ImportTaskID(bulkID))
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("tasks: the import of bulk %s: %w", bulkID, err)
	}
	return info.State, nil
}

func (q *Queue) enqueue(ctx context.Context, t *asynq.Task, id uuid.UUID) error {
	_, err := q.client.EnqueueContext(ctx, t)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) && !errors.Is(err, asynq.ErrDuplicateTask) {
		return fmt.Errorf("tasks: enqueue %s for %s: %w", t.Type(), id, err)
	}
	return nil
}
