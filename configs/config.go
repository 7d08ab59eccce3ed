// Package configs loads bulkd's configuration from the environment, with
// defaults that run on a developer's machine, and checks it before anything
// starts.
package configs

import (
	"github.com/bulkd/bulkd/pkg/redisconn"

	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Config is bulkd's whole configuration.
type Config struct {
	DatabaseURL    string
	DBMaxConns     int32
	RedisURL       string
	Redis          redisconn.Options // REDIS_URL, read
	HTTPAddr       string
	BaseURL        string
	MaxBodyBytes   int64
	RequestTimeout time.Duration
	RateLimit      int // API requests per second per key; 0 turns the limit off
	RateLimitBurst int
	SMTPHost       string
	SMTPPort       int
	SMTPUsername   string
	SMTPPassword   string
	SMTPTLS        string
	MailFrom       string
	// MailDir, without SMTP_HOST, is where each email is also written, as
	// an .eml file and an .html file (make run sets it to .local/mail).
	MailDir       string
	AdminUsername string
	AdminPassword string
	// WorkerConcurrency is how many bulks a worker process imports at once.
	// An import keeps a CPU busy (parsing) or waits on Postgres, and one
	// organization's imports write in turn, so more than one per CPU only
	// adds memory and contention: measured with bulkbench, 2 per process on
	// 2 CPUs imported a third faster than 10, in half the memory.
	WorkerConcurrency int
	// DeliveryConcurrency is how many deliveries (emails, webhooks) a worker
	// process makes at once, in slots of their own: a slow receiver never
	// holds an import's slot.
	DeliveryConcurrency int
	ShutdownTimeout     time.Duration
	ReconcileInterval   time.Duration
	// Retention is how long a finished bulk's rows as submitted and its
	// results (personal data) are kept; the workers' reconcilers then erase
	// them, keeping the bulk's counts and the records it imported.
	Retention time.Duration
	// WebhookSecretKey seals the webhooks' secrets in the database (32
	// bytes, given as base64); nil turns webhooks off.
	WebhookSecretKey []byte
	// WebhookAllowPrivate lets webhooks go to http and to loopback, private
	// and link-local addresses: for development and tests only.
	WebhookAllowPrivate bool
	// ReportSecret signs the links to report pages that completion emails
	// carry (32 bytes, given as base64); nil leaves the link out.
	ReportSecret []byte
	// ReportLinkTTL is how long a report link opens after its email is sent.
	ReportLinkTTL time.Duration
	// MaxWait is the longest wait a client may ask for (?wait=) on a bulk to
	// finish; 0 turns waiting off.
	MaxWait time.Duration
	// MetricsAddr is where the process serves its Prometheus metrics
	// (/metrics), on a listener of its own so that the public API's port
	// never exposes them; "" turns them off.
	MetricsAddr string
	// PrometheusURL is the Prometheus server that the queue UI's charts
	// query; "" leaves the charts empty.
	PrometheusURL string
	LogLevel      slog.Level
}

// The bound of MAX_WAIT: a waiting answer must fit in the HTTP server's
// write timeout (HTTPWriteTimeout, how long the API takes to answer a
// request once its headers are read), with WaitHeadroom left for the
// request's own work (authentication, storing the bulk, reading its
// results). MaxMaxWait is the largest MAX_WAIT.
const (
	HTTPWriteTimeout = 2 * time.Minute
	WaitHeadroom     = 30 * time.Second
	MaxMaxWait       = HTTPWriteTimeout - WaitHeadroom
)

// Load reads the configuration through getenv (os.Getenv in main, a map in
// tests). The error names every variable that is wrong.
func Load(getenv func(string) string) (Config, error) {
	l := loader{getenv: getenv}
	c := Config{
		DatabaseURL:         l.str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bulkd?sslmode=disable"),
		DBMaxConns:          int32(l.int("DB_MAX_CONNS", 0, 0, 1000)),
		RedisURL:            l.str("REDIS_URL", "redis://127.0.0.1:6379/0"),
		HTTPAddr:            l.str("HTTP_ADDR", ":8080"),
		BaseURL:             strings.TrimRight(l.str("BASE_URL", "http://localhost:8080"), "/"),
		MaxBodyBytes:        int64(l.int("MAX_BODY_BYTES", 16<<20, 1024, 1<<30)),
		RequestTimeout:      l.duration("REQUEST_TIMEOUT", 30*time.Second),
		RateLimit:           l.int("RATE_LIMIT", 20, 0, 1_000_000),
		RateLimitBurst:      l.int("RATE_LIMIT_BURST", 40, 1, 1_000_000),
		SMTPHost:            l.str("SMTP_HOST", ""),
		SMTPUsername:        l.str("SMTP_USERNAME", ""),
		SMTPPassword:        l.str("SMTP_PASSWORD", ""),
		SMTPTLS:             l.oneOf("SMTP_TLS", "starttls", "none", "starttls", "tls"),
		MailFrom:            l.str("MAIL_FROM", "bulkd@localhost"),
		MailDir:             l.str("MAIL_DIR", ""),
		AdminUsername:       l.str("ADMIN_USERNAME", "admin"),
		AdminPassword:       l.str("ADMIN_PASSWORD", ""),
		WorkerConcurrency:   l.int("WORKER_CONCURRENCY", runtime.NumCPU(), 1, 1000),
		DeliveryConcurrency: l.int("DELIVERY_CONCURRENCY", 10, 1, 1000),
		ShutdownTimeout:     l.duration("SHUTDOWN_TIMEOUT", 25*time.Second),
		ReconcileInterval:   l.duration("RECONCILE_INTERVAL", time.Minute),
		Retention:           l.duration("RETENTION", DefaultRetention),
		WebhookSecretKey:    l.key("WEBHOOK_SECRET_KEY"),
		ReportSecret:        l.key("REPORT_SECRET"),
		ReportLinkTTL:       l.duration("REPORT_LINK_TTL", 7*24*time.Hour),
		MaxWait:             l.durationUpTo("MAX_WAIT", time.Minute, MaxMaxWait),
		MetricsAddr:         l.str("METRICS_ADDR", ""),
		PrometheusURL:       strings.TrimRight(l.str("PROMETHEUS_URL", ""), "/"),
	}
	switch v := strings.ToLower(l.str("WEBHOOK_ALLOW_PRIVATE", "false")); v {
	case "true", "1":
		c.WebhookAllowPrivate = true
	case "false", "0":
	default:
		l.fail("WEBHOOK_ALLOW_PRIVATE", fmt.Sprintf("must be true or false, not %q", v))
	}
	// The port follows the TLS mode unless set: implicit TLS (SMTPS) listens
	// on 465, submission with STARTTLS on 587, plain relays on 25.
	c.SMTPPort = l.int("SMTP_PORT", defaultSMTPPort[c.SMTPTLS], 1, 65535)
	switch lvl := l.oneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"); lvl {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "warn":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		l.fail("BASE_URL", "must be an absolute http(s) URL")
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			l.fail("METRICS_ADDR", "must be a listen address, host:port, such as :9100")
		} else if sameListener(c.MetricsAddr, c.HTTPAddr) {
			l.fail("METRICS_ADDR", "must differ from HTTP_ADDR: the metrics have a listener of their own, off the public API")
		}
	}
	if c.PrometheusURL != "" {
		if u, err := url.Parse(c.PrometheusURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			l.fail("PROMETHEUS_URL", "must be an absolute http(s) URL such as http://prometheus:9090")
		}
	}
	if r, err := redisconn.Parse(c.RedisURL); err != nil {
		l.fail("REDIS_URL", strings.TrimPrefix(err.Error(), redisconn.ErrURL.Error()+" "))
	} else {
		c.Redis = r
	}
	// Checked in every mode, with or without SMTP_HOST: an api process that
	// starts with a mail setting a worker would refuse is a surprise later.
	if addr, err := mail.ParseAddress(c.MailFrom); err != nil || addr.Address == "" {
		l.fail("MAIL_FROM", "must be an email address such as bulkd@example.com")
	}
	if c.SMTPPassword != "" && c.SMTPUsername == "" {
		l.fail("SMTP_PASSWORD", "is set but SMTP_USERNAME is empty; set both, or neither for no authentication")
	}
	return c, errors.Join(l.errs...)
}

