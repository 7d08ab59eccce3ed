package store

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/jsonscan"
)

// ImportResult is what an import wrote.
type ImportResult struct {
	Bulk    models.Bulk // as completed
	Plan    *bulk.Plan  // nil when the bulk had finished before this import
	Timings ImportTimings
}

// ImportTimings are how long the phases of an import took, measured where
// they run, for the caller to report (the metrics, a benchmark). A phase
// the import did not reach is zero.
type ImportTimings struct {
	Lock    time.Duration // begin the transaction, take the organization's lock
	Parse   time.Duration // the RowSource: read the rows as submitted and parse them
	Plan    time.Duration // look up what the rows name, plan the writes
	Write   time.Duration // write the records
	Results time.Duration // store every row's result, complete the bulk, commit
	Total   time.Duration // all of the above
}

// Import writes a bulk's parsed rows and completes the bulk, all in one
// transaction, so that a crash leaves either nothing or everything.
//
// Imports of one organization take turns on its lock: the external
// ids read before planning then stay true until commit, which lets the writes
// be plain COPY (no conflicts possible) and makes two bulks racing on the same
// ids resolve as "first one wins, the other reports taken" instead of failing.
// An import never waits for the lock: when another import holds it, Import
// is ErrNotItsTurn at once and writes nothing. Imports of different
// organizations run in parallel.
//
// A validate-only or rolled-back plan writes no record, but its results and
// the bulk's completion are stored all the same.
func (s *Store) Import(ctx context.Context, b models.Bulk, source RowSource, opts bulk.Options) (ImportResult, error) {
	var res ImportResult
	t := &res.Timings
	start := time.Now()
	mark := start
	since := func() time.Duration { // the time since the last mark
		now := time.Now()
		d := now.Sub(mark)
		mark = now
		return d
	}
	err := withTx(ctx, s.pool.Begin, func(tx pgx.Tx) error {
		if err := tryLockOrganization(ctx, tx, b.OrganizationID); err != nil {
			return err
		}
		t.Lock = since()
		// A duplicate task may have finished the bulk, or a client canceled
		// it, before this one took the lock. The bulk's row is not locked
		// for the import, so that a cancel never waits for it: the import
		// checks again before it completes.
		if err := stillRunning(ctx, tx, b.OrganizationID, b.ID); err != nil {
			return err
		}
		// The rows are read and parsed under the lock: an import that must
		// give way finds out before it does any of that work.
		rows, err := source(ctx)
		if err != nil {
			return err
		}
		t.Parse = since()
		existing, err := lookupExisting(ctx, tx, b.OrganizationID, rows, opts.Mode == bulk.ModeUpsert)
		if err != nil {
			return err
		}
		if err := stillRunning(ctx, tx, b.OrganizationID, b.ID); err != nil {
			return err
		}
		plan := bulk.NewPlan(b.ID, rows, existing, opts)
		t.Plan = since()
		updated := map[uuid.UUID]bool{}
		if plan.Writes() {
			if updated, err = applyPlan(ctx, tx, b.OrganizationID, plan); err != nil {
				return err
			}
		}
		plan.Settle(updated)
		t.Write = since()
		if err := completeBulk(ctx, tx, b.OrganizationID, plan); err != nil {
			return err
		}
		res.Plan = plan
		return nil
	})
	if res.Plan != nil {
		t.Results = since() // the commit included
		t.Total = time.Since(start)
	}
	if err != nil && !errors.Is(err, errFinished) {
		return ImportResult{}, errorf("store: import bulk %s: %w", b.ID, err) // ErrNotItsTurn included
	}
	if err := s.db.WithContext(ctx).Take(&res.Bulk, "organization_id = ? AND id = ?", b.OrganizationID, b.ID).Error; err != nil {
		return ImportResult{}, errorf("store: import bulk %s: reload: %w", b.ID, err)
	}
	return res, nil
}

// RowSource gives an import its rows, parsed; Import calls it once it holds
// the organization's lock.
type RowSource func(ctx context.Context) ([]*bulk.Row, error)

