package main

// The baselines: the records a run's bulks write, written with nothing
// around them, the fastest way (COPY, as the import does), the naive way
// (one GORM Create per record) and, for upserts, the raw set-based way
// (COPY into a temporary table, one INSERT … ON CONFLICT DO UPDATE per
// table). Comparing bulkd's end-to-end rate with them says what the queue,
// validation, look-ups and reports cost, and what the set-based writes
// save. They write the rows the import writes (store.PlanInserts): the same
// tables, columns and values.

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"github.com/bulkd/bulkd/models"
	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/store"
)

// baselines runs the baselines of the run's mode into a database of their
// own (when a Postgres server is known), and plans the whole run either way:
// the plans are the expected records. Create and atomic runs have the GORM
// and COPY baselines; an upsert run the raw upsert, over a COPY of its
// seed; a dry run none, since it writes nothing.
func (b *bench) baselines(ctx context.Context, srv server, useDB bool, rep *report) (planned, error) {
	c := b.cfg
	tick := func(what string) func(int) {
		last := time.Now()
		return func(i int) {
			if time.Since(last) > 250*time.Millisecond {
				last = time.Now()
				b.status(fmt.Sprintf("%s: bulk %d of %d", what, i+1, c.bulks))
			}
		}
	}
	defer b.clearStatus()
	measured := createPlanning(c.genOptions, bulk.Options{Atomic: c.atomic, ValidateOnly: c.validateOnly})
	if c.upsert() || c.validateOnly {
		// The records an upsert's bulks name, or a dry run's would write:
		// with nothing stored by a dry run, each bulk plans as if alone.
		measured = planning{gen: c.genOptions, opts: bulk.Options{ValidateOnly: c.validateOnly}, alone: true}
	}
	gorm, copyOrUpsert := c.gormBaseline && !c.upsert(), c.copyBaseline
	if c.validateOnly {
		if useDB && (gorm || copyOrUpsert) {
			rep.Notes = append(rep.Notes, "baselines skipped: a dry run writes nothing to compare them with")
		}
		gorm, copyOrUpsert = false, false
	}
	if !useDB || (!copyOrUpsert && !gorm) {
		if !useDB && (copyOrUpsert || gorm) {
			rep.Notes = append(rep.Notes, "baselines skipped: give --database-url (the Postgres the bulkd uses) to run them")
		}
		b.say("planning the run's records")
		return replay(ctx, c, measured, 0, nil, tick("planning"))
	}

	name := "bulkbench_" + c.runID + "_baseline"
	dbURL, err := srv.Create(ctx, name, "")
	if err != nil {
		return planned{}, err
	}
	defer func() {
		if c.keep {
			b.say("kept baseline database %s", name)
			return
		}
		dropCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := srv.Drop(dropCtx, name); err != nil {
			b.say("%v", err)
		}
	}()
	s, err := store.Open(ctx, dbURL, 2)
	if err != nil {
		return planned{}, err
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		return planned{}, err
	}
	db, err := openDatabase(ctx, dbURL)
	if err != nil {
		return planned{}, err
	}
	defer db.close()

	// GORM first, on empty tables as bulkd had them; a sample of whole bulks,
	// since one INSERT per record for millions of records would take hours.
	if gorm {
		b.say("GORM one-by-one baseline on a sample of at least %d records", c.gormSample)
		w, err := newBaselineWriter(ctx, c, s, db, "bulkbench gorm", db.createPlanOneByOne)
		if err != nil {
			return planned{}, err
		}
		srv.checkpoint(ctx)
		p, err := replay(ctx, c, measured, int64(c.gormSample), w.plan(ctx), tick("GORM baseline"))
		if err != nil {
			return planned{}, fmt.Errorf("GORM baseline: %w", err)
		}
		if rep.GormBaseline, err = w.result(ctx, "gorm-one-by-one", p, p.bulks < c.bulks); err != nil {
			return planned{}, err
		}
	}
	if !copyOrUpsert {
		b.say("planning the run's records")
		return replay(ctx, c, measured, 0, nil, tick("planning"))
	}
	if c.upsert() {
		b.say("raw upsert baseline: the seed by COPY (untimed), then %d bulks, one COPY + INSERT … ON CONFLICT DO UPDATE per table per bulk", c.bulks)
		w, err := newBaselineWriter(ctx, c, s, db, "bulkbench upsert", db.copyPlan)
		if err != nil {
			return planned{}, err
		}
		if _, err := replay(ctx, c, createPlanning(c.seedOptions, bulk.Options{}), 0, w.plan(ctx), tick("seeding the raw upsert")); err != nil {
			return planned{}, fmt.Errorf("raw upsert baseline: seed: %w", err)
		}
		w.write, w.elapsed = db.upsertPlan, 0
		srv.checkpoint(ctx)
		exp, err := replay(ctx, c, measured, 0, w.plan(ctx), tick("raw upsert baseline"))
		if err != nil {
			return planned{}, fmt.Errorf("raw upsert baseline: %w", err)
		}
		if rep.UpsertBaseline, err = w.result(ctx, "pgx-copy-insert-on-conflict", exp, false); err != nil {
			return planned{}, err
		}
		return exp, nil
	}
	b.say("COPY baseline: %d bulks, one COPY per table per bulk (planning untimed)", c.bulks)
	w, err := newBaselineWriter(ctx, c, s, db, "bulkbench copy", db.copyPlan)
	if err != nil {
		return planned{}, err
	}
	srv.checkpoint(ctx)
	exp, err := replay(ctx, c, measured, 0, w.plan(ctx), tick("COPY baseline"))
	if err != nil {
		return planned{}, fmt.Errorf("COPY baseline: %w", err)
	}
	if rep.CopyBaseline, err = w.result(ctx, "pgx-copy", exp, false); err != nil {
		return planned{}, err
	}
	if c.leanBaseline {
		b.say("lean COPY baseline: the same records into minimal tables (keys and the account foreign keys only)")
		if err := db.createLeanTables(ctx); err != nil {
			return planned{}, err
		}
		lw, err := newBaselineWriter(ctx, c, s, db, "bulkbench lean", db.copyLean)
		if err != nil {
			return planned{}, err
		}
		lw.schema = leanSchema
		srv.checkpoint(ctx)
		if _, err := replay(ctx, c, measured, 0, lw.plan(ctx), tick("lean COPY baseline")); err != nil {
			return planned{}, fmt.Errorf("lean COPY baseline: %w", err)
		}
		if rep.LeanBaseline, err = lw.result(ctx, "pgx-copy-lean-tables", exp, false); err != nil {
			return planned{}, err
		}
	}
	return exp, nil
}

