package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/bulkd/bulkd/models"
)

// Channels that deliver the news of a bulk's end.
const (
	ChannelEmail   = "email"
	ChannelWebhook = "webhook"
)

// Events a delivery tells of.
const (
	EventCompleted = "bulk.completed"
	EventFailed    = "bulk.failed"
	EventCanceled  = "bulk.canceled"
)

// Delivery is one message of the outbox: a bulk's end told on one channel.
type Delivery struct {
	ID             uuid.UUID
	BulkID         uuid.UUID
	OrganizationID uuid.UUID
	Channel        string
	Event          string
	// Target is the address or the URL while the delivery is to be made,
	// "" once it has ended: an ended delivery keeps no address.
	Target      string
	Attempts    int
	CreatedAt   time.Time
	DeliveredAt *time.Time
	AbandonedAt *time.Time
	LastError   *string
}

// recordDeliveries writes, in the transaction that ends a bulk, the
// deliveries that tell of it: the organization's email when email is set,
// and its webhook when it has one that is not disabled. A bulk's end is
// told once per channel, whatever retries happen (the second insert finds
// the first); a bulk retried after it failed ends again, and its deliveries
// of the first end were superseded by the retry (RetryBulk).
func recordDeliveries(ctx context.Context, tx pgx.Tx, orgID, bulkID uuid.UUID, event string, email bool) error {
	if email {
		if _, err := tx.Exec(ctx, `
			INSERT INTO deliveries (id, bulk_id, organization_id, channel, event, target)
			SELECT $2::uuid, b.id, b.organization_id, 'email', $3, o.notify_email
			  FROM bulks b JOIN organizations o ON o.id = b.organization_id WHERE b.organization_id = $4 AND b.id = $1
			ON CONFLICT (organization_id, bulk_id, channel) WHERE superseded_at IS NULL DO NOTHING`,
			pgUUID(bulkID), pgUUID(uuid.Must(uuid.NewV7())), event, pgUUID(orgID)); err != nil {
			return fmt.Errorf("record deliveries: %w", err)
		}
	}
	// The webhook's row is locked against its DELETE until this transaction
	// ends: a DELETE that comes first leaves nothing to record, one that
	// comes after finds the delivery and gives it up with the others. (Read
	// without the lock, a delivery could be recorded for a webhook removed
	// meanwhile and be left pending.)
	if _, err := tx.Exec(ctx, `
		INSERT INTO deliveries (id, bulk_id, organization_id, channel, event, target)
		SELECT $2::uuid, b.id, b.organization_id, 'webhook', $3, w.url
		  FROM bulks b JOIN webhooks w ON w.organization_id = b.organization_id
		 WHERE b.organization_id = $4 AND b.id = $1 AND w.disabled_at IS NULL
		   FOR KEY SHARE OF w
		ON CONFLICT (organization_id, bulk_id, channel) WHERE superseded_at IS NULL DO NOTHING`,
		pgUUID(bulkID), pgUUID(uuid.Must(uuid.NewV7())), event, pgUUID(orgID)); err != nil {
		return fmt.Errorf("record deliveries: %w", err)
	}
	return nil
}

const deliveryColumns = `id, bulk_id, organization_id, channel, event, target, attempts, created_at, delivered_at, abandoned_at, last_error`

func scanDelivery(row pgx.CollectableRow) (Delivery, error) {
	var (
		d                   Delivery
		id, bulkID, orgID   pgtype.UUID
		target              pgtype.Text
		delivered, abandond pgtype.Timestamptz
	)
	err := row.Scan(&id, &bulkID, &orgID, &d.Channel, &d.Event, &target, &d.Attempts, &d.CreatedAt, &delivered, &abandond, &d.LastError)
	d.ID, d.BulkID, d.OrganizationID, d.Target = id.Bytes, bulkID.Bytes, orgID.Bytes, target.String
	if delivered.Valid {
		d.DeliveredAt = &delivered.Time
	}
	if abandond.Valid {
		d.AbandonedAt = &abandond.Time
	}
	return d, err
}