// Parsed is the RowSource of rows parsed already.
func Parsed(rows []*bulk.Row) RowSource {
	return func(context.Context) ([]*bulk.Row, error) { return rows, nil }
}

// errFinished rolls back an import whose bulk finished meanwhile: a duplicate
// task completed it, or a client canceled it. Nothing of the import stays.
var errFinished = errors.New("the bulk finished meanwhile")

// stillRunning is errFinished when the bulk is no longer pending or
// processing.
func stillRunning(ctx context.Context, tx pgx.Tx, orgID, id uuid.UUID) error {
	var status models.BulkStatus
	if err := tx.QueryRow(ctx, `SELECT status FROM bulks WHERE organization_id = $1 AND id = $2`, pgUUID(orgID), pgUUID(id)).Scan(&status); err != nil {
		return fmt.Errorf("read bulk: %w", err)
	}
	if status.Finished() {
		return errFinished
	}
	return nil
}

// lookupExisting reads what the organization holds under the external ids
// the rows name. For an upsert it also reads, of each debt account, its
// customer, its parent and how many children it has, which the plan checks
// (an account with a parent has none: nesting is one level).
//
// Each look-up is planned when it runs, for the tables as they are then
// (see byExternalID), never from a plan cached on the connection: a plan
// Postgres caches after a few executions stays as it was made, and one made
// while the tables were nearly empty scans the organization's whole range
// for every id once they have grown (bulks of 20 000 accounts went from 1.3
// to 130 s that way). The import then depends neither on that cache nor on
// statistics, which ANALYZE or autovacuum may not have gathered yet.
//
// They and the rest of the import run without JIT compilation, which
// Postgres starts by a plan's estimated cost: a look-up of 20 000 ids
// crosses its threshold by the number of ids alone, and compiling it took
// longer (230 ms with JIT, 120 ms without) than running it.
func lookupExisting(ctx context.Context, tx pgx.Tx, orgID uuid.UUID, rows []*bulk.Row, upsert bool) (bulk.Existing, error) {
	var e bulk.Existing
	if _, err := tx.Exec(ctx, `SET LOCAL jit = off`); err != nil {
		return e, fmt.Errorf("look up: %w", err)
	}
	locs, custs, accts := bulk.ExternalIDs(rows)
	var err error
	if e.Locations, err = lookup(ctx, tx, "locations", orgID, locs); err != nil {
		return e, err
	}
	if e.Customers, err = lookup(ctx, tx, "customers", orgID, custs); err != nil {
		return e, err
	}
	if !upsert {
		e.DebtAccounts, err = lookup(ctx, tx, "debt_accounts", orgID, accts)
		return e, err
	}
	e.DebtAccounts = make(map[string]bulk.Record)
	if len(accts) == 0 {
		return e, nil
	}
	found, err := tx.Query(ctx, upsertLookupSQL, pgx.QueryExecModeExec, pgUUID(orgID), accts)
	if err != nil {
		return e, fmt.Errorf("look up debt accounts: %w", err)
	}
	var (
		extID                            string
		id, bulkID, customerID, parentID pgtype.UUID
		bulkRow                          int
		children                         int
	)
	_, err = pgx.ForEachRow(found, []any{&extID, &id, &bulkID, &bulkRow, &customerID, &parentID, &children}, func() error {
		e.DebtAccounts[extID] = bulk.Record{ID: id.Bytes, BulkID: bulkID.Bytes, BulkRow: bulkRow,
			CustomerID: customerID.Bytes, ParentID: parentID.Bytes, Children: children}
		return nil
	})
	if err != nil {
		return e, fmt.Errorf("look up debt accounts: %w", err)
	}
	return e, nil
}

