package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkd/bulkd/pkg/bulkgen"
	"github.com/bulkd/bulkd/pkg/procstat"
)

// report is everything a run measured, as --json prints it.
type report struct {
	RunID   string       `json:"run_id"`
	Config  reportConfig `json:"config"`
	Machine machineInfo  `json:"machine"`
	Target  struct {
		Mode     string `json:"mode"` // spawn or url
		Database string `json:"database,omitempty"`
		RedisDB  int    `json:"redis_db,omitempty"`
		PIDs     []int  `json:"pids,omitempty"`
	} `json:"target"`

	Bulks struct {
		Submitted int `json:"submitted"`
		Completed int `json:"completed"`
		Failed    int `json:"failed"`
	} `json:"bulks"`
	Rows struct {
		Submitted         int `json:"submitted"`
		Succeeded         int `json:"succeeded"`
		Failed            int `json:"failed"`
		RolledBack        int `json:"rolled_back"` // atomic: fine rows of bulks that wrote nothing
		ExpectedFailed    int `json:"expected_failed"`
		PlantedInvalid    int `json:"planted_invalid"`
		PlantedDuplicates int `json:"planted_duplicates"`
	} `json:"rows"`
	Records struct {
		// Written is what bulkd's database holds (spawn mode); nil in url
		// mode, where the rates use Expected.
		Written  *recordCounts `json:"written,omitempty"`
		Expected recordCounts  `json:"expected"`
		Total    int64         `json:"total"`
		Source   string        `json:"source"` // database or plan
	} `json:"records"`

	WallSeconds            float64        `json:"wall_seconds"` // first submit to last completion seen
	RecordsPerSecond       float64        `json:"records_per_second"`
	RowsPerSecond          float64        `json:"rows_per_second"`
	RowsPerSecondPerWorker float64        `json:"rows_per_second_per_worker"`
	AcceptMS               dist           `json:"accept_ms"`     // POST to 202, per bulk
	CompletionMS           dist           `json:"completion_ms"` // 202 to completed, client clock, within a poll interval
	QueueWaitMS            dist           `json:"queue_wait_ms"` // created_at to started_at, server clock
	Retries                map[string]int `json:"retries"`       // answers retried, by status
	Memory                 []procMemory   `json:"memory"`        // empty when unknown
	CopyBaseline           *baseline      `json:"copy_baseline"` // nil when not run
	// LeanBaseline is a COPY of the same records into minimal tables
	// (leanTables): the limit a user compares with. Nil when not run.
	LeanBaseline *baseline `json:"lean_baseline"`
	// CPU is how the machine's CPU time was spent while the load ran; nil
	// without /proc.
	CPU          *cpuSplit `json:"cpu,omitempty"`
	GormBaseline *baseline `json:"gorm_baseline"` // nil when not run
	// UpsertBaseline is the raw set-based upsert of the records an upsert
	// run's bulks name (--mode upsert); nil when not run.
	UpsertBaseline *baseline `json:"upsert_baseline"`
	// Seed is an upsert run's first import of the data, in create mode;
	// nil in other runs.
	Seed   *seedPhase `json:"seed,omitempty"`
	Ratios struct {
		BulkdVsCopy *float64 `json:"bulkd_vs_copy"`
		BulkdVsLean *float64 `json:"bulkd_vs_lean_copy"`
		// CopyVsLean is what bulkd's schema costs a plain COPY: the
		// same-schema COPY's rate over the lean one's.
		CopyVsLean       *float64 `json:"copy_vs_lean_copy"`
		BulkdVsGorm      *float64 `json:"bulkd_vs_gorm"`
		BulkdVsRawUpsert *float64 `json:"bulkd_vs_raw_upsert,omitempty"`
		// UpsertVsCreate is the upsert's rows/s over the seed's (create
		// mode, the same rows).
		UpsertVsCreate *float64 `json:"upsert_vs_create,omitempty"`
	} `json:"ratios"`
	Targets  []goal   `json:"targets"`
	Notes    []string `json:"notes"`
	Problems []string `json:"problems"`
	OK       bool     `json:"ok"`
}

