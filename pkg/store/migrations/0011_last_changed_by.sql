-- What changed a record last: a bulk (its last_bulk_id and last_bulk_row
-- name which) or the records API. Imports write the default; the records
-- API writes 'api' on each create and change. A constant default adds the
-- column without rewriting the table.
ALTER TABLE locations ADD COLUMN last_changed_by text NOT NULL DEFAULT 'bulk' CHECK (last_changed_by IN ('bulk', 'api'));
ALTER TABLE customers ADD COLUMN last_changed_by text NOT NULL DEFAULT 'bulk' CHECK (last_changed_by IN ('bulk', 'api'));
ALTER TABLE debt_accounts ADD COLUMN last_changed_by text NOT NULL DEFAULT 'bulk' CHECK (last_changed_by IN ('bulk', 'api'));
