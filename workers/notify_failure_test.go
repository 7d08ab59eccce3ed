package workers_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/mailer"
	"github.com/bulkd/bulkd/pkg/smtptest"
	"github.com/bulkd/bulkd/pkg/webhook"
	"github.com/bulkd/bulkd/workers"
	"github.com/bulkd/bulkd/workers/tasks"
)

// logBuffer collects JSON log lines written from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns every log line decoded.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// recipient finds the organization's address, or its local part alone, in
// any case.
var recipient = regexp.MustCompile(`(?i)ops@acme\.example|\bops\b`)

// TestRefusedRecipientIsSeenButNeverNamed runs the notification task on a real
// asynq server against an SMTP server that refuses the recipient, echoing it
// in capitals: every attempt is a WARN line, the exhausted task an ERROR
// line, and neither those lines nor the error asynq stores in Redis show the
// address in any form.
func TestRefusedRecipientIsSeenButNeverNamed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.importedBulk(t)
	opt := redis(t)
	ts := smtptest.NewServer(t, smtptest.Options{
		RcptErr: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<OPS@ACME.EXAMPLE>: Recipient address rejected"},
	})
	var logs logBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sender, err := mailer.New(mailer.Config{
		Host: ts.Host(), Port: ts.Port(), TLS: mailer.TLSNone, From: "bulkd@example.com", Timeout: 10 * time.Second,
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	d := workers.NewDeliverer(workers.DelivererConfig{Store: e.Store, Bulks: bulksvc.New(e.Store, nil, log), Mail: sender,
		Webhooks: bulksvc.NewWebhooks(e.Store, nil, webhook.Policy{}), BaseURL: baseURL, Log: log})
	im := workers.NewImporter(bulksvc.New(e.Store, &notifications{}, log), log)

	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency:              1,
		Queues:                   tasks.QueueWeights,
		RetryDelayFunc:           func(int, error, *asynq.Task) time.Duration { return 0 },
		DelayedTaskCheckInterval: 50 * time.Millisecond,
		ErrorHandler:             workers.NewErrorHandler(im, d, log),
		LogLevel:                 asynq.FatalLevel,
	})
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeEmailDelivery, d)
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	const maxRetry = 2
	info, err := client.Enqueue(e.emailTask(t, b.ID), asynq.MaxRetry(maxRetry))
	if err != nil {
		t.Fatal(err)
	}

	var failed map[string]any
	for stop := time.Now().Add(deadline); failed == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(stop) {
			t.Fatalf("no ERROR line for the exhausted notification within %v; logs:\n%s", deadline, logs.String())
		}
		for _, l := range logs.lines(t) {
			if l["level"] == "ERROR" && l["msg"] == "delivery failed for good" {
				failed = l
			}
		}
	}
	if failed["delivery_id"] != e.emailOf(t, b.ID).String() {
		t.Errorf("ERROR line without the delivery id: %v", failed)
	}
	// Given up for good: the reconciler does not queue it again.
	if n := e.Count(t, `SELECT count(*) FROM deliveries WHERE bulk_id = $1 AND abandoned_at IS NOT NULL`, b.ID); n != 1 {
		t.Errorf("the exhausted delivery is not marked abandoned")
	}

	var attempts []float64
	for _, l := range logs.lines(t) {
		if l["level"] == "WARN" && l["msg"] == "delivery not made" {
			attempts = append(attempts, l["attempt"].(float64))
			if l["bulk_id"] != b.ID.String() || l["smtp_code"] != float64(550) || l["smtp_status"] != "5.1.1" {
				t.Errorf("WARN line without the bulk id or the SMTP codes: %v", l)
			}
		}
	}
	if want := []float64{1, 2, 3}; !slices.Equal(attempts, want) {
		t.Errorf("WARN lines for attempts %v, want one per attempt %v; logs:\n%s", attempts, want, logs.String())
	}
	if m := recipient.FindString(logs.String()); m != "" {
		t.Errorf("the logs show the recipient (%q):\n%s", m, logs.String())
	}

	in := asynq.NewInspector(opt)
	t.Cleanup(func() { in.Close() })
	stored, err := in.GetTaskInfo(info.Queue, info.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.LastErr == "" || recipient.MatchString(stored.LastErr) {
		t.Errorf("error stored in Redis: %q; want the failure without the recipient", stored.LastErr)
	}
	if !strings.Contains(stored.LastErr, "550 5.1.1") {
		t.Errorf("error stored in Redis: %q; want the SMTP codes", stored.LastErr)
	}
}
