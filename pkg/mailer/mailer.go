// Package mailer sends the organization's bulk notifications by email, from
// embedded text and HTML templates.
package mailer

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"log/slog"
	"net/mail"
	"os"
	"strings"
	texttemplate "text/template"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/report"
)

// The statuses a Completion can report.
const (
	// StatusCompleted is the status of a bulk whose rows were processed;
	// some rows may still have failed validation.
	StatusCompleted = "completed"
	// StatusFailed is the status of a bulk that could not be processed.
	StatusFailed = "failed"
)

// The TLS modes a Config accepts.
const (
	// TLSNone sends in clear text; meant for a relay on a trusted network.
	TLSNone = "none"
	// TLSStartTLS upgrades the connection with STARTTLS and refuses servers
	// that do not offer it.
	TLSStartTLS = "starttls"
	// TLSImplicit connects with TLS from the first byte (SMTPS, usually port 465).
	TLSImplicit = "tls"
)

// DefaultTimeout bounds a whole SMTP exchange when Config.Timeout is zero.
const DefaultTimeout = 15 * time.Second

// Completion is what a bulk notification says.
type Completion struct {
	BulkID           string
	DeliveryID       string // the outbox's delivery: its Message-ID is the same on every attempt
	OrganizationName string
	Status           string // "completed" or "failed"
	Count            int
	RowsSucceeded    int // rows imported without any error
	RowsFailed       int // rows with at least one error; parts of them may be written
	// What the import wrote, by table: a row with errors may still have
	// written its location, customer and some of its accounts.
	LocationsWritten    int
	CustomersWritten    int
	DebtAccountsWritten int
	ErrorsURL           string // absolute URL of GET /api/v1/bulk/{id}/errors
	Reason              string // why the bulk failed, when Status == "failed"
	// ReportURL is the signed link to the bulk's report page, which opens
	// without an API key until ReportExpires; "" when links are off.
	ReportURL     string
	ReportExpires time.Time
	// Errors are the first lines of the errors report, shown in the email;
	// MoreErrors says the report has more.
	Errors     []bulk.ErrorLine
	MoreErrors bool
}

// MaxErrors is how many error lines an email shows; the report has them all.
const MaxErrors = 10

// Config is the SMTP configuration. An empty Host means "write the email
// to the log", and also as files in Dir when it is set: an .eml of the whole
// message and an .html of its HTML part, for a first run without SMTP.
type Config struct {
	Dir      string
	Host     string
	Port     int // 0 → 25 for "none", 587 for "starttls", 465 for "tls"
	Username string
	Password string
	TLS      string // "none", "starttls" or "tls"; "" → "starttls"
	From     string
	Timeout  time.Duration // 0 → 15s
}

// Sender sends bulk notifications.
type Sender interface {
	SendBulkNotification(ctx context.Context, to string, c Completion) error
}

// New returns the Sender that cfg describes: an SMTP sender when cfg.Host is
// set, otherwise a sender that only logs the email to log. It fails fast on a
// configuration that could never send. A nil log means slog.Default().
func New(cfg Config, log *slog.Logger) (Sender, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r, err := newRenderer()
	if err != nil {
		return nil, err
	}
	if cfg.Host == "" {
		if cfg.Dir != "" {
			if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
				return nil, fmt.Errorf("mailer: config: %w", err)
			}
		}
		return &logSender{log: log, render: r, dir: cfg.Dir, from: cfg.From}, nil
	}
	return newSMTPSender(cfg, log, r)
}

// validate reports the first setting of c that cannot work.
func (c Config) validate() error {
	switch c.TLS {
	case "", TLSNone, TLSStartTLS, TLSImplicit:
	default:
		return fmt.Errorf("mailer: config: TLS must be %q, %q or %q, got %q", TLSNone, TLSStartTLS, TLSImplicit, c.TLS)
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("mailer: config: port %d is out of range", c.Port)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("mailer: config: timeout %s is negative", c.Timeout)
	}
	if c.Host == "" {
		return nil
	}
	if c.From == "" {
		return errors.New("mailer: config: From is required when Host is set")
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		return fmt.Errorf("mailer: config: From %q: %w", c.From, err)
	}
	if c.Password != "" && c.Username == "" {
		return errors.New("mailer: config: Password is set but Username is empty")
	}
	return nil
}

