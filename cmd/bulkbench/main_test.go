package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulkd/bulkd/pkg/bulkgen"
	"github.com/bulkd/bulkd/pkg/scratch"
	"github.com/bulkd/bulkd/pkg/testenv"
)

var (
	buildOnce sync.Once
	bulkdBin  string
	buildErr  error
	buildDir  string
)

// bulkdBinary builds cmd/bulkd once for the tests of this package.
func bulkdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "bulkbench-test-")
		if buildErr != nil {
			return
		}
		bulkdBin = filepath.Join(buildDir, "bulkd")
		out, err := exec.Command("go", "build", "-o", bulkdBin, "github.com/bulkd/bulkd/cmd/bulkd").CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build bulkd: %v", buildErr)
	}
	return bulkdBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// runJSON runs the tool in-process with --json --quiet and decodes the report.
func runJSON(t *testing.T, getenv func(string) string, args ...string) report {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := run(ctx, append(args, "--json", "--quiet"), getenv, &out, &errOut)
	var rep report
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
		t.Fatalf("run: %v; report not JSON (%v):\n%s\nstderr:\n%s", err, jerr, out.String(), errOut.String())
	}
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	return rep
}

// planted counts the rows the generator makes fail, worked out apart from
// the tool.
func planted(o bulkgen.Options, bulks int) int {
	n := 0
	for b := range bulks {
		o.Bulk = b
		inv, dup := bulkgen.Counts(o)
		n += inv + dup
	}
	return n
}

// TestSmallRun spawns a real bulkd (api and a worker) on scratch databases,
// as `make bench` does, with a tiny load.
func TestSmallRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs bulkd")
	}
	t.Parallel()
	bin := bulkdBinary(t)
	redisURL := testenv.RedisURL(t) // a Redis database of this test's own
	getenv := func(k string) string {
		switch k {
		case "REDIS_URL":
			return redisURL
		case "DATABASE_URL":
			return os.Getenv("DATABASE_URL")
		}
		return ""
	}
	rep := runJSON(t, getenv, "--bulkd", bin, "--bulks", "3", "--rows", "50", "--accounts", "3",
		"--clients", "2", "--workers", "1", "--invalid", "0.04", "--duplicates", "0.04", "--gorm-sample", "100")

	wantFailed := planted(bulkgen.Options{Seed: 1, Rows: 50, Accounts: 3, Invalid: 0.04, Duplicates: 0.04}, 3)
	if wantFailed == 0 {
		t.Fatal("the test plants no failures")
	}
	if !rep.OK || len(rep.Problems) > 0 {
		t.Errorf("report not OK: %v", rep.Problems)
	}
	if rep.Bulks.Completed != 3 || rep.Bulks.Failed != 0 {
		t.Errorf("bulksvc: %+v, want 3 completed", rep.Bulks)
	}
	if rep.Rows.Failed != wantFailed || rep.Rows.ExpectedFailed != wantFailed || rep.Rows.Succeeded != 150-wantFailed {
		t.Errorf("rows: %+v, want %d failed", rep.Rows, wantFailed)
	}
	if rep.Records.Written == nil || rep.Records.Source != "database" {
		t.Fatalf("records not counted in bulkd's database: %+v", rep.Records)
	}
	if diff := cmp.Diff(rep.Records.Expected, *rep.Records.Written); diff != "" {
		t.Errorf("bulkd wrote other records than planned (-planned +written):\n%s", diff)
	}
	// 150 rows, each a customer and 3 accounts, less the failed ones.
	if rep.Records.Written.Customers < 140 || rep.Records.Written.DebtAccounts < 400 {
		t.Errorf("too few records: %+v", *rep.Records.Written)
	}
	if b := rep.CopyBaseline; b == nil || b.Records != rep.Records.Total || b.Counted == nil || *b.Counted != *rep.Records.Written {
		t.Errorf("COPY baseline %+v, want the %d records bulkd wrote", b, rep.Records.Total)
	}
	if b := rep.GormBaseline; b == nil || !b.Sampled || b.Records < 100 || b.Bulks != 1 || b.RecordsPerSecond <= 0 {
		t.Errorf("GORM baseline %+v, want a sample of 1 bulk", b)
	}
	if b := rep.LeanBaseline; b == nil || b.Records != rep.Records.Total || b.Counted == nil || *b.Counted != *rep.Records.Written {
		t.Errorf("lean COPY baseline %+v, want the %d records bulkd wrote", b, rep.Records.Total)
	}
	if rep.Ratios.BulkdVsCopy == nil || rep.Ratios.BulkdVsGorm == nil || rep.Ratios.BulkdVsLean == nil || rep.Ratios.CopyVsLean == nil {
		t.Errorf("ratios missing: %+v", rep.Ratios)
	}
	if u := rep.CPU; u == nil || u.Seconds <= 0 || u.Workers <= 0 || u.Postgres <= 0 {
		t.Errorf("CPU split %+v: want the workers' and Postgres's shares", u)
	}
	if rep.AcceptMS.N != 3 || rep.AcceptMS.P99 <= 0 || rep.WallSeconds <= 0 || rep.RecordsPerSecond <= 0 {
		t.Errorf("measures missing: accept %+v, wall %v s, %v records/s", rep.AcceptMS, rep.WallSeconds, rep.RecordsPerSecond)
	}
	if len(rep.Memory) != 2 || rep.Memory[0].PeakMiB <= 0 || rep.Memory[1].At100 <= 0 {
		t.Errorf("memory of api and worker: %+v", rep.Memory)
	}
	if len(rep.Targets) != 7 {
		t.Errorf("targets: %+v", rep.Targets)
	}

	// Nothing is left behind: the scratch databases are dropped.
	db := testenv.NewDatabase(t)
	if n := db.Count(t, `SELECT count(*) FROM pg_database WHERE datname LIKE $1`, "bulkbench_"+rep.RunID+"%"); n != 0 {
		t.Errorf("%d scratch databases left", n)
	}
}

