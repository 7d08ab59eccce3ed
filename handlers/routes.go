// Package handlers speaks bulkd's HTTP API: the route table, the bulk
// endpoints, health probes, authentication and the one place errors become
// responses.
package handlers

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/workers/tasks"
)

// Config is what the HTTP layer needs.
type Config struct {
	Store        *store.Store
	Queue        *tasks.Queue
	Checks       map[string]Pinger // readiness checks by name ("postgres", "redis")
	MaxBodyBytes int64
	// RequestTimeout bounds the database work of one API request.
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
}

// New returns the HTTP API.
func New(cfg Config) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(cfg.Log)
	e.Use(
		middleware.RequestID(),
		requestLog(cfg.Log),
		middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true}),
		middleware.SecureWithConfig(middleware.SecureConfig{
			XSSProtection: "0", ContentTypeNosniff: "nosniff", XFrameOptions: "DENY",
			ReferrerPolicy: "no-referrer", ContentSecurityPolicy: "",
		}),
	)

	health := &Health{checks: cfg.Checks}
	e.GET("/healthz", health.Live)
	e.GET("/readyz", health.Ready)

	bulks := &Bulks{store: cfg.Store, queue: cfg.Queue, maxBodyBytes: cfg.MaxBodyBytes, log: cfg.Log}
	api := e.Group("/api/v1", noStore)
	if cfg.RequestTimeout > 0 {
		api.Use(requestTimeout(cfg.RequestTimeout))
	}
	api.Use(authenticate(cfg.Store))
	if cfg.RateLimit > 0 {
		api.Use(rateLimit(cfg.RateLimit, cfg.RateLimitBurst))
	}
	api.POST("/bulk", bulks.Create)
	api.GET("/bulk/:id", bulks.Get)
	api.GET("/bulk/:id/errors", bulks.Errors)
	api.GET("/bulk/:id/results", bulks.Results)

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
