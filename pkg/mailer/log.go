package mailer

import (
	"context"
	"log/slog"
)

// logSender stands in for SMTP when no host is configured: it writes what
// would have been sent to the log, without the recipient.
type logSender struct {
	log    *slog.Logger
	render *renderer
}

// SendBulkNotification logs the notification for c. The recipient to is
// deliberately not logged: addresses are personal data.
func (s *logSender) SendBulkNotification(ctx context.Context, to string, c Completion) error {
	m, err := s.render.render(c)
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "email not sent: SMTP_HOST is not set",
		slog.String("bulk_id", c.BulkID),
		slog.String("status", c.Status),
		slog.String("subject", m.subject),
		slog.String("body", m.text),
	)
	return nil
}
