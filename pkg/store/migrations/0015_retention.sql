-- Retention: personal data does not stay forever.
--
-- A finished bulk's rows as submitted (bulk_rows) and its stored results and
-- errors reports (bulk_results) are erased once RETENTION has passed since
-- it ended, by the reconciler in small batches (pkg/store EraseReports); the
-- bulk keeps its status, counts and options, and report_expired_at says
-- when its report went.
ALTER TABLE bulks ADD COLUMN report_expired_at timestamptz;

-- The eraser's look-up: finished bulks whose report is still stored, oldest
-- end first. It holds the bulks of the last RETENTION (and, once, the
-- backlog of those from before this migration, which the first passes
-- erase); an erased bulk leaves it.
CREATE INDEX bulks_report_kept_idx ON bulks (completed_at)
    WHERE report_expired_at IS NULL AND completed_at IS NOT NULL;

-- A delivery's target (the organization's address, or its webhook's URL,
-- which may carry a token) is needed only while it is to be made: every
-- statement that ends a delivery (delivered, given up) clears it in the same
-- update, and the check keeps any that would not from ending it at all.
ALTER TABLE deliveries ALTER COLUMN target DROP NOT NULL;
UPDATE deliveries SET target = NULL WHERE delivered_at IS NOT NULL OR abandoned_at IS NOT NULL;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_target_check
    CHECK ((target IS NULL) = (delivered_at IS NOT NULL OR abandoned_at IS NOT NULL));

-- A failed bulk that an operator retries (`bulkd bulk retry`) ends a second
-- time, and that end is news of its own: a delivery per channel with its own
-- id (the webhook-id, which receivers deduplicate on). The retry supersedes
-- the deliveries of the first end, which stay as the record of what was
-- told (one still to make is given up: its news no longer holds), so that
-- a bulk has one live delivery per channel, as before, and the superseded
-- ones beside it.
ALTER TABLE deliveries ADD COLUMN superseded_at timestamptz,
    ADD CONSTRAINT deliveries_superseded_check
        CHECK (superseded_at IS NULL OR delivered_at IS NOT NULL OR abandoned_at IS NOT NULL);
ALTER TABLE deliveries DROP CONSTRAINT deliveries_bulk_id_channel_key;
CREATE UNIQUE INDEX deliveries_bulk_id_channel_key ON deliveries (bulk_id, channel) WHERE superseded_at IS NULL;
