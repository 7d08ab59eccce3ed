package workers

import (
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
func NewServer(redis asynq.RedisConnOpt, cfg ServerConfig, im *Importer, n *Notifier, log *slog.Logger) (*asynq.Server, *asynq.ServeMux) {
	srv := asynq.NewServer(redis, asynq.Config{
		Concurrency:     cfg.Concurrency,
		Queues:          tasks.QueueWeights,
		RetryDelayFunc:  tasks.RetryDelay,
		ShutdownTimeout: cfg.ShutdownTimeout,
		// An idle worker looks for new tasks this often (asynq's default is 1 s,
		// which a client polling a small bulk feels); 5 Redis calls a second
		// per idle worker process is cheap.
		TaskCheckInterval: 200 * time.Millisecond,
		ErrorHandler:      asynq.ErrorHandlerFunc(im.FailExhausted),
		Logger:            slogAdapter{log},
		LogLevel:          asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeImport, im)
	mux.Handle(tasks.TypeBulkNotification, n)
	return srv, mux
}

// slogAdapter lets asynq log through slog.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Debug(args ...any) { a.log.Debug(sprint(args)) }
func (a slogAdapter) Info(args ...any)  { a.log.Info(sprint(args)) }
func (a slogAdapter) Warn(args ...any)  { a.log.Warn(sprint(args)) }
func (a slogAdapter) Error(args ...any) { a.log.Error(sprint(args)) }
func (a slogAdapter) Fatal(args ...any) { a.log.Error(sprint(args)) }

func sprint(args []any) string { return fmt.Sprint(args...) }
