package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// Pinger is a dependency /readyz checks.
type Pinger func(ctx context.Context) error

// Health serves the liveness and readiness probes.
type Health struct {
	checks map[string]Pinger
}

// Live answers 200 while the process serves HTTP.
func (h *Health) Live(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// Ready answers 200 when Postgres and Redis answer, 503 naming those that
// do not.
func (h *Health) Ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	failed := map[string][]string{}
	for name, ping := range h.checks {
		if err := ping(ctx); err != nil {
			failed[name] = []string{name + " is unreachable."}
		}
	}
	if len(failed) > 0 {
		return &Error{Status: http.StatusServiceUnavailable, Message: "Not ready.", Errors: failed}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}
