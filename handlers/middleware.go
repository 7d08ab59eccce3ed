package handlers

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/time/rate"

	"github.com/bulkd/bulkd/pkg/store"
)

// Keys of what authenticate records on the request.
const (
	orgKey    = "organization"
	apiKeyKey = "api_key_prefix"
)

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
			c.Set(apiKeyKey, store.APIKeyPrefix(strings.TrimSpace(key)))
			return next(c)
		}
	}
}

// rateLimit answers 429 with Retry-After to an API key that sends more than
// perSecond requests a second (after a burst), so that one client's loop
// cannot starve the others. It runs after authenticate: requests are counted
// per key, not per address, since one client may use many addresses and many
// clients one proxy.
func rateLimit(perSecond, burst int) echo.MiddlewareFunc {
	retryAfter := strconv.Itoa(int(math.Ceil(1 / float64(perSecond))))
	return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		Store: middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
			Rate: rate.Limit(perSecond), Burst: burst, ExpiresIn: 10 * time.Minute,
		}),
		IdentifierExtractor: func(c echo.Context) (string, error) {
			return c.Get(apiKeyKey).(string), nil
		},
		DenyHandler: func(c echo.Context, _ string, _ error) error {
			c.Response().Header().Set("Retry-After", retryAfter)
			return newError(http.StatusTooManyRequests, "authorization",
				fmt.Sprintf("Too many requests for this API key: at most %d a second; retry after %s s.", perSecond, retryAfter))
		},
	})
}

// requestTimeout bounds the database work of a request, so that a stuck query
// answers 503 rather than holding the connection and the client.
func requestTimeout(d time.Duration) echo.MiddlewareFunc {
	return middleware.ContextTimeoutWithConfig(middleware.ContextTimeoutConfig{
		Timeout: d,
		ErrorHandler: func(err error, _ echo.Context) error {
			if errors.Is(err, context.DeadlineExceeded) {
				return newError(http.StatusServiceUnavailable, "service",
					fmt.Sprintf("The request did not finish within %s; please try again shortly.", d))
			}
			return err
		},
	})
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
