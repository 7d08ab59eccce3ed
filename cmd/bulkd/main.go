// Command bulkd imports customer data in bulk: an HTTP API that stores
// submissions, and workers that import them from a Redis queue into Postgres.
//
//	bulkd serve                  API and worker in one process
//	bulkd api | worker           either half, to scale apart
//	bulkd migrate                apply the schema migrations
//	bulkd org create --name N --notify-email E
//	bulkd org webhook --org ID --url URL
//	bulkd org list | org update --org ID [--name N] [--notify-email E]
//	bulkd apikey create --org ID | apikey list --org ID
//	bulkd apikey revoke --prefix P
//	bulkd bulk retry ID
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net/http"
	"net/mail"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/bulkd/bulkd/configs"
	"github.com/bulkd/bulkd/handlers"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/mailer"
	"github.com/bulkd/bulkd/pkg/metrics"
	"github.com/bulkd/bulkd/pkg/records"
	"github.com/bulkd/bulkd/pkg/report"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/webhook"
	"github.com/bulkd/bulkd/workers"
	"github.com/bulkd/bulkd/workers/tasks"
)

const usage = `usage: bulkd <command>

commands:
  serve                                      run the API and a worker in one process
  api                                        run the HTTP API
  worker                                     run a worker
  migrate                                    apply the database migrations
  org create --name N --notify-email E       create an organization, print its id
  org webhook --org ID --url URL             register the organization's webhook, print its secret (shown once)
  org list [--json]                          list the organizations, with their keys and bulks
  org update --org ID [--name N] [--notify-email E] [--json]
                                             rename an organization or change where its emails go
  apikey create --org ID                     create an API key, print it (shown once)
  apikey list --org ID [--json]              list an organization's keys: prefix, created, last used, revoked
  apikey revoke --prefix P                   revoke a key: P is its first 12 characters or the whole key
  bulk retry ID [--json]                     import a failed bulk again; its organization is told of the new end

configuration: environment variables, see README.md
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bulkd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cfg, err := configs.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	// Each line logged in a request names it (request_id).
	log := slog.New(handlers.LogRequestIDs(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel})))

	cmd := strings.Join(args[:min(2, len(args))], " ")
	switch {
	case args[0] == "serve" || args[0] == "api" || args[0] == "worker":
		return serve(ctx, cfg, log, args[0])
	case args[0] == "migrate":
		return withStore(ctx, cfg, func(s *store.Store) error {
			if err := s.Migrate(ctx); err != nil {
				return err
			}
			log.Info("migrations applied")
			return nil
		})
	case cmd == "org create":
		fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
		name := fs.String("name", "", "organization name")
		notify := fs.String("notify-email", "", "address that bulk notifications go to")
		if err := fs.Parse(args[2:]); err != nil {
			return err
		}
		if *name == "" || *notify == "" {
			return errors.New("org create: --name and --notify-email are required")
		}
		if addr, err := mail.ParseAddress(*notify); err != nil || addr.Address != *notify {
			return errors.New("org create: --notify-email must be a plain email address such as ops@example.com")
		}
		return withStore(ctx, cfg, func(s *store.Store) error {
			org, err := s.CreateOrganization(ctx, *name, *notify)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, org.ID)
			return nil
		})
	case cmd == "org webhook":
		fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
		orgID := fs.String("org", "", "organization id")
		url := fs.String("url", "", "the endpoint's https URL")
		if err := fs.Parse(args[2:]); err != nil {
			return err
		}
		id, err := uuid.Parse(*orgID)
		if err != nil || *url == "" {
			return errors.New("org webhook: --org must be an organization id and --url the endpoint's https URL")
		}
		return withStore(ctx, cfg, func(s *store.Store) error {
			hooks, err := newWebhooks(s, cfg, log)
			if err != nil {
				return err
			}
			if _, err := s.Organization(ctx, id); err != nil {
				return fmt.Errorf("org webhook: no organization %s", id)
			}
			e, _, err := hooks.Put(ctx, id, *url)
			var urlErr *webhook.URLError
			switch {
			case errors.As(err, &urlErr):
				return fmt.Errorf("org webhook: %s", urlErr.Reason)
			case errors.Is(err, bulksvc.ErrWebhooksOff):
				return errors.New("org webhook: set WEBHOOK_SECRET_KEY (openssl rand -base64 32) to use webhooks")
			case err != nil:
				return err
			}
			fmt.Fprintln(stdout, "url", e.URL)
			if e.Secret != "" {
				fmt.Fprintln(stdout, "secret", e.Secret) // shown once
			} else {
				fmt.Fprintln(stdout, "secret unchanged (POST /api/v1/webhook/rotate makes a new one)")
			}
			return nil
		})
	case cmd == "apikey create":
		fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
		orgID := fs.String("org", "", "organization id")
		if err := fs.Parse(args[2:]); err != nil {
			return err
		}
		id, err := uuid.Parse(*orgID)
		if err != nil {
			return errors.New("apikey create: --org must be an organization id")
		}
		return withStore(ctx, cfg, func(s *store.Store) error {
			key, err := s.CreateAPIKey(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("apikey create: no organization %s", id)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, key)
			return nil
		})
	case cmd == "org list":
		return orgList(ctx, cfg, args[2:], stdout)
	case cmd == "org update":
		return orgUpdate(ctx, cfg, args[2:], stdout)
	case cmd == "apikey list":
		return apikeyList(ctx, cfg, args[2:], stdout)
	case cmd == "bulk retry":
		return bulkRetry(ctx, cfg, log, args[2:], stdout)
	case cmd == "apikey revoke":
		fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
		prefix := fs.String("prefix", "", "the key's first 12 characters, or the whole key")
		if err := fs.Parse(args[2:]); err != nil {
			return err
		}
		return withStore(ctx, cfg, func(s *store.Store) error {
			switch err := s.RevokeAPIKey(ctx, *prefix); {
			case errors.Is(err, store.ErrAPIKeyPrefix):
				return fmt.Errorf("apikey revoke: --prefix must be the key's first 12 characters or the whole key, not %d characters; nothing was revoked", len(*prefix))
			case errors.Is(err, store.ErrNotFound):
				return errors.New("apikey revoke: no active key matches; pass the key's first 12 characters or the whole key")
			case err != nil:
				return err
			}
			fmt.Fprintln(stdout, "revoked")
			return nil
		})
	}
	return fmt.Errorf("unknown command %q\n\n%s", strings.Join(args, " "), usage)
}

// withStore opens the database (migrated) for a one-off command.
func withStore(ctx context.Context, cfg configs.Config, f func(*store.Store) error) error {
	s, err := store.Open(ctx, cfg.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		return err
	}
	return f(s)
}

// serve runs the API, the worker, or both, until ctx ends, then shuts down
// within cfg.ShutdownTimeout: the HTTP server stops taking requests and
// finishes those in flight; the worker finishes its tasks or hands them back
// to the queue.
func serve(ctx context.Context, cfg configs.Config, log *slog.Logger, mode string) error {
	log.Info("starting bulkd", "mode", mode, "config", cfg)
	s, err := store.Open(ctx, cfg.DatabaseURL, cfg.DBMaxConns)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		return err
	}
	// One Redis connection option for everything that talks to Redis (the
	// queue's client, server and inspector, the queue UI), in whichever form
	// REDIS_URL takes: one server, Sentinel or Cluster.
	redisOpt := cfg.Redis.Asynq()
	// go-redis (ours and asynq's clients) logs through one package-wide
	// logger, plain text on stderr by default: while Redis is down that is
	// a line per failed dial among the JSON ones.
	redis.SetLogger(redisLogger{log: log, secrets: cfg.Redis.Secrets()})
	// asynq's queue collector says that a scrape could not reach Redis with
	// the standard logger: that too becomes a JSON line.
	stdlog.SetFlags(0)
	stdlog.SetOutput(libraryLog{log: log, secrets: cfg.Redis.Secrets()})
	rdb := cfg.Redis.NewClient()
	defer rdb.Close()
	client := asynq.NewClientFromRedisClient(rdb)
	inspector := asynq.NewInspectorFromRedisClient(rdb)
	queue := tasks.NewQueue(client, inspector)
	// One registry for the process: bulkd's own metrics, the queue's (read
	// from Redis at each scrape), Go's and the process's.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		metrics.Unchecked(asynqmetrics.NewQueueMetricsCollector(inspector)))
	m := metrics.New(reg)
	svc := bulksvc.New(s, queue, log, m)
	hooks, err := newWebhooks(s, cfg, log)
	if err != nil {
		return err
	}

	// Report links open a bulk's report page without an API key; without a
	// secret to sign them, emails point at the API instead.
	var reports *report.Links
	if cfg.ReportSecret != nil {
		reports = report.NewLinks(cfg.ReportSecret, cfg.ReportLinkTTL, cfg.BaseURL)
	} else if mode != "api" {
		log.Warn("REPORT_SECRET is not set: completion emails carry no link to a report page, only the API's errors URL (openssl rand -base64 32 makes one)")
	}

	g, ctx := errgroup.WithContext(ctx)
	if cfg.MetricsAddr != "" {
		serveMetrics(ctx, g, cfg, reg, log)
	}
	if mode == "serve" || mode == "worker" {
		sender, err := mailer.New(mailer.Config{
			Host: cfg.SMTPHost, Port: cfg.SMTPPort, Username: cfg.SMTPUsername, Password: cfg.SMTPPassword,
			TLS: cfg.SMTPTLS, From: cfg.MailFrom, Dir: cfg.MailDir,
		}, log)
		if err != nil {
			return err
		}
		im := workers.NewImporter(svc, log)
		srv := workers.NewServers(redisOpt, workers.ServerConfig{
			Concurrency: cfg.WorkerConcurrency, DeliveryConcurrency: cfg.DeliveryConcurrency, ShutdownTimeout: cfg.ShutdownTimeout,
		}, im, workers.NewDeliverer(workers.DelivererConfig{
			Store: s, Bulks: svc, Mail: sender, Webhooks: hooks, Reports: reports, BaseURL: cfg.BaseURL, Log: log, Metrics: m,
		}), log)
		if err := srv.Start(); err != nil {
			return fmt.Errorf("start worker: %w", err)
		}
		rec := workers.NewReconciler(svc, s, queue, inspector,
			workers.ReconcileConfig{Interval: cfg.ReconcileInterval, Retention: cfg.Retention}, log)
		g.Go(func() error { rec.Run(ctx); return nil })
		g.Go(func() error {
			<-ctx.Done()
			srv.Shutdown() // waits up to ShutdownTimeout for running tasks, then hands them back
			return nil
		})
	}
	if mode == "serve" || mode == "api" {
		waiter := bulksvc.NewWaiter(s, bulksvc.DefaultRecheckInterval, log)
		g.Go(func() error { waiter.Run(ctx); return nil })
		var ui *asynqmon.HTTPHandler
		if cfg.AdminPassword != "" {
			// With PROMETHEUS_URL its metrics view charts the queues from the
			// Prometheus that scrapes every process's METRICS_ADDR.
			ui = asynqmon.New(asynqmon.Options{RootPath: "/admin/queues", RedisConnOpt: redisOpt, PrometheusAddress: cfg.PrometheusURL})
			defer ui.Close()
		}
		e := handlers.New(handlers.Config{
			Store:    s,
			Bulks:    svc,
			Webhooks: hooks,
			Records:  records.New(s),
			Reports:  reports,
			Waiter:   waiter,
			MaxWait:  cfg.MaxWait,
			Checks: map[string]handlers.Pinger{
				"postgres": s.Ping,
				"redis":    func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
			},
			MaxBodyBytes:   cfg.MaxBodyBytes,
			RequestTimeout: cfg.RequestTimeout,
			RateLimit:      cfg.RateLimit,
			RateLimitBurst: cfg.RateLimitBurst,
			QueueUI:        queueUI(ui),
			AdminUsername:  cfg.AdminUsername,
			AdminPassword:  cfg.AdminPassword,
			Log:            log,
			Metrics:        m,
		})
		httpSrv := &http.Server{
			Addr:              cfg.HTTPAddr,
			Handler:           e,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       2 * time.Minute, // a 16 MiB body over a slow link
			WriteTimeout:      configs.HTTPWriteTimeout,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    1 << 20, // room above handlers.MaxHeaderBytes, which answers in JSON
		}
		listen(ctx, g, httpSrv, "http", cfg.ShutdownTimeout, log.With("addr", cfg.HTTPAddr))
	}
	err = g.Wait()
	log.Info("bulkd stopped", "mode", mode)
	return err
}

// serveMetrics serves the registry's metrics at /metrics on METRICS_ADDR,
// a listener of its own (the public API's port never exposes them), until
// ctx ends.
func serveMetrics(ctx context.Context, g *errgroup.Group, cfg configs.Config, reg *prometheus.Registry, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Addr: cfg.MetricsAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: time.Minute}
	listen(ctx, g, srv, "metrics", cfg.ShutdownTimeout, log.With("addr", cfg.MetricsAddr, "path", "/metrics"))
}

// listen serves srv in g until ctx ends, then shuts it down within timeout;
// what names it in its errors and its "listening" line.
func listen(ctx context.Context, g *errgroup.Group, srv *http.Server, what string, timeout time.Duration, log *slog.Logger) {
	g.Go(func() error {
		log.Info("listening", "server", what)
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		return srv.Shutdown(shutdownCtx)
	})
}

// newWebhooks returns the manager of the organizations' endpoints; without
// WEBHOOK_SECRET_KEY webhooks are off.
func newWebhooks(s *store.Store, cfg configs.Config, log *slog.Logger) (*bulksvc.Webhooks, error) {
	var sealer *webhook.Sealer
	if cfg.WebhookSecretKey != nil {
		var err error
		if sealer, err = webhook.NewSealer(cfg.WebhookSecretKey); err != nil {
			return nil, fmt.Errorf("WEBHOOK_SECRET_KEY: %w", err)
		}
	}
	return bulksvc.NewWebhooks(s, sealer, webhook.Policy{AllowPrivate: cfg.WebhookAllowPrivate}, log), nil
}

// queueUI keeps a nil *asynqmon.HTTPHandler from becoming a non-nil interface.
func queueUI(ui *asynqmon.HTTPHandler) http.Handler {
	if ui == nil {
		return nil
	}
	return ui
}

// libraryLog writes what libraries print with the standard logger as WARN
// lines, with Redis' passwords masked.
type libraryLog redisLogger

// Write implements io.Writer for log.SetOutput: each call is one line.
func (l libraryLog) Write(p []byte) (int, error) {
	l.log.Warn("library", "detail", redisLogger(l).mask(strings.TrimSpace(string(p))))
	return len(p), nil
}

// redisLogger writes go-redis' own lines through slog, at WARN: they tell of
// connections that failed (a dial, a hook, a close). They name addresses,
// never credentials; the password is masked all the same in case a future
// version prints a URL.
type redisLogger struct {
	log     *slog.Logger
	secrets []string // Redis' passwords, masked wherever they appear
}

// Printf implements go-redis' logging interface.
func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis client", "detail", l.mask(strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")))
}

// mask hides Redis' passwords wherever they appear in msg.
func (l redisLogger) mask(msg string) string {
	for _, secret := range l.secrets {
		msg = strings.ReplaceAll(msg, secret, "xxxxx")
	}
	return msg
}