func (s *Store) deliveries(ctx context.Context, what, where string, args ...any) ([]Delivery, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE `+where, args...)
	if err != nil {
		return nil, errorf("store: %s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, scanDelivery)
	if err != nil {
		return nil, errorf("store: %s: %w", what, err)
	}
	return out, nil
}

// PendingDeliveries lists the deliveries of a bulk still to make. The bulk
// is named by its id alone (its callers hold no more): its organization is
// read from the bulk, and the deliveries are found by the index of the live
// ones (a delivery to make is never superseded: a retry gives such ones up).
func (s *Store) PendingDeliveries(ctx context.Context, bulkID uuid.UUID) ([]Delivery, error) {
	return s.deliveries(ctx, "pending deliveries",
		`(organization_id, bulk_id) IN (SELECT organization_id, id FROM bulks WHERE id = $1)
		 AND superseded_at IS NULL AND delivered_at IS NULL AND abandoned_at IS NULL ORDER BY channel`, pgUUID(bulkID))
}

// UndeliveredDeliveries lists the deliveries still to make that were
// recorded more than olderThan ago, oldest first: their task may have been
// lost.
func (s *Store) UndeliveredDeliveries(ctx context.Context, olderThan time.Duration, limit int) ([]Delivery, error) {
	return s.deliveries(ctx, "undelivered deliveries",
		`delivered_at IS NULL AND abandoned_at IS NULL AND created_at < $1 ORDER BY created_at LIMIT $2`, time.Now().Add(-olderThan), limit)
}

// Errors of ClaimDelivery.
var (
	// ErrDelivered: the delivery was made, or given up; nothing to do.
	ErrDelivered = errors.New("store: delivered already")
	// ErrDeliveryBusy: another worker holds the claim and may be sending
	// right now; try again after the lease.
	ErrDeliveryBusy = errors.New("store: delivery being made by another worker")
)

// Claim is a delivery reserved for one worker to make, with what it needs:
// the bulk as it ended and its organization.
type Claim struct {
	Delivery     Delivery
	Bulk         models.Bulk
	Organization models.Organization
	// At is when it was claimed: the claim's token. Only its holder may
	// finish the delivery.
	At time.Time
}

// ClaimDelivery reserves a delivery for the caller to make. Only one claim
// holds at a time; a claim older than lease is taken to be abandoned (its
// worker died) and can be taken over. A retried or duplicated task that
// finds it delivered gets ErrDelivered, one that finds it claimed
// ErrDeliveryBusy.
func (s *Store) ClaimDelivery(ctx context.Context, id uuid.UUID, lease time.Duration) (Claim, error) {
	rows, err := s.pool.Query(ctx, `UPDATE deliveries SET claimed_at = clock_timestamp()
		 WHERE id = $1 AND delivered_at IS NULL AND abandoned_at IS NULL
		   AND (claimed_at IS NULL OR claimed_at < clock_timestamp() - make_interval(secs => $2))
		 RETURNING claimed_at, `+deliveryColumns, pgUUID(id), lease.Seconds())
	if err != nil {
		return Claim{}, errorf("store: claim delivery: %w", err)
	}
	var at time.Time
	d, err := pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (Delivery, error) {
		return scanDelivery(claimedRow{row, &at})
	})
	if errors.Is(err, pgx.ErrNoRows) {
		// Say why, so that a claim held by a live or dead worker is retried
		// rather than mistaken for a delivery made.
		found, err := s.deliveries(ctx, "claim delivery", `id = $1`, pgUUID(id))
		switch {
		case err != nil:
			return Claim{}, err
		case len(found) == 0:
			return Claim{}, ErrNotFound
		case found[0].DeliveredAt != nil || found[0].AbandonedAt != nil:
			return Claim{}, ErrDelivered
		}
		return Claim{}, ErrDeliveryBusy
	}
	if err != nil {
		return Claim{}, errorf("store: claim delivery: %w", err)
	}
	c := Claim{Delivery: d, At: at}
	if err := s.db.WithContext(ctx).Take(&c.Bulk, "organization_id = ? AND id = ?", d.OrganizationID, d.BulkID).Error; err != nil {
		return Claim{}, errorf("store: claim delivery: bulk: %w", err)
	}
	if c.Organization, err = s.Organization(ctx, d.OrganizationID); err != nil {
		return Claim{}, err
	}
	return c, nil
}

// Attempt is one try at a delivery, as recorded.
type Attempt struct {
	Number     int
	StartedAt  time.Time
	Duration   time.Duration
	StatusCode int    // the endpoint's HTTP status, or the SMTP server's reply code to a refused email; 0 when none came
	Error      string // "" when it was delivered; never a body, a URL or an address
}

// ErrClaimLost is returned by FinishDelivery to a worker whose claim was
// taken over (it held it past the lease): the attempt is not recorded, and
// nothing the claim's new holder does is undone.
var ErrClaimLost = errors.New("store: the delivery's claim was taken over")

// FinishDelivery records an attempt at a claimed delivery: delivered marks
// it done for good, otherwise the claim is released for the next retry.
// Only the claim's holder may: any other caller gets ErrClaimLost, except
// that a delivery made is recorded as made whoever made it.
func (s *Store) FinishDelivery(ctx context.Context, c Claim, a Attempt, delivered bool) error {
	return s.finishDelivery(ctx, "finish delivery", c, &a, delivered, "")
}

// GiveUpDelivery ends a claimed delivery without making it: its attempt,
// when a is not nil, is recorded (an endpoint that answered that it is
// gone, a recipient refused for good), and the delivery is abandoned with
// reason as its last error, which its client reads. Only the claim's
// holder may (ErrClaimLost).
func (s *Store) GiveUpDelivery(ctx context.Context, c Claim, a *Attempt, reason string) error {
	return s.finishDelivery(ctx, "give up delivery", c, a, false, reason)
}

// finishDelivery releases a claim, recording the attempt a (none when nil);
// abandon, when not "", gives the delivery up with that reason. A delivery
// given up meanwhile (its webhook removed) keeps the reason it was given up
// for, unless this attempt made it. A delivery that ends here, made or
// given up, forgets its target.
func (s *Store) finishDelivery(ctx context.Context, what string, c Claim, a *Attempt, delivered bool, abandon string) error {
	id, org := c.Delivery.ID, pgUUID(c.Delivery.OrganizationID)
	var attempt Attempt
	if a != nil {
		attempt = *a
	}
	err := withTx(ctx, s.pool.Begin, func(tx pgx.Tx) error {
		var n int
		err := tx.QueryRow(ctx, `UPDATE deliveries SET attempts = attempts + $6::int, claimed_at = NULL,
			        delivered_at = CASE WHEN $2 THEN clock_timestamp() END,
			        abandoned_at = CASE WHEN $5 <> '' THEN coalesce(abandoned_at, clock_timestamp()) ELSE abandoned_at END,
			        target = CASE WHEN $2 OR $5 <> '' OR abandoned_at IS NOT NULL THEN NULL ELSE target END,
			        last_error = CASE WHEN $2 THEN NULL
			                          WHEN $5 <> '' THEN $5
			                          WHEN abandoned_at IS NOT NULL THEN last_error
			                          ELSE nullif($3, '') END
			 WHERE organization_id = $7 AND id = $1 AND delivered_at IS NULL AND (claimed_at = $4 OR $2) RETURNING attempts`,
			pgUUID(id), delivered, attempt.Error, c.At, abandon, btoi(a != nil), org).Scan(&n)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrClaimLost
		}
		if err != nil || a == nil {
			return err
		}
		var status pgtype.Int4
		if attempt.StatusCode != 0 {
			status = pgtype.Int4{Int32: int32(attempt.StatusCode), Valid: true}
		}
		_, err = tx.Exec(ctx, `INSERT INTO delivery_attempts (organization_id, delivery_id, attempt, started_at, duration_ms, status_code, error)
			VALUES ($7, $1, $2, $3, $4, $5, nullif($6, ''))`, pgUUID(id), n, attempt.StartedAt, attempt.Duration.Milliseconds(), status, attempt.Error, org)
		return err
	})
	if errors.Is(err, ErrClaimLost) {
		return ErrClaimLost
	}
	if err != nil {
		return errorf("store: %s: %w", what, err)
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// claimedRow reads the claim's time before a delivery's columns.
type claimedRow struct {
	pgx.CollectableRow
	at *time.Time
}

func (r claimedRow) Scan(dest ...any) error {
	return r.CollectableRow.Scan(append([]any{r.at}, dest...)...)
}

// AbandonDelivery gives a delivery up after its last retry: the reconciler
// will not queue it again, and its target is forgotten. It returns the
// delivery's ids and channel (its bulk's, its organization's, for the line
// that tells of it), or the zero Delivery when it was made already.
func (s *Store) AbandonDelivery(ctx context.Context, id uuid.UUID) (Delivery, error) {
	var d Delivery
	var dID, bulkID, orgID pgtype.UUID
	err := s.pool.QueryRow(ctx, `UPDATE deliveries SET abandoned_at = clock_timestamp(), claimed_at = NULL, target = NULL
		WHERE id = $1 AND delivered_at IS NULL RETURNING id, bulk_id, organization_id, channel`, pgUUID(id)).Scan(&dID, &bulkID, &orgID, &d.Channel)
	if errors.Is(err, pgx.ErrNoRows) {
		return Delivery{}, nil
	}
	if err != nil {
		return Delivery{}, errorf("store: abandon delivery: %w", err)
	}
	d.ID, d.BulkID, d.OrganizationID = dID.Bytes, bulkID.Bytes, orgID.Bytes
	return d, nil
}

// DeliveryWithAttempts is a delivery and every attempt at it, oldest first.
type DeliveryWithAttempts struct {
	Delivery
	Attempts []Attempt
}

// RecentDeliveries lists the organization's last limit deliveries on a
// channel, newest first, each with its attempts.
func (s *Store) RecentDeliveries(ctx context.Context, orgID uuid.UUID, channel string, limit int) ([]DeliveryWithAttempts, error) {
	found, err := s.deliveries(ctx, "recent deliveries",
		`organization_id = $1 AND channel = $2 ORDER BY created_at DESC LIMIT $3`, pgUUID(orgID), channel, limit)
	if err != nil || len(found) == 0 {
		return nil, err
	}
	out := make([]DeliveryWithAttempts, len(found))
	index := map[uuid.UUID]int{}
	ids := make([]pgtype.UUID, len(found))
	for i, d := range found {
		out[i].Delivery, index[d.ID], ids[i] = d, i, pgUUID(d.ID)
	}
	rows, err := s.pool.Query(ctx, `SELECT delivery_id, attempt, started_at, duration_ms, coalesce(status_code, 0), coalesce(error, '')
		FROM delivery_attempts WHERE organization_id = $2 AND delivery_id = ANY($1) ORDER BY delivery_id, attempt`, ids, pgUUID(orgID))
	if err != nil {
		return nil, errorf("store: recent deliveries: %w", err)
	}
	var (
		id pgtype.UUID
		a  Attempt
		ms int64
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &a.Number, &a.StartedAt, &ms, &a.StatusCode, &a.Error}, func() error {
		a.Duration = time.Duration(ms) * time.Millisecond
		i := index[id.Bytes]
		out[i].Attempts = append(out[i].Attempts, a)
		return nil
	})
	if err != nil {
		return nil, errorf("store: recent deliveries: %w", err)
	}
	return out, nil
}

// Webhook is an organization's endpoint; its secrets are sealed.
type Webhook struct {
	OrganizationID uuid.UUID
	URL            string
	Secret         []byte
	// PreviousSecret is the secret that RotatedAt replaced (nil if it was
	// never rotated): it signs beside Secret for a while after.
	PreviousSecret []byte
	RotatedAt      *time.Time
	// DisabledAt is set when the endpoint answered that it is gone: no event
	// is recorded for it until it is PUT again. DisabledReason says why.
	DisabledAt     *time.Time
	DisabledReason string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Webhook returns the organization's endpoint, or ErrNotFound.
func (s *Store) Webhook(ctx context.Context, orgID uuid.UUID) (Webhook, error) {
	w := Webhook{OrganizationID: orgID}
	var reason pgtype.Text
	err := s.pool.QueryRow(ctx, `SELECT url, secret, previous_secret, rotated_at, disabled_at, disabled_reason, created_at, updated_at
		FROM webhooks WHERE organization_id = $1`, pgUUID(orgID)).
		Scan(&w.URL, &w.Secret, &w.PreviousSecret, &w.RotatedAt, &w.DisabledAt, &reason, &w.CreatedAt, &w.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Webhook{}, ErrNotFound
	}
	if err != nil {
		return Webhook{}, errorf("store: webhook: %w", err)
	}
	w.DisabledReason = reason.String
	return w, nil
}

// CreateWebhook registers the organization's endpoint with its sealed
// secret. created is false when the organization has one already (a
// concurrent request made it): that one is left as it is.
func (s *Store) CreateWebhook(ctx context.Context, orgID uuid.UUID, url string, secret []byte) (w Webhook, created bool, err error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO webhooks (organization_id, url, secret) VALUES ($1, $2, $3)
		ON CONFLICT (organization_id) DO NOTHING`, pgUUID(orgID), url, secret)
	if err != nil {
		return Webhook{}, false, errorf("store: create webhook: %w", err)
	}
	w, err = s.Webhook(ctx, orgID)
	return w, tag.RowsAffected() == 1, err
}

