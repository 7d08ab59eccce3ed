package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/workers/tasks"
)

// ServerConfig configures the worker's asynq server.
type ServerConfig struct {
	Concurrency     int
	ShutdownTimeout time.Duration
}

// NewServer returns the asynq server and the handler that routes each task
// type, ready for srv.Start(mux).
func NewServer(redis asynq.RedisConnOpt, cfg ServerConfig, im *Importer, d *Deliverer, log *slog.Logger) (*asynq.Server, *asynq.ServeMux) {
	srv := asynq.NewServer(redis, asynq.Config{
		Concurrency:     cfg.Concurrency,
		Queues:          tasks.QueueWeights,
		RetryDelayFunc:  tasks.RetryDelay,
		ShutdownTimeout: cfg.ShutdownTimeout,
		// An idle worker looks for new tasks this often (asynq's default is 1 s,
		// which a client polling a small bulk feels); 5 Redis calls a second
		// per idle worker process is cheap.
		TaskCheckInterval: 200 * time.Millisecond,
		ErrorHandler:      NewErrorHandler(im, d, log),
		Logger:            slogAdapter{log},
		LogLevel:          asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeImport, im)
	mux.Handle(tasks.TypeEmailDelivery, d)
	mux.Handle(tasks.TypeWebhookDelivery, d)
	return srv, mux
}

// NewErrorHandler returns the asynq error handler: a task that has used its
// last retry (or may not retry) is logged at ERROR whatever its type, since
// asynq itself says nothing, and an import's bulk is marked failed.
func NewErrorHandler(im *Importer, d *Deliverer, log *slog.Logger) asynq.ErrorHandler {
	return asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
		if t.Type() == tasks.TypeImport {
			im.FailExhausted(ctx, t, err) // logs, marks the bulk failed, tells the organization
			return
		}
		retried, ok := exhausted(ctx, err)
		if !ok {
			return
		}
		if t.Type() == tasks.TypeEmailDelivery || t.Type() == tasks.TypeWebhookDelivery {
			d.Abandon(ctx, t, err, retried)
			return
		}
		log.ErrorContext(ctx, "task failed for good", "type", t.Type(), "retried", retried, "err", err)
	})
}

// exhausted tells whether the task that failed with err will not run again,
// and how often it was retried.
func exhausted(ctx context.Context, err error) (retried int, ok bool) {
	retried, _ = asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	return retried, retried >= maxRetry || errors.Is(err, asynq.SkipRetry)
}

// slogAdapter lets asynq log through slog.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Debug(args ...any) { a.log.Debug(sprint(args)) }
func (a slogAdapter) Info(args ...any)  { a.log.Info(sprint(args)) }
func (a slogAdapter) Warn(args ...any)  { a.log.Warn(sprint(args)) }
func (a slogAdapter) Error(args ...any) { a.log.Error(sprint(args)) }
func (a slogAdapter) Fatal(args ...any) { a.log.Error(sprint(args)) }

func sprint(args []any) string { return fmt.Sprint(args...) }
