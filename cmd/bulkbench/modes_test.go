package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/bulkgen"
	"github.com/bulkd/bulkd/pkg/testenv"
)

// spawnEnv is the environment of a spawn-mode run with a Redis database of
// the test's own.
func spawnEnv(t *testing.T) func(string) string {
	redisURL := testenv.RedisURL(t)
	return func(k string) string {
		switch k {
		case "REDIS_URL":
			return redisURL
		case "DATABASE_URL":
			return os.Getenv("DATABASE_URL")
		}
		return ""
	}
}

// TestModeRuns runs the tool in each mode against a real bulkd, with
// planted invalid and duplicate rows: each run's own checks (results of
// every row, the upsert's changes record by record, a dry run's empty
// tables, atomic bulks all or nothing) must pass, and the report must carry
// the mode's figures.
func TestModeRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs bulkd")
	}
	t.Parallel()
	bin := bulkdBinary(t)
	base := []string{"--bulkd", bin, "--bulks", "3", "--rows", "40", "--accounts", "3", "--clients", "2", "--workers", "1",
		"--invalid", "0.05", "--duplicates", "0.1", "--gorm-sample", "100"}
	for _, tc := range []struct {
		name  string
		args  []string
		check func(t *testing.T, rep report)
	}{
		{"upsert", []string{"--mode", "upsert", "--changed", "0.5"}, func(t *testing.T, rep report) {
			if rep.Seed == nil || rep.Seed.Records == 0 || rep.Seed.RowsFailed != rep.Seed.ExpectedFailed {
				t.Errorf("seed: %+v", rep.Seed)
			}
			if rep.UpsertBaseline == nil || rep.Ratios.BulkdVsRawUpsert == nil || rep.Ratios.UpsertVsCreate == nil {
				t.Errorf("raw upsert baseline %+v, ratios %+v", rep.UpsertBaseline, rep.Ratios)
			}
			if rep.CopyBaseline != nil || rep.GormBaseline != nil {
				t.Error("an upsert run ran the create baselines")
			}
			// Duplicates update their records: only the invalid rows fail.
			if rep.Rows.Failed != rep.Rows.PlantedInvalid || rep.Rows.PlantedDuplicates == 0 {
				t.Errorf("rows %+v: want the invalid ones failed, and duplicates planted", rep.Rows)
			}
			if w := rep.Records.Written; w == nil || w.Total() != rep.Seed.Records {
				t.Errorf("records %+v after an upsert of a seed of %d", rep.Records, rep.Seed.Records)
			}
		}},
		{"upsert unchanged", []string{"--mode", "upsert", "--changed", "0"}, func(t *testing.T, rep report) {
			if len(rep.Targets) != 2 || rep.Targets[1].Met == nil {
				t.Errorf("targets %+v: want the unchanged-vs-create one measured", rep.Targets)
			}
		}},
		{"validate only", []string{"--validate-only"}, func(t *testing.T, rep report) {
			if w := rep.Records.Written; w == nil || w.Total() != 0 || rep.Records.Total == 0 {
				t.Errorf("records %+v: want none written, some planned", rep.Records)
			}
			if rep.Rows.Failed != rep.Rows.PlantedInvalid {
				t.Errorf("rows %+v: a dry run fails the invalid rows only", rep.Rows)
			}
		}},
		{"atomic", []string{"--atomic"}, func(t *testing.T, rep report) {
			// Bulk 1 carries the invalid rows; bulks 0 and 2 are clean.
			if rep.Rows.Succeeded != 80 || rep.Rows.RolledBack+rep.Rows.Failed != 40 || rep.Rows.Failed == 0 {
				t.Errorf("rows %+v: want 2 clean bulks written, 1 rolled back", rep.Rows)
			}
			if rep.CopyBaseline == nil || rep.CopyBaseline.Records != rep.Records.Total {
				t.Errorf("COPY baseline %+v, want the %d records of the clean bulks", rep.CopyBaseline, rep.Records.Total)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := runJSON(t, spawnEnv(t), append(append([]string{}, base...), tc.args...)...)
			if !rep.OK || len(rep.Problems) > 0 {
				t.Fatalf("report not OK: %v", rep.Problems)
			}
			tc.check(t, rep)
		})
	}
}

