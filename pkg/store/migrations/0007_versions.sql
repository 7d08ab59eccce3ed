-- Every record counts its changes (version: 1 when created, +1 on each
-- change; the records API builds ETags on it) and names the bulk row that
-- changed it last, beside the one that created it.
ALTER TABLE locations
    ADD COLUMN version       integer NOT NULL DEFAULT 1,
    ADD COLUMN last_bulk_id  uuid,
    ADD COLUMN last_bulk_row integer;
ALTER TABLE customers
    ADD COLUMN version       integer NOT NULL DEFAULT 1,
    ADD COLUMN last_bulk_id  uuid,
    ADD COLUMN last_bulk_row integer;
ALTER TABLE debt_accounts
    ADD COLUMN version       integer NOT NULL DEFAULT 1,
    ADD COLUMN last_bulk_id  uuid,
    ADD COLUMN last_bulk_row integer;
UPDATE locations SET last_bulk_id = bulk_id, last_bulk_row = bulk_row;
UPDATE customers SET last_bulk_id = bulk_id, last_bulk_row = bulk_row;
UPDATE debt_accounts SET last_bulk_id = bulk_id, last_bulk_row = bulk_row;
