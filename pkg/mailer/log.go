package mailer

import (
	"context"
	"fmt"
	"log/slog"
	"net/mail"
	"os"
	"path/filepath"
	"time"
)

// logSender stands in for SMTP when no host is configured: it writes what
// would have been sent to the log, without the recipient, and with a dir, as
// files a person opens: the message as .eml and its HTML part as .html.
type logSender struct {
	log    *slog.Logger
	render *renderer
	dir    string
	from   string
}

// SendBulkNotification logs the notification for c. The recipient to is
// deliberately not logged: addresses are personal data. Nor are the error
// lines the email shows (they name fields and external ids), nor the signed
// report link (it opens the bulk's errors without an API key for days: a
// credential): the logged body is the email without them; the files have
// the whole email.
func (s *logSender) SendBulkNotification(ctx context.Context, to string, c Completion) error {
	plain := c
	plain.Errors, plain.MoreErrors, plain.ReportURL = nil, false, ""
	logged, err := s.render.render(plain)
	if err != nil {
		return err
	}
	attrs := []any{
		slog.String("bulk_id", c.BulkID),
		slog.String("status", c.Status),
		slog.String("subject", logged.subject),
		slog.String("body", logged.text),
	}
	if s.dir != "" {
		eml, html, err := s.write(to, c)
		if err != nil {
			return err
		}
		attrs = append(attrs, slog.String("eml", eml), slog.String("html", html))
	}
	s.log.InfoContext(ctx, "email not sent: SMTP_HOST is not set", attrs...)
	return nil
}

// write writes the email as an .eml file and its HTML part as an .html
// file, named by time, bulk and status, and returns their paths.
func (s *logSender) write(to string, c Completion) (eml, html string, err error) {
	m, err := s.render.render(c)
	if err != nil {
		return "", "", err
	}
	from, err := mail.ParseAddress(s.from)
	if err != nil {
		from = &mail.Address{Address: "bulkd@localhost"}
	}
	rcpt, err := mail.ParseAddress(to)
	if err != nil {
		return "", "", fmt.Errorf("mailer: write bulk %s notification: recipient: %w", c.BulkID, err)
	}
	base := filepath.Join(s.dir, time.Now().UTC().Format("20060102T150405Z")+"-bulk-"+idSafe(c.BulkID)+"-"+idSafe(c.Status))
	eml, html = base+".eml", base+".html"
	if err := newMsg(m, c, from, rcpt, "localhost").WriteToFile(eml); err != nil {
		return "", "", fmt.Errorf("mailer: write %s: %w", eml, err)
	}
	if err := os.WriteFile(html, []byte(m.html), 0o644); err != nil {
		return "", "", fmt.Errorf("mailer: write %s: %w", html, err)
	}
	return eml, html, nil
}
