package workers_test

import (
	"context"
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

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulksvc"
	"github.com/bulkd/bulkd/pkg/mailer"
	"github.com/bulkd/bulkd/pkg/smtptest"
	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/testenv"
	"github.com/bulkd/bulkd/pkg/webhook"
	"github.com/bulkd/bulkd/workers"
	"github.com/bulkd/bulkd/workers/tasks"
)

const (
	baseURL     = "https://bulkd.example.com"
	notifyEmail = "ops@acme.example"
	// deadline bounds every wait on something done in the background; it is
	// generous so that a slow machine never fails a correct test.
	deadline = 30 * time.Second
)

var discard = slog.New(slog.DiscardHandler)

// env is a test's own database with one organization.
type env struct {
	testenv.Database
	org models.Organization
}

func newEnv(t *testing.T) env {
	t.Helper()
	db := testenv.NewDatabase(t)
	org, err := db.Store.CreateOrganization(t.Context(), "Acme", notifyEmail)
	if err != nil {
		t.Fatal(err)
	}
	return env{Database: db, org: org}
}

// createBulk stores the seed as a pending bulk of the organization.
func (e env) createBulk(t *testing.T) models.Bulk {
	t.Helper()
	b, _, err := e.Store.CreateBulk(t.Context(), store.NewBulk{OrganizationID: e.org.ID, Rows: testenv.SeedRows(t)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// importedBulk stores the seed as a bulk and imports it as a worker would,
// without queuing anything.
func (e env) importedBulk(t *testing.T) models.Bulk {
	t.Helper()
	b := e.ImportBulk(t, e.createBulk(t).ID)
	if b.Status != models.StatusCompleted {
		t.Fatalf("bulk after import: %+v", b)
	}
	return b
}

func (e env) bulk(t *testing.T, id uuid.UUID) models.Bulk {
	t.Helper()
	b, err := e.Store.Bulk(t.Context(), e.org.ID, id)
	if err != nil {
		t.Fatalf("read bulk %s: %v", id, err)
	}
	return b
}

// newDeliverer returns a Deliverer that sends email through ts in clear
// text (webhooks off).
func (e env) newDeliverer(t *testing.T, ts *smtptest.Server) *workers.Deliverer {
	t.Helper()
	sender, err := mailer.New(mailer.Config{
		Host: ts.Host(), Port: ts.Port(), TLS: mailer.TLSNone, From: "bulkd@example.com", Timeout: 10 * time.Second,
	}, discard)
	if err != nil {
		t.Fatal(err)
	}
	return workers.NewDeliverer(workers.DelivererConfig{Store: e.Store, Bulks: bulksvc.New(e.Store, nil, discard), Mail: sender,
		Webhooks: bulksvc.NewWebhooks(e.Store, nil, webhook.Policy{}), BaseURL: baseURL, Log: discard})
}

// emailOf returns the email delivery of a finished bulk.
func (e env) emailOf(t *testing.T, bulkID uuid.UUID) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	if err := e.Conn.QueryRow(t.Context(), `SELECT id FROM deliveries WHERE bulk_id = $1 AND channel = 'email'`, bulkID).Scan(&id); err != nil {
		t.Fatalf("email delivery of bulk %s: %v", bulkID, err)
	}
	return id
}

// emailed tells whether the bulk's email is recorded as delivered, and
// whether its claim is held.
func (e env) emailed(t *testing.T, bulkID uuid.UUID) (delivered, claimed bool) {
	t.Helper()
	if err := e.Conn.QueryRow(t.Context(), `SELECT delivered_at IS NOT NULL, claimed_at IS NOT NULL FROM deliveries
		WHERE bulk_id = $1 AND channel = 'email'`, bulkID).Scan(&delivered, &claimed); err != nil {
		t.Fatalf("email delivery of bulk %s: %v", bulkID, err)
	}
	return delivered, claimed
}

// emailTask is the task of a finished bulk's email.
func (e env) emailTask(t *testing.T, bulkID uuid.UUID) *asynq.Task {
	t.Helper()
	task, err := tasks.NewDeliveryTask(e.emailOf(t, bulkID), store.ChannelEmail)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func importTask(t *testing.T, id uuid.UUID) *asynq.Task {
	t.Helper()
	task, err := tasks.NewImportTask(id)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// notifications records the deliveries queued, or fails with err.
type notifications struct {
	mu  sync.Mutex
	ids []uuid.UUID
	err error
}

func (n *notifications) EnqueueDelivery(_ context.Context, id uuid.UUID, _ string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.err != nil {
		return n.err
	}
	n.ids = append(n.ids, id)
	return nil
}

// EnqueueImport and CancelImport are not what these tests watch: imports
// are run directly.
func (n *notifications) EnqueueImport(context.Context, uuid.UUID) error { return nil }
func (n *notifications) CancelImport(context.Context, uuid.UUID) error  { return nil }

func (n *notifications) queued() []uuid.UUID {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]uuid.UUID(nil), n.ids...)
}

func (n *notifications) fail(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.err = err
}

// redis leases a Redis database of the test's own and returns its options.
func redis(t *testing.T) asynq.RedisConnOpt {
	t.Helper()
	opt, err := asynq.ParseRedisURI(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	return opt
}

func newQueue(t *testing.T, opt asynq.RedisConnOpt) *tasks.Queue {
	t.Helper()
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	in := asynq.NewInspector(opt)
	t.Cleanup(func() { in.Close() })
	return tasks.NewQueue(client, in)
}

func newInspector(t *testing.T, opt asynq.RedisConnOpt) *asynq.Inspector {
	t.Helper()
	in := asynq.NewInspector(opt)
	t.Cleanup(func() { in.Close() })
	return in
}

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

func TestImporterImportsOnceAndQueuesNotification(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pending := e.createBulk(t)
	notify := &notifications{}
	im := workers.NewImporter(bulksvc.New(e.Store, notify, discard), discard)

	if err := im.Import(t.Context(), pending.ID); err != nil {
		t.Fatalf("Import: %v", err)
	}
	done := e.bulk(t, pending.ID)
	if done.Status != models.StatusCompleted || done.RowsSucceeded != 1 || done.RowsFailed != 0 ||
		done.StartedAt == nil || done.CompletedAt == nil {
		t.Fatalf("bulk after import: %+v", done)
	}
	accounts := e.Count(t, `SELECT count(*) FROM debt_accounts WHERE bulk_id = $1`, pending.ID)
	if accounts != 6 {
		t.Errorf("%d accounts imported, want 6", accounts)
	}
	if diff := cmp.Diff([]uuid.UUID{e.emailOf(t, pending.ID)}, notify.queued()); diff != "" {
		t.Errorf("queued deliveries (-want +got):\n%s", diff)
	}

	// A duplicate task on the completed bulk writes nothing and queues the
	// notification again (its TaskID keeps it single in Redis).
	if err := im.ProcessTask(t.Context(), importTask(t, pending.ID)); err != nil {
		t.Fatalf("ProcessTask of a duplicate: %v", err)
	}
	if diff := cmp.Diff(done, e.bulk(t, pending.ID)); diff != "" {
		t.Errorf("a duplicate task changed the bulk (-before +after):\n%s", diff)
	}
	if n := e.Count(t, `SELECT count(*) FROM debt_accounts`); n != accounts {
		t.Errorf("%d accounts after a duplicate task, want %d", n, accounts)
	}
	if diff := cmp.Diff([]uuid.UUID{e.emailOf(t, pending.ID), e.emailOf(t, pending.ID)}, notify.queued()); diff != "" {
		t.Errorf("queued deliveries (-want +got):\n%s", diff)
	}
}

func TestImporterUnknownBulkIsNotRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	notify := &notifications{}
	im := workers.NewImporter(bulksvc.New(e.Store, notify, discard), discard)

	err := im.Import(t.Context(), uuid.New())
	if !errors.Is(err, asynq.SkipRetry) || !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Import of an unknown bulk: %v, want SkipRetry and ErrNotFound", err)
	}
	err = im.ProcessTask(t.Context(), asynq.NewTask(tasks.TypeImport, []byte(`{}`)))
	if !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("ProcessTask with an empty payload: %v, want SkipRetry", err)
	}
	if got := notify.queued(); len(got) != 0 {
		t.Errorf("queued notifications for no bulk: %v", got)
	}
}

