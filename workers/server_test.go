package workers_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/logattr"
	"github.com/bulkd/bulkd/pkg/smtptest"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/testenv"
	"github.com/bulkd/bulkd/workers"
	"github.com/bulkd/bulkd/workers/tasks"
)

func TestFailExhaustedMarksBulkFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	processing, err := e.Store.StartBulk(t.Context(), e.createBulk(t).ID)
	if err != nil {
		t.Fatal(err)
	}
	other, err := e.Store.StartBulk(t.Context(), e.createBulk(t).ID)
	if err != nil {
		t.Fatal(err)
	}
	notify := &notifications{}
	im := workers.NewImporter(bulksvc.New(e.Store, notify, discard, nil), discard)
	taskErr := errors.Join(errors.New("import bulk: bad data"), asynq.SkipRetry)

	// Another task type's failure is none of the importer's business.
	otherTask, err := tasks.NewDeliveryTask(uuid.New(), store.ChannelEmail)
	if err != nil {
		t.Fatal(err)
	}
	im.FailExhausted(t.Context(), otherTask, taskErr)
	if got := e.bulk(t, other.ID); got.Status != models.StatusProcessing || got.FailureReason != nil {
		t.Errorf("a notification task's failure changed the bulk: %+v", got)
	}
	if got := notify.queued(); len(got) != 0 {
		t.Errorf("queued notifications for another task type: %v", got)
	}

	im.FailExhausted(t.Context(), importTask(t, processing.ID), taskErr)
	failed := e.bulk(t, processing.ID)
	if failed.Status != models.StatusFailed || failed.FailureReason == nil || *failed.FailureReason == "" || failed.CompletedAt == nil {
		t.Fatalf("bulk after its import failed for good: %+v", failed)
	}
	if strings.Contains(*failed.FailureReason, "bad data") {
		t.Errorf("failure reason shows the internal error: %q", *failed.FailureReason)
	}
	if diff := cmp.Diff([]uuid.UUID{e.emailOf(t, processing.ID)}, notify.queued()); diff != "" {
		t.Errorf("queued notifications (-want +got):\n%s", diff)
	}

	// The organization is told why.
	ts := smtptest.NewServer(t, smtptest.Options{})
	if err := e.newDeliverer(t, ts).ProcessTask(t.Context(), e.emailTask(t, processing.ID)); err != nil {
		t.Fatalf("notify: %v", err)
	}
	msgs := ts.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d emails, want 1", len(msgs))
	}
	p := msgs[0].Parse(t)
	if want := "Bulk " + processing.ID.String() + " failed"; p.Subject != want {
		t.Errorf("subject %q, want %q", p.Subject, want)
	}
	if !strings.Contains(p.Text, *failed.FailureReason) {
		t.Errorf("email does not give the reason %q:\n%s", *failed.FailureReason, p.Text)
	}
}

func TestFailExhaustedLeavesFinishedBulk(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	done := e.importedBulk(t)
	im := workers.NewImporter(bulksvc.New(e.Store, &notifications{}, discard, nil), discard)

	im.FailExhausted(t.Context(), importTask(t, done.ID), errors.Join(errors.New("late failure"), asynq.SkipRetry))
	if diff := cmp.Diff(done, e.bulk(t, done.ID)); diff != "" {
		t.Errorf("a completed bulk was changed (-before +after):\n%s", diff)
	}
}

// TestFailExhaustedThroughAsynq runs FailExhausted as the error handler of a
// real asynq server, which gives it the retry count and limit in its context:
// a failure with retries left changes nothing; the last one fails the bulk.
func TestFailExhaustedThroughAsynq(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opt := redis(t)
	pending := e.createBulk(t)
	notify := &notifications{}
	im := workers.NewImporter(bulksvc.New(e.Store, notify, discard, nil), discard)

	type failure struct{ retried, maxRetry int }
	handled := make(chan failure, 10)
	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency:              1,
		Queues:                   tasks.QueueWeights,
		RetryDelayFunc:           func(int, error, *asynq.Task) time.Duration { return 0 },
		DelayedTaskCheckInterval: 50 * time.Millisecond,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, task *asynq.Task, err error) {
			im.FailExhausted(ctx, task, err)
			retried, _ := asynq.GetRetryCount(ctx)
			maxRetry, _ := asynq.GetMaxRetry(ctx)
			handled <- failure{retried, maxRetry}
		}),
		LogLevel: asynq.FatalLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeImport, func(context.Context, *asynq.Task) error {
		return errors.New("database is down")
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)

	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	if _, err := client.Enqueue(importTask(t, pending.ID), asynq.MaxRetry(1)); err != nil {
		t.Fatal(err)
	}
	wait := func() failure {
		t.Helper()
		select {
		case f := <-handled:
			return f
		case <-time.After(deadline):
			t.Fatalf("the error handler was not called within %v", deadline)
			return failure{}
		}
	}

	if f := wait(); f != (failure{0, 1}) {
		t.Fatalf("first failure: %+v, want retried 0 of 1", f)
	}
	if got := e.bulk(t, pending.ID); got.Status != models.StatusPending || got.FailureReason != nil {
		t.Errorf("a failure with a retry left changed the bulk: %+v", got)
	}
	if got := notify.queued(); len(got) != 0 {
		t.Errorf("queued notifications before the last retry: %v", got)
	}

	if f := wait(); f != (failure{1, 1}) {
		t.Fatalf("second failure: %+v, want retried 1 of 1", f)
	}
	if got := e.bulk(t, pending.ID); got.Status != models.StatusFailed || got.FailureReason == nil {
		t.Errorf("bulk after its last retry failed: %+v", got)
	}
	if diff := cmp.Diff([]uuid.UUID{e.emailOf(t, pending.ID)}, notify.queued()); diff != "" {
		t.Errorf("queued notifications (-want +got):\n%s", diff)
	}
}

