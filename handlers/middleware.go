package handlers

import (
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/bulkd/bulkd/pkg/store"
)

const orgKey = "organization"

// authenticate admits requests that carry a valid API key and records its
// organization; every query a handler makes is scoped to it.
func authenticate(s *store.Store) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			key, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
			if !ok || strings.TrimSpace(key) == "" {
				return newError(http.StatusUnauthorized, "authorization", "An API key is required in the Authorization header, as \"Bearer\" and the key.")
			}
			org, err := s.Authenticate(c.Request().Context(), strings.TrimSpace(key))
			if errors.Is(err, store.ErrNotFound) {
				return newError(http.StatusUnauthorized, "authorization", "The API key is invalid or revoked.")
			}
			if err != nil {
				return err
			}
			c.Set(orgKey, org)
			return next(c)
		}
	}
}

// basicAuth guards the queue UI, which has no authentication of its own.
func basicAuth(username, password string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			u, p, ok := c.Request().BasicAuth()
			userOK := subtle.ConstantTimeCompare([]byte(u), []byte(username)) == 1
			passOK := subtle.ConstantTimeCompare([]byte(p), []byte(password)) == 1
			if !ok || !userOK || !passOK {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Basic realm="bulkd queues"`)
				return &Error{Status: http.StatusUnauthorized, Message: "Unauthorized."}
			}
			return next(c)
		}
	}
}

// requestLog writes one line per request: no query string, body or headers,
// which may carry personal data or keys.
func requestLog(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err) // settle the status before logging it
			}
			attrs := []any{
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID),
				"method", c.Request().Method,
				"route", c.Path(),
				"status", c.Response().Status,
				"duration_ms", time.Since(start).Milliseconds(),
			}
			if org := organization(c); org.ID != uuid.Nil {
				attrs = append(attrs, "organization_id", org.ID)
			}
			log.InfoContext(c.Request().Context(), "request", attrs...)
			return nil
		}
	}
}