func TestImporterRetriesQueuingTheNotification(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pending := e.createBulk(t)
	notify := &notifications{}
	im := workers.NewImporter(bulksvc.New(e.Store, notify, discard), discard)

	// Redis is down after the import committed: the task fails for a retry.
	down := errors.New("redis: connection refused")
	notify.fail(down)
	if err := im.Import(t.Context(), pending.ID); !errors.Is(err, down) || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("Import with the queue down: %v, want a retryable error wrapping %v", err, down)
	}
	done := e.bulk(t, pending.ID)
	if done.Status != models.StatusCompleted {
		t.Fatalf("bulk after import: %+v", done)
	}
	accounts := e.Count(t, `SELECT count(*) FROM debt_accounts`)

	notify.fail(nil)
	if err := im.Import(t.Context(), pending.ID); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if diff := cmp.Diff([]uuid.UUID{e.emailOf(t, pending.ID)}, notify.queued()); diff != "" {
		t.Errorf("queued deliveries (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(done, e.bulk(t, pending.ID)); diff != "" {
		t.Errorf("the retry changed the bulk (-before +after):\n%s", diff)
	}
	if n := e.Count(t, `SELECT count(*) FROM debt_accounts`); n != accounts {
		t.Errorf("%d accounts after the retry, want %d", n, accounts)
	}
}

