-- The core schema: organizations and their API keys, bulks with the rows as
-- submitted, and the records an import writes.

CREATE TABLE organizations (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL,
    notify_email text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    prefix          text NOT NULL UNIQUE,
    hash            bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);
CREATE INDEX api_keys_organization_id_idx ON api_keys (organization_id);

CREATE TABLE bulks (
    id                 uuid PRIMARY KEY,
    organization_id    uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'canceled')),
    count              integer NOT NULL CHECK (count BETWEEN 1 AND 1000),
    rows_succeeded     integer NOT NULL DEFAULT 0,
    rows_failed        integer NOT NULL DEFAULT 0,
    failure_reason     text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    completed_at       timestamptz,
    -- notify_claimed_at is set while a worker sends the notification, so that
    -- concurrent or retried tasks never send a second one.
    notify_claimed_at  timestamptz,
    notified_at        timestamptz
);
CREATE INDEX bulks_organization_id_created_at_idx ON bulks (organization_id, created_at DESC);
CREATE INDEX bulks_pending_idx ON bulks (created_at) WHERE status IN ('pending', 'processing');

-- The rows exactly as submitted (bytea: the client's bytes, untouched by
-- Postgres' JSON parsers, which reject some inputs Go accepts), and the
-- errors report of each failed row once imported.
CREATE TABLE bulk_rows (
    bulk_id uuid NOT NULL REFERENCES bulks (id) ON DELETE CASCADE,
    row     integer NOT NULL,
    payload bytea NOT NULL,
    errors  bytea,
    PRIMARY KEY (bulk_id, row)
);

CREATE TABLE locations (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    external_id     text NOT NULL,
    name            text,
    bulk_id         uuid REFERENCES bulks (id) ON DELETE SET NULL,
    bulk_row        integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, external_id)
);

CREATE TABLE customers (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    external_id     text NOT NULL,
    location_id     uuid NOT NULL REFERENCES locations (id),
    name            text NOT NULL,
    email           text,
    phone           text,
    date_of_birth   date,
    ssn_last4       text CHECK (ssn_last4 ~ '^[0-9]{4}$'),
    address         jsonb,
    metadata        jsonb,
    bulk_id         uuid REFERENCES bulks (id) ON DELETE SET NULL,
    bulk_row        integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, external_id)
);
CREATE INDEX customers_location_id_idx ON customers (location_id);

CREATE TABLE debt_accounts (
    id                      uuid PRIMARY KEY,
    organization_id         uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    external_id             text NOT NULL,
    customer_id             uuid NOT NULL REFERENCES customers (id),
    parent_id               uuid REFERENCES debt_accounts (id),
    external_account_number text,
    balance                 numeric(14, 2) NOT NULL CHECK (balance >= 0),
    current_balance         numeric(14, 2) NOT NULL CHECK (current_balance >= 0),
    billing_type            text[] NOT NULL,
    metadata                jsonb,
    bulk_id                 uuid REFERENCES bulks (id) ON DELETE SET NULL,
    bulk_row                integer,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, external_id)
);
CREATE INDEX debt_accounts_customer_id_idx ON debt_accounts (customer_id);
CREATE INDEX debt_accounts_parent_id_idx ON debt_accounts (parent_id);