// UpdateWebhook moves the organization's endpoint to url, and enables it
// again if it was disabled; ErrNotFound when it has none.
func (s *Store) UpdateWebhook(ctx context.Context, orgID uuid.UUID, url string) (Webhook, error) {
	return s.updateWebhook(ctx, "update webhook", orgID,
		`url = $2, disabled_at = NULL, disabled_reason = NULL`, url)
}

// RotateWebhookSecret gives the organization's endpoint the sealed secret,
// keeping the one it replaces as its previous secret, from now;
// ErrNotFound when it has none.
func (s *Store) RotateWebhookSecret(ctx context.Context, orgID uuid.UUID, secret []byte) (Webhook, error) {
	return s.updateWebhook(ctx, "rotate webhook secret", orgID,
		`previous_secret = secret, rotated_at = clock_timestamp(), secret = $2`, secret)
}

func (s *Store) updateWebhook(ctx context.Context, what string, orgID uuid.UUID, set string, arg any) (Webhook, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE webhooks SET `+set+`, updated_at = clock_timestamp() WHERE organization_id = $1`,
		pgUUID(orgID), arg)
	if err != nil {
		return Webhook{}, errorf("store: %s: %w", what, err)
	}
	if tag.RowsAffected() == 0 {
		return Webhook{}, ErrNotFound
	}
	return s.Webhook(ctx, orgID)
}

// Reasons a webhook delivery is given up for, as its client reads them.
const (
	ReasonWebhookRemoved  = "The webhook was removed."
	ReasonWebhookDisabled = "The webhook is disabled."
)

// DeleteWebhook removes the organization's endpoint; its deliveries not
// made yet are given up with it (abandoned counts them).
func (s *Store) DeleteWebhook(ctx context.Context, orgID uuid.UUID) (abandoned int, err error) {
	err = withTx(ctx, s.pool.Begin, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM webhooks WHERE organization_id = $1`, pgUUID(orgID))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		abandoned, err = abandonWebhookDeliveries(ctx, tx, orgID, ReasonWebhookRemoved)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, errorf("store: delete webhook: %w", err)
	}
	return abandoned, nil
}

