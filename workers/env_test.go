package workers_test

// What the workers' tests share: a database of the test's own with one
// organization, its bulks and deliveries, a leased Redis database, and a
// fake of the queue that records what is queued. The tests are by
// component: import_test.go, deliver_test.go, reconcile_test.go, and
// server_test.go for the error handler and the retry policy.

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

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
	return e.emailDeliverer(t, ts, discard)
}

// emailDeliverer is newDeliverer logging to log.
func (e env) emailDeliverer(t *testing.T, ts *smtptest.Server, log *slog.Logger) *workers.Deliverer {
	t.Helper()
	sender, err := mailer.New(mailer.Config{
		Host: ts.Host(), Port: ts.Port(), TLS: mailer.TLSNone, From: "bulkd@example.com", Timeout: 10 * time.Second,
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	return workers.NewDeliverer(workers.DelivererConfig{Store: e.Store, Bulks: bulksvc.New(e.Store, nil, log, nil), Mail: sender,
		Webhooks: bulksvc.NewWebhooks(e.Store, nil, webhook.Policy{}, log), BaseURL: baseURL, Log: log})
}

// webhooks returns the organizations' endpoints with webhooks on, to any
// address (the tests' receivers are on loopback).
func (e env) webhooks(t *testing.T, log *slog.Logger) *bulksvc.Webhooks {
	t.Helper()
	sealer, err := webhook.NewSealer([]byte("test-key-test-key-test-key-test-"))
	if err != nil {
		t.Fatal(err)
	}
	return bulksvc.NewWebhooks(e.Store, sealer, webhook.Policy{AllowPrivate: true}, log)
}

// webhookTask is the task of a finished bulk's webhook delivery.
func (e env) webhookTask(t *testing.T, bulkID uuid.UUID) *asynq.Task {
	t.Helper()
	var id uuid.UUID
	if err := e.Conn.QueryRow(t.Context(), `SELECT id FROM deliveries WHERE bulk_id = $1 AND channel = 'webhook'`, bulkID).Scan(&id); err != nil {
		t.Fatalf("webhook delivery of bulk %s: %v", bulkID, err)
	}
	task, err := tasks.NewDeliveryTask(id, store.ChannelWebhook)
	if err != nil {
		t.Fatal(err)
	}
	return task
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
func (n *notifications) EnqueueImport(context.Context, uuid.UUID) error        { return nil }
func (n *notifications) CancelImport(context.Context, uuid.UUID) error         { return nil }
func (n *notifications) RunImportNow(context.Context, uuid.UUID) (bool, error) { return false, nil }

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
