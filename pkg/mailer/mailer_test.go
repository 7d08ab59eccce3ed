package mailer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
	gomail "github.com/wneessen/go-mail"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/mailer"
	"github.com/bulkd/bulkd/pkg/smtptest"
)

const (
	testFrom = "bulkd@example.com"
	testTo   = "ops@acme.example"
)

func completed() mailer.Completion {
	return mailer.Completion{
		BulkID:           "0f8b5a3e-6d1c-4a57-9a38-2f1b6f0c9e11",
		OrganizationName: "Acme Debt Services",
		Status:           mailer.StatusCompleted,
		Count:            10,
		RowsSucceeded:    8,
		RowsFailed:       2,
		// The two failed rows still wrote their customers and some accounts.
		LocationsWritten:    3,
		CustomersWritten:    10,
		DebtAccountsWritten: 27,
		ErrorsURL:           "https://bulkd.example.com/api/v1/bulk/0f8b5a3e-6d1c-4a57-9a38-2f1b6f0c9e11/errors",
	}
}

func failed() mailer.Completion {
	c := completed()
	c.Status = mailer.StatusFailed
	c.RowsSucceeded, c.RowsFailed = 0, 0
	c.LocationsWritten, c.CustomersWritten, c.DebtAccountsWritten = 0, 0, 0
	c.Reason = "the submitted file is not valid JSON"
	return c
}

// config is a Config that sends to ts in clear text.
func config(ts *smtptest.Server) mailer.Config {
	return mailer.Config{Host: ts.Host(), Port: ts.Port(), TLS: mailer.TLSNone, From: testFrom, Timeout: 5 * time.Second}
}

func newSender(t *testing.T, cfg mailer.Config) mailer.Sender {
	t.Helper()
	s, err := mailer.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func assertContains(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, s)
		}
	}
}

func TestSMTPSenderCompleted(t *testing.T) {
	t.Parallel()
	ts := smtptest.NewServer(t, smtptest.Options{})
	s := newSender(t, config(ts))
	c := completed()

	if err := s.SendBulkNotification(t.Context(), testTo, c); err != nil {
		t.Fatalf("SendBulkNotification: %v", err)
	}

	got := ts.Messages()
	if len(got) != 1 {
		t.Fatalf("server received %d messages, want 1", len(got))
	}
	if diff := cmp.Diff([]string{testTo}, got[0].To); diff != "" {
		t.Errorf("envelope recipients (-want +got):\n%s", diff)
	}
	if got[0].From != testFrom {
		t.Errorf("envelope sender = %q, want %q", got[0].From, testFrom)
	}

	e := got[0].Parse(t)
	headers := map[string]string{
		"From":       e.Header.Get("From"),
		"To":         e.Header.Get("To"),
		"Subject":    e.Subject,
		"Message-Id": e.Header.Get("Message-Id"),
	}
	wantHeaders := map[string]string{
		"From":       "<" + testFrom + ">",
		"To":         "<" + testTo + ">",
		"Subject":    "Bulk " + c.BulkID + " completed: 8 of 10 rows fully imported, 2 with errors",
		"Message-Id": "<bulk-" + c.BulkID + "-completed@example.com>",
	}
	if diff := cmp.Diff(wantHeaders, headers); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	if date, err := e.Header.Date(); err != nil {
		t.Errorf("Date header: %v", err)
	} else if d := time.Since(date); d < -time.Minute || d > time.Minute {
		t.Errorf("Date = %v, not now", date)
	}

	// Parse fails on any part but one text/plain and one text/html.
	text, html := e.Text, e.HTML
	if text == "" || html == "" {
		t.Fatalf("want a text/plain and a text/html part, got text %q and HTML %q", text, html)
	}
	assertContains(t, "text body", text,
		c.BulkID, "Acme Debt Services", "completed",
		"Rows submitted:       10", "Rows fully imported:  8", "Rows with errors:     2",
		"Records written:      40 records (3 locations, 10 customers, 27 debt accounts)",
		c.ErrorsURL)
	assertContains(t, "HTML body", html,
		c.BulkID, "Acme Debt Services", "completed",
		`data-count="rows">10</td>`,
		`data-count="rows_succeeded">8</td>`,
		`data-count="rows_failed">2</td>`,
		`data-count="records_written">40 records (3 locations, 10 customers, 27 debt accounts)</td>`,
		`<a href="`+c.ErrorsURL+`"`)
	for _, body := range []string{text, html} {
		if strings.Contains(body, "Reason") {
			t.Errorf("completed email mentions a reason:\n%s", body)
		}
	}
}