// TestURLMode measures a bulkd that runs already, the way a user points the
// tool at a deployment: the records then come from the plan, and the
// memory from the process ids given.
func TestURLMode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs bulkd")
	}
	t.Parallel()
	bin := bulkdBinary(t)
	db := testenv.NewDatabase(t)
	addr, err := scratch.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	// A deployment with a tight rate limit: the tool must wait out the 429s.
	env := []string{"DATABASE_URL=" + db.URL, "REDIS_URL=" + testenv.RedisURL(t), "HTTP_ADDR=" + addr,
		"RATE_LIMIT=5", "RATE_LIMIT_BURST=2", "SMTP_HOST="}
	ctx := context.Background()
	org, err := runCommand(ctx, bin, env, "org", "create", "--name", "Acme", "--notify-email", "ops@example.com")
	if err != nil {
		t.Fatal(err)
	}
	key, err := runCommand(ctx, bin, env, "apikey", "create", "--org", org)
	if err != nil {
		t.Fatal(err)
	}
	p, err := startProcess(bin, t.TempDir(), "serve", env, "serve")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(30 * time.Second) })
	if err := waitReady(ctx, "http://"+addr, p); err != nil {
		t.Fatal(err)
	}
	pid := p.cmd.Process.Pid

	args := []string{"--url", "http://" + addr, "--bulks", "2", "--rows", "20", "--accounts", "2", "--clients", "2",
		"--invalid", "0.1", "--duplicates", "0.1", "--worker-pids", strconv.Itoa(pid), "--copy-baseline=false", "--gorm-baseline=false"}
	keyEnv := func(k string) string {
		if k == "BULKBENCH_KEY" {
			return key // from the environment, so that it stays out of ps
		}
		return ""
	}
	first := runJSON(t, keyEnv, args...)
	wantFailed := planted(bulkgen.Options{Seed: 1, Rows: 20, Accounts: 2, Invalid: 0.1, Duplicates: 0.1}, 2)
	if !first.OK || first.Rows.Failed != wantFailed || first.Records.Source != "plan" || first.Records.Written != nil {
		t.Errorf("report: ok %v, rows %+v, records %+v, problems %v", first.OK, first.Rows, first.Records, first.Problems)
	}
	if first.Retries["429"] == 0 {
		t.Errorf("no answer retried after 429 with RATE_LIMIT=5: %v", first.Retries)
	}
	if got := db.Count(t, `SELECT count(*) FROM debt_accounts`); int64(got) != first.Records.Expected.DebtAccounts {
		t.Errorf("bulkd wrote %d debt accounts, the plan says %d", got, first.Records.Expected.DebtAccounts)
	}
	if len(first.Memory) != 1 || first.Memory[0].PID != pid {
		t.Errorf("memory: %+v, want the worker's", first.Memory)
	}
	if first.CopyBaseline != nil || first.GormBaseline != nil || first.Ratios.BulkdVsCopy != nil {
		t.Errorf("baselines ran though turned off")
	}

	// A second run against the same bulkd gets fresh external ids, so
	// nothing is taken that the run did not plant.
	second := runJSON(t, keyEnv, args...)
	if !second.OK || second.Rows.Failed != wantFailed || second.Config.Prefix == first.Config.Prefix {
		t.Errorf("second run: ok %v, rows %+v, prefix %q after %q, problems %v", second.OK, second.Rows,
			second.Config.Prefix, first.Config.Prefix, second.Problems)
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	for _, tc := range []struct {
		name    string
		args    []string
		check   func(config) bool
		wantErr string
	}{
		{"default preset", nil, func(c config) bool {
			return c.bulks == 100 && c.rows == 1000 && c.accounts == 3 && c.clients == 8 && c.spawnMode && c.prefix == ""
		}, ""},
		{"small preset", []string{"--preset", "small"}, func(c config) bool { return c.bulks == 20 && c.clients == 4 }, ""},
		{"flags override the preset", []string{"--preset", "million", "--bulks", "7", "--clients", "3"}, func(c config) bool {
			return c.bulks == 7 && c.clients == 3 && c.rows == 1000
		}, ""},
		{"url mode gets a fresh prefix", []string{"--url", "http://h:8080/", "--key", "k"}, func(c config) bool {
			return !c.spawnMode && strings.HasPrefix(c.prefix, "bb") && c.url == "http://h:8080"
		}, ""},
		{"worker pids", []string{"--url", "http://h", "--key", "k", "--worker-pids", "12, 34"}, func(c config) bool {
			return cmp.Equal(c.workerPIDs, []int{12, 34})
		}, ""},
		{"unknown preset", []string{"--preset", "huge"}, nil, "--preset must be"},
		{"too many rows", []string{"--rows", "1001"}, nil, "--rows must be"},
		{"url without key", []string{"--url", "http://h"}, nil, "--url needs --key"},
		{"key without url", []string{"--key", "k"}, nil, "--key needs --url"},
		{"both modes", []string{"--url", "http://h", "--key", "k", "--bulkd", "bin/bulkd"}, nil, "give one of them"},
		{"bad share", []string{"--invalid", "1.5"}, nil, "--invalid must be"},
		{"create sends no options", nil, func(c config) bool { return c.mode == "create" && c.query() == "" }, ""},
		{"upsert", []string{"--mode", "upsert", "--changed", "0"}, func(c config) bool {
			return c.upsert() && c.changed == 0 && c.query() == "?mode=upsert&atomic=false&validate_only=false" && !c.duplicatesFail()
		}, ""},
		{"atomic", []string{"--atomic"}, func(c config) bool {
			return c.query() == "?mode=create&atomic=true&validate_only=false" && c.seedOptions(0).Invalid == 0 &&
				c.seedOptions(1).Invalid > 0 && c.seedOptions(1).Duplicates == 0
		}, ""},
		{"validate only", []string{"--validate-only"}, func(c config) bool {
			return c.query() == "?mode=create&atomic=false&validate_only=true" && !c.duplicatesFail()
		}, ""},
		{"bad mode", []string{"--mode", "merge"}, nil, "--mode must be create or upsert"},
		{"bad changed", []string{"--mode", "upsert", "--changed", "2"}, nil, "--changed must be"},
		{"modes together", []string{"--mode", "upsert", "--atomic"}, nil, "one at a time"},
		{"matrix", []string{"--preset", "matrix"}, func(c config) bool {
			steps := matrixSteps(c)
			return c.bulks == 100 && len(steps) == 5 && steps[0].cfg.leanBaseline && !steps[1].cfg.leanBaseline &&
				steps[1].cfg.upsert() && steps[1].cfg.changed == 1 && steps[2].cfg.changed == 0 &&
				steps[3].cfg.atomic && steps[3].cfg.invalid == 0 && steps[4].cfg.validateOnly
		}, ""},
		{"matrix runs the modes itself", []string{"--preset", "matrix", "--atomic"}, nil, "--preset matrix runs every mode itself"},
		{"orgs spread the bulks", []string{"--orgs", "4"}, func(c config) bool {
			steps := orgSteps(c)
			return c.orgOf(5) == 1 && c.orgOf(8) == 0 && len(steps) == 2 && steps[0].cfg.orgs == 1 && steps[1].cfg.orgs == 4 &&
				steps[0].cfg.duplicates == 0 && steps[1].cfg.duplicates == 0
		}, ""},
		{"orgs not with upsert", []string{"--orgs", "2", "--mode", "upsert"}, nil, "--orgs measures create"},
		{"orgs need spawn mode", []string{"--orgs", "2", "--url", "http://h", "--key", "k"}, nil, "--orgs needs spawn mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := parseFlags(tc.args, noEnv, &bytes.Buffer{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("config %+v", c)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"3", 3 * time.Second},
		{"0", 0},
		{"", time.Second},
		{"soon", time.Second},
		{"3600", time.Minute}, // capped: a benchmark does not sleep for an hour
		{now.Add(2 * time.Second).Format(http.TimeFormat), 2 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	} {
		if got := retryAfter(tc.header, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestNewDist(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	want := dist{N: 100, P50: 50, P95: 95, P99: 99, Max: 100, Mean: 50.5}
	if diff := cmp.Diff(want, newDist(ds)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := newDist(nil); got != (dist{}) {
		t.Errorf("empty: %+v", got)
	}
}

func TestProgressLine(t *testing.T) {
	t.Parallel()
	p := &progress{bulks: 10, rows: 10_000}
	now := time.Now()
	p.started.Store(now.Add(-10 * time.Second).UnixNano())
	p.accepted.Store(6)
	p.completed.Store(5)
	p.completedRows.Store(5000)
	got := progressLine(p, now)
	for _, want := range []string{" 50%", "accepted 6/10", "completed 5/10", "500 rows/s", "0:10", "ETA 0:10"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
}

func TestThousands(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4000: "-4,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
