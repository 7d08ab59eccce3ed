package configs_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bulkd/bulkd/configs"
	"github.com/bulkd/bulkd/pkg/redisconn"
)

// env is an environment for Load: unset variables read as "".
func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := configs.Load(env(nil))
	if err != nil {
		t.Fatalf("Load of an empty environment: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"DATABASE_URL", c.DatabaseURL, "postgres://postgres@127.0.0.1:5432/bulkd?sslmode=disable"},
		{"REDIS_URL", c.RedisURL, "redis://127.0.0.1:6379/0"},
		{"HTTP_ADDR", c.HTTPAddr, ":8080"},
		{"BASE_URL", c.BaseURL, "http://localhost:8080"},
		{"MAX_BODY_BYTES", c.MaxBodyBytes, int64(16 << 20)},
		{"REQUEST_TIMEOUT", c.RequestTimeout, 30 * time.Second},
		{"RATE_LIMIT", c.RateLimit, 20},
		{"RATE_LIMIT_BURST", c.RateLimitBurst, 40},
		{"SMTP_HOST", c.SMTPHost, ""},
		{"SMTP_PORT", c.SMTPPort, 587},
		{"SMTP_TLS", c.SMTPTLS, "starttls"},
		{"MAIL_FROM", c.MailFrom, "bulkd@localhost"},
		{"ADMIN_USERNAME", c.AdminUsername, "admin"},
		{"ADMIN_PASSWORD", c.AdminPassword, ""},
		{"WORKER_CONCURRENCY", c.WorkerConcurrency, runtime.NumCPU()},
		{"DELIVERY_CONCURRENCY", c.DeliveryConcurrency, 10},
		{"SHUTDOWN_TIMEOUT", c.ShutdownTimeout, 25 * time.Second},
		{"RECONCILE_INTERVAL", c.ReconcileInterval, time.Minute},
		{"RETENTION", c.Retention, 30 * 24 * time.Hour},
		{"MAX_WAIT", c.MaxWait, time.Minute},
		{"METRICS_ADDR", c.MetricsAddr, ""},
		{"PROMETHEUS_URL", c.PrometheusURL, ""},
		{"LOG_LEVEL", c.LogLevel, slog.LevelInfo},
	}
	for _, tc := range checks {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestLoadReadsEnvironment(t *testing.T) {
	t.Parallel()
	c, err := configs.Load(env(map[string]string{
		"BASE_URL":           "https://bulkd.example.com/",
		"SMTP_TLS":           " TLS ",
		"WORKER_CONCURRENCY": "3",
		"MAX_BODY_BYTES":     "1048576",
		"SHUTDOWN_TIMEOUT":   "5s",
		"LOG_LEVEL":          "debug",
		"RATE_LIMIT":         "0",
		"MAX_WAIT":           "90s",
		"RETENTION":          "168h",
	}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.BaseURL != "https://bulkd.example.com" || c.SMTPTLS != "tls" || c.WorkerConcurrency != 3 ||
		c.MaxBodyBytes != 1<<20 || c.ShutdownTimeout != 5*time.Second || c.LogLevel != slog.LevelDebug || c.RateLimit != 0 ||
		c.MaxWait != 90*time.Second || c.Retention != 7*24*time.Hour {
		t.Errorf("Load: %+v", c)
	}
}

func TestLoadNamesEachBadVariable(t *testing.T) {
	t.Parallel()
	bad := map[string]string{
		"WORKER_CONCURRENCY":   "abc",
		"DELIVERY_CONCURRENCY": "0",
		"SMTP_TLS":             "ssl",
		"BASE_URL":             "ftp://x",
		"MAX_BODY_BYTES":       "-1",
		"SHUTDOWN_TIMEOUT":     "soon",
		"SMTP_PORT":            "70000",
		"RECONCILE_INTERVAL":   "-1m",
		"RETENTION":            "30d", // Go durations have no days
		"LOG_LEVEL":            "verbose",
		"REDIS_URL":            "127.0.0.1:6379",
		"RATE_LIMIT":           "-5",
		"RATE_LIMIT_BURST":     "0",
		"REQUEST_TIMEOUT":      "30",
		"MAIL_FROM":            "not an address",
		"SMTP_PASSWORD":        "secret-without-a-user",
		"MAX_WAIT":             "91s",   // beyond what the HTTP server's write timeout leaves
		"METRICS_ADDR":         ":8080", // HTTP_ADDR's default: the metrics would be on the public port
		"PROMETHEUS_URL":       "prometheus:9090",
	}
	for name, value := range bad {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := configs.Load(env(map[string]string{name: value}))
			if err == nil {
				t.Fatalf("%s=%s accepted", name, value)
			}
			if !names(err, name) {
				t.Errorf("%s=%s: error %q does not name the variable", name, value, err)
			}
			for other := range bad {
				if other != name && names(err, other) {
					t.Errorf("%s=%s: error %q also names %s, which is not wrong", name, value, err, other)
				}
			}
		})
	}

	t.Run("all at once", func(t *testing.T) {
		t.Parallel()
		_, err := configs.Load(env(bad))
		if err == nil {
			t.Fatal("bad environment accepted")
		}
		for name := range bad {
			if !names(err, name) {
				t.Errorf("error does not name %s:\n%v", name, err)
			}
		}
	})
}

func TestLoadMailSettings(t *testing.T) {
	t.Parallel()
	// The mail settings are checked whatever the mode and whether SMTP_HOST
	// is set: an api process never sends, but must not start on settings a
	// worker would refuse.
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"MAIL_FROM": "not an address"}, "MAIL_FROM must be an email address such as bulkd@example.com"},
		{map[string]string{"MAIL_FROM": "not an address", "SMTP_HOST": "smtp.example.com"}, "MAIL_FROM must be an email address"},
		{map[string]string{"MAIL_FROM": "bulkd@"}, "MAIL_FROM must be an email address"},
		{map[string]string{"SMTP_PASSWORD": "pw"}, "SMTP_PASSWORD is set but SMTP_USERNAME is empty"},
		{map[string]string{"SMTP_PASSWORD": "pw", "SMTP_HOST": "smtp.example.com"}, "SMTP_PASSWORD is set but SMTP_USERNAME is empty"},
	} {
		_, err := configs.Load(env(tc.vars))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%v): error %v, want one containing %q", tc.vars, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("Load(%v): the error shows the password: %v", tc.vars, err)
		}
	}
	for _, from := range []string{"bulkd@example.com", "Bulkd <bulkd@example.com>", "bulkd@localhost"} {
		if _, err := configs.Load(env(map[string]string{"MAIL_FROM": from})); err != nil {
			t.Errorf("MAIL_FROM=%s: %v", from, err)
		}
	}
	if _, err := configs.Load(env(map[string]string{"SMTP_USERNAME": "u", "SMTP_PASSWORD": "p"})); err != nil {
		t.Errorf("username and password: %v", err)
	}
}

