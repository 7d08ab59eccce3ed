-- The indexes on the records' references lead with organization_id, as
-- every query that uses them now filters on it (0017). With an index on the
-- reference alone, a query "organization_id = $1 AND parent_id = $2" on
-- tables without statistics (autovacuum off, never analyzed) was planned
-- as a BitmapAnd of the primary key's organization range and the reference
-- index: it read the organization's whole range for every probe, and an
-- upsert of 1000 rows over 3 million accounts counted each parent's
-- children that way (minutes a bulk). With organization_id first one
-- index answers both conditions, whatever the statistics; it is also the
-- form a distributed (Citus) table wants.
--
-- Rebuilt in place on a populated database; run it while bulkd is
-- stopped, as any migration.

DROP INDEX customers_location_id_idx;
CREATE INDEX customers_location_id_idx ON customers (organization_id, location_id);

DROP INDEX customers_bulk_id_idx;
CREATE INDEX customers_bulk_id_idx ON customers (organization_id, bulk_id) WHERE bulk_id IS NOT NULL;

DROP INDEX debt_accounts_customer_id_idx;
CREATE INDEX debt_accounts_customer_id_idx ON debt_accounts (organization_id, customer_id);

DROP INDEX debt_accounts_bulk_id_idx;
CREATE INDEX debt_accounts_bulk_id_idx ON debt_accounts (organization_id, bulk_id) WHERE bulk_id IS NOT NULL;

DROP INDEX debt_accounts_top_level_tree_idx;
CREATE INDEX debt_accounts_top_level_tree_idx ON debt_accounts (organization_id, customer_id, created_at, external_id) WHERE parent_id IS NULL;

DROP INDEX debt_accounts_children_tree_idx;
CREATE INDEX debt_accounts_children_tree_idx ON debt_accounts (organization_id, parent_id, created_at, external_id) WHERE parent_id IS NOT NULL;