// DisableWebhook disables the organization's endpoint, if it is still at
// url and enabled, for reason; its deliveries not made yet are given up
// (abandoned counts them), and no event is recorded for it until it is PUT
// again. disabled is false when it was not at url any more (moved since, or
// removed) or was disabled already: then nothing changes.
func (s *Store) DisableWebhook(ctx context.Context, orgID uuid.UUID, url, reason string) (disabled bool, abandoned int, err error) {
	// The deliveries are given up before disabled_at is taken: a claim
	// committed before that blocks or fails them, so every attempt recorded
	// started (was claimed) before the webhook was disabled.
	err = withTx(ctx, s.pool.Begin, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `SELECT FROM webhooks WHERE organization_id = $1 AND url = $2 AND disabled_at IS NULL FOR UPDATE`,
			pgUUID(orgID), url)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		if abandoned, err = abandonWebhookDeliveries(ctx, tx, orgID, reason); err != nil {
			return err
		}
		disabled = true
		_, err = tx.Exec(ctx, `UPDATE webhooks SET disabled_at = clock_timestamp(), disabled_reason = $2, updated_at = clock_timestamp()
			WHERE organization_id = $1`, pgUUID(orgID), reason)
		return err
	})
	if err != nil {
		return false, 0, errorf("store: disable webhook: %w", err)
	}
	return disabled, abandoned, nil
}

// abandonWebhookDeliveries gives up the organization's webhook deliveries
// not made yet, for reason, forgetting their URL.
func abandonWebhookDeliveries(ctx context.Context, tx pgx.Tx, orgID uuid.UUID, reason string) (int, error) {
	tag, err := tx.Exec(ctx, `UPDATE deliveries SET abandoned_at = clock_timestamp(), last_error = $2, target = NULL
		WHERE organization_id = $1 AND channel = 'webhook' AND delivered_at IS NULL AND abandoned_at IS NULL`, pgUUID(orgID), reason)
	return int(tag.RowsAffected()), err
}
