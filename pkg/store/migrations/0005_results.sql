-- Per-row results: what an import did with every submitted object (its
-- action and record id), stored for every row in the import's transaction.
-- GET /api/v1/bulk/{id}/results reads them as stored and /errors is the view
-- of the failed rows, so reading never recomputes the plan.
CREATE TABLE bulk_results (
    bulk_id uuid    NOT NULL REFERENCES bulks (id) ON DELETE CASCADE,
    row     integer NOT NULL,
    status  text    NOT NULL CHECK (status IN ('created', 'updated', 'unchanged', 'failed', 'rolled_back')),
    result  bytea   NOT NULL, -- the row as GET /results shows it (JSON)
    errors  bytea,            -- the row's errors report (JSON), failed rows only
    PRIMARY KEY (bulk_id, row)
);
-- /errors reads the failed rows of a bulk, in order.
CREATE INDEX bulk_results_failed_idx ON bulk_results (bulk_id, row) WHERE status = 'failed';

ALTER TABLE bulks
    ADD COLUMN rows_created   integer NOT NULL DEFAULT 0,
    ADD COLUMN rows_updated   integer NOT NULL DEFAULT 0,
    ADD COLUMN rows_unchanged integer NOT NULL DEFAULT 0;

-- Bulks imported before results existed keep their errors report; their
-- results name each row's status and errors, without per-object outcomes.
INSERT INTO bulk_results (bulk_id, row, status, result, errors)
SELECT r.bulk_id, r.row,
       CASE WHEN r.errors IS NULL THEN 'created' ELSE 'failed' END,
       convert_to('{"row":' || r.row || ',"status":"' || CASE WHEN r.errors IS NULL THEN 'created' ELSE 'failed' END
                  || '","customer":null,"location":null,"parent_debt_accounts":[],"debt_accounts":[],"errors":'
                  || coalesce(convert_from(r.errors, 'UTF8'), 'null') || '}', 'UTF8'),
       r.errors
  FROM bulk_rows r JOIN bulks b ON b.id = r.bulk_id
 WHERE b.status = 'completed';
UPDATE bulks SET rows_created = rows_succeeded WHERE status = 'completed';

ALTER TABLE bulk_rows DROP COLUMN errors;
