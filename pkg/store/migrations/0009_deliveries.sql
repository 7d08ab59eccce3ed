-- One outbox of deliveries for every channel that tells about a bulk's end:
-- the organization's email and its webhook. A delivery is written in the
-- same transaction as the bulk's end, claimed by one worker at a time (with
-- a lease, for a worker that dies), and marked delivered once; a third
-- channel is another value of channel.
CREATE TABLE webhooks (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    url             text        NOT NULL,
    secret          bytea       NOT NULL, -- AES-256-GCM under WEBHOOK_SECRET_KEY: nonce, then ciphertext
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE deliveries (
    id              uuid PRIMARY KEY, -- the webhook-id, the same on every attempt
    bulk_id         uuid        NOT NULL REFERENCES bulks (id) ON DELETE CASCADE,
    organization_id uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    channel         text        NOT NULL CHECK (channel IN ('email', 'webhook')),
    event           text        NOT NULL CHECK (event IN ('bulk.completed', 'bulk.failed', 'bulk.canceled')),
    target          text        NOT NULL, -- the address or URL it goes to
    attempts        integer     NOT NULL DEFAULT 0,
    claimed_at      timestamptz,          -- while a worker sends it
    delivered_at    timestamptz,
    abandoned_at    timestamptz,          -- its last retry failed
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bulk_id, channel)             -- one event per bulk end and channel
);
-- The reconciler's look-up: deliveries still to make.
CREATE INDEX deliveries_undelivered_idx ON deliveries (created_at) WHERE delivered_at IS NULL AND abandoned_at IS NULL;
CREATE INDEX deliveries_organization_idx ON deliveries (organization_id, created_at DESC);

CREATE TABLE delivery_attempts (
    delivery_id uuid        NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt     integer     NOT NULL,
    started_at  timestamptz NOT NULL,
    duration_ms integer     NOT NULL,
    status_code integer,              -- the endpoint's HTTP status, when it answered
    error       text,                 -- why it failed; never the body
    PRIMARY KEY (delivery_id, attempt)
);

-- The notification columns of bulks move to the outbox: a finished bulk
-- that was emailed has a delivered email, one that was not has one to send.
INSERT INTO deliveries (id, bulk_id, organization_id, channel, event, target, delivered_at)
SELECT gen_random_uuid(), b.id, b.organization_id, 'email', 'bulk.' || b.status, o.notify_email, b.notified_at
  FROM bulks b JOIN organizations o ON o.id = b.organization_id
 WHERE b.status IN ('completed', 'failed') AND NOT b.validate_only;
DROP INDEX bulks_unnotified_idx;
ALTER TABLE bulks DROP COLUMN notify_claimed_at, DROP COLUMN notified_at;

-- Cancel: when a client canceled the bulk.
ALTER TABLE bulks ADD COLUMN canceled_at timestamptz;