// seedPhase is an upsert run's import of its data in create mode, before
// the upsert, timed apart.
type seedPhase struct {
	WallSeconds      float64 `json:"wall_seconds"`
	RowsPerSecond    float64 `json:"rows_per_second"`
	Records          int64   `json:"records"` // in bulkd's database after it (spawn mode)
	RecordsPerSecond float64 `json:"records_per_second"`
	RowsFailed       int     `json:"rows_failed"`
	ExpectedFailed   int     `json:"expected_failed"`
}

type reportConfig struct {
	Preset            string  `json:"preset"`
	Mode              string  `json:"mode"`
	Atomic            bool    `json:"atomic"`
	ValidateOnly      bool    `json:"validate_only"`
	Changed           float64 `json:"changed,omitempty"` // --mode upsert: share of rows changed
	Bulks             int     `json:"bulks"`
	Rows              int     `json:"rows"`
	Accounts          int     `json:"accounts"`
	Clients           int     `json:"clients"`
	MaxPending        int     `json:"max_pending"` // 0: clients submit as fast as the API accepts
	Workers           int     `json:"workers"`
	WorkerConcurrency int     `json:"worker_concurrency,omitempty"` // 0: bulkd's default
	DBMaxConns        int     `json:"db_max_conns,omitempty"`       // 0: bulkd's default
	Invalid           float64 `json:"invalid"`
	Duplicates        float64 `json:"duplicates"`
	Locations         int     `json:"locations,omitempty"`
	Seed              uint64  `json:"seed"`
	Poll              string  `json:"poll"`
	Prefix            string  `json:"prefix,omitempty"`
}