func TestImporterQueuesOneNotificationTaskInRedis(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opt := redis(t)
	pending := e.createBulk(t)
	im := workers.NewImporter(bulksvc.New(e.Store, newQueue(t, opt), discard), discard)
	in := newInspector(t, opt)

	for range 2 {
		if err := im.Import(t.Context(), pending.ID); err != nil {
			t.Fatalf("Import: %v", err)
		}
	}
	info, err := in.GetTaskInfo(tasks.QueueNotifications, tasks.DeliveryTaskID(e.emailOf(t, pending.ID)))
	if err != nil {
		t.Fatalf("notification task: %v", err)
	}
	if info.Type != tasks.TypeEmailDelivery || info.MaxRetry != tasks.NotificationMaxRetry {
		t.Errorf("notification task: type %q, max retry %d", info.Type, info.MaxRetry)
	}
	pendingTasks, err := in.ListPendingTasks(tasks.QueueNotifications)
	if err != nil {
		t.Fatal(err)
	}
	if len(pendingTasks) != 1 {
		t.Errorf("%d notification tasks after two imports, want 1", len(pendingTasks))
	}
}

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
	im := workers.NewImporter(bulksvc.New(e.Store, notify, discard), discard)
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
	im := workers.NewImporter(bulksvc.New(e.Store, &notifications{}, discard), discard)

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
	im := workers.NewImporter(bulksvc.New(e.Store, notify, discard), discard)

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

func TestReconcilerRepairsWhatTheQueueLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opt := redis(t)
	queue := newQueue(t, opt)
	in := newInspector(t, opt)
	ctx := t.Context()
	start := func(b models.Bulk) models.Bulk {
		t.Helper()
		b, err := e.Store.StartBulk(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	pendingNoTask := e.createBulk(t)           // Redis was down at submit
	processingNoTask := start(e.createBulk(t)) // Redis lost the task mid-import
	pendingQueued := e.createBulk(t)           // on its way: left alone
	if err := queue.EnqueueImport(ctx, pendingQueued.ID); err != nil {
		t.Fatal(err)
	}
	gaveUp := start(e.createBulk(t)) // last retry archived, but Postgres was down for the failure handler
	if err := queue.EnqueueImport(ctx, gaveUp.ID); err != nil {
		t.Fatal(err)
	}
	if err := in.ArchiveTask(tasks.QueueImports, tasks.ImportTaskID(gaveUp.ID)); err != nil {
		t.Fatal(err)
	}
	finishedNotEmailed := e.importedBulk(t)
	emailed := e.importedBulk(t)
	c, err := e.Store.ClaimDelivery(ctx, e.emailOf(t, emailed.ID), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Store.FinishDelivery(ctx, c, store.Attempt{StartedAt: time.Now()}, true); err != nil {
		t.Fatal(err)
	}
	keyed, _, err := e.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: e.org.ID,
		IdempotencyKey: &store.IdempotencyKey{Key: "old", RequestHash: []byte{1}}, Rows: testenv.SeedRows(t)})
	if err != nil {
		t.Fatal(err)
	}
	// A day later its key has expired; the bulk it made is still pending with no task.
	if _, err := e.Conn.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '25 hours'`); err != nil {
		t.Fatal(err)
	}

	// Within the interval every bulk may still have its task on the way.
	if got, err := workers.NewReconciler(e.Store, queue, in, time.Hour, discard).Once(ctx); err != nil || got != (workers.Reconciled{ExpiredKeys: 1}) {
		t.Errorf("Once with a 1h interval: %+v, %v; want only the expired key", got, err)
	}

	time.Sleep(5 * time.Millisecond)
	r := workers.NewReconciler(e.Store, queue, in, time.Millisecond, discard)
	got, err := r.Once(ctx)
	if err != nil {
		t.Fatalf("Once: %v", err)
	}
	if want := (workers.Reconciled{ImportsQueued: 3, Failed: 1, DeliveriesQueued: 1}); got != want {
		t.Errorf("Once: %+v, want %+v", got, want)
	}
	for _, b := range []models.Bulk{pendingNoTask, processingNoTask, pendingQueued, keyed} {
		info, err := in.GetTaskInfo(tasks.QueueImports, tasks.ImportTaskID(b.ID))
		if err != nil || info.State != asynq.TaskStatePending || info.Type != tasks.TypeImport || info.MaxRetry != tasks.ImportMaxRetry {
			t.Errorf("import task of %s bulk: %+v, %v", b.Status, info, err)
		}
	}
	if b := e.bulk(t, gaveUp.ID); b.Status != models.StatusFailed || b.FailureReason == nil || *b.FailureReason != workers.ReasonRetriesExhausted {
		t.Errorf("bulk whose import gave up: status %s, reason %v", b.Status, b.FailureReason)
	}
	for _, b := range []models.Bulk{gaveUp, finishedNotEmailed} {
		if _, err := in.GetTaskInfo(tasks.QueueNotifications, tasks.DeliveryTaskID(e.emailOf(t, b.ID))); err != nil {
			t.Errorf("email task of bulk %s: %v", b.ID, err)
		}
	}
	if _, err := in.GetTaskInfo(tasks.QueueNotifications, tasks.DeliveryTaskID(e.emailOf(t, emailed.ID))); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("notification task of a bulk already emailed: %v, want none", err)
	}

	// Every task is in place now: a second pass, or another worker's, changes nothing.
	if got, err := r.Once(ctx); err != nil || got != (workers.Reconciled{}) {
		t.Errorf("second Once: %+v, %v; want nothing done", got, err)
	}
}

func TestReconcilerStopsAtRedisOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createBulk(t)
	// Nothing listens on port 1: Redis is down.
	down := asynq.RedisClientOpt{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond}
	r := workers.NewReconciler(e.Store, newQueue(t, down), newInspector(t, down), time.Nanosecond, discard)
	time.Sleep(time.Millisecond)
	if got, err := r.Once(t.Context()); err == nil || got.ImportsQueued != 0 {
		t.Errorf("Once with Redis down: %+v, %v; want an error and nothing queued", got, err)
	}
}

func TestReconcilerRunUntilCanceled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opt := redis(t)
	in := newInspector(t, opt)
	pending := e.createBulk(t)
	r := workers.NewReconciler(e.Store, newQueue(t, opt), in, 10*time.Millisecond, discard)

	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		r.Run(ctx)
	}()
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if _, err := in.GetTaskInfo(tasks.QueueImports, pending.ID.String()); err == nil {
			break
		}
		if time.Since(start) > deadline {
			t.Fatalf("Run did not queue the pending bulk within %v", deadline)
		}
	}
	cancel()
	select {
	case <-stopped:
	case <-time.After(deadline):
		t.Fatalf("Run did not return within %v of its context ending", deadline)
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
