package workers_test

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/smtptest"
	"github.com/bulkd/bulkd/pkg/testenv"
	"github.com/bulkd/bulkd/workers"
	"github.com/bulkd/bulkd/workers/tasks"
)

func TestDelivererSendsOneEmailPerBulk(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.importedBulk(t)
	ts := smtptest.NewServer(t, smtptest.Options{})
	n := e.newDeliverer(t, ts)

	if err := n.ProcessTask(t.Context(), e.emailTask(t, b.ID)); err != nil {
		t.Fatalf("ProcessTask: %v", err)
	}
	msgs := ts.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d emails, want 1", len(msgs))
	}
	if diff := cmp.Diff([]string{notifyEmail}, msgs[0].To); diff != "" {
		t.Errorf("recipients (-want +got):\n%s", diff)
	}
	p := msgs[0].Parse(t)
	if want := "Bulk " + b.ID.String() + " completed: 1 of 1 rows fully imported, 0 with errors"; p.Subject != want {
		t.Errorf("subject %q, want %q", p.Subject, want)
	}
	if url := baseURL + "/api/v1/bulk/" + b.ID.String() + "/errors"; !strings.Contains(p.Text, url) {
		t.Errorf("text does not link %s:\n%s", url, p.Text)
	}
	if delivered, _ := e.emailed(t, b.ID); !delivered {
		t.Errorf("the email is not recorded as delivered")
	}

	// A duplicate task, as asynq may deliver, sends nothing more.
	if err := n.ProcessTask(t.Context(), e.emailTask(t, b.ID)); err != nil {
		t.Fatalf("ProcessTask of a duplicate: %v", err)
	}
	if got := len(ts.Messages()); got != 1 {
		t.Errorf("%d emails after a duplicate task, want 1", got)
	}
}

// A temporary refusal (4xx) keeps the delivery on its retry schedule: the
// claim is released, and the next attempt sends the email.
func TestDelivererReleasesClaimWhenSendFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.importedBulk(t)
	refusing := smtptest.NewServer(t, smtptest.Options{
		DataErr: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"},
	})

	err := e.newDeliverer(t, refusing).ProcessTask(t.Context(), e.emailTask(t, b.ID))
	if err == nil {
		t.Fatal("ProcessTask succeeded although the server refused the message")
	}
	if errors.Is(err, asynq.SkipRetry) {
		t.Errorf("a temporarily refused message must be retried: %v", err)
	}
	if strings.Contains(err.Error(), notifyEmail) {
		t.Errorf("error names the recipient: %v", err)
	}
	if n := len(refusing.Messages()); n != 0 {
		t.Errorf("refusing server recorded %d messages", n)
	}
	if delivered, claimed := e.emailed(t, b.ID); claimed || delivered {
		t.Errorf("claim not released after a failed send: claimed %v, delivered %v", claimed, delivered)
	}

	// The retry, once the server accepts mail again, sends the email.
	working := smtptest.NewServer(t, smtptest.Options{})
	if err := e.newDeliverer(t, working).ProcessTask(t.Context(), e.emailTask(t, b.ID)); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if n := len(working.Messages()); n != 1 {
		t.Errorf("%d emails on retry, want 1", n)
	}
}

func TestDelivererConcurrentTasksSendOneEmail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.importedBulk(t)
	ts := smtptest.NewServer(t, smtptest.Options{})
	n := e.newDeliverer(t, ts)

	const workers = 8
	errs := make(chan error, workers)
	task := e.emailTask(t, b.ID)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			errs <- n.ProcessTask(t.Context(), task)
		})
	}
	wg.Wait()
	close(errs)
	// The task that won the claim succeeds; the others may succeed or ask
	// for a retry, as long as no second email goes out.
	succeeded := 0
	for err := range errs {
		if err == nil {
			succeeded++
		} else {
			t.Logf("ProcessTask: %v", err)
		}
	}
	if succeeded == 0 {
		t.Errorf("none of %d concurrent tasks succeeded", workers)
	}
	if got := len(ts.Messages()); got != 1 {
		t.Errorf("%d emails from %d concurrent tasks, want 1", got, workers)
	}
	if delivered, _ := e.emailed(t, b.ID); !delivered {
		t.Errorf("the email is not recorded as delivered")
	}
}