// DefaultRetention is RETENTION's default: 30 days.
const DefaultRetention = 30 * 24 * time.Hour

// defaultSMTPPort is SMTP_PORT's default for each SMTP_TLS mode.
var defaultSMTPPort = map[string]int{"none": 25, "starttls": 587, "tls": 465}

// LogValue shows the configuration with its secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("database_url", maskURL(c.DatabaseURL)),
		slog.String("redis_url", maskURL(c.RedisURL)),
		slog.String("redis", c.Redis.String()),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("base_url", c.BaseURL),
		slog.Int64("max_body_bytes", c.MaxBodyBytes),
		slog.String("request_timeout", c.RequestTimeout.String()),
		slog.String("shutdown_timeout", c.ShutdownTimeout.String()),
		slog.String("reconcile_interval", c.ReconcileInterval.String()),
		slog.String("retention", c.Retention.String()),
		slog.Int("rate_limit", c.RateLimit),
		slog.Int("rate_limit_burst", c.RateLimitBurst),
		slog.String("smtp_host", c.SMTPHost),
		slog.Int("smtp_port", c.SMTPPort),
		slog.String("smtp_tls", c.SMTPTLS),
		slog.Bool("smtp_password_set", c.SMTPPassword != ""),
		slog.Bool("admin_ui", c.AdminPassword != ""),
		slog.Int("worker_concurrency", c.WorkerConcurrency),
		slog.Int("delivery_concurrency", c.DeliveryConcurrency),
		slog.Bool("webhooks", c.WebhookSecretKey != nil),
		slog.Bool("report_links", c.ReportSecret != nil),
		slog.String("report_link_ttl", c.ReportLinkTTL.String()),
		slog.String("mail_dir", c.MailDir),
		slog.Bool("webhook_allow_private", c.WebhookAllowPrivate),
		slog.String("max_wait", c.MaxWait.String()),
		slog.String("metrics_addr", c.MetricsAddr),
		slog.String("prometheus_url", maskURL(c.PrometheusURL)),
	)
}