func TestSMTPSenderFailed(t *testing.T) {
	t.Parallel()
	ts := smtptest.NewServer(t, smtptest.Options{})
	s := newSender(t, config(ts))
	c := failed()

	if err := s.SendBulkNotification(t.Context(), testTo, c); err != nil {
		t.Fatalf("SendBulkNotification: %v", err)
	}

	got := ts.Messages()
	if len(got) != 1 {
		t.Fatalf("server received %d messages, want 1", len(got))
	}
	e := got[0].Parse(t)
	if want := "Bulk " + c.BulkID + " failed"; e.Subject != want {
		t.Errorf("Subject = %q, want %q", e.Subject, want)
	}
	if want := "<bulk-" + c.BulkID + "-failed@example.com>"; e.Header.Get("Message-Id") != want {
		t.Errorf("Message-ID = %q, want %q", e.Header.Get("Message-Id"), want)
	}
	assertContains(t, "text body", e.Text, c.BulkID, "failed", "Reason:               "+c.Reason, c.ErrorsURL)
	assertContains(t, "HTML body", e.HTML, c.BulkID, "failed", `data-count="reason">`+c.Reason+"</td>")
}

func TestSMTPSenderRetryKeepsMessageID(t *testing.T) {
	t.Parallel()
	ts := smtptest.NewServer(t, smtptest.Options{})
	s := newSender(t, config(ts))

	for range 2 {
		if err := s.SendBulkNotification(t.Context(), testTo, completed()); err != nil {
			t.Fatalf("SendBulkNotification: %v", err)
		}
	}

	got := ts.Messages()
	if len(got) != 2 {
		t.Fatalf("server received %d messages, want 2", len(got))
	}
	first := got[0].Parse(t).Header.Get("Message-Id")
	second := got[1].Parse(t).Header.Get("Message-Id")
	if first == "" || first != second {
		t.Errorf("Message-IDs of a retried notification differ or are empty: %q, %q", first, second)
	}
}

func TestSMTPSenderEscapesHTML(t *testing.T) {
	t.Parallel()
	ts := smtptest.NewServer(t, smtptest.Options{})
	s := newSender(t, config(ts))
	c := failed()
	c.OrganizationName = `<script>alert("x")</script>`
	c.Reason = "row 3: <b>bad</b>"

	if err := s.SendBulkNotification(t.Context(), testTo, c); err != nil {
		t.Fatalf("SendBulkNotification: %v", err)
	}

	got := ts.Messages()
	if len(got) != 1 {
		t.Fatalf("server received %d messages, want 1", len(got))
	}
	html := got[0].Parse(t).HTML
	assertContains(t, "HTML body", html, "&lt;script&gt;", "row 3: &lt;b&gt;bad&lt;/b&gt;")
	if strings.Contains(html, "<script>") || strings.Contains(html, "<b>bad") {
		t.Errorf("HTML body is not escaped:\n%s", html)
	}
}

func TestSMTPSenderAuth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		password string
		wantErr  bool
	}{
		{name: "right password", password: "s3cret"},
		{name: "wrong password", password: "guess", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := smtptest.NewServer(t, smtptest.Options{Username: "bulkd", Password: "s3cret"})
			cfg := config(ts)
			cfg.Username, cfg.Password = "bulkd", tt.password
			s := newSender(t, cfg)

			err := s.SendBulkNotification(t.Context(), testTo, completed())

			if tt.wantErr {
				if err == nil {
					t.Fatal("SendBulkNotification succeeded, want an authentication error")
				}
				if strings.Contains(err.Error(), tt.password) {
					t.Errorf("error reveals the password: %v", err)
				}
				if n := len(ts.Messages()); n != 0 {
					t.Errorf("server received %d messages, want 0", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("SendBulkNotification: %v", err)
			}
			if n := len(ts.Messages()); n != 1 {
				t.Errorf("server received %d messages, want 1", n)
			}
		})
	}
}