// recipient finds the organization's address, or its local part alone, in
// any case.
var recipient = regexp.MustCompile(`(?i)ops@acme\.example|\bops\b`)

// serveDeliveries runs d on a real asynq server of the test's own, with the
// worker's error handler and no wait between retries, and returns a client
// of its queue.
func serveDeliveries(t *testing.T, e env, opt asynq.RedisConnOpt, d *workers.Deliverer, log *slog.Logger) *asynq.Client {
	t.Helper()
	im := workers.NewImporter(bulksvc.New(e.Store, &notifications{}, log, nil), log)
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
	return client
}

// TestRefusedRecipientIsSeenButNeverNamed runs the notification task on a real
// asynq server against an SMTP server that refuses the recipient for now
// (4xx), echoing it in capitals: the delivery keeps its retry schedule,
// every attempt is a WARN line, the exhausted task an ERROR line, and
// neither those lines nor the error asynq stores in Redis show the address
// in any form.
func TestRefusedRecipientIsSeenButNeverNamed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.importedBulk(t)
	opt := redis(t)
	ts := smtptest.NewServer(t, smtptest.Options{
		RcptErr: &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "<OPS@ACME.EXAMPLE>: Mailbox busy, try later"},
	})
	var logs testenv.LogBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	client := serveDeliveries(t, e, opt, e.emailDeliverer(t, ts, log), log)
	const maxRetry = 2
	info, err := client.Enqueue(e.emailTask(t, b.ID), asynq.MaxRetry(maxRetry))
	if err != nil {
		t.Fatal(err)
	}

	// The error handler's line comes after the last attempt's: the logs of
	// every attempt are complete once it is there.
	var failed map[string]any
	testenv.Eventually(t, deadline, func() error {
		for _, l := range logs.Lines(t) {
			if l["level"] == "ERROR" && l["msg"] == "delivery failed for good" {
				failed = l
				return nil
			}
		}
		return fmt.Errorf("an ERROR line for the exhausted notification; the logs:\n%s", logs.String())
	})
	if failed["delivery_id"] != e.emailOf(t, b.ID).String() {
		t.Errorf("ERROR line without the delivery id: %v", failed)
	}
	// Given up for good, so that the reconciler does not queue it again: the
	// error handler marks it so once it has said so at ERROR.
	testenv.Eventually(t, deadline, func() error {
		if n := e.Count(t, `SELECT count(*) FROM deliveries WHERE bulk_id = $1 AND abandoned_at IS NOT NULL`, b.ID); n != 1 {
			return errors.New("the exhausted delivery to be marked abandoned")
		}
		return nil
	})

	var attempts []float64
	for _, l := range logs.Lines(t) {
		if l["level"] == "WARN" && l["msg"] == "delivery not made" {
			attempts = append(attempts, l["attempt"].(float64))
			if l["bulk_id"] != b.ID.String() || l["smtp_code"] != float64(450) || l["smtp_status"] != "4.2.1" {
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

	in := newInspector(t, opt)
	stored, err := in.GetTaskInfo(info.Queue, info.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.LastErr == "" || recipient.MatchString(stored.LastErr) {
		t.Errorf("error stored in Redis: %q; want the failure without the recipient", stored.LastErr)
	}
	if !strings.Contains(stored.LastErr, "450 4.2.1") {
		t.Errorf("error stored in Redis: %q; want the SMTP codes", stored.LastErr)
	}
}

// A permanent refusal (5xx) of the recipient or of the message ends the
// email at once, whatever retries it has left, instead of retrying for
// hours: one attempt, recorded with the SMTP reply code; the delivery
// abandoned, its last error giving the codes; the task archived (not
// retried); and one ERROR line, which names the codes and not the
// recipient the server echoed. The error handler, which abandons and logs
// what runs out of retries, does neither a second time.
func TestPermanentRefusalEndsTheEmailAtOnce(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]smtptest.Options{
		"recipient": {RcptErr: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<OPS@ACME.EXAMPLE>: Recipient address rejected"}},
		"message":   {DataErr: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message refused for ops@acme.example"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			b := e.importedBulk(t)
			opt := redis(t)
			ts := smtptest.NewServer(t, opts)
			var logs testenv.LogBuffer
			log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			client := serveDeliveries(t, e, opt, e.emailDeliverer(t, ts, log), log)
			info, err := client.Enqueue(e.emailTask(t, b.ID), asynq.MaxRetry(2))
			if err != nil {
				t.Fatal(err)
			}
			// asynq archives a task after its error handler has run.
			in := newInspector(t, opt)
			var stored *asynq.TaskInfo
			testenv.Eventually(t, deadline, func() error {
				if stored, err = in.GetTaskInfo(info.Queue, info.ID); err != nil || stored.State != asynq.TaskStateArchived {
					return fmt.Errorf("the task to be archived (%v, %v)", stored, err)
				}
				return nil
			})
			code, status := opts.RcptErr, "5.1.1"
			if code == nil {
				code, status = opts.DataErr, "5.7.1"
			}
			want := fmt.Sprintf("%d %s", code.(*smtp.SMTPError).Code, status)
			if stored.Retried != 0 || !strings.Contains(stored.LastErr, want) || recipient.MatchString(stored.LastErr) {
				t.Errorf("task: retried %d, last error %q; want archived at once with %q, without the recipient", stored.Retried, stored.LastErr, want)
			}

			var (
				attempts, statusCode int
				lastError            string
			)
			if err := e.Conn.QueryRow(t.Context(), `SELECT d.attempts, coalesce(d.last_error, ''), coalesce(a.status_code, 0)
				FROM deliveries d JOIN delivery_attempts a ON a.delivery_id = d.id
				WHERE d.bulk_id = $1 AND d.channel = 'email' AND d.abandoned_at IS NOT NULL`, b.ID).Scan(&attempts, &lastError, &statusCode); err != nil {
				t.Fatalf("the abandoned email and its attempt: %v", err)
			}
			if attempts != 1 || statusCode != code.(*smtp.SMTPError).Code || !strings.Contains(lastError, want) || recipient.MatchString(lastError) {
				t.Errorf("delivery: %d attempts, status %d, last error %q; want 1 attempt, %s", attempts, statusCode, lastError, want)
			}

			var lines []map[string]any
			for _, l := range logs.Lines(t) {
				if l["level"] == "ERROR" || l["level"] == "WARN" {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || lines[0]["level"] != "ERROR" || lines[0]["msg"] != "delivery failed for good" ||
				lines[0]["delivery_id"] != e.emailOf(t, b.ID).String() || lines[0]["smtp_code"] != float64(code.(*smtp.SMTPError).Code) {
				t.Errorf("want one ERROR line with the delivery id and the SMTP code, and no other WARN or ERROR; the logs:\n%s", logs.String())
			}
			if m := recipient.FindString(logs.String()); m != "" {
				t.Errorf("the logs show the recipient (%q):\n%s", m, logs.String())
			}
		})
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	const limit = 5 * time.Minute
	if d := tasks.RetryDelay(0, nil, nil); d <= 0 {
		t.Fatalf("RetryDelay(0) = %v, want a positive delay", d)
	}
	prev := time.Duration(0)
	for n := range 40 {
		d := tasks.RetryDelay(n, errors.New("boom"), nil)
		switch {
		case d > limit:
			t.Errorf("RetryDelay(%d) = %v, over %v", n, d, limit)
		case prev < limit && d <= prev:
			t.Errorf("RetryDelay(%d) = %v, not more than RetryDelay(%d) = %v", n, d, n-1, prev)
		case prev == limit && d != limit:
			t.Errorf("RetryDelay(%d) = %v after reaching the cap of %v", n, d, limit)
		}
		prev = d
	}
	if prev != limit {
		t.Errorf("RetryDelay never reaches %v; RetryDelay(39) = %v", limit, prev)
	}
	for _, n := range []int{tasks.ImportMaxRetry, tasks.NotificationMaxRetry, 64, 1 << 20} {
		if d := tasks.RetryDelay(n, nil, nil); d <= 0 || d > limit {
			t.Errorf("RetryDelay(%d) = %v, want within (0, %v]", n, d, limit)
		}
	}
}

// The line that tells an import ran out of retries names the bulk's
// organization, whether or not the bulk was still unfinished for Fail to
// mark (it may have ended meanwhile: completed by a duplicate, canceled).
func TestFailExhaustedLineNamesTheOrganization(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	done := e.importedBulk(t)
	var logs testenv.LogBuffer
	log := slog.New(logattr.Handler(slog.NewJSONHandler(&logs, nil)))
	im := workers.NewImporter(bulksvc.New(e.Store, &notifications{}, log, nil), log)

	im.FailExhausted(t.Context(), importTask(t, done.ID), errors.Join(errors.New("late failure"), asynq.SkipRetry))
	var found bool
	for _, l := range logs.Lines(t) {
		if l["msg"] == "bulk import failed for good" {
			found = true
			if l["organization_id"] != e.org.ID.String() || l["bulk_id"] != done.ID.String() {
				t.Errorf("the line names organization %v and bulk %v, want %s and %s: %v", l["organization_id"], l["bulk_id"], e.org.ID, done.ID, l)
			}
		}
	}
	if !found {
		t.Fatalf("no line that the import failed for good:\n%s", logs.String())
	}
}
