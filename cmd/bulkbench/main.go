// Command bulkbench measures a bulkd end to end, through its real HTTP API.
//
// It generates realistic, seeded, deterministic bulks (pkg/bulkgen), submits
// them from concurrent clients, waits for every import to complete, checks
// that exactly the planted invalid and duplicate rows failed, and reports
// accept latency, end-to-end records/s and rows/s, the processes' memory, and
// — on the same Postgres, with the same records — the rate of a raw COPY and
// of a one-row-at-a-time GORM import, with the ratios.
//
//	bulkbench --bulkd bin/bulkd [--preset small|default|million]   spawn a bulkd on scratch databases
//	bulkbench --url URL --key KEY                                   measure a running bulkd
//
// Spawn mode creates a scratch database on DATABASE_URL's server and uses a
// free Redis database of REDIS_URL's server (1–15, leased as the tests lease
// them), starts `bulkd api` and --workers `bulkd worker` processes, and drops
// everything at the end unless --keep.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bulkd/bulkd/pkg/bulkgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bulkbench:", err)
		os.Exit(1)
	}
}

// preset is a named size of run; flags override each value.
type preset struct {
	bulks, rows, accounts, clients, workers int
}

var presets = map[string]preset{
	// small finishes well under a minute: make bench runs it.
	"small": {bulks: 20, rows: 1000, accounts: 3, clients: 4, workers: 2},
	// default is the everyday measure: 100k customers, ~400k records.
	"default": {bulks: 100, rows: 1000, accounts: 3, clients: 8, workers: 2},
	// million is the soak: 1M customers, ~4M records, memory must stay flat.
	"million": {bulks: 1000, rows: 1000, accounts: 3, clients: 8, workers: 2},
	// matrix is the default data imported in every mode, one after another
	// (series.go).
	"matrix": {bulks: 100, rows: 1000, accounts: 3, clients: 8, workers: 2},
}

// config is everything a run needs, from flags and the environment.
type config struct {
	preset                      string
	bulks, rows, accounts       int
	clients                     int
	maxPending                  int // 0: no limit
	seed                        uint64
	invalid, duplicates         float64
	locations                   int
	prefix                      string
	bulkd                       string // spawn mode: the binary; "" builds one
	url, key                    string // url mode
	apiPID                      int
	workerPIDs                  []int
	workers                     int
	workerConcurrency           int
	dbMaxConns                  int
	databaseURL, redisURL       string
	databaseURLSet              bool // given explicitly: url mode then runs the baselines there
	copyBaseline, gormBaseline  bool
	leanBaseline                bool
	orgs                        int // organizations the bulks are spread over, bulk b to organization b % orgs
	gormSample                  int
	jsonOut, quiet, keep        bool
	timeout, stall, pollEvery   time.Duration
	runID                       string
	stderrIsTerminal, spawnMode bool

	// The import's options, sent as query parameters of every POST.
	mode         string // create or upsert
	atomic       bool
	validateOnly bool
	changed      float64 // upsert: share of rows whose name and balances change
}

// query is the query string of every submission: none in plain create mode,
// so that a bulkd that predates the options is measured as it was.
func (c config) query() string {
	if c.mode == "create" && !c.atomic && !c.validateOnly {
		return ""
	}
	return fmt.Sprintf("?mode=%s&atomic=%t&validate_only=%t", c.mode, c.atomic, c.validateOnly)
}

// modeName says how the run submits, for messages and the report.
func (c config) modeName() string {
	switch {
	case c.upsert():
		return fmt.Sprintf("mode=upsert (%.0f%% of the rows changed)", c.changed*100)
	case c.atomic:
		return "atomic=true"
	case c.validateOnly:
		return "validate_only=true"
	}
	return "mode=create"
}

// upsert tells whether the run measures upserts: it then seeds the data in
// create mode first.
func (c config) upsert() bool { return c.mode == "upsert" }

// genOptions are the generator's options for bulk b of the run: of its
// measured phase (an upsert's second version of the data).
func (c config) genOptions(b int) bulkgen.Options {
	o := c.seedOptions(b)
	if c.upsert() {
		o.Changed = c.changed
	}
	return o
}