func TestSMTPSenderWithoutCredentialsOnAuthServer(t *testing.T) {
	t.Parallel()
	ts := smtptest.NewServer(t, smtptest.Options{Username: "bulkd", Password: "s3cret"})
	s := newSender(t, config(ts))

	if err := s.SendBulkNotification(t.Context(), testTo, completed()); err == nil {
		t.Fatal("SendBulkNotification succeeded without credentials, want an error")
	}
}

func TestSMTPSenderRefused(t *testing.T) {
	t.Parallel()
	// A 5xx to the recipient or the message is permanent (sending it again
	// changes nothing), a 4xx is not.
	tests := []struct {
		name      string
		opts      smtptest.Options
		permanent bool
	}{
		{
			name:      "DATA refused",
			opts:      smtptest.Options{DataErr: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message refused"}},
			permanent: true,
		},
		{
			name: "DATA deferred",
			opts: smtptest.Options{DataErr: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}},
		},
		{
			name:      "recipient refused",
			opts:      smtptest.Options{RcptErr: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user " + testTo}},
			permanent: true,
		},
		{
			name: "recipient deferred",
			opts: smtptest.Options{RcptErr: &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "Mailbox busy"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := smtptest.NewServer(t, tt.opts)
			s := newSender(t, config(ts))
			c := completed()

			err := s.SendBulkNotification(t.Context(), testTo, c)

			if err == nil {
				t.Fatal("SendBulkNotification succeeded, want an error")
			}
			if !strings.HasPrefix(err.Error(), "mailer: send bulk "+c.BulkID+" notification: ") {
				t.Errorf("error = %q, want it prefixed with the operation", err)
			}
			if strings.Contains(err.Error(), testTo) {
				t.Errorf("error reveals the recipient's address: %v", err)
			}
			var sendErr *gomail.SendError
			if !errors.As(err, &sendErr) {
				t.Errorf("error %v does not wrap a *mail.SendError", err)
			}
			if n := len(ts.Messages()); n != 0 {
				t.Errorf("server received %d messages, want 0", n)
			}
			if got := mailer.Permanent(err); got != tt.permanent {
				t.Errorf("Permanent(%v) = %v, want %v", err, got, tt.permanent)
			}
		})
	}
}

func TestSMTPSenderUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	s := newSender(t, mailer.Config{Host: "127.0.0.1", Port: port, TLS: mailer.TLSNone, From: testFrom, Timeout: 2 * time.Second})

	err = s.SendBulkNotification(t.Context(), testTo, completed())

	if err == nil || !strings.HasPrefix(err.Error(), "mailer: ") {
		t.Fatalf("SendBulkNotification = %v, want a mailer error", err)
	}
	if mailer.Permanent(err) {
		t.Errorf("a connection that could not be made is permanent: %v; it must be retried", err)
	}
}

func TestSMTPSenderCanceledContext(t *testing.T) {
	t.Parallel()
	ts := smtptest.NewServer(t, smtptest.Options{})
	s := newSender(t, config(ts))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	err := s.SendBulkNotification(ctx, testTo, completed())

	if !errors.Is(err, context.Canceled) {
		t.Errorf("SendBulkNotification = %v, want context.Canceled", err)
	}
	if n := len(ts.Messages()); n != 0 {
		t.Errorf("server received %d messages, want 0", n)
	}
}

func TestSMTPSenderConcurrent(t *testing.T) {
	t.Parallel()
	ts := smtptest.NewServer(t, smtptest.Options{})
	s := newSender(t, config(ts))
	const n = 8

	errs := make(chan error, n)
	for i := range n {
		go func() {
			c := completed()
			c.BulkID = fmt.Sprintf("bulk-%d", i)
			errs <- s.SendBulkNotification(t.Context(), testTo, c)
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("SendBulkNotification: %v", err)
		}
	}

	ids := map[string]bool{}
	for _, r := range ts.Messages() {
		ids[r.Parse(t).Header.Get("Message-Id")] = true
	}
	if len(ids) != n {
		t.Errorf("server received %d distinct messages, want %d", len(ids), n)
	}
}