func TestLoadSMTPPortFollowsTLS(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		tls, port string
		want      int
	}{
		{"", "", 587},
		{"starttls", "", 587},
		{"tls", "", 465},
		{"none", "", 25},
		{"tls", "2465", 2465}, // an explicit port wins
		{"none", "1025", 1025},
	} {
		c, err := configs.Load(env(map[string]string{"SMTP_TLS": tc.tls, "SMTP_PORT": tc.port}))
		if err != nil {
			t.Fatalf("SMTP_TLS=%q SMTP_PORT=%q: %v", tc.tls, tc.port, err)
		}
		if c.SMTPPort != tc.want {
			t.Errorf("SMTP_TLS=%q SMTP_PORT=%q: port %d, want %d", tc.tls, tc.port, c.SMTPPort, tc.want)
		}
	}
}

// names tells whether err mentions the variable as a word of its own, so that
// RATE_LIMIT is not found in RATE_LIMIT_BURST.
func names(err error, variable string) bool {
	return regexp.MustCompile(`\b` + variable + `\b`).MatchString(err.Error())
}

func TestLogValueMasksSecrets(t *testing.T) {
	t.Parallel()
	c, err := configs.Load(env(map[string]string{
		"DATABASE_URL":   "postgres://u:secret@h/db",
		"REDIS_URL":      "redis://:redis-secret@h:6379/0",
		"SMTP_HOST":      "smtp.example.com",
		"SMTP_USERNAME":  "mailer",
		"SMTP_PASSWORD":  "smtp-secret",
		"ADMIN_PASSWORD": "admin-secret",
	}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	out := logJSON(c)
	for _, secret := range []string{"secret", "smtp-secret", "admin-secret", "redis-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("log shows %q:\n%s", secret, out)
		}
	}
	// What is not secret stays readable.
	for _, want := range []string{`"database_url":"postgres://u:xxxxx@h/db"`, `"smtp_host":"smtp.example.com"`,
		`"smtp_password_set":true`, `"admin_ui":true`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

// TestLogValueMasksPasswordInOtherDatabaseURLForms covers the other ways pgx
// accepts a password in DATABASE_URL: a URL query parameter, and the
// keyword/value connection string.
func TestLogValueMasksPasswordInOtherDatabaseURLForms(t *testing.T) {
	t.Parallel()
	for _, url := range []string{
		"postgres://u@h/db?sslmode=disable&password=secret",
		"host=h user=u password=secret dbname=db",
	} {
		t.Run(url, func(t *testing.T) {
			t.Parallel()
			c, err := configs.Load(env(map[string]string{"DATABASE_URL": url}))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if out := logJSON(c); strings.Contains(out, "secret") {
				t.Errorf("log shows the database password:\n%s", out)
			}
		})
	}
}

// logJSON logs c as main does and returns the line.
func logJSON(c configs.Config) string {
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
	return buf.String()
}

// MAX_WAIT=0 turns waiting off; it is not an error.
func TestLoadMaxWaitZeroTurnsWaitingOff(t *testing.T) {
	t.Parallel()
	c, err := configs.Load(env(map[string]string{"MAX_WAIT": "0"}))
	if err != nil || c.MaxWait != 0 {
		t.Fatalf("MAX_WAIT=0: %v, %v", c.MaxWait, err)
	}
}

func TestLoadRedisForms(t *testing.T) {
	t.Parallel()
	for url, kind := range map[string]redisconn.Kind{
		"redis://127.0.0.1:6379/0":                                          redisconn.Single,
		"rediss://:pw@redis.example.com:6380/1":                             redisconn.Single,
		"redis-sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/0?master=bulkd": redisconn.Sentinel,
		"redis-cluster://10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000":         redisconn.Cluster,
	} {
		c, err := configs.Load(env(map[string]string{"REDIS_URL": url}))
		if err != nil {
			t.Errorf("REDIS_URL=%s: %v", url, err)
			continue
		}
		if c.Redis.Kind != kind {
			t.Errorf("REDIS_URL=%s: %s, want %s", url, c.Redis.Kind, kind)
		}
		if strings.Contains(fmt.Sprint(c.LogValue()), "pw") {
			t.Errorf("REDIS_URL=%s: the configuration's log shows the password: %v", url, c.LogValue())
		}
	}
	_, err := configs.Load(env(map[string]string{"REDIS_URL": "redis-sentinel://:pw@10.0.0.1:26379"}))
	if err == nil || err.Error() != "REDIS_URL must name the master the sentinels watch: ?master=NAME" {
		t.Errorf("a sentinel URL without its master: %v", err)
	}
}

// METRICS_ADDR is a listen address (host:port) whose socket cannot be the
// API's: the same port on the same interface, or on all of them, is
// refused at start, naming the variable; another port or another
// interface is taken.
func TestMetricsAddrIsItsOwnListener(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		httpAddr, metricsAddr string
		ok                    bool
	}{
		{"", "9100", false},         // a port without its colon
		{"", "localhost", false},    // no port
		{"", "0.0.0.0:8080", false}, // HTTP_ADDR's default, :8080, listens there too
		{"", "[::]:8080", false},
		{"127.0.0.1:8080", ":8080", false},
		{"127.0.0.1:8080", "127.0.0.1:8080", false},
		{"", ":9100", true},
		{"", "127.0.0.1:9100", true},
		{"127.0.0.1:8080", "10.0.0.1:8080", true}, // another interface
	} {
		vars := map[string]string{"METRICS_ADDR": c.metricsAddr}
		if c.httpAddr != "" {
			vars["HTTP_ADDR"] = c.httpAddr
		}
		_, err := configs.Load(env(vars))
		switch {
		case c.ok && err != nil:
			t.Errorf("HTTP_ADDR=%q METRICS_ADDR=%q: %v", c.httpAddr, c.metricsAddr, err)
		case !c.ok && err == nil:
			t.Errorf("HTTP_ADDR=%q METRICS_ADDR=%q accepted", c.httpAddr, c.metricsAddr)
		case !c.ok && !names(err, "METRICS_ADDR"):
			t.Errorf("HTTP_ADDR=%q METRICS_ADDR=%q: error %q does not name METRICS_ADDR", c.httpAddr, c.metricsAddr, err)
		}
	}
}
