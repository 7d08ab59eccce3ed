package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/store"
)

// A raw upsert resolves a column that points at another record by that
// record's external id, staged in its place, so that a record stored
// already keeps its id; the columns of the bulk's provenance come from the
// statement's parameters ($1 the organization, $2 the bulk) and the staged
// row. On a conflict, the record's identity and its creating provenance
// stay; every other column is rewritten and counts a version, changed or
// not: that is what a raw upsert does.
var (
	rawRefs = map[string]struct{ staged, join, id string }{
		"location_id": {"location_external_id", "JOIN locations l ON l.organization_id = $1 AND l.external_id = t.location_external_id", "l.id"},
		"customer_id": {"customer_external_id", "JOIN customers c ON c.organization_id = $1 AND c.external_id = t.customer_external_id", "c.id"},
		"parent_id":   {"parent_external_id", "LEFT JOIN debt_accounts p ON p.organization_id = $1 AND p.external_id = t.parent_external_id", "p.id"},
	}
	rawProvenance = map[string]string{"organization_id": "$1", "bulk_id": "$2", "bulk_row": "t.row", "last_bulk_id": "$2", "last_bulk_row": "t.row"}
	rawKept       = map[string]bool{"id": true, "organization_id": true, "external_id": true, "bulk_id": true, "bulk_row": true}
)

// rawUpsert is the raw upsert of one table, made from the columns the
// import writes: a staging table of the connection (emptied at every
// commit, as the import's own), and one INSERT … ON CONFLICT DO UPDATE from
// it. Top-level debt accounts go before their children, which look their
// parent up: the statement of debt accounts takes $3, whether it writes the
// top-level ones.
type rawUpsert struct {
	in        store.Inserts
	staged    []int // for each staged column but the last (row), its place in in.Columns
	row       int   // the place of bulk_row in in.Columns
	ddl, stmt string
	nested    bool // the table nests records under a parent: two statements
}

func newRawUpsert(in store.Inserts) rawUpsert {
	u := rawUpsert{in: in}
	staging := "raw_" + in.Table
	var cols, values, joins, set []string
	for i, col := range in.Columns {
		if col == "bulk_row" {
			u.row = i
		}
		ref, isRef := rawRefs[col]
		switch v, isProvenance := rawProvenance[col]; {
		case isProvenance:
			values = append(values, v)
		case isRef:
			u.staged = append(u.staged, i)
			cols = append(cols, "NULL::text AS "+ref.staged)
			values = append(values, ref.id)
			joins = append(joins, ref.join)
			u.nested = u.nested || col == "parent_id"
		default:
			u.staged = append(u.staged, i)
			cols = append(cols, col)
			values = append(values, "t."+col)
		}
		if !rawKept[col] {
			set = append(set, col+" = excluded."+col)
		}
	}
	cols = append(cols, "NULL::integer AS row")
	set = append(set, "version = r.version + 1", "updated_at = clock_timestamp()")
	u.ddl = "CREATE TEMP TABLE IF NOT EXISTS " + staging + " ON COMMIT DELETE ROWS AS SELECT " + strings.Join(cols, ", ") +
		" FROM " + in.Table + " WITH NO DATA"
	u.stmt = "INSERT INTO " + in.Table + " AS r (" + strings.Join(in.Columns, ", ") + ") SELECT " + strings.Join(values, ", ") +
		" FROM " + staging + " t"
	for _, j := range joins {
		u.stmt += " " + j
	}
	if u.nested {
		u.stmt += " WHERE (t.parent_external_id IS NULL) = $3"
	}
	u.stmt += " ON CONFLICT (organization_id, external_id) DO UPDATE SET " + strings.Join(set, ", ")
	return u
}

// write stages the table's records, the external id of each record they
// point at from refs (by column, the i-th record's), and upserts them.
func (u rawUpsert) write(ctx context.Context, tx pgx.Tx, orgID, bulkID uuid.UUID, refs map[string]func(i int) any) error {
	what := strings.ReplaceAll(u.in.Table, "_", " ")
	if _, err := tx.Exec(ctx, u.ddl); err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	columns := make([]string, 0, len(u.staged)+1)
	for _, c := range u.staged {
		col := u.in.Columns[c]
		if ref, ok := rawRefs[col]; ok {
			col = ref.staged
		}
		columns = append(columns, col)
	}
	columns = append(columns, "row")
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"raw_" + u.in.Table}, columns, pgx.CopyFromSlice(u.in.Len, func(i int) ([]any, error) {
		all := u.in.Values(i)
		row := make([]any, 0, len(columns))
		for _, c := range u.staged {
			if ref, ok := refs[u.in.Columns[c]]; ok {
				row = append(row, ref(i))
			} else {
				row = append(row, all[c])
			}
		}
		return append(row, all[u.row]), nil
	})); err != nil {
		return fmt.Errorf("copy %s: %w", what, err)
	}
	passes := [][]any{{orgID, bulkID}}
	if u.nested {
		passes = [][]any{{orgID, bulkID, true}, {orgID, bulkID, false}}
	}
	for _, args := range passes {
		if _, err := tx.Exec(ctx, u.stmt, args...); err != nil {
			return fmt.Errorf("upsert %s: %w", what, err)
		}
	}
	return nil
}

// upsertPlan writes a plan's new records the raw set-based way of an
// upsert, table by table in one transaction; nothing else. Records already
// stored under the same external ids are rewritten with the plan's values.
// The plan must be of its bulk alone (planned against no existing records),
// so that every location, customer and parent it points at is among its own
// records; its bulk must exist (createBaselineBulk).
func (d *database) upsertPlan(ctx context.Context, orgID uuid.UUID, p *bulk.Plan) error {
	locations := make(map[uuid.UUID]string, len(p.Locations))
	for _, l := range p.Locations {
		locations[l.ID] = l.ExternalID
	}
	customers := make(map[uuid.UUID]string, len(p.Customers))
	for _, c := range p.Customers {
		customers[c.ID] = c.ExternalID
	}
	for _, c := range p.Customers {
		if _, ok := locations[c.LocationID]; !ok {
			return fmt.Errorf("upsert plan: customer %q points at a location outside the plan", c.ExternalID)
		}
	}
	for _, a := range p.DebtAccounts {
		if _, ok := customers[a.CustomerID]; !ok {
			return fmt.Errorf("upsert plan: debt account %q points at a customer outside the plan", a.ExternalID)
		}
	}
	refs := map[string]func(i int) any{
		"location_id": func(i int) any { return locations[p.Customers[i].LocationID] },
		"customer_id": func(i int) any { return customers[p.DebtAccounts[i].CustomerID] },
		"parent_id":   func(i int) any { return textOrNil(p.DebtAccounts[i].ParentExternalID) },
	}
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		for _, in := range store.PlanInserts(orgID, p) {
			if err := newRawUpsert(in).write(ctx, tx, orgID, p.BulkID, refs); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("upsert plan: %w", err)
	}
	return nil
}