func TestSendBulkNotificationRejectsBadInput(t *testing.T) {
	t.Parallel()
	ts := smtptest.NewServer(t, smtptest.Options{})
	smtpSender := newSender(t, config(ts))
	logSender := newSender(t, mailer.Config{})

	unknownStatus := completed()
	unknownStatus.Status = "done"
	noID := completed()
	noID.BulkID = ""

	tests := []struct {
		name   string
		sender mailer.Sender
		to     string
		c      mailer.Completion
	}{
		{name: "smtp unknown status", sender: smtpSender, to: testTo, c: unknownStatus},
		{name: "smtp no bulk id", sender: smtpSender, to: testTo, c: noID},
		{name: "smtp bad recipient", sender: smtpSender, to: "ops.acme.example", c: completed()},
		{name: "log unknown status", sender: logSender, to: testTo, c: unknownStatus},
		{name: "log no bulk id", sender: logSender, to: testTo, c: noID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.sender.SendBulkNotification(t.Context(), tt.to, tt.c)
			if err == nil {
				t.Fatal("SendBulkNotification succeeded, want an error")
			}
			if !strings.HasPrefix(err.Error(), "mailer: ") {
				t.Errorf("error = %q, want a mailer error", err)
			}
			if strings.Contains(err.Error(), tt.to) {
				t.Errorf("error reveals the recipient's address: %v", err)
			}
		})
	}
	if n := len(ts.Messages()); n != 0 {
		t.Errorf("server received %d messages, want 0", n)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	base := mailer.Config{Host: "smtp.example.com", From: testFrom}
	with := func(f func(*mailer.Config)) mailer.Config {
		c := base
		f(&c)
		return c
	}
	tests := []struct {
		name    string
		cfg     mailer.Config
		wantErr string // substring; "" means valid
	}{
		{name: "log sender", cfg: mailer.Config{}},
		{name: "log sender ignores missing From", cfg: mailer.Config{TLS: mailer.TLSNone}},
		{name: "default TLS", cfg: base},
		{name: "none", cfg: with(func(c *mailer.Config) { c.TLS = "none" })},
		{name: "starttls", cfg: with(func(c *mailer.Config) { c.TLS = "starttls" })},
		{name: "tls", cfg: with(func(c *mailer.Config) { c.TLS = "tls"; c.Port = 465 })},
		{name: "named From", cfg: with(func(c *mailer.Config) { c.From = "bulkd <bulkd@example.com>" })},
		{name: "credentials", cfg: with(func(c *mailer.Config) { c.Username, c.Password = "u", "p" })},
		{name: "unknown TLS", cfg: with(func(c *mailer.Config) { c.TLS = "ssl" }), wantErr: "TLS"},
		{name: "unknown TLS without host", cfg: mailer.Config{TLS: "yes"}, wantErr: "TLS"},
		{name: "missing From", cfg: with(func(c *mailer.Config) { c.From = "" }), wantErr: "From"},
		{name: "invalid From", cfg: with(func(c *mailer.Config) { c.From = "bulkd" }), wantErr: "From"},
		{name: "negative port", cfg: with(func(c *mailer.Config) { c.Port = -1 }), wantErr: "port"},
		{name: "port too large", cfg: with(func(c *mailer.Config) { c.Port = 70000 }), wantErr: "port"},
		{name: "negative timeout", cfg: with(func(c *mailer.Config) { c.Timeout = -time.Second }), wantErr: "timeout"},
		{name: "password without username", cfg: with(func(c *mailer.Config) { c.Password = "p" }), wantErr: "Username"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := mailer.New(tt.cfg, nil)
			if tt.wantErr == "" {
				if err != nil || s == nil {
					t.Fatalf("New = %v, %v; want a sender", s, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New succeeded, want an error mentioning %q", tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "mailer: config: ") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New error = %q, want a mailer config error mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestLogSender(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		c           mailer.Completion
		wantSubject string
		wantBody    []string
	}{
		{
			name:        "completed",
			c:           completed(),
			wantSubject: "Bulk " + completed().BulkID + " completed: 8 of 10 rows fully imported, 2 with errors",
			wantBody:    []string{"Rows fully imported:  8", completed().ErrorsURL},
		},
		{
			name: "with a report link",
			c: func() mailer.Completion {
				c := completed()
				c.ReportURL = "https://bulkd.example.com/report/" + c.BulkID + "?org=o&expires=1&sig=secret-signature"
				return c
			}(),
			wantSubject: "Bulk " + completed().BulkID + " completed: 8 of 10 rows fully imported, 2 with errors",
			wantBody:    []string{"Rows fully imported:  8"},
		},
		{
			name:        "failed",
			c:           failed(),
			wantSubject: "Bulk " + failed().BulkID + " failed",
			wantBody:    []string{"Reason:               " + failed().Reason},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			s, err := mailer.New(mailer.Config{}, slog.New(slog.NewJSONHandler(&buf, nil)))
			if err != nil {
				t.Fatalf("New: %v", err)
			}

			if err := s.SendBulkNotification(t.Context(), testTo, tt.c); err != nil {
				t.Fatalf("SendBulkNotification: %v", err)
			}

			out := buf.String()
			if strings.Contains(out, testTo) || strings.Contains(out, "ops@") {
				t.Errorf("log reveals the recipient's address:\n%s", out)
			}
			if strings.Contains(out, "sig=") || strings.Contains(out, "/report/") {
				t.Errorf("log carries the signed report link, a credential:\n%s", out)
			}
			if !strings.Contains(out, tt.c.BulkID) {
				t.Errorf("log does not name bulk %s:\n%s", tt.c.BulkID, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 1 {
				t.Fatalf("got %d log records, want 1:\n%s", len(lines), out)
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
				t.Fatalf("decode log record: %v", err)
			}
			body, _ := rec["body"].(string)
			assertContains(t, "logged body", body, append(tt.wantBody, tt.c.BulkID)...)
			delete(rec, "time")
			delete(rec, "body")
			want := map[string]any{
				"level":   "INFO",
				"msg":     "email not sent: SMTP_HOST is not set",
				"bulk_id": tt.c.BulkID,
				"status":  tt.c.Status,
				"subject": tt.wantSubject,
			}
			if diff := cmp.Diff(want, rec); diff != "" {
				t.Errorf("log record (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSMTPSenderErrorHidesTheRecipientInAnyForm(t *testing.T) {
	t.Parallel()
	// Servers echo the recipient as they like: in another case, or only its
	// local part. The error is logged and stored by the queue, so none may
	// remain in it.
	for _, reply := range []string{
		"<OPS@ACME.EXAMPLE>: Recipient address rejected",
		"<Ops@Acme.Example>... User unknown",
		"mailbox OPS unavailable",
		"ops: no such user here",
	} {
		t.Run(reply, func(t *testing.T) {
			t.Parallel()
			ts := smtptest.NewServer(t, smtptest.Options{
				RcptErr: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: reply},
			})
			err := newSender(t, config(ts)).SendBulkNotification(t.Context(), testTo, completed())
			if err == nil {
				t.Fatal("SendBulkNotification succeeded, want an error")
			}
			if lower := strings.ToLower(err.Error()); strings.Contains(lower, "ops") || strings.Contains(lower, "acme") {
				t.Errorf("error shows the recipient: %q", err)
			}
			if !strings.Contains(err.Error(), "550 5.1.1") {
				t.Errorf("error %q does not give the server's codes", err)
			}
			if code, esc := mailer.SMTPCode(err); code != 550 || esc != "5.1.1" {
				t.Errorf("SMTPCode = %d %q, want 550 5.1.1", code, esc)
			}
		})
	}
	if code, esc := mailer.SMTPCode(errors.New("dial tcp: connection refused")); code != 0 || esc != "" {
		t.Errorf("SMTPCode of an error that is no SMTP reply = %d %q", code, esc)
	}
}

// withErrors is a completed bulk whose email shows its first errors and
// links to its report.
func withErrors() mailer.Completion {
	c := completed()
	c.ReportURL = "https://bulkd.example.com/report/" + c.BulkID + "?org=o&expires=1&sig=s"
	c.ReportExpires = time.Date(2026, 12, 10, 12, 0, 0, 0, time.UTC)
	for i := range mailer.MaxErrors {
		c.Errors = append(c.Errors, bulk.ErrorLine{Row: i + 1, Section: "debt_accounts", ExternalID: fmt.Sprintf("acct-%d", i+1),
			Field: "external_id", Message: "The external id has already been taken."})
	}
	c.MoreErrors = true
	return c
}

func TestEmailShowsTheFirstErrorsAndTheReportLink(t *testing.T) {
	t.Parallel()
	ts := smtptest.NewServer(t, smtptest.Options{})
	s := newSender(t, config(ts))
	c := withErrors()
	if err := s.SendBulkNotification(t.Context(), testTo, c); err != nil {
		t.Fatal(err)
	}
	e := ts.Messages()[0].Parse(t)
	assertContains(t, "text body", e.Text, "The first 10 errors", "row 1, acct-1, external_id: The external id has already been taken.",
		"row 10, acct-10", c.ReportURL, "10 December 2026, 12:00 UTC")
	assertContains(t, "HTML body", e.HTML, "The first 10 errors", "<td style=\"border-top:1px solid #eeeeee;\">acct-10</td>",
		`<a id="report" href="`+strings.ReplaceAll(c.ReportURL, "&", "&amp;")+`"`)
	for _, body := range []string{e.Text, e.HTML} {
		if strings.Contains(body, c.ErrorsURL) {
			t.Errorf("with a report link, the email still sends its reader to the API:\n%s", body)
		}
	}
}

func TestLogSenderWritesTheEmailAsFiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "mail")
	var log bytes.Buffer
	s, err := mailer.New(mailer.Config{Dir: dir, From: testFrom}, slog.New(slog.NewJSONHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	c := withErrors()
	if err := s.SendBulkNotification(t.Context(), testTo, c); err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Body string `json:"body"`
		EML  string `json:"eml"`
		HTML string `json:"html"`
	}
	if err := json.Unmarshal(log.Bytes(), &rec); err != nil {
		t.Fatalf("log: %v: %s", err, log.Bytes())
	}
	if filepath.Dir(rec.EML) != dir || filepath.Dir(rec.HTML) != dir || !strings.HasSuffix(rec.EML, ".eml") || !strings.HasSuffix(rec.HTML, ".html") {
		t.Fatalf("files %q and %q, want an .eml and an .html in %s", rec.EML, rec.HTML, dir)
	}
	// The log has the email without its error lines, which name fields and
	// external ids, and without the signed report link (a credential); the
	// files have all of it.
	if strings.Contains(log.String(), "acct-1") || strings.Contains(log.String(), "external_id:") || strings.Contains(log.String(), testTo) ||
		strings.Contains(log.String(), c.ReportURL) {
		t.Errorf("the log shows an error line, the recipient or the report link:\n%s", log.String())
	}
	assertContains(t, "logged body", rec.Body, c.BulkID)
	eml, err := os.ReadFile(rec.EML)
	if err != nil {
		t.Fatal(err)
	}
	p := smtptest.Message{Data: eml}.Parse(t)
	if p.Header.Get("To") != "<"+testTo+">" || !strings.HasPrefix(p.Subject, "Bulk "+c.BulkID+" completed") {
		t.Errorf(".eml headers: To %q, Subject %q", p.Header.Get("To"), p.Subject)
	}
	assertContains(t, ".eml text part", p.Text, "row 1, acct-1", c.ReportURL)
	assertContains(t, ".eml HTML part", p.HTML, "acct-10")
	html, err := os.ReadFile(rec.HTML)
	if err != nil {
		t.Fatal(err)
	}
	crlf := strings.NewReplacer("\r\n", "\n")
	if crlf.Replace(strings.TrimSpace(string(html))) != crlf.Replace(strings.TrimSpace(p.HTML)) {
		t.Errorf("the .html file is not the email's HTML part:\n%q\n%q", html, p.HTML)
	}
}

// Two deliveries of one bulk's end (a bulk an operator retried ends again)
// carry different Message-IDs, so that a receiver does not drop the second
// as a duplicate of the first.
func TestEachDeliveryHasItsOwnMessageID(t *testing.T) {
	t.Parallel()
	ts := smtptest.NewServer(t, smtptest.Options{})
	s := newSender(t, config(ts))
	for _, delivery := range []string{"0195c2a0-8f3e-7d5c-b1a4-3f6e2d9c8b71", "0195c2a0-8f3e-7d5c-b1a4-3f6e2d9c8b72"} {
		c := failed()
		c.DeliveryID = delivery
		if err := s.SendBulkNotification(t.Context(), testTo, c); err != nil {
			t.Fatal(err)
		}
	}
	got := ts.Messages()
	if len(got) != 2 {
		t.Fatalf("%d messages", len(got))
	}
	a, b := got[0].Parse(t).Header.Get("Message-Id"), got[1].Parse(t).Header.Get("Message-Id")
	if a == b || !strings.Contains(a, "8b71") {
		t.Errorf("Message-IDs %q and %q", a, b)
	}
}