// byExternalID is the FROM clause of a look-up of table's records under the
// external ids $2 of the organization $1, as r: one probe of the unique
// index (organization_id, external_id) per id, whatever the planner believes
// of the table, since the LIMIT keeps it from rewriting the probes as a
// join. Measured on 400 000 accounts and 20 000 ids, the other forms are
// left to its estimates: "external_id = ANY($2)" read the organization's
// whole range without statistics (which take an organization for 0.5 % of
// a table) and the whole table with them, and a join with the ids hashed
// the organization's range. An external id names one record of an
// organization, so the LIMIT drops nothing.
func byExternalID(table string) string {
	return `unnest($2::text[]) AS x(external_id),
	        LATERAL (SELECT * FROM ` + table + ` t WHERE t.organization_id = $1 AND t.external_id = x.external_id LIMIT 1) r`
}

// upsertLookupSQL reads the debt accounts an upsert names, each with its
// customer, its parent and, if it is top-level, how many accounts are nested
// under it (probes of the index on parent_id, within the organization).
var upsertLookupSQL = `SELECT r.external_id, r.id, r.bulk_id, coalesce(r.bulk_row, 0), r.customer_id, r.parent_id,
	       CASE WHEN r.parent_id IS NULL THEN (SELECT count(*) FROM debt_accounts c WHERE c.organization_id = $1 AND c.parent_id = r.id) ELSE 0 END
	  FROM ` + byExternalID("debt_accounts")

// lookupSQL reads the records of table under the external ids, for
// lookup.
func lookupSQL(table string) string {
	return `SELECT r.external_id, r.id, r.bulk_id, coalesce(r.bulk_row, 0) FROM ` + byExternalID(table)
}

// lookup reads the records of table that carry one of the external ids, in
// one round trip, planned as it runs (see lookupExisting).
func lookup(ctx context.Context, tx pgx.Tx, table string, orgID uuid.UUID, externalIDs []string) (map[string]bulk.Record, error) {
	found := make(map[string]bulk.Record)
	if len(externalIDs) == 0 {
		return found, nil
	}
	rows, err := tx.Query(ctx, lookupSQL(table), pgx.QueryExecModeExec, pgUUID(orgID), externalIDs)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", table, err)
	}
	var (
		extID      string
		id, bulkID pgtype.UUID
		bulkRow    int
	)
	_, err = pgx.ForEachRow(rows, []any{&extID, &id, &bulkID, &bulkRow}, func() error {
		found[extID] = bulk.Record{ID: id.Bytes, BulkID: bulkID.Bytes, BulkRow: bulkRow}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", table, err)
	}
	return found, nil
}

// applyPlan writes the plan's new records and, for an upsert, its changes to
// stored ones, each table's new records before the changes that may point at
// them (a customer moved to a new location, an account to a new parent). It
// returns the ids of the stored records that changed. A validate-only plan
// writes nothing and only compares its changes with what is stored.
func applyPlan(ctx context.Context, tx pgx.Tx, orgID uuid.UUID, p *bulk.Plan) (map[uuid.UUID]bool, error) {
	dry := p.Options.ValidateOnly
	updated := map[uuid.UUID]bool{}
	inserts := PlanInserts(orgID, p) // locations, customers, debt accounts
	if !dry {
		if err := inserts[0].Copy(ctx, tx); err != nil {
			return nil, err
		}
	}
	if err := updateRecords(ctx, tx, locationUpdates, orgID, p.BulkID, dry, updated, len(p.LocationUpdates), func(i int) []any {
		u := p.LocationUpdates[i]
		return []any{pgUUID(u.ID), u.Row, int32(u.Present), nullText(u.Name)}
	}); err != nil {
		return nil, err
	}
	if !dry {
		if err := inserts[1].Copy(ctx, tx); err != nil {
			return nil, err
		}
	}
	if err := updateRecords(ctx, tx, customerUpdates, orgID, p.BulkID, dry, updated, len(p.CustomerUpdates), func(i int) []any {
		u := p.CustomerUpdates[i]
		return []any{pgUUID(u.ID), u.Row, int32(u.Present), pgUUID(u.LocationID), nullText(u.Name), nullText(u.Email), nullText(u.Phone),
			nullDate(u.DateOfBirth), nullText(u.SSNLast4), nullJSON(u.Address), nullJSON(u.Metadata)}
	}); err != nil {
		return nil, err
	}
	if !dry {
		if err := inserts[2].Copy(ctx, tx); err != nil {
			return nil, err
		}
	}
	if err := updateRecords(ctx, tx, debtAccountUpdates, orgID, p.BulkID, dry, updated, len(p.DebtAccountUpdates), func(i int) []any {
		u := p.DebtAccountUpdates[i]
		var billing []string
		if u.Present.Has(bulk.FieldBillingType) {
			billing = u.BillingType
		}
		return []any{pgUUID(u.ID), u.Row, int32(u.Present), pgUUID(u.ParentID), nullText(u.ExternalAccountNumber),
			numeric(u.Balance), numeric(u.CurrentBalance), billing, nullJSON(u.Metadata)}
	}); err != nil {
		return nil, err
	}
	return updated, nil
}

