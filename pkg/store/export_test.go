package store

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// ExplainListBulks runs the query ListBulks runs for p under
// EXPLAIN (ANALYZE, FORMAT JSON) and returns the plan, for tests that check
// how Postgres reads it.
func (s *Store) ExplainListBulks(ctx context.Context, orgID uuid.UUID, p ListBulksParams) (json.RawMessage, error) {
	q, args := listBulksQuery(orgID, p)
	var plan []byte
	err := s.db.WithContext(ctx).Raw(`EXPLAIN (ANALYZE, FORMAT JSON) `+q, args...).Row().Scan(&plan)
	return plan, err
}

// Unfinished is the SQL condition of a bulk not finished, for the test that
// it agrees with models.BulkStatus.Finished.
const Unfinished = unfinished

// WithTx runs fn in a pgx transaction of the pool, as the store's own
// transactions run.
func (s *Store) WithTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return withTx(ctx, s.pool.Begin, fn)
}

// LockOrganization takes the organization's import lock in tx, as an import
// does.
func LockOrganization(ctx context.Context, tx pgx.Tx, orgID uuid.UUID) error {
	return lockOrganization(ctx, tx, orgID)
}

// LookupSQL is the import's look-up of table's records by external id ($1
// the organization, $2 the ids), for the tests of its plan.
func LookupSQL(table string) string { return lookupSQL(table) }

// UpsertLookupSQL is an upsert's look-up of debt accounts, with their
// parents and children, for the tests of its plan.
var UpsertLookupSQL = upsertLookupSQL

// RecordDeliveries records, in tx, the deliveries that tell of the bulk's
// end, as the transaction that ends it does.
func RecordDeliveries(ctx context.Context, tx pgx.Tx, orgID, bulkID uuid.UUID, event string, email bool) error {
	return recordDeliveries(ctx, tx, orgID, bulkID, event, email)
}

// MigrateTo applies the migrations up to and including version, for the
// tests of a migration on a database as the one before left it.
func (s *Store) MigrateTo(ctx context.Context, version string) error { return s.migrate(ctx, version) }
