package store

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"
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
