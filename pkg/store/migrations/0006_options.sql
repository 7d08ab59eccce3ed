-- The options a bulk was submitted with: every attempt of its import reads
-- them from here. rolled_back records that an all-or-nothing import found an
-- error and wrote nothing.
ALTER TABLE bulks
    ADD COLUMN mode          text    NOT NULL DEFAULT 'create' CHECK (mode IN ('create', 'upsert')),
    ADD COLUMN atomic        boolean NOT NULL DEFAULT false,
    ADD COLUMN validate_only boolean NOT NULL DEFAULT false,
    ADD COLUMN strict        boolean NOT NULL DEFAULT false,
    ADD COLUMN rolled_back   boolean NOT NULL DEFAULT false;
