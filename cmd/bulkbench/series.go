package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// A series is several runs of one invocation, one after another on the same
// machine, each with its own scratch databases and baselines, reported as
// one table of ratios: --preset matrix (the default data in every mode) and
// --orgs N (the same rows in one organization, then spread over N).

// step is one run of a series.
type step struct {
	Name   string  `json:"name"`
	Report *report `json:"report"`
	cfg    config
}

// seriesReport is what --json prints for a series.
type seriesReport struct {
	Series  string  `json:"series"` // matrix or orgs
	Steps   []step  `json:"steps"`
	Ratios  []ratio `json:"ratios"`
	Targets []goal  `json:"targets"`
	OK      bool    `json:"ok"`
}

// ratio is one comparison of the series, each side from the same
// invocation.
type ratio struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Of    string  `json:"of"` // what over what
}

// matrixSteps are the modes of --preset matrix, on the default data.
func matrixSteps(c config) []step {
	base := c
	base.gormBaseline = false
	mk := func(name string, f func(*config)) step {
		s := base
		s.leanBaseline = false
		f(&s)
		return step{Name: name, cfg: s}
	}
	return []step{
		mk("create", func(s *config) { s.leanBaseline = c.leanBaseline }),
		mk("upsert-changed", func(s *config) { s.mode, s.changed = "upsert", 1 }),
		mk("upsert-unchanged", func(s *config) { s.mode, s.changed = "upsert", 0 }),
		// Clean bulks, all-or-nothing: the target compares them with create
		// mode, each against its own COPY baseline.
		mk("atomic (clean bulks)", func(s *config) { s.atomic, s.invalid, s.duplicates = true, 0, 0 }),
		mk("validate-only", func(s *config) { s.validateOnly = true }),
	}
}

// orgSteps are the runs of --orgs N: the same rows in one organization,
// then over N. Duplicates are off in both: a row repeating one of another
// organization's bulk would not be a duplicate there.
func orgSteps(c config) []step {
	one, many := c, c
	one.orgs, one.duplicates, many.duplicates = 1, 0, 0
	one.gormBaseline, many.gormBaseline = false, false
	return []step{{Name: "1 organization", cfg: one}, {Name: fmt.Sprintf("%d organizations", c.orgs), cfg: many}}
}

// runSeries runs the steps of --preset matrix or --orgs N and prints one
// table of ratios (or the whole of every run with --json).
func runSeries(ctx context.Context, c config, stderr, stdout io.Writer) error {
	sr := &seriesReport{Series: "matrix"}
	steps := matrixSteps(c)
	if c.orgs > 1 {
		sr.Series, steps = "orgs", orgSteps(c)
	}
	var problems []string
	for i := range steps {
		s := &steps[i]
		s.cfg.runID = randomHex(4)
		b := &bench{cfg: s.cfg, stderr: stderr}
		b.say("series %s, run %d of %d: %s", sr.Series, i+1, len(steps), s.Name)
		rep, err := b.run(ctx)
		if rep == nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		if err != nil {
			rep.Problems = append(rep.Problems, err.Error())
		}
		rep.OK = len(rep.Problems) == 0
		for _, p := range rep.Problems {
			problems = append(problems, s.Name+": "+p)
		}
		s.Report = rep
	}
	sr.Steps = steps
	sr.Ratios, sr.Targets = seriesRatios(sr.Series, steps)
	sr.OK = len(problems) == 0
	if c.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sr); err != nil {
			return err
		}
	} else {
		sr.writeTable(stdout)
	}
	if len(problems) > 0 {
		return errors.New("the series found problems: " + strings.Join(problems, "; "))
	}
	return nil
}

// seriesRatios are the series' comparisons and the targets they decide.
func seriesRatios(series string, steps []step) ([]ratio, []goal) {
	var rs []ratio
	var gs []goal
	yes := func(ok bool) *bool { return &ok }
	add := func(name, of string, v *float64) *float64 {
		if v != nil {
			rs = append(rs, ratio{Name: name, Value: *v, Of: of})
		}
		return v
	}
	div := func(a, b float64) *float64 {
		if b <= 0 {
			return nil
		}
		v := round(a/b, 3)
		return &v
	}
	if series == "orgs" {
		one, many := steps[0].Report, steps[1].Report
		add("records/s, N organizations over 1", steps[1].Name+" / "+steps[0].Name+", end to end", div(many.RecordsPerSecond, one.RecordsPerSecond))
		add("bulkd / COPY, 1 organization", "end to end over its COPY baseline", one.Ratios.BulkdVsCopy)
		add("bulkd / COPY, N organizations", "end to end over its COPY baseline", many.Ratios.BulkdVsCopy)
		return rs, gs
	}
	byName := map[string]*report{}
	for _, s := range steps {
		byName[s.Name] = s.Report
	}
	create, changed, unchanged, atomic, dry := byName["create"], byName["upsert-changed"], byName["upsert-unchanged"], byName["atomic (clean bulks)"], byName["validate-only"]

	// atLeast adds the ratio v and the target it meets when it is min or
	// more (a target left undecided when v could not be measured).
	atLeast := func(target, name, of string, v *float64, min float64) {
		g := goal{Name: target}
		if v = add(name, of, v); v != nil {
			g.Value, g.Met = fmt.Sprintf("%.2f", *v), yes(*v >= min)
		}
		gs = append(gs, g)
	}
	atLeast("create ≥ 90% of the same-schema COPY (default data)", "create / same-schema COPY", "records/s", create.Ratios.BulkdVsCopy, 0.9)
	atLeast("create ≥ 75% of the lean COPY (default data)", "create / lean COPY", "records/s", create.Ratios.BulkdVsLean, 0.75)
	add("same-schema COPY / lean COPY", "records/s: what bulkd's schema costs a plain COPY", create.Ratios.CopyVsLean)
	atLeast("upsert of changed data ≥ 80% of the raw set-based upsert", "upsert-changed / raw upsert", "records/s", changed.Ratios.BulkdVsRawUpsert, 0.8)
	atLeast("upsert of unchanged data ≥ creating the same data (its seed: the same bulks in create mode into an empty organization)",
		"upsert-unchanged / its seed", "rows/s; the seed creates the same bulks, same run", unchanged.Ratios.UpsertVsCreate, 1)
	add("upsert-unchanged / create run", "rows/s; the create run of this series", div(unchanged.RowsPerSecond, create.RowsPerSecond))

	g := goal{Name: "atomic (clean bulks) within 10% of create, each over its own COPY baseline"}
	if atomic.Ratios.BulkdVsCopy != nil && create.Ratios.BulkdVsCopy != nil {
		add("atomic / COPY", "records/s", atomic.Ratios.BulkdVsCopy)
		v := add("(atomic / COPY) / (create / COPY)", "ratio of ratios", div(*atomic.Ratios.BulkdVsCopy, *create.Ratios.BulkdVsCopy))
		g.Value, g.Met = fmt.Sprintf("%.2f", *v), yes(*v >= 0.9)
	}
	gs = append(gs, g)
	add("atomic / create run", "rows/s", div(atomic.RowsPerSecond, create.RowsPerSecond))
	add("validate-only / create run", "rows/s", div(dry.RowsPerSecond, create.RowsPerSecond))
	return rs, gs
}

