package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulkgen"
)

// planned is what the run's bulks write and fail, worked out by planning them
// as the import does.
type planned struct {
	bulks      int
	records    recordCounts
	failedRows int // rows failing validation, plus the duplicates
}

// planning is how replay plans the run's bulks.
type planning struct {
	gen  func(b int) bulkgen.Options
	opts bulk.Options // the import's options (Today is set by replay)
	// alone plans each bulk against no stored records and keeps its
	// duplicate rows: the records the bulks of an upsert name, each bulk
	// with the locations it names (UpsertPlan's input), or those a dry run
	// on an empty database would write. Otherwise each bulk
	// is planned against the locations earlier ones created, as an import
	// into a fresh database does, and duplicate rows are left out (failing).
	alone bool
}

// createPlanning plans the bulks of gen as a create-mode import with opts.
func createPlanning(gen func(int) bulkgen.Options, opts bulk.Options) planning {
	return planning{gen: gen, opts: opts}
}

// replay regenerates bulks 0, 1, … of the run, parses and plans each as an
// import does, and hands the plan to write (nil: plan only). It stops after
// the bulk that brings the records to limit (0: after every bulk). Only
// write's own time should be measured by the caller: generating and
// planning happen outside it.
//
// Duplicate rows are left out of the plans (unless pl.alone). Of a row and
// its repeat, whichever imports first writes the records and the other
// writes nothing, so the totals are the same in whatever order bulkd
// imported the bulks.
//
// Each organization of the run (--orgs) has its own locations: a bulk is
// planned against those its organization's earlier bulks created.
func replay(ctx context.Context, cfg config, pl planning, limit int64, write func(p *bulk.Plan, b, rows int) error, tick func(b int)) (planned, error) {
	var res planned
	today := time.Now().UTC().Truncate(24 * time.Hour) // as the worker parses
	opts := pl.opts
	opts.Today = today
	byOrg := map[int]bulk.Existing{}
	for b := range cfg.bulks {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		o := pl.gen(b)
		raw, err := bulk.DecodeSubmission(bytes.NewReader(bulkgen.Body(o)))
		if err != nil {
			return res, fmt.Errorf("replay bulk %d: %w", b, err)
		}
		kinds := bulkgen.Kinds(o)
		rows := make([]*bulk.Row, 0, len(raw))
		for i, r := range raw {
			if kinds[i] == bulkgen.Duplicate && !pl.alone {
				res.failedRows++
				continue
			}
			rows = append(rows, bulk.ParseRow(i+1, r, opts)) // numbered as submitted
		}
		existing, ok := byOrg[cfg.orgOf(b)]
		if !ok {
			existing = bulk.Existing{Locations: map[string]bulk.Record{}}
			byOrg[cfg.orgOf(b)] = existing
		}
		if pl.alone {
			existing = bulk.Existing{}
		}
		p := bulk.NewPlan(uuid.New(), rows, existing, opts)
		for _, r := range p.Results {
			if _, failed := r.Errors(); failed {
				res.failedRows++
			}
		}
		if !pl.alone {
			for _, l := range p.Locations {
				existing.Locations[l.ExternalID] = bulk.Record{ID: l.ID, BulkID: p.BulkID, BulkRow: l.Row}
			}
		}
		if write != nil {
			if err := write(p, b, len(raw)); err != nil {
				return res, fmt.Errorf("bulk %d: %w", b, err)
			}
		}
		res.bulks++
		res.records = res.records.Add(planCounts(p))
		if tick != nil {
			tick(b)
		}
		if limit > 0 && res.records.Total() >= limit {
			break
		}
	}
	return res, nil
}