// seedOptions are the generator's options for bulk b as first imported (an
// upsert run's seed, in create mode).
func (c config) seedOptions(b int) bulkgen.Options {
	o := bulkgen.Options{Seed: c.seed, Rows: c.rows, Accounts: c.accounts, Prefix: c.prefix,
		Locations: c.locations, Bulk: b, Invalid: c.invalid, Duplicates: c.duplicates}
	if c.atomic {
		// Every other bulk is clean, so that an atomic run has bulks that
		// write everything beside bulks that write nothing. No duplicates:
		// the row they repeat may be in a bulk that rolled back.
		o.Duplicates = 0
		if b%2 == 0 {
			o.Invalid = 0
		}
	}
	return o
}

// plantedFailures is how many rows of the run's measured phase the
// generator spoiled: invalid rows, and duplicates of rows of earlier bulks.
func (c config) plantedFailures() (invalid, duplicates int) {
	for b := range c.bulks {
		i, d := bulkgen.Counts(c.genOptions(b))
		invalid += i
		duplicates += d
	}
	return invalid, duplicates
}

// orgOf is the organization (0 to orgs-1) bulk b is submitted to.
func (c config) orgOf(b int) int { return b % max(c.orgs, 1) }

// duplicatesFail tells whether the duplicate rows fail in the measured
// phase: in create mode their accounts are taken; an upsert updates them,
// and a dry run has not stored the rows they repeat.
func (c config) duplicatesFail() bool { return !c.upsert() && !c.validateOnly }

