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

-- The reconciler's partial index on the unfinished bulks is small, so for
-- status=pending or processing the planner would rather read every
-- unfinished bulk of every organization from it and sort them: cheap while
-- the backlog is small and the statistics fresh, a sort of the whole backlog
-- when a large one has built up since the last ANALYZE. Its predicate now
-- also names updated_at, which the reconciler's query bounds
-- (updated_at < …, which implies IS NOT NULL) and the list's does not: the
-- reconciler keeps it, and the list reads its page from the index above.
DROP INDEX bulks_unfinished_idx;
CREATE INDEX bulks_unfinished_idx ON bulks (updated_at)
    WHERE status IN ('pending', 'processing') AND updated_at IS NOT NULL;