// TestDelivererRetryAfterAbandonedClaim is the retry of a notification task
// whose worker claimed the bulk and died before recording the outcome (or
// could not record it: FinishNotification failed). asynq re-runs the task
// well within the claim's lease; the task must then either send the email or
// fail so that asynq tries again after the lease. Succeeding without sending
// drops the task, and the organization is never told.
func TestDelivererRetryAfterAbandonedClaim(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.importedBulk(t)
	if _, err := e.Store.ClaimDelivery(t.Context(), e.emailOf(t, b.ID), time.Minute); err != nil {
		t.Fatal(err)
	}
	ts := smtptest.NewServer(t, smtptest.Options{})

	err := e.newDeliverer(t, ts).ProcessTask(t.Context(), e.emailTask(t, b.ID))
	if err == nil && len(ts.Messages()) == 0 {
		t.Errorf("the retried task succeeded without sending: asynq deletes it and no email is ever sent")
	}
}

func TestDelivererRejectsBadPayload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ts := smtptest.NewServer(t, smtptest.Options{})
	d := e.newDeliverer(t, ts)
	for _, payload := range []string{`not json`, `{}`, `{"delivery_id":"00000000-0000-0000-0000-000000000000"}`,
		`{"delivery_id":"` + uuid.NewString() + `"}`} {
		err := d.ProcessTask(t.Context(), asynq.NewTask(tasks.TypeEmailDelivery, []byte(payload)))
		if !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("payload %s: err %v, want SkipRetry", payload, err)
		}
	}
	if got := len(ts.Messages()); got != 0 {
		t.Errorf("%d emails, want none", got)
	}
}

// A delivery whose webhook is gone when its task runs (removed, or
// disabled, after the event was recorded) is given up quietly: the
// client's DELETE said so once, at INFO, and this is no failure to log at
// ERROR, delivery by delivery. Nothing is attempted or archived.
func TestDeliveryOfARemovedWebhookIsGivenUpQuietly(t *testing.T) {
	t.Parallel()
	for _, gone := range []string{
		`DELETE FROM webhooks`,
		`UPDATE webhooks SET disabled_at = now(), disabled_reason = 'The endpoint answered 410 Gone.'`,
	} {
		t.Run(strings.Fields(gone)[0], func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			var logs testenv.LogBuffer
			log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
			hooks := e.webhooks(t, log)
			if _, _, err := hooks.Put(t.Context(), e.org.ID, "http://127.0.0.1:9/hook"); err != nil {
				t.Fatal(err)
			}
			b := e.importedBulk(t)
			// As when the bulk ended while its webhook went: its delivery was
			// recorded, and is pending, after the webhook was removed.
			if _, err := e.Conn.Exec(t.Context(), gone); err != nil {
				t.Fatal(err)
			}
			d := workers.NewDeliverer(workers.DelivererConfig{Store: e.Store, Bulks: bulksvc.New(e.Store, nil, log, nil), Webhooks: hooks, BaseURL: baseURL, Log: log})
			task := e.webhookTask(t, b.ID)
			if err := d.ProcessTask(t.Context(), task); err != nil {
				workers.NewErrorHandler(nil, d, log).HandleError(t.Context(), task, err)
			}

			var (
				abandoned bool
				lastError string
				attempts  int
			)
			if err := e.Conn.QueryRow(t.Context(), `SELECT abandoned_at IS NOT NULL, coalesce(last_error, ''), attempts
				FROM deliveries WHERE bulk_id = $1 AND channel = 'webhook'`, b.ID).Scan(&abandoned, &lastError, &attempts); err != nil {
				t.Fatal(err)
			}
			if !abandoned || !strings.HasPrefix(lastError, "The webhook ") || attempts != 0 {
				t.Errorf("delivery: abandoned %v, last error %q, %d attempts; want given up, saying why, without an attempt", abandoned, lastError, attempts)
			}
			for _, l := range logs.Lines(t) {
				if l["level"] != "INFO" {
					t.Errorf("a %s line for a delivery whose webhook is gone: %v", l["level"], l)
				}
			}
		})
	}
}
