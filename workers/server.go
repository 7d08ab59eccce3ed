package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/workers/tasks"
)

// ServerConfig configures the worker's asynq servers.
type ServerConfig struct {
	// Concurrency is how many bulks the process imports at once.
	Concurrency int
	// DeliveryConcurrency is how many deliveries (emails, webhooks) it makes
	// at once. Deliveries wait on other servers for most of their time, so
	// they have slots of their own: a receiver that answers slowly, or an
	// SMTP server that stalls, holds a delivery slot, never an import's.
	DeliveryConcurrency int
	ShutdownTimeout     time.Duration
}

// How often an idle asynq server looks for a task. One organization's bulks
// import one after another, each handed to whichever server next finds it
// in the queue, so the imports server's wait is paid between every two
// bulks of a tenant: at 200 ms (asynq sleeping 100–300 ms) one tenant's
// default bulkbench run was 13 676 records/s, at 25 ms 18 462 (medians of 5
// interleaved pairs, 2026-12-04, docs/performance.md), for 40 Redis
// calls a second per idle server instead of 5. Deliveries are not handed
// on; asynq's default (1 s) would be felt by a client waiting for a small
// bulk's email, 200 ms is not.
const (
	importCheckInterval   = 25 * time.Millisecond
	deliveryCheckInterval = 200 * time.Millisecond
)

// Servers are a worker process's two asynq servers, one for the imports
// queue and one for the notifications queue, each with its own slots.
type Servers struct {
	imports, deliveries    *asynq.Server
	importMux, deliveryMux *asynq.ServeMux
}

// NewServers returns the worker's servers, ready to Start.
func NewServers(redis asynq.RedisConnOpt, cfg ServerConfig, im *Importer, d *Deliverer, log *slog.Logger) *Servers {
	server := func(queue string, concurrency int, checkEvery time.Duration) *asynq.Server {
		return asynq.NewServer(redis, asynq.Config{
			Concurrency:    concurrency,
			Queues:         map[string]int{queue: 1},
			RetryDelayFunc: tasks.RetryDelay,
			IsFailure:      tasks.IsFailure,
			// Retries whose time has come (an import that gave way waits
			// tasks.GaveWayDelay) are moved to the queue this often; asynq's
			// default is 5 s.
			DelayedTaskCheckInterval: time.Second,
			ShutdownTimeout:          cfg.ShutdownTimeout,
			// An idle server looks for new tasks every checkEvery (asynq
			// sleeps from half of it to one and a half times it).
			TaskCheckInterval: checkEvery,
			ErrorHandler:      NewErrorHandler(im, d, log),
			Logger:            slogAdapter{log},
			LogLevel:          asynq.WarnLevel,
		})
	}
	s := &Servers{
		imports:     server(tasks.QueueImports, cfg.Concurrency, importCheckInterval),
		deliveries:  server(tasks.QueueNotifications, cfg.DeliveryConcurrency, deliveryCheckInterval),
		importMux:   asynq.NewServeMux(),
		deliveryMux: asynq.NewServeMux(),
	}
	s.importMux.Handle(tasks.TypeImport, im)
	s.deliveryMux.Handle(tasks.TypeEmailDelivery, d)
	s.deliveryMux.Handle(tasks.TypeWebhookDelivery, d)
	return s
}

// Start starts both servers; if the second cannot start, the first is
// stopped again.
func (s *Servers) Start() error {
	if err := s.imports.Start(s.importMux); err != nil {
		return fmt.Errorf("start the import server: %w", err)
	}
	if err := s.deliveries.Start(s.deliveryMux); err != nil {
		s.imports.Shutdown()
		return fmt.Errorf("start the delivery server: %w", err)
	}
	return nil
}

// Shutdown stops both servers at once, each waiting up to ShutdownTimeout
// for its running tasks before handing them back to the queue.
func (s *Servers) Shutdown() {
	var wg sync.WaitGroup
	for _, srv := range []*asynq.Server{s.imports, s.deliveries} {
		wg.Add(1)
		go func() { defer wg.Done(); srv.Shutdown() }()
	}
	wg.Wait()
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