type machineInfo struct {
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpu_model"`
	MemoryMiB  int64  `json:"memory_mib"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	Postgres   string `json:"postgres"`
	LoadBefore string `json:"load_before"` // /proc/loadavg at start: how noisy the machine was
}

// dist summarizes durations in milliseconds.
type dist struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// newDist takes the nearest-rank percentiles of ds.
func newDist(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return math.Round(float64(d.Microseconds())/10) / 100 }
	at := func(p float64) float64 { return ms(s[max(0, int(math.Ceil(p*float64(len(s))))-1)]) }
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return dist{N: len(s), P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: ms(s[len(s)-1]), Mean: ms(sum / time.Duration(len(s)))}
}

// procMemory is one process's resident memory over the run.
type procMemory struct {
	Name    string  `json:"name"`
	PID     int     `json:"pid"`
	PeakMiB float64 `json:"peak_rss_mib"` // VmHWM at the end
	// RSS when 25, 50, 75 and 100% of the rows had completed.
	At25  float64 `json:"rss_mib_at_25"`
	At50  float64 `json:"rss_mib_at_50"`
	At75  float64 `json:"rss_mib_at_75"`
	At100 float64 `json:"rss_mib_at_100"`
	// Growing: the second half ended more than 20% (and 32 MiB) above where
	// it started, which a steady process does not do.
	Growing bool `json:"growing"`
}

// goal is one of the targets and whether this run met it.
type goal struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Met   *bool  `json:"met"` // null: not measured by this run
	Note  string `json:"note,omitempty"`
}

func newReport(c config) *report {
	r := &report{RunID: c.runID, Retries: map[string]int{}, Memory: []procMemory{}, Notes: []string{}, Problems: []string{}}
	r.Config = reportConfig{Preset: c.preset, Mode: c.mode, Atomic: c.atomic, ValidateOnly: c.validateOnly, Bulks: c.bulks, Rows: c.rows, Accounts: c.accounts, Clients: c.clients,
		MaxPending: c.maxPending, Workers: c.workers, WorkerConcurrency: c.workerConcurrency, DBMaxConns: c.dbMaxConns,
		Invalid: c.invalid, Duplicates: c.duplicates, Locations: c.locations, Seed: c.seed, Poll: c.pollEvery.String(), Prefix: c.prefix}
	if c.upsert() {
		r.Config.Changed = c.changed
	}
	r.Target.Mode = "url"
	if c.spawnMode {
		r.Target.Mode = "spawn"
	}
	return r
}

func (r *report) addLoad(c config, l *loadResult) {
	wall := l.end.Sub(l.start)
	r.WallSeconds = round(wall.Seconds(), 3)
	r.AcceptMS = newDist(l.latencies)
	r.Retries = l.retries
	var waits []time.Duration
	for _, st := range l.finished {
		r.Bulks.Submitted++
		r.Rows.Submitted += st.Count
		switch st.Status {
		case "completed":
			r.Bulks.Completed++
		default:
			r.Bulks.Failed++
		}
		r.Rows.Succeeded += st.RowsSucceeded
		r.Rows.Failed += st.RowsFailed
		if st.RolledBack {
			r.Rows.RolledBack += st.Count - st.RowsSucceeded - st.RowsFailed
		}
		if st.StartedAt != nil {
			waits = append(waits, st.StartedAt.Sub(st.CreatedAt))
		}
	}
	// Not completed_at - started_at: completed_at is set inside the import's
	// transaction, whose now() is when it began, before its writes.
	r.CompletionMS, r.QueueWaitMS = newDist(l.completion), newDist(waits)
	r.RowsPerSecond = round(rate(float64(r.Rows.Submitted), wall), 1)
	r.RowsPerSecondPerWorker = round(r.RowsPerSecond/float64(c.workers), 1)
	for _, st := range l.finished {
		if st.Status != "completed" {
			reason := ""
			if st.FailureReason != nil {
				reason = ": " + *st.FailureReason
			}
			r.Problems = append(r.Problems, fmt.Sprintf("bulk %s ended %s%s", st.BulkID, st.Status, reason))
			break // one is enough to look into; the count is in bulks.failed
		}
	}
}

// addSeed records an upsert run's seed and checks it as a create run.
func (r *report) addSeed(c config, l *loadResult) {
	wall := l.end.Sub(l.start)
	sp := &seedPhase{WallSeconds: round(wall.Seconds(), 3), RowsPerSecond: round(rate(float64(c.bulks*c.rows), wall), 1)}
	completed := 0
	for b, st := range l.finished {
		sp.RowsFailed += st.RowsFailed
		inv, dup := bulkgen.Counts(c.seedOptions(b))
		sp.ExpectedFailed += inv + dup
		if st.Status == "completed" {
			completed++
		}
	}
	if completed != c.bulks {
		r.Problems = append(r.Problems, fmt.Sprintf("seed: %d of %d bulks completed", completed, c.bulks))
	}
	if sp.RowsFailed != sp.ExpectedFailed {
		r.Problems = append(r.Problems, fmt.Sprintf("seed: %d rows failed, want the %d planted", sp.RowsFailed, sp.ExpectedFailed))
	}
	r.Seed = sp
}

func (r *report) addMemory(m *memSampler) {
	for i, p := range m.procs {
		pm := procMemory{Name: p.name, PID: p.pid, PeakMiB: mib(m.peaks[i])}
		at := func(frac float64) float64 {
			for _, s := range m.samples {
				if s.fraction >= frac && s.rss[i] > 0 {
					return mib(s.rss[i])
				}
			}
			return 0
		}
		pm.At25, pm.At50, pm.At75 = at(0.25), at(0.50), at(0.75)
		if n := len(m.samples); n > 0 {
			pm.At100 = mib(m.samples[n-1].rss[i])
		}
		pm.Growing = pm.At50 > 0 && pm.At100 > pm.At50*1.2 && pm.At100-pm.At50 > 32
		if pm.PeakMiB == 0 && pm.At100 == 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("memory of %s (pid %d) unreadable: not on this machine, or no /proc", p.name, p.pid))
			continue
		}
		r.Memory = append(r.Memory, pm)
	}
}

// finish checks the run against what was planted and planned, and works
// out the rates, ratios and targets.
func (r *report) finish(c config, exp planned) {
	r.Rows.PlantedInvalid, r.Rows.PlantedDuplicates = c.plantedFailures()
	r.Rows.ExpectedFailed = r.Rows.PlantedInvalid
	if c.duplicatesFail() {
		r.Rows.ExpectedFailed += r.Rows.PlantedDuplicates
	}
	r.Records.Expected = exp.records
	switch {
	case c.upsert() || c.validateOnly || r.Records.Written == nil:
		// An upsert's rate counts the records its bulks name (found,
		// updated or not); a dry run's the records it would write.
		r.Records.Source = "plan"
		r.Records.Total = exp.records.Total()
	default:
		r.Records.Total = r.Records.Written.Total()
	}
	r.RecordsPerSecond = round(rate(float64(r.Records.Total), time.Duration(r.WallSeconds*float64(time.Second))), 1)

	problem := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }
	if r.Bulks.Completed != c.bulks {
		problem("%d of %d bulks completed", r.Bulks.Completed, c.bulks)
	}
	if r.Rows.Submitted != c.bulks*c.rows || r.Rows.Succeeded+r.Rows.Failed+r.Rows.RolledBack != r.Rows.Submitted {
		problem("rows: %d submitted, %d succeeded + %d failed + %d rolled back; want %d in all",
			r.Rows.Submitted, r.Rows.Succeeded, r.Rows.Failed, r.Rows.RolledBack, c.bulks*c.rows)
	}
	if r.Rows.Failed != r.Rows.ExpectedFailed {
		problem("%d rows failed, want the %d planted (%d invalid, %d duplicates)", r.Rows.Failed, r.Rows.ExpectedFailed, r.Rows.PlantedInvalid, r.Rows.PlantedDuplicates)
	}
	if exp.failedRows != r.Rows.ExpectedFailed {
		problem("the generator planted %d failing rows but planning them fails %d: a bulkgen bug", r.Rows.ExpectedFailed, exp.failedRows)
	}
	w := r.Records.Written
	switch {
	case w == nil:
	case c.validateOnly:
		if w.Total() != 0 {
			problem("a dry run wrote %+v, want nothing", *w)
		}
	case c.upsert():
		if r.Seed != nil && w.Total() != r.Seed.Records {
			problem("bulkd holds %d records after the upsert, %d after the seed: want the same", w.Total(), r.Seed.Records)
		}
		if b := r.UpsertBaseline; b != nil && b.Counted != nil && *b.Counted != *w {
			problem("the raw upsert left %+v, bulkd %+v: want the same records", *b.Counted, *w)
		}
	case *w != exp.records:
		problem("bulkd wrote %+v, want %+v", *w, exp.records)
	}
	for _, b := range []*baseline{r.CopyBaseline, r.LeanBaseline, r.GormBaseline} {
		if b != nil && b.Counted != nil && b.Counted.Total() != b.Records {
			problem("%s baseline: the database holds %d records, want %d", b.Method, b.Counted.Total(), b.Records)
		}
	}

	if b := r.CopyBaseline; b != nil && b.RecordsPerSecond > 0 {
		v := round(r.RecordsPerSecond/b.RecordsPerSecond, 3)
		r.Ratios.BulkdVsCopy = &v
	}
	if b := r.LeanBaseline; b != nil && b.RecordsPerSecond > 0 {
		v := round(r.RecordsPerSecond/b.RecordsPerSecond, 3)
		r.Ratios.BulkdVsLean = &v
		if cb := r.CopyBaseline; cb != nil {
			v := round(cb.RecordsPerSecond/b.RecordsPerSecond, 3)
			r.Ratios.CopyVsLean = &v
		}
	}
	if b := r.GormBaseline; b != nil && b.RecordsPerSecond > 0 {
		v := round(r.RecordsPerSecond/b.RecordsPerSecond, 2)
		r.Ratios.BulkdVsGorm = &v
	}
	if b := r.UpsertBaseline; b != nil && b.RecordsPerSecond > 0 {
		v := round(r.RecordsPerSecond/b.RecordsPerSecond, 3)
		r.Ratios.BulkdVsRawUpsert = &v
	}
	if r.Seed != nil && r.Seed.RowsPerSecond > 0 {
		v := round(r.RowsPerSecond/r.Seed.RowsPerSecond, 3)
		r.Ratios.UpsertVsCreate = &v
	}
	r.Targets = r.goals(c)
}

func (r *report) goals(c config) []goal {
	yes := func(ok bool) *bool { return &ok }
	var gs []goal
	if c.upsert() {
		g := goal{Name: "an upsert updating every record ≥ 80% of the raw set-based upsert"}
		switch v := r.Ratios.BulkdVsRawUpsert; {
		case c.changed < 1:
			g.Note = "needs --changed 1"
		case v == nil:
			g.Note = "raw upsert baseline not run"
		default:
			g.Value, g.Met = fmt.Sprintf("%.0f%%", *v*100), yes(*v >= 0.8)
		}
		gs = append(gs, g)
		g = goal{Name: "an upsert of unchanged data faster than create mode of the same data"}
		switch v := r.Ratios.UpsertVsCreate; {
		case c.changed > 0:
			g.Note = "needs --changed 0"
		case v != nil:
			g.Value, g.Met = fmt.Sprintf("%.2f× the seed's rows/s", *v), yes(*v > 1)
		}
		return append(gs, g)
	}

	// The targets of create mode depend on the size: ≥ 0.90 of the
	// same-schema COPY on the default data, ≥ 0.80 on the million.
	million := c.bulks*c.rows >= 1_000_000
	want := 0.9
	if million {
		want = 0.8
	}
	g := goal{Name: fmt.Sprintf("end-to-end records/s ≥ %.0f%% of raw COPY (same schema)", want*100), Note: "COPY baseline not run"}
	if v := r.Ratios.BulkdVsCopy; v != nil {
		g = goal{Name: g.Name, Value: fmt.Sprintf("%.0f%%", *v*100), Met: yes(*v >= want)}
	}
	if c.atomic || c.validateOnly {
		g.Met, g.Note = nil, "create mode only"
	}
	gs = append(gs, g)

	g = goal{Name: "end-to-end records/s ≥ 75% of a plain COPY into lean tables", Note: "lean baseline not run"}
	if v := r.Ratios.BulkdVsLean; v != nil {
		g = goal{Name: g.Name, Value: fmt.Sprintf("%.0f%%", *v*100), Met: yes(*v >= 0.75)}
	}
	if c.atomic || c.validateOnly {
		g.Met, g.Note = nil, "create mode only"
	}
	gs = append(gs, g)

	g = goal{Name: "end-to-end records/s ≥ 10× one-by-one GORM", Note: "GORM baseline not run"}
	if v := r.Ratios.BulkdVsGorm; v != nil {
		g = goal{Name: g.Name, Value: fmt.Sprintf("%.1f×", *v), Met: yes(*v >= 10)}
	}
	gs = append(gs, g)

	g = goal{Name: "accept p99 ≤ 100 ms (1000 rows × 3 accounts, 8 clients, while importing)",
		Value: fmt.Sprintf("%.1f ms", r.AcceptMS.P99)}
	if c.rows == 1000 && c.accounts == 3 && c.clients >= 8 {
		g.Met = yes(r.AcceptMS.P99 <= 100)
	} else {
		g.Note = "needs --rows 1000 --accounts 3 --clients 8 (the default and million presets)"
	}
	gs = append(gs, g)

	g = goal{Name: "a lone 1000-row POST: p50 ≤ 15 ms", Value: fmt.Sprintf("%.1f ms", r.AcceptMS.P50)}
	if c.rows == 1000 && c.clients == 1 && c.maxPending == 1 {
		g.Met = yes(r.AcceptMS.P50 <= 15)
	} else {
		g.Note = "needs --rows 1000 --clients 1 --max-pending 1"
	}
	gs = append(gs, g)

	g = goal{Name: "memory flat: RSS at 25/50/75/100% of the rows within 10% of each other, every process"}
	var spread []string
	flat := len(r.Memory) > 0
	for _, m := range r.Memory {
		lo, hi := min(m.At25, m.At50, m.At75, m.At100), max(m.At25, m.At50, m.At75, m.At100)
		if lo > 0 {
			spread = append(spread, fmt.Sprintf("%s %.0f%%", m.Name, (hi/lo-1)*100))
			flat = flat && hi <= lo*1.1
		}
	}
	g.Value = strings.Join(spread, ", ")
	if len(r.Memory) > 0 {
		g.Met = yes(flat)
	}
	gs = append(gs, g)

	g = goal{Name: "1 000 000 customers without errors or a growing memory curve"}
	growing := []string{}
	for _, m := range r.Memory {
		if m.Growing {
			growing = append(growing, m.Name)
		}
	}
	switch {
	case c.bulks*c.rows < 1_000_000:
		g.Note = "needs 1 000 000 rows (--preset million)"
		g.Value = fmt.Sprintf("%s rows", thousands(int64(c.bulks*c.rows)))
	case len(r.Memory) == 0:
		g.Note = "memory unknown: give --api-pid and --worker-pids"
		g.Value = fmt.Sprintf("%d problems", len(r.Problems))
	default:
		g.Met = yes(len(r.Problems) == 0 && len(growing) == 0)
		g.Value = fmt.Sprintf("%d problems, growing: %s", len(r.Problems), orNone(growing))
	}
	return append(gs, g)
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeTable prints the report for people.
func (r *report) writeTable(out io.Writer) {
	c := r.Config
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	line := func(k, format string, args ...any) { fmt.Fprintf(w, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	fmt.Fprintf(w, "bulkbench %s: %s bulks × %d rows × %d debt accounts, %s, %s\n\n",
		c.Preset, thousands(int64(c.Bulks)), c.Rows, c.Accounts, plural(c.Clients, "client"), plural(c.Workers, "worker"))
	m := r.Machine
	line("machine", "%d CPUs (%s), %s MiB, Linux %s, %s, PostgreSQL %s", m.CPUs, m.CPUModel, thousands(m.MemoryMiB), m.Kernel, m.Go, m.Postgres)
	line("load average at start", "%s", m.LoadBefore)
	conc := "bulkd default"
	if c.WorkerConcurrency > 0 {
		conc = strconv.Itoa(c.WorkerConcurrency)
	}
	switch r.Target.Mode {
	case "spawn":
		line("target", "spawned bulkd api + %s (concurrency %s), database %s, Redis db %d", plural(c.Workers, "worker"), conc, r.Target.Database, r.Target.RedisDB)
	default:
		line("target", "running bulkd (url mode), %s", plural(c.Workers, "worker"))
	}
	line("data", "seed %d, %.1f%% invalid rows, %.1f%% duplicate rows", c.Seed, c.Invalid*100, c.Duplicates*100)
	switch {
	case c.Mode == "upsert":
		line("import", "mode=upsert over a create-mode seed of the same bulks, %.0f%% of the rows changed (name, current_balance)", c.Changed*100)
	case c.Atomic:
		line("import", "atomic=true; the invalid rows are in every other bulk, no duplicates")
	case c.ValidateOnly:
		line("import", "validate_only=true: a dry run")
	default:
		line("import", "mode=create")
	}
	if c.MaxPending > 0 {
		line("pacing", "clients submit while fewer than %d bulks are unfinished", c.MaxPending)
	} else {
		line("pacing", "none: clients submit as fast as the API accepts")
	}
	fmt.Fprintln(w)

	line("bulks", "%d submitted, %d completed, %d failed", r.Bulks.Submitted, r.Bulks.Completed, r.Bulks.Failed)
	line("rows", "%s submitted, %s succeeded, %s failed, %s rolled back (planted: %d invalid + %d duplicates)",
		thousands(int64(r.Rows.Submitted)), thousands(int64(r.Rows.Succeeded)), thousands(int64(r.Rows.Failed)),
		thousands(int64(r.Rows.RolledBack)), r.Rows.PlantedInvalid, r.Rows.PlantedDuplicates)
	rc := r.Records.Expected
	held := "unknown (url mode)"
	if w := r.Records.Written; w != nil {
		held = thousands(w.Total())
	}
	switch {
	case c.ValidateOnly:
		line("records", "%s a real run would write (from the plan); the database holds %s", thousands(r.Records.Total), held)
	case c.Mode == "upsert":
		line("records", "%s named by the upsert's bulks, found or created (from the plan; each bulk's locations count in it); the database holds %s",
			thousands(r.Records.Total), held)
	}
	if r.Records.Written != nil {
		rc = *r.Records.Written
	}
	line("records written", "%s (%s locations, %s customers, %s debt accounts; from the %s)", thousands(r.Records.Total),
		thousands(rc.Locations), thousands(rc.Customers), thousands(rc.DebtAccounts), r.Records.Source)
	line("wall time", "%.2f s, first submit to last completion", r.WallSeconds)
	line("end to end", "%s records/s, %s rows/s, %s rows/s per worker",
		thousands(int64(r.RecordsPerSecond)), thousands(int64(r.RowsPerSecond)), thousands(int64(r.RowsPerSecondPerWorker)))
	line(fmt.Sprintf("accept, %d-row POST", c.Rows), "p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms (%d retried after 429, %d after 503)",
		r.AcceptMS.P50, r.AcceptMS.P95, r.AcceptMS.P99, r.AcceptMS.Max, r.Retries["429"], r.Retries["503"])
	line("202 → completed, per bulk", "p50 %s, p95 %s, max %s (seen by polling every %s)",
		msOrS(r.CompletionMS.P50), msOrS(r.CompletionMS.P95), msOrS(r.CompletionMS.Max), c.Poll)
	line("of which queue wait", "p50 %s, p95 %s, max %s (created_at → started_at)",
		msOrS(r.QueueWaitMS.P50), msOrS(r.QueueWaitMS.P95), msOrS(r.QueueWaitMS.Max))
	if len(r.Memory) == 0 {
		line("memory", "unknown (url mode without --api-pid / --worker-pids)")
	}
	for _, pm := range r.Memory {
		growth := ""
		if pm.Growing {
			growth = "  GROWING"
		}
		line("memory, "+pm.Name, "peak %.0f MiB; RSS at 25/50/75/100%% of rows: %.0f / %.0f / %.0f / %.0f MiB%s",
			pm.PeakMiB, pm.At25, pm.At50, pm.At75, pm.At100, growth)
	}
	if b := r.CopyBaseline; b != nil {
		line("raw COPY baseline", "%s records in %.2f s: %s records/s (same records, one COPY per table per bulk)",
			thousands(b.Records), b.Seconds, thousands(int64(b.RecordsPerSecond)))
	}
	if b := r.LeanBaseline; b != nil {
		line("lean COPY baseline", "%s records in %.2f s: %s records/s (same records, minimal tables: keys and the account foreign keys only)",
			thousands(b.Records), b.Seconds, thousands(int64(b.RecordsPerSecond)))
	}
	if b := r.GormBaseline; b != nil {
		sample := ""
		if b.Sampled {
			sample = fmt.Sprintf("; a sample of %d bulks, the rate extrapolated", b.Bulks)
		}
		line("GORM one-by-one baseline", "%s records in %.2f s: %s records/s (one Create per record%s)",
			thousands(b.Records), b.Seconds, thousands(int64(b.RecordsPerSecond)), sample)
	}
	if sd := r.Seed; sd != nil {
		line("seed (create mode)", "%.2f s, %s rows/s, %s records/s (%d rows failed, %d planted)", sd.WallSeconds,
			thousands(int64(sd.RowsPerSecond)), thousands(int64(sd.RecordsPerSecond)), sd.RowsFailed, sd.ExpectedFailed)
	}
	if b := r.UpsertBaseline; b != nil {
		line("raw upsert baseline", "%s records in %.2f s: %s records/s (COPY to a temporary table + INSERT … ON CONFLICT DO UPDATE per table per bulk)",
			thousands(b.Records), b.Seconds, thousands(int64(b.RecordsPerSecond)))
	}
	if v := r.Ratios.BulkdVsRawUpsert; v != nil {
		line("bulkd / raw upsert", "%.2f", *v)
	}
	if v := r.Ratios.UpsertVsCreate; v != nil {
		line("upsert / create rows/s", "%.2f", *v)
	}
	if v := r.Ratios.BulkdVsCopy; v != nil {
		line("bulkd / COPY", "%.2f", *v)
	}
	if v := r.Ratios.BulkdVsLean; v != nil {
		line("bulkd / lean COPY", "%.2f", *v)
	}
	if v := r.Ratios.CopyVsLean; v != nil {
		line("same-schema COPY / lean COPY", "%.2f (what bulkd's schema costs a plain COPY)", *v)
	}
	if v := r.Ratios.BulkdVsGorm; v != nil {
		line("bulkd / GORM one-by-one", "%.1f×", *v)
	}
	if u := r.CPU; u != nil {
		line("CPU while importing", "%s", u.String())
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "targets")
	for _, g := range r.Targets {
		mark := "n/a"
		switch {
		case g.Met == nil:
		case *g.Met:
			mark = "met"
		default:
			mark = "MISSED"
		}
		val := g.Value
		if g.Note != "" {
			val = strings.TrimSpace(val + " (" + g.Note + ")")
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\n", mark, g.Name, val)
	}
	w.Flush()
	for _, n := range r.Notes {
		fmt.Fprintln(out, "note:", n)
	}
	if len(r.Problems) == 0 {
		fmt.Fprintln(out, "\nverified: every bulk completed, exactly the planted rows failed, and the records written are the ones planned"+r.verifiedToo()+".")
		return
	}
	fmt.Fprintln(out, "\nPROBLEMS:")
	for _, p := range r.Problems {
		fmt.Fprintln(out, "  -", p)
	}
}

// verifiedToo names the mode's own checks that passed.
func (r *report) verifiedToo() string {
	c := r.Config
	switch {
	case c.Mode == "upsert" && r.Records.Written != nil:
		return "; every row's result is as planted, and exactly the planted fields changed, versions counting each change"
	case c.Mode == "upsert":
		return "; every row's result is as planted"
	case c.Atomic:
		return "; bulks with an invalid row rolled back, the others wrote everything, and every row's result says so"
	case c.ValidateOnly && r.Records.Written != nil:
		return "; the dry run wrote nothing, and every row's result is as planted"
	case c.ValidateOnly:
		return "; every row's result is as planted"
	}
	return ""
}

// machine describes where the run ran, for comparing runs.
func machine(ctx context.Context, srv server, useDB bool) machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), CPUModel: "unknown", Go: runtime.Version(), Postgres: "unknown", Kernel: "unknown"}
	if v, ok := procstat.Field("/proc/cpuinfo", "model name"); ok {
		m.CPUModel = v
	}
	if v, ok := procstat.Field("/proc/meminfo", "MemTotal"); ok {
		kb, _ := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
		m.MemoryMiB = kb >> 10
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadBefore = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if useDB {
		m.Postgres = srv.version(ctx)
	}
	return m
}

func rate(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return n / d.Seconds()
}

func mib(b int64) float64 { return round(float64(b)/(1<<20), 1) }

func round(v float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}

// thousands formats n with thin separators: 1,234,567.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// msOrS formats milliseconds, as seconds from 1 s up.
func msOrS(ms float64) string {
	if ms >= 1000 {
		return fmt.Sprintf("%.2f s", ms/1000)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
