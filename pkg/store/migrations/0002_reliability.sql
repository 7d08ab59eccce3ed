-- Reliability: idempotent submissions and the reconciler's indexes.

-- Idempotency-Key of POST /api/v1/bulk: a retried submission with the same key
-- answers with the bulk its first attempt created. Keys are per organization
-- and live 24 hours (the reconciler deletes older ones).
CREATE TABLE idempotency_keys (
    organization_id uuid        NOT NULL REFERENCES organizations (id),
    key             text        NOT NULL,
    request_hash    bytea       NOT NULL, -- SHA-256 of the request body
    bulk_id         uuid        NOT NULL REFERENCES bulks (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, key)
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- The reconciler's look-ups: bulks whose status stands still, and finished
-- bulks not yet emailed. Both sets stay small, so partial indexes do.
DROP INDEX bulks_pending_idx;
CREATE INDEX bulks_unfinished_idx ON bulks (updated_at) WHERE status IN ('pending', 'processing');
CREATE INDEX bulks_unnotified_idx ON bulks (updated_at) WHERE notified_at IS NULL AND status IN ('completed', 'failed');