// nullDate converts a date for pgx; the zero time becomes NULL.
func nullDate(t time.Time) pgtype.Date {
	return pgtype.Date{Time: t, Valid: !t.IsZero()}
}

// numeric encodes cents exactly as numeric(14,2).
func numeric(m bulk.Money) pgtype.Numeric {
	return pgtype.Numeric{Int: big.NewInt(int64(m)), Exp: -2, Valid: true}
}

// completeBulk stores every row's result (and each failed row's errors
// report), the counts, and marks the bulk completed. completed_at is the
// clock's time, not now(), which is when the transaction began, before the
// lock wait and the writes.
func completeBulk(ctx context.Context, tx pgx.Tx, orgID uuid.UUID, plan *bulk.Plan) error {
	id, org := plan.BulkID, pgUUID(orgID)
	// A re-run replaces whatever an earlier run recorded.
	if _, err := tx.Exec(ctx, `DELETE FROM bulk_results WHERE organization_id = $1 AND bulk_id = $2`, org, pgUUID(id)); err != nil {
		return fmt.Errorf("clear results: %w", err)
	}
	counts := map[bulk.RowStatus]int{}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"bulk_results"}, []string{"organization_id", "bulk_id", "row", "status", "result", "errors"},
		pgx.CopyFromSlice(len(plan.Results), func(i int) ([]any, error) {
			r := &plan.Results[i]
			w := r.Wire()
			counts[w.Status]++
			result, err := jsonscan.Marshal(w)
			if err != nil {
				return nil, fmt.Errorf("encode result of row %d: %w", r.Row, err)
			}
			var report []byte
			if w.Errors != nil {
				if report, err = jsonscan.Marshal(w.Errors); err != nil {
					return nil, fmt.Errorf("encode errors of row %d: %w", r.Row, err)
				}
			}
			return []any{org, pgUUID(id), r.Row, string(w.Status), result, report}, nil
		}))
	if err != nil {
		return fmt.Errorf("store results: %w", err)
	}
	created, updated, unchanged, failed := counts[bulk.RowCreated], counts[bulk.RowUpdated], counts[bulk.RowUnchanged], counts[bulk.RowFailed]
	locations, customers, debtAccounts := plan.Written()
	// The bulk completes only if it is still running: a cancel that came
	// while the records were written wins, and all of this rolls back.
	tag, err := tx.Exec(ctx,
		`UPDATE bulks SET status = 'completed', rows_succeeded = $2, rows_failed = $3,
		        rows_created = $4, rows_updated = $5, rows_unchanged = $6,
		        locations_written = $7, customers_written = $8, debt_accounts_written = $9, rolled_back = $10,
		        completed_at = clock_timestamp(), updated_at = clock_timestamp(), failure_reason = NULL
		 WHERE organization_id = $11 AND id = $1 AND `+unfinished, pgUUID(id), created+updated+unchanged, failed, created, updated, unchanged,
		locations, customers, debtAccounts, plan.RolledBack, org)
	if err != nil {
		return fmt.Errorf("complete bulk: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return errFinished
	}
	if err := recordDeliveries(ctx, tx, orgID, id, EventCompleted, !plan.Options.ValidateOnly); err != nil {
		return err
	}
	return notifyFinished(ctx, tx, id)
}
