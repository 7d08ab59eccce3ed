package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/bulkd/bulkd/pkg/bulk"
)

// An upsert changes stored records set-based: its changes are copied into a
// temporary table of the connection (emptied at every commit), and one
// UPDATE per table applies, over the stored values, exactly the fields each
// change carries (a bit of its present mask). The same comparison tells
// which records the changes leave as they are: those are not rewritten, so
// their version and updated_at stay. Postgres compares the values (jsonb,
// numeric, dates) as it stores them.

// updatable is a table that upserts change.
type updatable struct {
	table, staging string
	columns        []updatableColumn // in the order of the staging table, after id, row and present
}

// updatableColumn is a column an upsert may set: when its field is in a
// change's present mask, or always (field 0).
type updatableColumn struct {
	name, kind string
	field      bulk.Fields
}

var (
	locationUpdates = updatable{table: "locations", staging: "upsert_locations", columns: []updatableColumn{
		{"name", "text", bulk.FieldName},
	}}
	customerUpdates = updatable{table: "customers", staging: "upsert_customers", columns: []updatableColumn{
		{"location_id", "uuid", 0},
		{"name", "text", bulk.FieldName},
		{"email", "text", bulk.FieldEmail},
		{"phone", "text", bulk.FieldPhone},
		{"date_of_birth", "date", bulk.FieldDateOfBirth},
		{"ssn_last4", "text", bulk.FieldSSNLast4},
		{"address", "jsonb", bulk.FieldAddress},
		{"metadata", "jsonb", bulk.FieldMetadata},
	}}
	debtAccountUpdates = updatable{table: "debt_accounts", staging: "upsert_debt_accounts", columns: []updatableColumn{
		{"parent_id", "uuid", bulk.FieldParentExternalID},
		{"external_account_number", "text", bulk.FieldExternalAccountNumber},
		{"balance", "numeric(14,2)", bulk.FieldBalance},
		{"current_balance", "numeric(14,2)", bulk.FieldCurrentBalance},
		{"billing_type", "text[]", bulk.FieldBillingType},
		{"metadata", "jsonb", bulk.FieldMetadata},
	}}
)

// value is the column's value after the change: the staged one when the
// change carries the field, else the stored one.
func (c updatableColumn) value() string {
	if c.field == 0 {
		return "t." + c.name
	}
	return "CASE WHEN t.present & " + strconv.Itoa(int(c.field)) + " <> 0 THEN t." + c.name + " ELSE r." + c.name + " END"
}

// createStaging is the DDL of the staging table, made once per connection.
func (u updatable) createStaging() string {
	// No index: each staged table is read once, by a hash join.
	cols := []string{"id uuid NOT NULL", "row integer NOT NULL", "present integer NOT NULL"}
	for _, c := range u.columns {
		cols = append(cols, c.name+" "+c.kind)
	}
	return "CREATE TEMP TABLE IF NOT EXISTS " + u.staging + " (" + strings.Join(cols, ", ") + ") ON COMMIT DELETE ROWS"
}

// changes is the condition that a staged change alters the stored record r.
func (u updatable) changes() string {
	var or []string
	for _, c := range u.columns {
		or = append(or, "("+c.value()+") IS DISTINCT FROM r."+c.name)
	}
	return strings.Join(or, " OR ")
}

// update applies the staged changes that alter their record, counting a
// version and naming the bulk row, and returns the ids of those records.
func (u updatable) update() string {
	var set []string
	for _, c := range u.columns {
		set = append(set, c.name+" = "+c.value())
	}
	set = append(set, "version = r.version + 1", "updated_at = clock_timestamp()", "last_bulk_id = $2", "last_bulk_row = t.row", "last_changed_by = 'bulk'")
	return "UPDATE " + u.table + " r SET " + strings.Join(set, ", ") + " FROM " + u.staging + " t" +
		" WHERE r.organization_id = $1 AND r.id = t.id AND (" + u.changes() + ") RETURNING r.id"
}

// compare returns the ids of the records the staged changes would alter.
func (u updatable) compare() string {
	return "SELECT r.id FROM " + u.table + " r JOIN " + u.staging + " t ON r.organization_id = $1 AND r.id = t.id WHERE " + u.changes()
}

// updateRecords stages n changes of the organization's records (each row of
// values as the staging table orders them: id, row, present, the columns)
// and applies them, or when dry only compares them, adding the ids of the
// records they alter to updated.
func updateRecords(ctx context.Context, tx pgx.Tx, u updatable, orgID, bulkID uuid.UUID, dry bool, updated map[uuid.UUID]bool,
	n int, values func(i int) []any) error {
	if n == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, u.createStaging()); err != nil {
		return fmt.Errorf("stage %s changes: %w", u.table, err)
	}
	columns := []string{"id", "row", "present"}
	for _, c := range u.columns {
		columns = append(columns, c.name)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{u.staging}, columns, pgx.CopyFromSlice(n, func(i int) ([]any, error) {
		return values(i), nil
	})); err != nil {
		return fmt.Errorf("stage %s changes: %w", u.table, err)
	}
	// Planned as it runs, for the tables as they are (as the import's
	// look-ups): a plan cached on the connection would keep the join it
	// chose for the sizes of its first executions.
	query, args := u.update(), []any{pgx.QueryExecModeExec, pgUUID(orgID), pgUUID(bulkID)}
	if dry {
		query, args = u.compare(), []any{pgx.QueryExecModeExec, pgUUID(orgID)}
	}
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("update %s: %w", u.table, err)
	}
	var id pgtype.UUID
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error {
		updated[id.Bytes] = true
		return nil
	}); err != nil {
		return fmt.Errorf("update %s: %w", u.table, err)
	}
	return nil // the commit (or rollback) empties the staging table
}
