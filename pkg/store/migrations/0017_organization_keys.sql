-- Every key of an organization's data includes organization_id, so that a
-- distributed Postgres (Citus) can spread these tables by organization_id,
-- colocated: a distributed table's primary keys, unique constraints and
-- foreign keys must include its distribution column, and a foreign key
-- between two of them must join on it. organizations and api_keys stay as
-- they are (a deployment keeps them as reference tables: a key is found by
-- its prefix before its organization is known). docs/scaling.md says how
-- a deployment distributes them; TestKeysIncludeTheOrganization checks the
-- rule on this schema.
--
-- It runs on a populated database: the tables that hung off a parent
-- (bulk_rows and bulk_results off bulks, delivery_attempts off deliveries)
-- are rebuilt with their parent's organization_id, in one pass each (an
-- UPDATE of every row would leave a dead copy of each, which a database
-- without autovacuum keeps), and their keys are built after the rows are
-- in. It holds every table it changes locked until it commits: run it while
-- bulkd is stopped, as any migration.

-- The rows as submitted, with their bulk's organization.
ALTER TABLE bulk_rows RENAME TO bulk_rows_0016;
CREATE TABLE bulk_rows (
    organization_id uuid    NOT NULL,
    bulk_id         uuid    NOT NULL,
    row             integer NOT NULL,
    payload         bytea   NOT NULL
);
INSERT INTO bulk_rows (organization_id, bulk_id, row, payload)
SELECT b.organization_id, r.bulk_id, r.row, r.payload FROM bulk_rows_0016 r JOIN bulks b ON b.id = r.bulk_id;
DROP TABLE bulk_rows_0016;

-- The per-row results, likewise.
ALTER TABLE bulk_results RENAME TO bulk_results_0016;
CREATE TABLE bulk_results (
    organization_id uuid    NOT NULL,
    bulk_id         uuid    NOT NULL,
    row             integer NOT NULL,
    status          text    NOT NULL CHECK (status IN ('created', 'updated', 'unchanged', 'failed', 'rolled_back')),
    result          bytea   NOT NULL, -- the row as GET /results shows it (JSON)
    errors          bytea             -- the row's errors report (JSON), failed rows only
);
INSERT INTO bulk_results (organization_id, bulk_id, row, status, result, errors)
SELECT b.organization_id, r.bulk_id, r.row, r.status, r.result, r.errors
  FROM bulk_results_0016 r JOIN bulks b ON b.id = r.bulk_id;
DROP TABLE bulk_results_0016;

-- The attempts at a delivery, with the delivery's organization.
ALTER TABLE delivery_attempts RENAME TO delivery_attempts_0016;
CREATE TABLE delivery_attempts (
    organization_id uuid        NOT NULL,
    delivery_id     uuid        NOT NULL,
    attempt         integer     NOT NULL,
    started_at      timestamptz NOT NULL,
    duration_ms     integer     NOT NULL,
    status_code     integer,              -- the endpoint's HTTP status, when it answered
    error           text                  -- why it failed; never the body
);
INSERT INTO delivery_attempts (organization_id, delivery_id, attempt, started_at, duration_ms, status_code, error)
SELECT d.organization_id, a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.status_code, a.error
  FROM delivery_attempts_0016 a JOIN deliveries d ON d.id = a.delivery_id;
DROP TABLE delivery_attempts_0016;
COMMENT ON COLUMN delivery_attempts.status_code IS 'webhook: the HTTP status answered; email: the SMTP reply code of a refusal';

-- The foreign keys on the old keys go before the keys they stand on.
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_bulk_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_bulk_id_fkey;
ALTER TABLE customers DROP CONSTRAINT customers_location_id_fkey;
ALTER TABLE debt_accounts DROP CONSTRAINT debt_accounts_customer_id_fkey, DROP CONSTRAINT debt_accounts_parent_id_fkey;

-- Primary keys: (organization_id, id). A record's id stays unique in
-- practice (ids are random or time-ordered UUIDs), but Postgres now
-- enforces it within the organization only, as a distributed table can.
ALTER TABLE bulks DROP CONSTRAINT bulks_pkey, ADD PRIMARY KEY (organization_id, id);
ALTER TABLE locations DROP CONSTRAINT locations_pkey, ADD PRIMARY KEY (organization_id, id);
ALTER TABLE customers DROP CONSTRAINT customers_pkey, ADD PRIMARY KEY (organization_id, id);
ALTER TABLE debt_accounts DROP CONSTRAINT debt_accounts_pkey, ADD PRIMARY KEY (organization_id, id);
ALTER TABLE deliveries DROP CONSTRAINT deliveries_pkey, ADD PRIMARY KEY (organization_id, id);
ALTER TABLE bulk_rows ADD PRIMARY KEY (organization_id, bulk_id, row);
ALTER TABLE bulk_results ADD PRIMARY KEY (organization_id, bulk_id, row);
ALTER TABLE delivery_attempts ADD PRIMARY KEY (organization_id, delivery_id, attempt);
-- idempotency_keys (organization_id, key) and webhooks (organization_id)
-- were keyed so already.

-- A worker's task names its bulk or its delivery by id alone (task
-- payloads carry ids only), and so do the reconciler and a waiting
-- client: these plain indexes find them without the organization (on
-- Citus, one probe per shard).
CREATE INDEX bulks_id_idx ON bulks (id);
CREATE INDEX deliveries_id_idx ON deliveries (id);

-- One live delivery per bulk and channel, within the organization.
DROP INDEX deliveries_bulk_id_channel_key;
CREATE UNIQUE INDEX deliveries_bulk_id_channel_key ON deliveries (organization_id, bulk_id, channel) WHERE superseded_at IS NULL;

-- /errors reads the failed rows of a bulk, in order.
CREATE INDEX bulk_results_failed_idx ON bulk_results (organization_id, bulk_id, row) WHERE status = 'failed';

-- Foreign keys among the organization's tables join on organization_id.
ALTER TABLE bulk_rows ADD CONSTRAINT bulk_rows_bulk_id_fkey
    FOREIGN KEY (organization_id, bulk_id) REFERENCES bulks (organization_id, id) ON DELETE CASCADE;
ALTER TABLE bulk_results ADD CONSTRAINT bulk_results_bulk_id_fkey
    FOREIGN KEY (organization_id, bulk_id) REFERENCES bulks (organization_id, id) ON DELETE CASCADE;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_bulk_id_fkey
    FOREIGN KEY (organization_id, bulk_id) REFERENCES bulks (organization_id, id) ON DELETE CASCADE;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_bulk_id_fkey
    FOREIGN KEY (organization_id, bulk_id) REFERENCES bulks (organization_id, id) ON DELETE CASCADE;
ALTER TABLE delivery_attempts ADD CONSTRAINT delivery_attempts_delivery_id_fkey
    FOREIGN KEY (organization_id, delivery_id) REFERENCES deliveries (organization_id, id) ON DELETE CASCADE;
ALTER TABLE customers ADD CONSTRAINT customers_location_id_fkey
    FOREIGN KEY (organization_id, location_id) REFERENCES locations (organization_id, id);
ALTER TABLE debt_accounts ADD CONSTRAINT debt_accounts_customer_id_fkey
    FOREIGN KEY (organization_id, customer_id) REFERENCES customers (organization_id, id),
    ADD CONSTRAINT debt_accounts_parent_id_fkey
    FOREIGN KEY (organization_id, parent_id) REFERENCES debt_accounts (organization_id, id);
