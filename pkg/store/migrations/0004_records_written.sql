-- What an import wrote, by table: rows_succeeded counts only the rows
-- without any error, so a row whose customer and three of four accounts were
-- written read as "0 of 1 rows imported". These counts say what is stored.
ALTER TABLE bulks
    ADD COLUMN locations_written     integer NOT NULL DEFAULT 0,
    ADD COLUMN customers_written     integer NOT NULL DEFAULT 0,
    ADD COLUMN debt_accounts_written integer NOT NULL DEFAULT 0;
