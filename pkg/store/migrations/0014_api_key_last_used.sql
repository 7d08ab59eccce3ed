-- When each API key was last used, to the minute: an operator tells a key
-- in use from one that can be revoked. Written at most once a minute per key
-- (pkg/store Authenticate), not once per request.
ALTER TABLE api_keys ADD COLUMN last_used_at timestamptz;
