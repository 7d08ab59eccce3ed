-- A rotated secret keeps signing beside the new one for an overlap (the
-- webhook-signature header carries both), so that a receiver can switch
-- secrets without refusing the deliveries in between; the previous secret
-- is sealed as the current one is. An endpoint that answered 410 Gone is
-- disabled: no event is recorded for it until its organization PUTs it
-- again, and GET /api/v1/webhook shows when and why.
ALTER TABLE webhooks
    ADD COLUMN previous_secret bytea,       -- AES-256-GCM under WEBHOOK_SECRET_KEY, as secret
    ADD COLUMN rotated_at      timestamptz, -- when previous_secret was replaced; it signs until the overlap ends
    ADD COLUMN disabled_at     timestamptz,
    ADD COLUMN disabled_reason text,
    ADD CONSTRAINT webhooks_rotation_check CHECK ((previous_secret IS NULL) = (rotated_at IS NULL)),
    ADD CONSTRAINT webhooks_disabled_check CHECK ((disabled_at IS NULL) = (disabled_reason IS NULL));

-- An attempt's status_code is the endpoint's HTTP status for a webhook and,
-- from now on, the SMTP server's reply code (550) for an email it refused.
COMMENT ON COLUMN delivery_attempts.status_code IS 'webhook: the HTTP status answered; email: the SMTP reply code of a refusal';
