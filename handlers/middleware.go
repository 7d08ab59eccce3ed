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
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/logattr"
	"github.com/bulkd/bulkd/pkg/metrics"
	"github.com/bulkd/bulkd/pkg/store"
)

// Keys of what authenticate records on the request.
const (
	orgKey    = "organization"
	apiKeyKey = "api_key_prefix"
)

// authenticate admits requests that carry a valid API key and records its
// organization; every query a handler makes is scoped to it. A credential
// that cannot be a key is refused before any query, so that no header can
// make the database fail.
func authenticate(s *store.Store, timeout time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			header := c.Request().Header.Values(echo.HeaderAuthorization)
			if len(header) > 1 {
				return errInvalidKey // one request, one credential (RFC 9110 allows one field)
			}
			key, ok := bearerToken(c.Request().Header.Get(echo.HeaderAuthorization))
			if !ok {
				return newError(http.StatusUnauthorized, "authorization", "An API key is required in the Authorization header, as \"Bearer\" and the key.")
			}
			if !store.WellFormedAPIKey(key) {
				return errInvalidKey
			}
			org, err := within(c.Request().Context(), timeout, func(ctx context.Context) (models.Organization, error) {
				return s.Authenticate(ctx, key)
			})
			if errors.Is(err, store.ErrNotFound) {
				return errInvalidKey
			}
			if err != nil {
				return err
			}
			c.Set(orgKey, org)
			c.Set(apiKeyKey, store.APIKeyPrefix(key))
			return next(c)
		}
	}
}

var errInvalidKey = newError(http.StatusUnauthorized, "authorization", "The API key is invalid or revoked.")

// bearerToken reads the credentials of an Authorization header with the
// Bearer scheme: the scheme is case-insensitive and followed by one or more
// spaces or tabs (RFC 9110, section 11). ok is false for no header, another
// scheme or no credentials.
func bearerToken(header string) (token string, ok bool) {
	const scheme = "bearer"
	if len(header) <= len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		return "", false
	}
	rest := header[len(scheme):]
	token = strings.TrimLeft(rest, " \t")
	if len(token) == len(rest) { // "Bearerxyz" is another scheme
		return "", false
	}
	token = strings.TrimRight(token, " \t")
	return token, token != ""
}

// work runs fn, one phase of the server's own work (queries, the queue),
// within timeout, so that a stuck dependency answers 503 rather than holding
// the connection and the client. The phases are bounded one by one, not the
// request as a whole: reading the client's upload is bounded by the server's
// read timeout instead, so a slow link does not count against the database.
func work(ctx context.Context, timeout time.Duration, fn func(ctx context.Context) error) error {
	if timeout <= 0 {
		return fn(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := fn(ctx)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// Whatever failed, it failed because the phase ran out of time.
		return timeoutError(timeout)
	}
	return err
}

// within runs fn, one call of the server's own work, as work does, and
// returns what it returns.
func within[T any](ctx context.Context, timeout time.Duration, fn func(ctx context.Context) (T, error)) (T, error) {
	var out T
	err := work(ctx, timeout, func(ctx context.Context) (err error) {
		out, err = fn(ctx)
		return err
	})
	return out, err
}

// rateLimit answers 429 with Retry-After to an API key that sends more than
// perSecond requests a second (after a burst), so that one client's loop
// cannot starve the others. It runs after authenticate: requests are counted
// per key, not per address, since one client may use many addresses and many
// clients one proxy.
func rateLimit(perSecond, burst int, refused prometheus.Counter) echo.MiddlewareFunc {
	retryAfter := strconv.Itoa(int(math.Ceil(1 / float64(perSecond))))
	return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		Store: middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
			Rate: rate.Limit(perSecond), Burst: burst, ExpiresIn: 10 * time.Minute,
		}),
		IdentifierExtractor: func(c echo.Context) (string, error) {
			return c.Get(apiKeyKey).(string), nil
		},
		DenyHandler: func(c echo.Context, _ string, _ error) error {
			refused.Inc()
			c.Response().Header().Set("Retry-After", retryAfter)
			return newError(http.StatusTooManyRequests, "authorization",
				fmt.Sprintf("Too many requests for this API key: at most %d a second; retry after %s s.", perSecond, retryAfter))
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

// instrument records every request by its route's pattern (c.Path(), never
// the path asked for, which carries ids), method and status, once the
// handlers inside have settled the status. A method the route does not
// serve (the router then sets the Allow header's value) is recorded as
// "other": it is any client's choice, and would otherwise add a series per
// route, method and status to an unauthenticated scan. An OPTIONS
// preflight, which the router answers, keeps its name.
func instrument(m *metrics.Metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			method := c.Request().Method
			if _, notServed := c.Get(echo.ContextKeyHeaderAllow).(string); notServed && method != http.MethodOptions {
				method = "other"
			}
			m.ObserveRequest(c.Path(), method, c.Response().Status, time.Since(start))
			return err
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

// maxRequestIDLen is the longest X-Request-Id taken from a client.
const maxRequestIDLen = 64

// requestID gives every request an id, answered in X-Request-Id and carried
// in the request's context, so that each line logged with that context
// names it (see LogRequestIDs). A client's own id is kept only when it is
// short and of safe characters (letters, digits, ".", "_", ":", "-"):
// anything else would let any client, even without a key, write into the
// logs.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		id := r.Header.Get(echo.HeaderXRequestID)
		if !safeRequestID(id) {
			id = uuid.NewString()
			r.Header.Set(echo.HeaderXRequestID, id)
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		c.SetRequest(r.WithContext(logattr.With(r.Context(), slog.String("request_id", id))))
		return next(c)
	}
}

// LogRequestIDs wraps a log handler so that every record logged with the
// context of a request, by a handler or by the services it calls, names the
// request: request_id, the id it was answered with (logattr.Handler, which
// adds whatever a context carries).
func LogRequestIDs(h slog.Handler) slog.Handler { return logattr.Handler(h) }

func safeRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// MaxHeaderBytes is the largest request line and headers bulkd reads. The
// HTTP server is given more room (its own limit answers in plain text), so
// that this limit answers in the documented JSON.
const MaxHeaderBytes = 64 << 10

// headerLimit answers 431 to a request whose request line and headers,
// counted as they were sent, exceed MaxHeaderBytes.
func headerLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4 + len(r.Host) // spaces and CRLF; Host is kept out of Header
		for name, values := range r.Header {
			for _, v := range values {
				n += len(name) + len(v) + 4 // ": " and CRLF
			}
		}
		if n > MaxHeaderBytes {
			return newError(http.StatusRequestHeaderFieldsTooLarge, "headers",
				"The request headers must not be larger than "+byteSize(MaxHeaderBytes)+".")
		}
		return next(c)
	}
}