// leanSchema holds the lean baseline's tables, beside bulkd's in the
// baseline's database.
const leanSchema = "lean"

// leanTables are the tables a user who loads the same records with a plain
// COPY would compare with: each record's columns, a primary key, the unique
// (organization, external id) that makes an external id a key, and the
// account's customer and parent foreign keys; nothing else: no provenance
// (bulk, row, version, timestamps), no indexes beyond the keys, no checks,
// no foreign key to the organization or the location, json rather than
// jsonb (stored as text, not decomposed). What bulkd's own schema costs is
// the COPY baseline over this one.
const leanTables = `
CREATE SCHEMA IF NOT EXISTS lean;
CREATE TABLE lean.locations (
    id uuid PRIMARY KEY, organization_id uuid NOT NULL, external_id text NOT NULL, name text,
    UNIQUE (organization_id, external_id));
CREATE TABLE lean.customers (
    id uuid PRIMARY KEY, organization_id uuid NOT NULL, external_id text NOT NULL, location_id uuid NOT NULL,
    name text NOT NULL, email text, phone text, date_of_birth date, ssn_last4 text, address json, metadata json,
    UNIQUE (organization_id, external_id));
CREATE TABLE lean.debt_accounts (
    id uuid PRIMARY KEY, organization_id uuid NOT NULL, external_id text NOT NULL,
    customer_id uuid NOT NULL REFERENCES lean.customers (id), parent_id uuid REFERENCES lean.debt_accounts (id),
    external_account_number text, balance numeric(14, 2) NOT NULL, current_balance numeric(14, 2) NOT NULL,
    billing_type text[] NOT NULL, metadata json,
    UNIQUE (organization_id, external_id));`

