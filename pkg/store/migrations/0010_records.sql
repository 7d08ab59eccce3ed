-- The records API's lists: each is newest first, a keyset page at a time,
-- within the organization, so each needs an index in that order to start at
-- any point. Filters on external_id use the unique (organization_id,
-- external_id) indexes; customer_id, parent_id and location_id filters use
-- the existing indexes on those columns (one customer's accounts are few).
CREATE INDEX locations_organization_id_created_at_id_idx ON locations (organization_id, created_at DESC, id DESC);
CREATE INDEX customers_organization_id_created_at_id_idx ON customers (organization_id, created_at DESC, id DESC);
CREATE INDEX debt_accounts_organization_id_created_at_id_idx ON debt_accounts (organization_id, created_at DESC, id DESC);
-- Search by email, and what one bulk wrote (bulk_id is unique to an
-- organization, so the organization need not lead).
CREATE INDEX customers_organization_id_email_idx ON customers (organization_id, email) WHERE email IS NOT NULL;
CREATE INDEX customers_bulk_id_idx ON customers (bulk_id) WHERE bulk_id IS NOT NULL;
CREATE INDEX debt_accounts_bulk_id_idx ON debt_accounts (bulk_id) WHERE bulk_id IS NOT NULL;
