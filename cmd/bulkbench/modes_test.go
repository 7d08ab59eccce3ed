package main

import (
	"bytes"
	"context"
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