const usage = `usage: bulkbench [flags]

  bulkbench --bulkd bin/bulkd [--preset small|default|million]
      spawn bulkd (api + --workers workers) on a scratch database of
      DATABASE_URL's server and a free Redis database of REDIS_URL's server
  bulkbench --url http://host:8080 --key KEY [--workers N] [--api-pid P --worker-pids P,P]
      measure a running bulkd (the key may come from BULKBENCH_KEY instead)

flags:
`

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("bulkbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.preset, "preset", "default", "run size: small (make bench), default, million; matrix: the default data in every mode, one table")
	bulks := fs.Int("bulks", 0, "bulks to submit (default: the preset's)")
	rows := fs.Int("rows", 0, "rows (customers) per bulk, at most 1000 (default: the preset's)")
	accounts := fs.Int("accounts", 0, "debt accounts per customer: 1 parent + N-1 children (default: the preset's)")
	clients := fs.Int("clients", 0, "concurrent submitting clients (default: the preset's)")
	workers := fs.Int("workers", 0, "worker processes to spawn, or running (url mode) for rows/s per worker (default: the preset's)")
	fs.IntVar(&c.maxPending, "max-pending", 0, "submit only while fewer bulks than this are unfinished (0: as fast as the API accepts)")
	fs.Uint64Var(&c.seed, "seed", 1, "generator seed: the same seed gives the same data")
	fs.Float64Var(&c.invalid, "invalid", 0.01, "share of rows with one realistic mistake (0-1)")
	fs.Float64Var(&c.duplicates, "duplicates", 0.005, "share of rows repeating a row of an earlier bulk, reported as taken (0-1)")
	fs.IntVar(&c.locations, "locations", 0, "distinct locations the customers share (0: rows/10)")
	fs.StringVar(&c.prefix, "prefix", "", "external id prefix (default: none when spawning, a random one with --url)")
	fs.StringVar(&c.bulkd, "bulkd", "", "spawn mode: the bulkd binary (default: go build ./cmd/bulkd into a temporary directory)")
	fs.StringVar(&c.url, "url", "", "url mode: the running bulkd's base URL")
	fs.StringVar(&c.key, "key", "", "url mode: an API key (or set BULKBENCH_KEY)")
	fs.IntVar(&c.apiPID, "api-pid", 0, "url mode: the API's process id, to report its memory")
	workerPIDs := fs.String("worker-pids", "", "url mode: the workers' process ids, comma-separated, to report their memory")
	fs.IntVar(&c.workerConcurrency, "worker-concurrency", 0, "spawn mode: WORKER_CONCURRENCY of each worker (0: bulkd's default)")
	fs.IntVar(&c.dbMaxConns, "db-max-conns", 0, "spawn mode: DB_MAX_CONNS of each process (0: bulkd's default)")
	fs.StringVar(&c.databaseURL, "database-url", "", "Postgres server for the scratch databases (default: $DATABASE_URL, else local)")
	fs.StringVar(&c.redisURL, "redis-url", "", "Redis server (default: $REDIS_URL, else local); database 0 means: lease a free one of 1-15")
	fs.BoolVar(&c.copyBaseline, "copy-baseline", true, "measure a raw pgx COPY of the same records")
	fs.BoolVar(&c.leanBaseline, "lean-baseline", true, "also measure a plain COPY of the same records into minimal tables (keys and the account foreign keys only)")
	fs.IntVar(&c.orgs, "orgs", 1, "spawn mode: spread the bulks over this many organizations; above 1 the run measures 1 organization, then N, the same rows (duplicates off)")
	fs.BoolVar(&c.gormBaseline, "gorm-baseline", true, "measure a one-row-at-a-time GORM import of a sample of the records")
	fs.IntVar(&c.gormSample, "gorm-sample", 20000, "records in the GORM baseline's sample (whole bulks, at least this many)")
	fs.BoolVar(&c.jsonOut, "json", false, "print the results as one JSON object instead of a table")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress bar or phase messages on stderr")
	fs.BoolVar(&c.keep, "keep", false, "spawn mode: keep the scratch databases and logs")
	fs.DurationVar(&c.timeout, "timeout", 2*time.Hour, "give up after this long")
	fs.DurationVar(&c.stall, "stall", 5*time.Minute, "give up when no bulk is accepted or completed for this long")
	fs.StringVar(&c.mode, "mode", "create", "import mode: create, or upsert (the data is first imported in create mode, then again as an upsert)")
	fs.BoolVar(&c.atomic, "atomic", false, "submit with atomic=true; every other bulk then carries the invalid rows (and none repeats a row)")
	fs.BoolVar(&c.validateOnly, "validate-only", false, "submit with validate_only=true: a dry run, which must write nothing")
	fs.Float64Var(&c.changed, "changed", 1, "--mode upsert: share of rows (0-1) whose customer name and debt accounts' current_balance change")
	fs.DurationVar(&c.pollEvery, "poll", 100*time.Millisecond, "how often to poll unfinished bulks")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	p, ok := presets[c.preset]
	if !ok {
		return c, fmt.Errorf("--preset must be small, default, million or matrix, not %q", c.preset)
	}
	pick := func(v, def int) int {
		if v != 0 {
			return v
		}
		return def
	}
	c.bulks, c.rows, c.accounts = pick(*bulks, p.bulks), pick(*rows, p.rows), pick(*accounts, p.accounts)
	c.clients, c.workers = pick(*clients, p.clients), pick(*workers, p.workers)
	if *accounts < 0 { // 0 means "the preset's"; -1 asks for customers without accounts
		c.accounts = 0
	}

	if c.key == "" {
		c.key = getenv("BULKBENCH_KEY")
	}
	c.databaseURLSet = c.databaseURL != "" || getenv("DATABASE_URL") != ""
	c.databaseURL = firstOf(c.databaseURL, getenv("DATABASE_URL"), "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	c.redisURL = firstOf(c.redisURL, getenv("REDIS_URL"), "redis://127.0.0.1:6379/0")
	for _, s := range strings.Split(*workerPIDs, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		pid, err := strconv.Atoi(s)
		if err != nil || pid <= 0 {
			return c, fmt.Errorf("--worker-pids must be process ids separated by commas, not %q", *workerPIDs)
		}
		c.workerPIDs = append(c.workerPIDs, pid)
	}
	c.spawnMode = c.url == ""
	c.runID = randomHex(4)
	if !c.spawnMode && c.prefix == "" {
		// A running bulkd keeps what earlier runs wrote: fresh external ids
		// keep this run's rows from being "taken".
		c.prefix = "bb" + c.runID + "-"
	}

	var errs []error
	check := func(ok bool, msg string) {
		if !ok {
			errs = append(errs, errors.New(msg))
		}
	}
	check(c.bulks > 0, "--bulks must be at least 1")
	check(c.rows > 0 && c.rows <= 1000, "--rows must be from 1 to 1000")
	check(c.accounts >= 0 && c.accounts <= 100, "--accounts must be from 0 to 100")
	check(c.clients > 0 && c.clients <= 256, "--clients must be from 1 to 256")
	check(c.workers > 0, "--workers must be at least 1")
	check(c.invalid >= 0 && c.invalid <= 1, "--invalid must be a share from 0 to 1")
	check(c.duplicates >= 0 && c.duplicates <= 1, "--duplicates must be a share from 0 to 1")
	check(c.maxPending >= 0, "--max-pending must be 0 (no limit) or more")
	check(c.mode == "create" || c.mode == "upsert", "--mode must be create or upsert")
	check(c.changed >= 0 && c.changed <= 1, "--changed must be a share from 0 to 1")
	check(!(c.upsert() && c.atomic) && !(c.upsert() && c.validateOnly) && !(c.atomic && c.validateOnly),
		"--mode upsert, --atomic and --validate-only are measured one at a time")
	check(c.orgs >= 1 && c.orgs <= 64, "--orgs must be from 1 to 64")
	check(c.orgs == 1 || (!c.upsert() && c.preset != "matrix"), "--orgs measures create, atomic or dry-run imports, not --mode upsert or --preset matrix")
	check(c.orgs == 1 || c.spawnMode, "--orgs needs spawn mode: it creates the organizations and their keys")
	check(c.preset != "matrix" || (c.mode == "create" && !c.atomic && !c.validateOnly), "--preset matrix runs every mode itself: no --mode, --atomic or --validate-only")
	check(c.gormSample > 0, "--gorm-sample must be at least 1")
	check(c.pollEvery > 0 && c.timeout > 0 && c.stall > 0, "--poll, --timeout and --stall must be positive")
	if c.spawnMode {
		check(c.key == "", "--key needs --url; spawn mode makes its own key")
		check(c.apiPID == 0 && len(c.workerPIDs) == 0, "--api-pid and --worker-pids need --url; spawn mode knows its processes")
	} else {
		check(strings.HasPrefix(c.url, "http://") || strings.HasPrefix(c.url, "https://"), "--url must start with http:// or https://")
		check(c.key != "", "--url needs --key (or BULKBENCH_KEY)")
		check(c.bulkd == "", "--bulkd spawns a bulkd; --url measures a running one: give one of them")
		check(c.workerConcurrency == 0 && c.dbMaxConns == 0, "--worker-concurrency and --db-max-conns only apply to a spawned bulkd")
	}
	c.url = strings.TrimRight(c.url, "/")
	return c, errors.Join(errs...)
}

func firstOf(values ...string) string {
	for _, v := range values {
		if strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails on Linux
	return hex.EncodeToString(b)
}

// run parses the flags, runs the benchmark and prints the report. It returns
// an error when the run could not be measured or its results are wrong
// (bulks not completed, row or record counts off); targets missed are
// reported, not errors.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if f, ok := stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			c.stderrIsTerminal = true
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	if c.preset == "matrix" || c.orgs > 1 {
		return runSeries(ctx, c, stderr, stdout)
	}
	b := &bench{cfg: c, stderr: stderr}
	rep, err := b.run(ctx)
	if rep == nil {
		return err
	}
	if err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	}
	rep.OK = len(rep.Problems) == 0
	if c.jsonOut {
		if err := rep.writeJSON(stdout); err != nil {
			return err
		}
	} else {
		rep.writeTable(stdout)
	}
	if !rep.OK {
		return fmt.Errorf("the run found %d problem(s): %s", len(rep.Problems), strings.Join(rep.Problems, "; "))
	}
	return nil
}