//go:embed templates/*
var templateFS embed.FS

// renderer turns a Completion into the subject and bodies of its email.
type renderer struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// newRenderer parses the embedded templates.
func newRenderer() (*renderer, error) {
	text, err := texttemplate.ParseFS(templateFS, "templates/bulk_notification.txt.tmpl")
	if err != nil {
		return nil, fmt.Errorf("mailer: parse text template: %w", err)
	}
	html, err := htmltemplate.ParseFS(templateFS, "templates/bulk_notification.html.tmpl")
	if err != nil {
		return nil, fmt.Errorf("mailer: parse HTML template: %w", err)
	}
	return &renderer{text: text, html: html}, nil
}

// message is a rendered bulk notification.
type message struct {
	subject string
	text    string
	html    string
}

// newMsg builds the email of m, from from to to, with a Message-ID that is
// the same on every attempt.
func newMsg(m message, c Completion, from, to *mail.Address, domain string) *gomail.Msg {
	msg := gomail.NewMsg()
	msg.FromMailAddress(from)
	msg.ToMailAddress(to)
	msg.Subject(m.subject)
	msg.SetMessageIDWithValue(messageID(c, domain))
	msg.SetDate()
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	msg.SetBodyString(gomail.TypeTextPlain, m.text)
	msg.AddAlternativeString(gomail.TypeTextHTML, m.html)
	return msg
}

// templateData is what the templates see.
type templateData struct {
	Completion
	Subject string
}

// Expires is when the report link stops working, as the email reads it.
func (d templateData) Expires() string {
	return d.ReportExpires.UTC().Format("2 January 2006, 15:04 UTC")
}

// render builds the email for c, refusing a Completion that has no bulk id
// or an unknown status.
func (r *renderer) render(c Completion) (message, error) {
	if c.BulkID == "" {
		return message{}, errors.New("mailer: render: bulk id is empty")
	}
	var subject string
	switch c.Status {
	case StatusCompleted:
		subject = fmt.Sprintf("Bulk %s completed: %d of %d rows fully imported, %d with errors", c.BulkID, c.RowsSucceeded, c.Count, c.RowsFailed)
	case StatusFailed:
		subject = fmt.Sprintf("Bulk %s failed", c.BulkID)
	default:
		return message{}, fmt.Errorf("mailer: render bulk %s: unknown status %q", c.BulkID, c.Status)
	}
	data := templateData{Completion: c, Subject: subject}
	var text, html bytes.Buffer
	if err := r.text.Execute(&text, data); err != nil {
		return message{}, fmt.Errorf("mailer: render text body of bulk %s: %w", c.BulkID, err)
	}
	if err := r.html.Execute(&html, data); err != nil {
		return message{}, fmt.Errorf("mailer: render HTML body of bulk %s: %w", c.BulkID, err)
	}
	return message{subject: subject, text: text.String(), html: html.String()}, nil
}

// Written says what the import stored, as the email reads it:
// "5 records (1 location, 1 customer, 3 debt accounts)".
func (c Completion) Written() string {
	return report.Written(c.LocationsWritten, c.CustomersWritten, c.DebtAccountsWritten)
}

// messageID is the Message-ID (without angle brackets) of the notification
// c, the same on every attempt of its delivery so that receiving systems
// can drop duplicates of a retried send, and another for another delivery
// (a bulk retried by an operator ends, and is told of, again).
func messageID(c Completion, domain string) string {
	id := "bulk-" + idSafe(c.BulkID) + "-" + idSafe(c.Status)
	if c.DeliveryID != "" {
		id += "-" + idSafe(c.DeliveryID)
	}
	return id + "@" + idSafe(domain)
}

// idSafe replaces every character that may not appear in a Message-ID's
// dot-atom with '_'.
func idSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '-', r == '.':
			return r
		default:
			return '_'
		}
	}, s)
}