func (d *database) createLeanTables(ctx context.Context) error {
	if _, err := d.pool.Exec(ctx, leanTables); err != nil {
		return fmt.Errorf("create lean tables: %w", err)
	}
	return nil
}

// leanSkipped are the columns of store.PlanInserts the lean tables do not
// have: the import's provenance.
var leanSkipped = map[string]bool{"bulk_id": true, "bulk_row": true, "last_bulk_id": true, "last_bulk_row": true}

// copyLean writes a plan's new records, the same values as copyPlan's but
// for the provenance, into the lean tables: one COPY per table in one
// transaction.
func (d *database) copyLean(ctx context.Context, orgID uuid.UUID, p *bulk.Plan) error {
	if err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		for _, in := range store.PlanInserts(orgID, p) {
			if in.Len == 0 {
				continue
			}
			var cols []string
			var keep []int
			for i, col := range in.Columns {
				if !leanSkipped[col] {
					cols, keep = append(cols, col), append(keep, i)
				}
			}
			row := make([]any, len(keep))
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{leanSchema, in.Table}, cols, pgx.CopyFromSlice(in.Len, func(i int) ([]any, error) {
				v := in.Values(i)
				for j, k := range keep {
					row[j] = v[k]
				}
				return row, nil
			})); err != nil {
				return fmt.Errorf("copy lean %s: %w", in.Table, err)
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("copy plan into lean tables: %w", err)
	}
	return nil
}

// baseline is the rate of one way of writing the run's records.
type baseline struct {
	Method           string        `json:"method"`
	Bulks            int           `json:"bulks"`
	Records          int64         `json:"records"`
	Seconds          float64       `json:"seconds"` // the writes alone
	RecordsPerSecond float64       `json:"records_per_second"`
	Sampled          bool          `json:"sampled"` // a sample of the run's records; the rate is what extrapolates
	Counted          *recordCounts `json:"counted,omitempty"`
}

// baselineWriter writes plans into a database of the baseline's own, under
// as many organizations as the run has (bulk b into organization
// c.orgOf(b)), timing the writes only.
type baselineWriter struct {
	cfg     config
	db      *database
	orgIDs  []uuid.UUID
	elapsed time.Duration
	write   func(context.Context, uuid.UUID, *bulk.Plan) error
	schema  string // "": bulkd's tables, the bulks' rows created first; else the lean tables of that schema
}

func newBaselineWriter(ctx context.Context, c config, s *store.Store, db *database, name string, write func(context.Context, uuid.UUID, *bulk.Plan) error) (*baselineWriter, error) {
	w := &baselineWriter{cfg: c, db: db, write: write}
	for i := range max(c.orgs, 1) {
		org, err := s.CreateOrganization(ctx, fmt.Sprintf("%s %d", name, i+1), "bench@example.com")
		if err != nil {
			return nil, err
		}
		w.orgIDs = append(w.orgIDs, org.ID)
	}
	return w, nil
}

func (w *baselineWriter) plan(ctx context.Context) func(*bulk.Plan, int, int) error {
	return func(p *bulk.Plan, b, rows int) error {
		org := w.orgIDs[w.cfg.orgOf(b)]
		// The records point at their bulk, as imported ones do; the bulk row
		// is bookkeeping of the service, not part of the measure. The lean
		// tables have no bulks.
		if w.schema == "" {
			if err := w.db.createBaselineBulk(ctx, org, p.BulkID, rows); err != nil {
				return err
			}
		}
		t0 := time.Now()
		err := w.write(ctx, org, p)
		w.elapsed += time.Since(t0)
		return err
	}
}

func (w *baselineWriter) result(ctx context.Context, method string, p planned, sampled bool) (*baseline, error) {
	counted, err := w.db.countIn(ctx, w.schema, w.orgIDs)
	if err != nil {
		return nil, err
	}
	return &baseline{Method: method, Bulks: p.bulks, Records: p.records.Total(), Seconds: w.elapsed.Seconds(),
		RecordsPerSecond: rate(float64(p.records.Total()), w.elapsed), Sampled: sampled, Counted: &counted}, nil
}