// keywordPassword finds the password of a keyword/value connection string
// (host=h password=secret), which pgx accepts as DATABASE_URL too.
var keywordPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// maskURL hides the password of a connection string, wherever it is written:
// user:password@, ?password=, or password= in keyword/value form.
func maskURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return keywordPassword.ReplaceAllString(s, "${1}xxxxx")
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

type loader struct {
	getenv func(string) string
	errs   []error
}

func (l *loader) fail(name, msg string) {
	l.errs = append(l.errs, fmt.Errorf("%s %s", name, msg))
}

func (l *loader) str(name, def string) string {
	if v := strings.TrimSpace(l.getenv(name)); v != "" {
		return v
	}
	return def
}

func (l *loader) int(name string, def, lo, hi int) int {
	v := l.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		l.fail(name, fmt.Sprintf("must be a whole number from %d to %d, not %q", lo, hi, v))
		return def
	}
	return n
}

func (l *loader) duration(name string, def time.Duration) time.Duration {
	v := l.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		l.fail(name, fmt.Sprintf("must be a positive duration such as 30s, not %q", v))
		return def
	}
	return d
}

// key reads a 32-byte key given as standard base64; absent, nil.
func (l *loader) key(name string) []byte {
	v := l.str(name, "")
	if v == "" {
		return nil
	}
	k, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(k) != 32 {
		l.fail(name, "must be 32 random bytes in base64, such as the output of: openssl rand -base64 32")
		return nil
	}
	return k
}

// durationUpTo reads a duration from 0 to hi.
func (l *loader) durationUpTo(name string, def, hi time.Duration) time.Duration {
	v := l.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > hi {
		l.fail(name, fmt.Sprintf("must be a duration from 0 to %s such as 30s, not %q", hi, v))
		return def
	}
	return d
}

func (l *loader) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(l.str(name, def))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	l.fail(name, fmt.Sprintf("must be one of %s, not %q", strings.Join(allowed, ", "), v))
	return def
}

// sameListener tells whether two listen addresses would take the same
// socket: the same port on the same host, or on all interfaces (an empty
// host, 0.0.0.0 or ::) on either side, which is where a string comparison
// misses ":8080" and "0.0.0.0:8080".
func sameListener(a, b string) bool {
	hostA, portA, errA := net.SplitHostPort(a)
	hostB, portB, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil {
		return a == b
	}
	anyHost := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return portA == portB && (hostA == hostB || anyHost(hostA) || anyHost(hostB))
}
