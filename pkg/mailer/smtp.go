package mailer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"regexp"
	"strings"

	gomail "github.com/wneessen/go-mail"
)

// smtpSender sends notifications through an SMTP server.
type smtpSender struct {
	client *gomail.Client
	from   *mail.Address
	domain string // right-hand side of every Message-ID
	log    *slog.Logger
	render *renderer
}

// newSMTPSender builds the go-mail client for a validated cfg.
func newSMTPSender(cfg Config, log *slog.Logger, r *renderer) (*smtpSender, error) {
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("mailer: config: From %q: %w", cfg.From, err)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	mode := cfg.TLS
	if mode == "" {
		mode = TLSStartTLS
	}
	port := cfg.Port
	opts := []gomail.Option{gomail.WithTimeout(timeout)}
	switch mode {
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
		if port == 0 {
			port = gomail.DefaultPort
		}
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
		if port == 0 {
			port = gomail.DefaultPortTLS
		}
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
		if port == 0 {
			port = gomail.DefaultPortSSL
		}
	}
	opts = append(opts, gomail.WithPort(port))
	if cfg.Username != "" {
		// Over TLS, let go-mail pick the strongest mechanism the server
		// offers (PLAIN and LOGIN included). In clear text, use PLAIN, which
		// go-mail only allows towards localhost, so a password never crosses
		// the network unencrypted.
		auth := gomail.SMTPAuthAutoDiscover
		if mode == TLSNone {
			auth = gomail.SMTPAuthPlain
		}
		opts = append(opts,
			gomail.WithSMTPAuth(auth),
			gomail.WithUsername(cfg.Username),
			gomail.WithPassword(cfg.Password),
		)
	}
	client, err := gomail.NewClient(cfg.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("mailer: new SMTP client for %s:%d: %w", cfg.Host, port, err)
	}
	domain := "bulkd"
	if at := strings.LastIndexByte(from.Address, '@'); at >= 0 && at < len(from.Address)-1 {
		domain = from.Address[at+1:]
	}
	return &smtpSender{client: client, from: from, domain: domain, log: log, render: r}, nil
}

// SendBulkNotification renders the notification for c and delivers it to
// the address to in one SMTP session. Errors are returned for the caller to
// retry; their messages never contain the recipient's address.
func (s *smtpSender) SendBulkNotification(ctx context.Context, to string, c Completion) error {
	rcpt, err := mail.ParseAddress(to)
	if err != nil {
		// net/mail's messages do not repeat the address.
		return fmt.Errorf("mailer: send bulk %s notification: recipient: %w", c.BulkID, err)
	}
	m, err := s.render.render(c)
	if err != nil {
		return err
	}

	if err := s.client.DialAndSendWithContext(ctx, newMsg(m, c, s.from, rcpt, s.domain)); err != nil {
		return sendFailure(c.BulkID, err, to, rcpt.Address)
	}
	s.log.DebugContext(ctx, "bulk notification sent", "bulk_id", c.BulkID, "status", c.Status)
	return nil
}

// SMTPCode returns the SMTP reply code (550) and enhanced status code
// ("5.1.1", empty when the server has none) of a failed send, or 0 and ""
// when the server did not refuse it (a connection that could not be made,
// for instance).
func SMTPCode(err error) (code int, enhanced string) {
	var se *gomail.SendError
	if errors.As(err, &se) {
		return se.ErrorCode(), se.EnhancedStatusCode()
	}
	return 0, ""
}

// Permanent tells whether a failed send was refused for good: a 5xx reply
// (RFC 5321 section 4.2.1, "permanent negative completion") to the
// recipient (RCPT TO) or to the message (DATA), which sending the same
// message again will not change. A 4xx reply, a connection that could not
// be made or broke off, and a 5xx to what comes before the recipient (the
// sender's address, authentication: the server's configuration, which its
// operator can fix while the retries go on) are not permanent.
func Permanent(err error) bool {
	var se *gomail.SendError
	if !errors.As(err, &se) || se.ErrorCode() < 500 || se.ErrorCode() > 599 {
		return false
	}
	switch se.Reason {
	case gomail.ErrSMTPRcptTo, gomail.ErrSMTPData, gomail.ErrSMTPDataClose:
		return true
	}
	return false
}

// sendFailure is the error of a failed send. Servers echo the recipient in
// their replies, in any case or only its local part ("550 5.1.1
// <OPS@ACME.EXAMPLE>: Recipient address rejected"), and the error is stored
// by the queue and logged: so a refusal is described by the SMTP step and
// its codes only, never the server's text. Whatever text remains (a dial
// error, a connection lost mid-session) is redacted as a second guard.
func sendFailure(bulkID string, err error, addrs ...string) error {
	prefix := fmt.Sprintf("mailer: send bulk %s notification", bulkID)
	var se *gomail.SendError
	if errors.As(err, &se) && se.ErrorCode() != 0 {
		msg := fmt.Sprintf("%s: %s: the server answered %d", prefix, se.Reason, se.ErrorCode())
		if esc := se.EnhancedStatusCode(); esc != "" {
			msg += " " + esc
		}
		return &redactedError{msg: msg, err: err}
	}
	return redact(prefix, err, addrs...)
}

// redactedError is an error whose message has the recipient's address
// removed, so that it can be logged and stored, while errors.Is and
// errors.As still reach the original error (a *gomail.SendError, for
// instance). Never log or store the original's text.
type redactedError struct {
	msg string
	err error
}

// Error returns the redacted message.
func (e *redactedError) Error() string { return e.msg }

// Unwrap returns the original error.
func (e *redactedError) Unwrap() error { return e.err }

// redact wraps err under prefix, replacing every occurrence of the given
// addresses in its message, in any case, and of their local parts as words
// of their own, with "[recipient]".
func redact(prefix string, err error, addrs ...string) error {
	text := err.Error()
	for _, a := range addrs {
		if a == "" {
			continue
		}
		text = regexp.MustCompile(`(?i)`+regexp.QuoteMeta(a)).ReplaceAllString(text, "[recipient]")
		if at := strings.LastIndexByte(a, '@'); at > 0 {
			// A local part is matched only between characters that cannot be
			// part of an address, so "ops" is hidden but "operations" is not.
			local := regexp.MustCompile(`(?i)(^|[^\w.+%-])` + regexp.QuoteMeta(a[:at]) + `([^\w.+%-]|$)`)
			for range 2 { // two matches side by side share a separator: a second pass gets the other
				text = local.ReplaceAllString(text, "${1}[recipient]${2}")
			}
		}
	}
	return &redactedError{msg: prefix + ": " + text, err: err}
}