// writeTable prints one line per run and the ratios.
func (sr *seriesReport) writeTable(out io.Writer) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	first := sr.Steps[0].Report
	m := first.Machine
	fmt.Fprintf(w, "bulkbench series %s: %s bulks × %d rows × %d debt accounts, %s, %s\n", sr.Series,
		thousands(int64(first.Config.Bulks)), first.Config.Rows, first.Config.Accounts, plural(first.Config.Clients, "client"), plural(first.Config.Workers, "worker"))
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s MiB, PostgreSQL %s; load average at start %s\n\n", m.CPUs, m.CPUModel, thousands(m.MemoryMiB), m.Postgres, m.LoadBefore)
	fmt.Fprintln(w, "run\twall\trecords/s\trows/s\taccept p50 / p99\tbaseline (same run)\tbulkd / baseline\tpeak RSS api / workers\tCPU: Postgres / bulkd / idle")
	for _, s := range sr.Steps {
		r := s.Report
		base, ratio := "—", "—"
		switch {
		case r.UpsertBaseline != nil && r.Config.Changed > 0:
			base, ratio = fmt.Sprintf("raw upsert %s records/s", thousands(int64(r.UpsertBaseline.RecordsPerSecond))), ptr(r.Ratios.BulkdVsRawUpsert)
		case r.Seed != nil:
			base, ratio = fmt.Sprintf("its seed %s rows/s", thousands(int64(r.Seed.RowsPerSecond))), ptr(r.Ratios.UpsertVsCreate)
		case r.CopyBaseline != nil:
			base, ratio = fmt.Sprintf("COPY %s records/s", thousands(int64(r.CopyBaseline.RecordsPerSecond))), ptr(r.Ratios.BulkdVsCopy)
			if r.LeanBaseline != nil {
				base += fmt.Sprintf(", lean COPY %s", thousands(int64(r.LeanBaseline.RecordsPerSecond)))
				ratio += " / " + ptr(r.Ratios.BulkdVsLean)
			}
		}
		var apiPeak float64
		var workers []string
		for _, pm := range r.Memory {
			if pm.Name == "api" {
				apiPeak = pm.PeakMiB
			} else {
				workers = append(workers, fmt.Sprintf("%.0f", pm.PeakMiB))
			}
		}
		cpu := "—"
		if u := r.CPU; u != nil {
			cpu = fmt.Sprintf("%.0f%% / %.0f%% / %.0f%%", u.Postgres*100, (u.API+u.Workers)*100, u.Idle*100)
		}
		fmt.Fprintf(w, "%s\t%.1f s\t%s\t%s\t%.0f / %.0f ms\t%s\t%s\t%.0f / %s MiB\t%s\n", s.Name, r.WallSeconds,
			thousands(int64(r.RecordsPerSecond)), thousands(int64(r.RowsPerSecond)), r.AcceptMS.P50, r.AcceptMS.P99,
			base, ratio, apiPeak, strings.Join(workers, ", "), cpu)
	}
	fmt.Fprintln(w)
	for _, r := range sr.Ratios {
		fmt.Fprintf(w, "%s\t%.2f\t(%s)\n", r.Name, r.Value, r.Of)
	}
	if len(sr.Targets) > 0 {
		fmt.Fprintln(w, "\ntargets")
	}
	for _, g := range sr.Targets {
		mark := "n/a"
		if g.Met != nil {
			mark = map[bool]string{true: "met", false: "MISSED"}[*g.Met]
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\n", mark, g.Name, g.Value)
	}
	w.Flush()
	for _, s := range sr.Steps {
		for _, p := range s.Report.Problems {
			fmt.Fprintf(out, "PROBLEM (%s): %s\n", s.Name, p)
		}
	}
}

func ptr(v *float64) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf("%.2f", *v)
}
