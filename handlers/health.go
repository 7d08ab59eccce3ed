package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// Pinger is a dependency /readyz checks.
type Pinger func(ctx context.Context) error

// Health serves the liveness and readiness probes.
type Health struct {
	checks map[string]Pinger
	log    *slog.Logger

	mu   sync.Mutex
	down map[string]bool // dependencies the last probe found down
}

func newHealth(checks map[string]Pinger, log *slog.Logger) *Health {
	return &Health{checks: checks, log: log, down: map[string]bool{}}
}

// Live answers 200 while the process serves HTTP.
func (h *Health) Live(c echo.Context) error {
	return respond(c, http.StatusOK, map[string]string{"status": "ok"})
}

// Ready answers 200 when Postgres and Redis answer, 503 naming those that
// do not. A probe that fails is the answer, not an error of bulkd: it is
// logged once when a dependency goes down and once when it is back, not on
// every probe, so that a load balancer probing an outage does not flood the
// logs.
func (h *Health) Ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	names := make([]string, 0, len(h.checks))
	for name := range h.checks {
		names = append(names, name)
	}
	sort.Strings(names)
	failed := map[string][]string{}
	for _, name := range names {
		err := h.checks[name](ctx)
		h.record(ctx, name, err)
		if err != nil {
			failed[name] = []string{name + " is unreachable."}
		}
	}
	if len(failed) > 0 {
		return respond(c, http.StatusServiceUnavailable, &Error{Message: "Not ready.", Errors: failed})
	}
	return respond(c, http.StatusOK, map[string]string{"status": "ok"})
}

// record logs a change of a dependency's state.
func (h *Health) record(ctx context.Context, name string, err error) {
	h.mu.Lock()
	changed := h.down[name] != (err != nil)
	h.down[name] = err != nil
	h.mu.Unlock()
	switch {
	case !changed:
	case err != nil:
		h.log.WarnContext(ctx, "not ready", "dependency", name, "err", err)
	default:
		h.log.InfoContext(ctx, "ready again", "dependency", name)
	}
}
