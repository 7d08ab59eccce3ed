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
	Target         string // the address or the URL
	Attempts       int
	CreatedAt      time.Time
	DeliveredAt    *time.Time
	AbandonedAt    *time.Time
	LastError      *string
}

// recordDeliveries writes, in the transaction that ends a bulk, the
// deliveries that tell of it: the organization's email when email is set,
// and its webhook when it has one. A bulk's end is told once per channel,
// whatever retries happen (the second insert finds the first).
func recordDeliveries(ctx context.Context, tx pgx.Tx, bulkID uuid.UUID, event string, email bool) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO deliveries (id, bulk_id, organization_id, channel, event, target)
		SELECT $2::uuid, b.id, b.organization_id, 'email', $4, o.notify_email
		  FROM bulks b JOIN organizations o ON o.id = b.organization_id WHERE b.id = $1 AND $5
		UNION ALL
		SELECT $3::uuid, b.id, b.organization_id, 'webhook', $4, w.url
		  FROM bulks b JOIN webhooks w ON w.organization_id = b.organization_id WHERE b.id = $1
		ON CONFLICT (bulk_id, channel) DO NOTHING`,
		pgUUID(bulkID), pgUUID(uuid.New()), pgUUID(uuid.New()), event, email)
	if err != nil {
		return fmt.Errorf("record deliveries: %w", err)
	}
	return nil
}

const deliveryColumns = `id, bulk_id, organization_id, channel, event, target, attempts, created_at, delivered_at, abandoned_at, last_error`

func scanDelivery(row pgx.CollectableRow) (Delivery, error) {
	var (
		d                   Delivery
		id, bulkID, orgID   pgtype.UUID
		delivered, abandond pgtype.Timestamptz
	)
	err := row.Scan(&id, &bulkID, &orgID, &d.Channel, &d.Event, &d.Target, &d.Attempts, &d.CreatedAt, &delivered, &abandond, &d.LastError)
	d.ID, d.BulkID, d.OrganizationID = id.Bytes, bulkID.Bytes, orgID.Bytes
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

// PendingDeliveries lists the deliveries of a bulk still to make.
func (s *Store) PendingDeliveries(ctx context.Context, bulkID uuid.UUID) ([]Delivery, error) {
	return s.deliveries(ctx, "pending deliveries",
		`bulk_id = $1 AND delivered_at IS NULL AND abandoned_at IS NULL ORDER BY channel`, pgUUID(bulkID))
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
	if err := s.db.WithContext(ctx).Take(&c.Bulk, "id = ?", d.BulkID).Error; err != nil {
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
	StatusCode int    // the endpoint's answer; 0 when none came or for email
	Error      string // "" when it was delivered; never a body or an address
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
	id := c.Delivery.ID
	err := withTx(ctx, s.pool.Begin, func(tx pgx.Tx) error {
		var n int
		err := tx.QueryRow(ctx, `UPDATE deliveries SET attempts = attempts + 1, claimed_at = NULL,
			        delivered_at = CASE WHEN $2 THEN clock_timestamp() END, last_error = nullif($3, '')
			 WHERE id = $1 AND delivered_at IS NULL AND (claimed_at = $4 OR $2) RETURNING attempts`,
			pgUUID(id), delivered, a.Error, c.At).Scan(&n)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrClaimLost
		}
		if err != nil {
			return err
		}
		var status pgtype.Int4
		if a.StatusCode != 0 {
			status = pgtype.Int4{Int32: int32(a.StatusCode), Valid: true}
		}
		_, err = tx.Exec(ctx, `INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error)
			VALUES ($1, $2, $3, $4, $5, nullif($6, ''))`, pgUUID(id), n, a.StartedAt, a.Duration.Milliseconds(), status, a.Error)
		return err
	})
	if errors.Is(err, ErrClaimLost) {
		return ErrClaimLost
	}
	if err != nil {
		return errorf("store: finish delivery: %w", err)
	}
	return nil
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
// will not queue it again.
func (s *Store) AbandonDelivery(ctx context.Context, id uuid.UUID) error {
	if _, err := s.pool.Exec(ctx, `UPDATE deliveries SET abandoned_at = clock_timestamp(), claimed_at = NULL
		WHERE id = $1 AND delivered_at IS NULL`, pgUUID(id)); err != nil {
		return errorf("store: abandon delivery: %w", err)
	}
	return nil
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
		FROM delivery_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt`, ids)
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

// Webhook is an organization's endpoint; its secret is sealed.
type Webhook struct {
	OrganizationID uuid.UUID
	URL            string
	Secret         []byte
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Webhook returns the organization's endpoint, or ErrNotFound.
func (s *Store) Webhook(ctx context.Context, orgID uuid.UUID) (Webhook, error) {
	w := Webhook{OrganizationID: orgID}
	err := s.pool.QueryRow(ctx, `SELECT url, secret, created_at, updated_at FROM webhooks WHERE organization_id = $1`,
		pgUUID(orgID)).Scan(&w.URL, &w.Secret, &w.CreatedAt, &w.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Webhook{}, ErrNotFound
	}
	if err != nil {
		return Webhook{}, errorf("store: webhook: %w", err)
	}
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

// UpdateWebhook moves the organization's endpoint to url and, when secret
// is not nil, gives it that sealed secret; ErrNotFound when it has none.
func (s *Store) UpdateWebhook(ctx context.Context, orgID uuid.UUID, url string, secret []byte) (Webhook, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE webhooks SET url = coalesce(nullif($2, ''), url), secret = coalesce($3, secret), updated_at = now()
		WHERE organization_id = $1`, pgUUID(orgID), url, secret)
	if err != nil {
		return Webhook{}, errorf("store: update webhook: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return Webhook{}, ErrNotFound
	}
	return s.Webhook(ctx, orgID)
}

// DeleteWebhook removes the organization's endpoint; deliveries not made yet
// are given up with it.
func (s *Store) DeleteWebhook(ctx context.Context, orgID uuid.UUID) error {
	err := withTx(ctx, s.pool.Begin, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM webhooks WHERE organization_id = $1`, pgUUID(orgID))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		_, err = tx.Exec(ctx, `UPDATE deliveries SET abandoned_at = clock_timestamp(), last_error = 'The webhook was removed.'
			WHERE organization_id = $1 AND channel = 'webhook' AND delivered_at IS NULL AND abandoned_at IS NULL`, pgUUID(orgID))
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return errorf("store: delete webhook: %w", err)
	}
	return nil
}
