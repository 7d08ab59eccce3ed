// Package handlers speaks bulkd's HTTP API: the route table, one file per
// resource, health probes and authentication, over request.go (what a
// request brings: bodies, encodings, query parameters), response.go (how
// answers are written) and errors.go (the one table from errors to
// answers). A handler decodes, calls one service method and answers.
package handlers

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/metrics"
	"github.com/bulkd/bulkd/pkg/records"
	"github.com/bulkd/bulkd/pkg/report"
	"github.com/bulkd/bulkd/pkg/store"
)

// Config is what the HTTP layer needs.
type Config struct {
	Store    *store.Store // authenticates API keys
	Bulks    *bulksvc.Service
	Webhooks *bulksvc.Webhooks
	Records  *records.Service // the records API; nil leaves it off
	// Reports verifies the signed links of report pages (/report/{id}),
	// which open without an API key; nil leaves the pages off.
	Reports *report.Links
	// Waiter tells waiting requests (?wait=) that their bulk finished; nil
	// makes a wait a plain read. MaxWait is the longest wait allowed.
	Waiter       *bulksvc.Waiter
	MaxWait      time.Duration
	Checks       map[string]Pinger // readiness checks by name ("postgres", "redis")
	MaxBodyBytes int64
	// RequestTimeout bounds each phase of the server's own work in one API
	// request (authentication, storing and queueing a submission, a read), not
	// the client's upload.
	RequestTimeout time.Duration
	// RateLimit is the API requests per second allowed to one API key, with
	// RateLimitBurst more at once; 0 turns the limit off. The count is kept per
	// API process.
	RateLimit      int
	RateLimitBurst int
	// QueueUI is asynqmon's handler, mounted at /admin/queues behind basic
	// auth; nil leaves the UI off.
	QueueUI       http.Handler
	AdminUsername string
	AdminPassword string
	Log           *slog.Logger
	// Metrics records the requests, the ones the rate limit refused and the
	// waiting clients; nil records nowhere.
	Metrics *metrics.Metrics
}

// New returns the HTTP API.
func New(cfg Config) *echo.Echo {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.Log = slog.New(LogRequestIDs(cfg.Log.Handler())) // as main wires it; tests may not
	m := metrics.Or(cfg.Metrics)
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(cfg.Log)
	e.Use(
		requestID,
		instrument(m), // outside requestLog, which settles the status
		requestLog(cfg.Log),
		middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true}),
		middleware.SecureWithConfig(middleware.SecureConfig{
			XSSProtection: "0", ContentTypeNosniff: "nosniff", XFrameOptions: "DENY",
			ReferrerPolicy: "no-referrer", ContentSecurityPolicy: "",
		}),
		headerLimit,
	)

	// Every GET route answers HEAD too (load balancers probe with HEAD);
	// net/http drops the body of a HEAD answer.
	get := func(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
		e.GET(path, h, m...)
		e.HEAD(path, h, m...)
	}
	health := newHealth(cfg.Checks, cfg.Log)
	get("/healthz", health.Live)
	get("/readyz", health.Ready)
	apidocRoutes(get)

	// The API's middleware is given route by route, not to a group: a group
	// with middleware registers catch-all routes, which would turn a wrong
	// method on a known path (405 with Allow) into a 404.
	api := []echo.MiddlewareFunc{noStore, authenticate(cfg.Store, cfg.RequestTimeout)}
	if cfg.RateLimit > 0 {
		api = append(api, rateLimit(cfg.RateLimit, cfg.RateLimitBurst, m.RateLimited))
	}
	bulkAPI := &Bulks{bulks: cfg.Bulks, maxBodyBytes: cfg.MaxBodyBytes, timeout: cfg.RequestTimeout,
		waiter: cfg.Waiter, maxWait: cfg.MaxWait, log: cfg.Log, waiting: m.WaitingClients}
	e.POST("/api/v1/bulk", bulkAPI.Create, api...)
	get("/api/v1/bulk", bulkAPI.List, api...)
	get("/api/v1/bulk/:id", bulkAPI.Get, api...)
	get("/api/v1/bulk/:id/errors", bulkAPI.Errors, api...)
	get("/api/v1/bulk/:id/results", bulkAPI.Results, api...)
	e.POST("/api/v1/bulk/:id/cancel", bulkAPI.Cancel, api...)

	hooks := &Webhooks{webhooks: cfg.Webhooks, timeout: cfg.RequestTimeout}
	e.PUT("/api/v1/webhook", hooks.Put, api...)
	get("/api/v1/webhook", hooks.Get, api...)
	e.DELETE("/api/v1/webhook", hooks.Delete, api...)
	e.POST("/api/v1/webhook/rotate", hooks.Rotate, api...)

	if cfg.Records != nil {
		recordRoutes(e, get, api, &Records{records: cfg.Records, timeout: cfg.RequestTimeout, maxBodyBytes: cfg.MaxBodyBytes, log: cfg.Log})
	}

	if cfg.Reports != nil {
		pages := &Reports{links: cfg.Reports, bulks: cfg.Bulks, timeout: cfg.RequestTimeout, log: cfg.Log}
		get("/report/:id", pages.Get)
	}

	if cfg.QueueUI != nil && cfg.AdminPassword != "" {
		ui := echo.WrapHandler(cfg.QueueUI)
		admin := e.Group("/admin/queues", basicAuth(cfg.AdminUsername, cfg.AdminPassword))
		admin.Any("", ui)
		admin.Any("/*", ui)
	}
	return e
}

// noStore keeps API answers, which carry customer data, out of caches.
func noStore(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "no-store")
		return next(c)
	}
}