// TestCheckUpsert: the upsert check finds what a wrong upsert does. A raw
// upsert rewrites every record, so the records whose values did not change
// count a version they must not; a field that was not planted, changed
// behind the import's back, is found too; a correct run passes.
func TestCheckUpsert(t *testing.T) {
	t.Parallel()
	db := testenv.NewDatabase(t)
	ctx := context.Background()
	org, err := db.Store.CreateOrganization(ctx, "Acme", "ops@acme.example")
	if err != nil {
		t.Fatal(err)
	}
	bdb := testDatabase(t, db.URL)
	c, err := parseFlags([]string{"--bulks", "1", "--rows", "30", "--mode", "upsert", "--changed", "0.5", "--invalid", "0", "--duplicates", "0"},
		func(string) string { return "" }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	write := func(o bulkgen.Options, upsert bool) {
		t.Helper()
		raw, err := bulk.DecodeSubmission(bytes.NewReader(bulkgen.Body(o)))
		if err != nil {
			t.Fatal(err)
		}
		today := time.Now().UTC().Truncate(24 * time.Hour)
		p := bulk.NewPlan(uuid.New(), bulk.ParseRows(raw, bulk.Options{Today: today}), bulk.Existing{}, bulk.Options{Today: today})
		if err := bdb.createBaselineBulk(ctx, org.ID, p.BulkID, len(raw)); err != nil {
			t.Fatal(err)
		}
		w := bdb.copyPlan
		if upsert {
			w = bdb.upsertPlan
		}
		if err := w(ctx, org.ID, p); err != nil {
			t.Fatal(err)
		}
	}
	write(c.seedOptions(0), false)
	before, err := snapshot(ctx, bdb, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	if found, err := checkUpsert(ctx, c, bdb, org.ID, before); err != nil || len(found) != 1 || !strings.Contains(found[0], "version 1, want") {
		t.Errorf("nothing upserted yet: %v, %v; want the planted changes missing", found, err)
	}

	write(c.genOptions(0), true)
	found, err := checkUpsert(ctx, c, bdb, org.ID, before)
	if err != nil || len(found) != 1 || !strings.Contains(found[0], "version 2, want") {
		t.Errorf("after a raw upsert: %v, %v; want versions counted on unchanged records", found, err)
	}

	// What a correct upsert leaves: the raw upsert's values, with versions
	// back on the unchanged records.
	custs, accts := bulkgen.ChangedRecords(c.genOptions(0))
	if _, err := db.Conn.Exec(ctx, `UPDATE customers SET version = 1 WHERE NOT external_id = ANY($1)`, custs); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Conn.Exec(ctx, `UPDATE debt_accounts SET version = 1 WHERE NOT external_id = ANY($1)`, accts); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Conn.Exec(ctx, `UPDATE locations SET version = 1`); err != nil {
		t.Fatal(err)
	}
	if found, err := checkUpsert(ctx, c, bdb, org.ID, before); err != nil || len(found) != 0 {
		t.Errorf("a correct upsert: %v, %v; want no problem", found, err)
	}

	if _, err := db.Conn.Exec(ctx, `UPDATE customers SET email = 'x@example.com' WHERE external_id = $1`, custs[0]); err != nil {
		t.Fatal(err)
	}
	if found, err := checkUpsert(ctx, c, bdb, org.ID, before); err != nil || len(found) != 1 || !strings.Contains(found[0], "not planted") {
		t.Errorf("an email changed: %v, %v; want it found", found, err)
	}
}

// runSeriesJSON runs a series (--preset matrix, --orgs N) in-process with
// --json --quiet and decodes it.
func runSeriesJSON(t *testing.T, getenv func(string) string, args ...string) seriesReport {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	err := run(ctx, append(args, "--json", "--quiet"), getenv, &out, &errOut)
	var sr seriesReport
	if jerr := json.Unmarshal(out.Bytes(), &sr); jerr != nil {
		t.Fatalf("run: %v; series not JSON (%v):\n%s\nstderr:\n%s", err, jerr, out.String(), errOut.String())
	}
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	return sr
}

// TestSeries: --preset matrix imports the same data in every mode, each
// run checked as on its own, with the ratios the targets need; --orgs 2
// imports the same rows into one organization, then spread over two, each
// organization getting its bulks' records.
func TestSeries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs bulkd")
	}
	t.Parallel()
	bin := bulkdBinary(t)
	base := []string{"--bulkd", bin, "--bulks", "4", "--rows", "30", "--accounts", "3", "--clients", "2", "--workers", "1"}
	t.Run("matrix", func(t *testing.T) {
		sr := runSeriesJSON(t, spawnEnv(t), append([]string{"--preset", "matrix"}, base...)...)
		var names []string
		for _, s := range sr.Steps {
			names = append(names, s.Name)
			if !s.Report.OK {
				t.Errorf("%s: %v", s.Name, s.Report.Problems)
			}
		}
		if want := "create,upsert-changed,upsert-unchanged,atomic (clean bulks),validate-only"; strings.Join(names, ",") != want {
			t.Fatalf("steps %v, want %s", names, want)
		}
		if at := sr.Steps[3].Report; at.Rows.RolledBack != 0 || at.Rows.Succeeded != 120 {
			t.Errorf("atomic clean bulks: rows %+v, want all 120 written", at.Rows)
		}
		if len(sr.Targets) != 5 {
			t.Errorf("targets %+v", sr.Targets)
		}
		for _, g := range sr.Targets {
			if g.Met == nil {
				t.Errorf("target %q not measured", g.Name)
			}
		}
	})
	t.Run("orgs", func(t *testing.T) {
		sr := runSeriesJSON(t, spawnEnv(t), append([]string{"--orgs", "2"}, base...)...)
		if len(sr.Steps) != 2 || len(sr.Ratios) == 0 {
			t.Fatalf("steps %d, ratios %+v", len(sr.Steps), sr.Ratios)
		}
		one, two := sr.Steps[0].Report, sr.Steps[1].Report
		if one.Rows.Succeeded != two.Rows.Succeeded || two.Rows.Failed != two.Rows.PlantedInvalid || two.Rows.PlantedDuplicates != 0 {
			t.Errorf("rows: 1 organization %+v, 2 %+v: want the same rows, no duplicates", one.Rows, two.Rows)
		}
		// Each organization has its own locations; customers and accounts
		// are the same records either way.
		w1, w2 := one.Records.Written, two.Records.Written
		if w1 == nil || w2 == nil || w1.Customers != w2.Customers || w1.DebtAccounts != w2.DebtAccounts || w2.Locations <= w1.Locations {
			t.Errorf("records: 1 organization %+v, 2 %+v", w1, w2)
		}
		if b := two.CopyBaseline; b == nil || b.Counted == nil || *b.Counted != *w2 {
			t.Errorf("COPY baseline of 2 organizations %+v, want bulkd's %+v", b, w2)
		}
	})
}
