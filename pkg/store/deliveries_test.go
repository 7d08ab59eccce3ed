package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkd/bulkd/pkg/store"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// FinishDelivery records an attempt only for the worker that still holds
// the claim: a worker whose claim expired (it stalled past the lease: a
// paused VM, a Postgres that hung its FinishDelivery) and was taken over by
// another that made the delivery gets ErrClaimLost for its late failed
// attempt, and the delivery stays made: not pending again for the
// reconciler to send a second time, nor claimable.
func TestLateFailedAttemptDoesNotUndoADelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.submitAndImport(t, e.org.ID, testenv.SeedRows(t))
	outbox, err := e.Store.PendingDeliveries(ctx, b.ID)
	if err != nil || len(outbox) != 1 {
		t.Fatalf("deliveries: %+v, %v", outbox, err)
	}
	id := outbox[0].ID

	// Worker A claims, then stalls past the lease.
	a, err := e.Store.ClaimDelivery(ctx, id, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Worker B takes the expired claim over and makes the delivery.
	b2, err := e.Store.ClaimDelivery(ctx, id, 0)
	if err != nil {
		t.Fatalf("taking over an expired claim: %v", err)
	}
	if err := e.Store.FinishDelivery(ctx, b2, store.Attempt{StartedAt: time.Now()}, true); err != nil {
		t.Fatal(err)
	}
	// Worker A wakes up and records its attempt as failed.
	if err := e.Store.FinishDelivery(ctx, a, store.Attempt{StartedAt: time.Now(), Error: "smtp: 451"}, false); !errors.Is(err, store.ErrClaimLost) {
		t.Errorf("the late attempt of a worker that lost its claim: %v, want ErrClaimLost", err)
	}

	if n := e.Count(t, `SELECT count(*) FROM deliveries WHERE id = $1 AND delivered_at IS NOT NULL`, id); n != 1 {
		t.Errorf("a late failed attempt of a worker that lost its claim undid the delivery: delivered_at is NULL again")
	}
	if pending, err := e.Store.PendingDeliveries(ctx, b.ID); err != nil || len(pending) != 0 {
		t.Errorf("the delivery made is pending again, for the reconciler to send a second time: %+v, %v", pending, err)
	}
	if _, err := e.Store.ClaimDelivery(ctx, id, time.Minute); err == nil {
		t.Errorf("a delivery made can be claimed again")
	}
}

// A webhook removed while a bulk ends leaves no delivery pending for it:
// its DELETE waits for the transaction that records the bulk's deliveries
// and then gives the new one up with the others (a DELETE that comes first
// leaves none to record). Otherwise the delivery would be committed after
// the DELETE gave up the pending ones, and its task would find no webhook.
func TestWebhookRemovedWhileABulkEndsLeavesNoDeliveryPending(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, _, err := e.Store.CreateWebhook(ctx, e.org.ID, "https://hooks.example.com/bulkd", []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	b, _, err := e.Store.CreateBulk(ctx, store.NewBulk{OrganizationID: e.org.ID, Rows: testenv.SeedRows(t)})
	if err != nil {
		t.Fatal(err)
	}
	deleted := make(chan error, 1)
	err = e.Store.WithTx(ctx, func(tx pgx.Tx) error {
		if err := store.RecordDeliveries(ctx, tx, b.OrganizationID, b.ID, store.EventCompleted, false); err != nil {
			return err
		}
		go func() {
			_, err := e.Store.DeleteWebhook(ctx, e.org.ID)
			deleted <- err
		}()
		// Commit once the DELETE is done or waits for this transaction.
		testenv.Eventually(t, 30*time.Second, func() error {
			if len(deleted) > 0 || e.Count(t, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ~* '^\s*delete from webhooks'`) > 0 {
				return nil
			}
			return errors.New("the DELETE of the webhook to finish or to wait")
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-deleted; err != nil {
		t.Fatalf("DeleteWebhook: %v", err)
	}
	if n := e.Count(t, `SELECT count(*) FROM deliveries WHERE bulk_id = $1 AND channel = 'webhook' AND abandoned_at IS NULL`, b.ID); n != 0 {
		t.Errorf("%d webhook deliveries pending after the webhook was removed, for a task to find no webhook", n)
	}
}

// A webhook disabled (its endpoint answered 410 Gone) gives its pending
// deliveries up with the reason, and no event is recorded for it until it
// is PUT again; a 410 from a URL it has moved from since changes nothing.
func TestDisabledWebhookIsToldNothingUntilPutAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const url = "https://hooks.example.com/bulkd"
	if _, _, err := e.Store.CreateWebhook(ctx, e.org.ID, url, []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	pending := e.submitAndImport(t, e.org.ID, testenv.SeedRows(t))

	if disabled, _, err := e.Store.DisableWebhook(ctx, e.org.ID, "https://elsewhere.example.com/", "gone"); err != nil || disabled {
		t.Fatalf("DisableWebhook of another URL: %v, %v; want nothing changed", disabled, err)
	}
	disabled, abandoned, err := e.Store.DisableWebhook(ctx, e.org.ID, url, "gone")
	if err != nil || !disabled || abandoned != 1 {
		t.Fatalf("DisableWebhook: %v, %d abandoned, %v; want disabled, 1 abandoned", disabled, abandoned, err)
	}
	if again, _, err := e.Store.DisableWebhook(ctx, e.org.ID, url, "gone"); err != nil || again {
		t.Errorf("a second DisableWebhook: %v, %v; want it disabled once", again, err)
	}
	if n := e.Count(t, `SELECT count(*) FROM deliveries WHERE bulk_id = $1 AND channel = 'webhook'
		AND abandoned_at IS NOT NULL AND last_error = 'gone'`, pending.ID); n != 1 {
		t.Errorf("the pending delivery is not given up with the reason")
	}
	w, err := e.Store.Webhook(ctx, e.org.ID)
	if err != nil || w.DisabledAt == nil || w.DisabledReason != "gone" || w.URL != url {
		t.Errorf("webhook after DisableWebhook: %+v, %v", w, err)
	}

	later := e.submitAndImport(t, e.org.ID, testenv.SeedRows(t))
	if n := e.Count(t, `SELECT count(*) FROM deliveries WHERE bulk_id = $1 AND channel = 'webhook'`, later.ID); n != 0 {
		t.Errorf("an event recorded for a disabled webhook")
	}
	if w, err := e.Store.UpdateWebhook(ctx, e.org.ID, url); err != nil || w.DisabledAt != nil || w.DisabledReason != "" {
		t.Fatalf("PUT again: %+v, %v; want it enabled", w, err)
	}
	enabled := e.submitAndImport(t, e.org.ID, testenv.SeedRows(t))
	if n := e.Count(t, `SELECT count(*) FROM deliveries WHERE bulk_id = $1 AND channel = 'webhook' AND abandoned_at IS NULL`, enabled.ID); n != 1 {
		t.Errorf("no event recorded for the webhook PUT again")
	}
}
