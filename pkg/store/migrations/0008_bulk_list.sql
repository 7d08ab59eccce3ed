-- Listing an organization's bulks, newest first, a page at a time
-- (GET /api/v1/bulk): each page continues below the (created_at, id) of the
-- last bulk read, so the index must give that order within the organization
-- and start reading at any point of it. It replaces the index on
-- (organization_id, created_at DESC), its prefix.
DROP INDEX bulks_organization_id_created_at_idx;
CREATE INDEX bulks_organization_id_created_at_id_idx ON bulks (organization_id, created_at DESC, id DESC);

-- The status filter: the same order within one status, so that a selective
-- status (the few pending bulks among a million completed) reads only its
-- own page instead of filtering the whole organization. Several statuses are
-- one index range each, merged in order (see store.ListBulks).
CREATE INDEX bulks_organization_id_status_created_at_id_idx ON bulks (organization_id, status, created_at DESC, id DESC);
