-- The customers list's email filter matches an address whatever its case
-- (lower(email) = lower($1)), as addresses are compared everywhere else:
-- this index serves it, where the one it replaces served only an exact
-- match.
CREATE INDEX customers_organization_id_lower_email_idx ON customers (organization_id, lower(email)) WHERE email IS NOT NULL;
DROP INDEX customers_organization_id_email_idx;
