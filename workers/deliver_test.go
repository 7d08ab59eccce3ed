package workers_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/pkg/smtptest"
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

func TestDelivererReleasesClaimWhenSendFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.importedBulk(t)
	refusing := smtptest.NewServer(t, smtptest.Options{
		DataErr: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "message refused"},
	})

	err := e.newDeliverer(t, refusing).ProcessTask(t.Context(), e.emailTask(t, b.ID))
	if err == nil {
		t.Fatal("ProcessTask succeeded although the server refused the message")
	}
	if errors.Is(err, asynq.SkipRetry) {
		t.Errorf("a refused message must be retried: %v", err)
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
