package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/bulkgen"
)

// The checks of the import's modes, beside the counts every run checks: an
// upsert changed exactly the planted fields, a dry run wrote nothing, an
// atomic bulk wrote all or nothing, and every row's result says so.

// recordKey names a record: its table and external id.
type recordKey struct{ table, externalID string }

// snapshot reads every record of the organization, to compare after the
// upsert.
func snapshot(ctx context.Context, db *database, orgID uuid.UUID) (map[recordKey]recordState, error) {
	m := map[recordKey]recordState{}
	err := db.recordStates(ctx, orgID, func(st recordState) error {
		m[recordKey{st.Table, st.ExternalID}] = st
		return nil
	})
	return m, err
}

// problems collects a check's findings, keeping the first few in full.
type problems struct {
	what  string
	n     int
	first []string
}

func (p *problems) add(format string, args ...any) {
	if p.n++; len(p.first) < 3 {
		p.first = append(p.first, fmt.Sprintf(format, args...))
	}
}

func (p *problems) list() []string {
	if p.n == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%s: %d problem(s), e.g. %v", p.what, p.n, p.first)}
}

// checkUpsert compares the records after the upsert with the seed's: the
// same records (none created, none lost), every column but the planted ones
// as it was, and the planted fields changed — with the version counting the
// change — exactly on the records the generator changed.
func checkUpsert(ctx context.Context, c config, db *database, orgID uuid.UUID, before map[recordKey]recordState) ([]string, error) {
	changed := map[recordKey]bool{}
	for b := range c.bulks {
		custs, accts := bulkgen.ChangedRecords(c.genOptions(b))
		for _, id := range custs {
			changed[recordKey{"customers", id}] = true
		}
		for _, id := range accts {
			changed[recordKey{"debt_accounts", id}] = true
		}
	}
	p := &problems{what: "upsert check"}
	seen := 0
	err := db.recordStates(ctx, orgID, func(st recordState) error {
		k := recordKey{st.Table, st.ExternalID}
		was, ok := before[k]
		if !ok {
			p.add("%s %s was created by the upsert", k.table, k.externalID)
			return nil
		}
		seen++
		if st.Rest != was.Rest {
			p.add("%s %s: a field that was not planted changed", k.table, k.externalID)
		}
		want, version := was.Planted, was.Version
		if changed[k] {
			version++
			switch k.table {
			case "customers":
				want += bulkgen.ChangedNameSuffix
			case "debt_accounts":
				cents, err := strconv.ParseInt(was.Planted, 10, 64)
				if err != nil {
					return fmt.Errorf("debt account %s: current_balance %q: %w", k.externalID, was.Planted, err)
				}
				want = strconv.FormatInt(cents+bulkgen.ChangedBalanceCents, 10)
			}
		}
		if st.Planted != want || st.Version != version {
			p.add("%s %s: %q version %d, want %q version %d", k.table, k.externalID, st.Planted, st.Version, want, version)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if seen != len(before) {
		p.add("%d of the seed's %d records are left", seen, len(before))
	}
	for k := range changed {
		if _, ok := before[k]; !ok {
			p.add("%s %s was planted a change but the seed did not write it", k.table, k.externalID)
			break
		}
	}
	return p.list(), nil
}

// checkResults reads every bulk's results and checks each row's status
// against what the mode must make of the row the generator planted, and
// the totals against the row statuses.
func checkResults(ctx context.Context, c config, apis []*api, l *loadResult) ([]string, error) {
	p := &problems{what: "results check"}
	updated, changedRows := 0, 0
	for b, id := range l.ids {
		o := c.genOptions(b)
		kinds := bulkgen.Kinds(o)
		statuses, totals, err := apis[c.orgOf(b)].results(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("results of bulk %d: %w", b, err)
		}
		if len(statuses) != c.rows || totals.TotalRows != c.rows {
			p.add("bulk %d: %d results of %d rows (total_rows %d)", b, len(statuses), c.rows, totals.TotalRows)
			continue
		}
		st := l.finished[b]
		count := map[string]int{}
		for i, got := range statuses {
			count[got]++
			var want []string
			switch {
			case kinds[i] == bulkgen.Invalid:
				want = []string{"failed"}
			case c.upsert():
				// A changed row and its repeats: whichever imports first
				// updates, the others find it as submitted.
				want = []string{"unchanged"}
				if kinds[i] == bulkgen.Valid && o.IsChanged(o.Bulk, i) {
					want = []string{"updated", "unchanged"}
					changedRows++
				} else if kinds[i] == bulkgen.Duplicate {
					want = []string{"updated", "unchanged"}
				}
			case c.atomic && st.RolledBack:
				want = []string{"rolled_back"}
			default: // validate-only, atomic without errors: as created
				want = []string{"created"}
			}
			if !oneOf(got, want) {
				p.add("bulk %d row %d (%s): status %s, want %v", b, i+1, kinds[i], got, want)
			}
		}
		updated += count["updated"]
		if totals.TotalUpdated != count["updated"] || totals.TotalUnchanged != count["unchanged"] ||
			totals.TotalCreated != count["created"] || totals.TotalErrors != count["failed"] || totals.TotalErrors != st.RowsFailed {
			p.add("bulk %d: totals %+v do not add up to its rows' statuses %v (rows_failed %d)", b, totals, count, st.RowsFailed)
		}
		if c.atomic {
			inv, _ := bulkgen.Counts(o)
			if st.RolledBack != (inv > 0) || (st.RolledBack && st.RowsSucceeded != 0) {
				p.add("bulk %d (%d invalid rows): rolled_back %v with %d rows succeeded", b, inv, st.RolledBack, st.RowsSucceeded)
			}
		}
	}
	if c.upsert() && updated != changedRows {
		p.add("%d rows updated, want the %d changed rows (once each, however often repeated)", updated, changedRows)
	}
	return p.list(), nil
}

func oneOf(s string, list []string) bool {
	for _, x := range list {
		if s == x {
			return true
		}
	}
	return false
}