// createBaselineBulk stores a completed bulk without rows, for the records
// of a baseline write to point at through bulk_id as imported records do.
func (d *database) createBaselineBulk(ctx context.Context, orgID, id uuid.UUID, count int) error {
	now := time.Now()
	b := models.Bulk{ID: id, OrganizationID: orgID, Status: models.StatusCompleted, Count: count, Mode: string(bulk.ModeCreate),
		RowsSucceeded: count, StartedAt: &now, CompletedAt: &now}
	if err := d.gorm.WithContext(ctx).Create(&b).Error; err != nil {
		return fmt.Errorf("create baseline bulk: %w", err)
	}
	return nil
}

// copyPlan writes a plan's new records exactly as the import does — one
// COPY per table in one transaction, the same columns and values — and
// nothing else: no lock, no look-ups, no row reports, no status. The plan's
// bulk must exist (createBaselineBulk).
func (d *database) copyPlan(ctx context.Context, orgID uuid.UUID, p *bulk.Plan) error {
	if err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		for _, in := range store.PlanInserts(orgID, p) {
			if err := in.Copy(ctx, tx); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("copy plan: %w", err)
	}
	return nil
}

// createPlanOneByOne writes the same records as copyPlan the way a naive
// importer would: one GORM Create, so one INSERT round trip, per record,
// all in one transaction.
func (d *database) createPlanOneByOne(ctx context.Context, orgID uuid.UUID, p *bulk.Plan) error {
	bulkID := p.BulkID
	err := d.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, l := range p.Locations {
			rec := models.Location{ID: l.ID, OrganizationID: orgID, ExternalID: l.ExternalID, Name: textOrNil(l.Name),
				BulkID: &bulkID, BulkRow: &l.Row, Provenance: createdBy(bulkID, l.Row)}
			if err := tx.Create(&rec).Error; err != nil {
				return fmt.Errorf("location: %w", err)
			}
		}
		for _, c := range p.Customers {
			rec := models.Customer{ID: c.ID, OrganizationID: orgID, ExternalID: c.ExternalID, LocationID: c.LocationID,
				Name: c.Name, Email: textOrNil(c.Email), Phone: textOrNil(c.Phone), SSNLast4: textOrNil(c.SSNLast4),
				Address: c.Address, Metadata: c.Metadata, BulkID: &bulkID, BulkRow: &c.Row, Provenance: createdBy(bulkID, c.Row)}
			if !c.DateOfBirth.IsZero() {
				rec.DateOfBirth = &c.DateOfBirth
			}
			if err := tx.Create(&rec).Error; err != nil {
				return fmt.Errorf("customer: %w", err)
			}
		}
		for _, a := range p.DebtAccounts {
			rec := models.DebtAccount{ID: a.ID, OrganizationID: orgID, ExternalID: a.ExternalID, CustomerID: a.CustomerID,
				ExternalAccountNumber: textOrNil(a.ExternalAccountNumber), Balance: a.Balance.String(),
				CurrentBalance: a.CurrentBalance.String(), BillingType: a.BillingType, Metadata: a.Metadata,
				BulkID: &bulkID, BulkRow: &a.Row, Provenance: createdBy(bulkID, a.Row)}
			if a.ParentID != uuid.Nil {
				rec.ParentID = &a.ParentID
			}
			if err := tx.Create(&rec).Error; err != nil {
				return fmt.Errorf("debt account: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create plan one by one: %w", err)
	}
	return nil
}

// createdBy is the last change of a record the bulk row created, as the
// import records it; the version and the kind of change are the tables'
// defaults (1, bulk), which GORM leaves to Postgres.
func createdBy(bulkID uuid.UUID, row int) models.Provenance {
	return models.Provenance{LastBulkID: &bulkID, LastBulkRow: &row}
}

// textOrNil maps "" to NULL, as the import does.
func textOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
