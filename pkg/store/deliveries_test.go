package store_test

import (
	"errors"
	"testing"
	"time"

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
