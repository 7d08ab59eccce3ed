package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/bulkd/bulkd/pkg/procstat"
	"github.com/bulkd/bulkd/pkg/scratch"
)

// bench is one run of the tool.
type bench struct {
	cfg    config
	stderr io.Writer
	mu     sync.Mutex // stderr is written by the progress bar and by say
	bar    bool       // a progress line is on screen
}

// say prints a phase message on stderr, unless --quiet.
func (b *bench) say(format string, args ...any) {
	if b.cfg.quiet {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar {
		fmt.Fprint(b.stderr, "\r\x1b[K")
		b.bar = false
	}
	fmt.Fprintf(b.stderr, "bulkbench: "+format+"\n", args...)
}

// status redraws the progress line, on a terminal only.
func (b *bench) status(line string) {
	if b.cfg.quiet || !b.cfg.stderrIsTerminal {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprint(b.stderr, "\r\x1b[K"+line)
	b.bar = true
}

func (b *bench) clearStatus() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar {
		fmt.Fprint(b.stderr, "\r\x1b[K")
		b.bar = false
	}
}

// spawned is a bulkd this run started, and what it runs on.
type spawned struct {
	srv     server
	dbName  string
	dbURL   string
	lease   *scratch.RedisLease
	dir     string // logs, and the binary when built here
	api     *process
	workers []*process
	orgID   uuid.UUID
	key     string
	base    string
}

// spawn creates the scratch database and Redis database, an organization
// and a key, and starts the API and the workers. The returned spawned is
// non-nil whenever something needs cleaning up, even with an error.
func (b *bench) spawn(ctx context.Context, srv server) (*spawned, error) {
	c := b.cfg
	sp := &spawned{srv: srv}
	var err error
	if sp.dir, err = os.MkdirTemp("", "bulkbench-"); err != nil {
		return nil, err
	}
	bin := c.bulkd
	if bin == "" {
		b.say("building bulkd (pass --bulkd bin/bulkd to skip)")
		if bin, err = buildBulkd(ctx, sp.dir); err != nil {
			return sp, err
		}
	}
	sp.dbName = "bulkbench_" + c.runID
	if sp.dbURL, err = srv.Create(ctx, sp.dbName, ""); err != nil {
		return sp, err
	}
	if sp.lease, err = leaseRedis(ctx, c.redisURL, "bulkbench-"+c.runID); err != nil {
		return sp, err
	}
	addr, err := scratch.FreeAddr()
	if err != nil {
		return sp, err
	}
	sp.base = "http://" + addr
	env := []string{
		"DATABASE_URL=" + sp.dbURL, "REDIS_URL=" + sp.lease.URL, "HTTP_ADDR=" + addr, "BASE_URL=" + sp.base,
		"RATE_LIMIT=0",    // the clients are the load; a limit would measure itself
		"SMTP_HOST=",      // notifications go to the log, never to a real server
		"ADMIN_PASSWORD=", // no queue UI
	}
	if c.workerConcurrency > 0 {
		env = append(env, fmt.Sprintf("WORKER_CONCURRENCY=%d", c.workerConcurrency))
	}
	if c.dbMaxConns > 0 {
		env = append(env, fmt.Sprintf("DB_MAX_CONNS=%d", c.dbMaxConns))
	}
	b.say("scratch database %s, Redis database %d, logs in %s", sp.dbName, sp.lease.DB, sp.dir)
	org, err := runCommand(ctx, bin, env, "org", "create", "--name", "bulkbench", "--notify-email", "bench@example.com")
	if err != nil {
		return sp, err
	}
	if sp.orgID, err = uuid.Parse(org); err != nil {
		return sp, fmt.Errorf("bulkd org create printed %q, not an organization id", org)
	}
	if sp.key, err = runCommand(ctx, bin, env, "apikey", "create", "--org", org); err != nil {
		return sp, err
	}
	if sp.api, err = startProcess(bin, sp.dir, "api", env, "api"); err != nil {
		return sp, err
	}
	if err := waitReady(ctx, sp.base, sp.api); err != nil {
		return sp, err
	}
	for i := range c.workers {
		w, err := startProcess(bin, sp.dir, fmt.Sprintf("worker %d", i+1), env, "worker")
		if err != nil {
			return sp, err
		}
		sp.workers = append(sp.workers, w)
	}
	return sp, sp.waitWorkers(ctx)
}

// waitWorkers waits until every worker has registered with the queue, so
// that the first bulk does not wait for a worker to start.
func (sp *spawned) waitWorkers(ctx context.Context) error {
	opts, err := redis.ParseURL(sp.lease.URL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	deadline := time.Now().Add(time.Minute)
	for {
		if servers, err := insp.Servers(); err == nil && len(servers) >= len(sp.workers) {
			return nil
		}
		for _, w := range sp.workers {
			select {
			case <-w.exited:
				return fmt.Errorf("bulkd %s exited at start (%v):\n%s", w.name, w.err, w.logTail(20))
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the workers did not register with Redis within a minute:\n%s", sp.workers[0].logTail(20))
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// stop stops the processes, workers first so that none is left holding a
// task, within bulkd's shutdown timeout.
func (sp *spawned) stop() {
	var wg sync.WaitGroup
	for _, w := range sp.workers {
		wg.Go(func() { w.stop(30 * time.Second) })
	}
	wg.Wait()
	if sp.api != nil {
		sp.api.stop(30 * time.Second)
	}
}

// close stops everything and, unless keep, drops the database and the logs.
func (sp *spawned) close(b *bench, keep bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sp.stop()
	if sp.lease != nil {
		sp.lease.Close(ctx)
	}
	if keep {
		b.say("kept database %s and logs in %s", sp.dbName, sp.dir)
		return
	}
	if sp.dbURL != "" {
		if err := sp.srv.Drop(ctx, sp.dbName); err != nil {
			b.say("%v", err)
		}
	}
	os.RemoveAll(sp.dir)
}

// watched is a process whose memory is sampled.
type watched struct {
	name string
	pid  int
}

type memSample struct {
	fraction float64 // of the rows completed when taken
	rss      []int64 // per watched process; 0 when unreadable
}

// memSampler samples the resident memory of the watched processes every
// second, to show whether it grows with the work done.
type memSampler struct {
	procs   []watched
	mu      sync.Mutex
	samples []memSample
	peaks   []int64 // VmHWM, read last
}

func (m *memSampler) run(ctx context.Context, prog *progress) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		m.sample(prog.fraction())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *memSampler) sample(fraction float64) {
	s := memSample{fraction: fraction, rss: make([]int64, len(m.procs))}
	for i, p := range m.procs {
		s.rss[i], _, _ = procstat.Memory(p.pid)
	}
	m.mu.Lock()
	m.samples = append(m.samples, s)
	m.mu.Unlock()
}

// finish takes a last sample and the peaks, while the processes still run.
func (m *memSampler) finish(fraction float64) {
	m.sample(fraction)
	m.peaks = make([]int64, len(m.procs))
	for i, p := range m.procs {
		_, m.peaks[i], _ = procstat.Memory(p.pid)
	}
}

// showProgress draws the progress bar until ctx ends.
func (b *bench) showProgress(ctx context.Context, prog *progress) {
	if b.cfg.quiet || !b.cfg.stderrIsTerminal {
		return
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			b.clearStatus()
			return
		case <-t.C:
		}
		b.status(progressLine(prog, time.Now()))
	}
}

// progressLine is one line of progress: bulks accepted and completed, rows/s
// so far, elapsed time and the time left at that rate.
func progressLine(prog *progress, now time.Time) string {
	const width = 24
	frac := prog.fraction()
	filled := int(frac * width)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	if filled < width {
		bar = bar[:filled] + ">" + bar[filled+1:]
	}
	var elapsed time.Duration
	if s := prog.started.Load(); s != 0 {
		elapsed = now.Sub(time.Unix(0, s))
	}
	rowsPerSec := rate(float64(prog.completedRows.Load()), elapsed)
	eta := "--:--"
	if rowsPerSec > 0 {
		eta = clock(time.Duration(float64(prog.rows-prog.completedRows.Load()) / rowsPerSec * float64(time.Second)))
	}
	return fmt.Sprintf("[%s] %3.0f%%  accepted %d/%d  completed %d/%d  %s rows/s  %s  ETA %s",
		bar, frac*100, prog.accepted.Load(), prog.bulks, prog.completed.Load(), prog.bulks,
		thousands(int64(rowsPerSec)), clock(elapsed), eta)
}

// clock formats a duration as m:ss or h:mm:ss.
func clock(d time.Duration) string {
	s := int64(d.Round(time.Second).Seconds())
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// run measures, verifies and returns the report. Errors that prevent a
// measure (setup, a client error, a timeout) come back without a report.
func (b *bench) run(ctx context.Context) (*report, error) {
	c := b.cfg
	srv := server{scratch.Postgres{URL: c.databaseURL}}
	rep := newReport(c)
	useDB := c.spawnMode || c.databaseURLSet
	rep.Machine = machine(ctx, srv, useDB)

	var (
		a     *api
		sp    *spawned
		procs []watched
	)
	if c.spawnMode {
		var err error
		sp, err = b.spawn(ctx, srv)
		if sp != nil {
			defer sp.close(b, c.keep)
		}
		if err != nil {
			return nil, err
		}
		a = newAPI(sp.base, sp.key, c.clients)
		procs = append(procs, watched{"api", sp.api.cmd.Process.Pid})
		for _, w := range sp.workers {
			procs = append(procs, watched{w.name, w.cmd.Process.Pid})
		}
		rep.Target.Database = sp.dbName
		rep.Target.RedisDB = sp.lease.DB
	} else {
		a = newAPI(c.url, c.key, c.clients)
		if c.apiPID != 0 {
			procs = append(procs, watched{"api", c.apiPID})
		}
		for i, pid := range c.workerPIDs {
			procs = append(procs, watched{fmt.Sprintf("worker %d", i+1), pid})
		}
	}
	for _, p := range procs {
		rep.Target.PIDs = append(rep.Target.PIDs, p.pid)
	}

	if useDB {
		srv.checkpoint(ctx)
	}
	var before map[recordKey]recordState // an upsert's seed, as stored
	if c.upsert() {
		b.say("seed: submitting %d bulks of %d rows in create mode (timed apart)", c.bulks, c.rows)
		seedProg := &progress{bulks: int64(c.bulks), rows: int64(c.bulks) * int64(c.rows)}
		bg, stopBg := context.WithCancel(ctx)
		go b.showProgress(bg, seedProg)
		seed, err := runLoad(ctx, c, a, seedProg, phase{gen: c.seedOptions})
		stopBg()
		if err != nil {
			return nil, err
		}
		rep.addSeed(c, seed)
		if sp != nil {
			db, err := openDatabase(ctx, sp.dbURL)
			if err != nil {
				return nil, err
			}
			before, err = snapshot(ctx, db, sp.orgID)
			db.close()
			if err != nil {
				return nil, err
			}
			rep.Seed.Records = int64(len(before))
			rep.Seed.RecordsPerSecond = round(rate(float64(len(before)), time.Duration(rep.Seed.WallSeconds*float64(time.Second))), 1)
		}
		if useDB {
			srv.checkpoint(ctx)
		}
	}
	b.say("submitting %d bulks of %d rows (%d debt accounts each) from %d clients, %s", c.bulks, c.rows, c.accounts, c.clients, c.modeName())
	prog := &progress{bulks: int64(c.bulks), rows: int64(c.bulks) * int64(c.rows)}
	mem := &memSampler{procs: procs}
	bg, stopBg := context.WithCancel(ctx)
	var bgDone sync.WaitGroup
	bgDone.Go(func() { mem.run(bg, prog) })
	bgDone.Go(func() { b.showProgress(bg, prog) })
	load, err := runLoad(ctx, c, a, prog, phase{gen: c.genOptions, query: c.query()})
	stopBg()
	bgDone.Wait()
	if err != nil {
		return nil, err
	}
	mem.finish(prog.fraction())
	rep.addLoad(c, load)
	rep.addMemory(mem)
	b.say("all %d bulks finished in %.1f s", c.bulks, rep.WallSeconds)
	if c.query() != "" {
		b.say("checking every row's result")
		found, err := checkResults(ctx, c, a, load)
		if err != nil {
			return nil, err
		}
		rep.Problems = append(rep.Problems, found...)
	}

	if sp != nil {
		// Count what bulkd wrote, then stop it: its idle polling must not
		// share the machine with the baselines.
		db, err := openDatabase(ctx, sp.dbURL)
		if err != nil {
			return nil, err
		}
		written, err := db.countRecords(ctx, sp.orgID)
		if err == nil && before != nil {
			b.say("checking the upsert's changes, record by record")
			var found []string
			found, err = checkUpsert(ctx, c, db, sp.orgID, before)
			rep.Problems = append(rep.Problems, found...)
		}
		db.close()
		if err != nil {
			return nil, err
		}
		rep.Records.Written = &written
		rep.Records.Source = "database"
		sp.stop()
		if !c.keep {
			// Autovacuum of bulkd's fresh tables must not run beside the
			// baselines either.
			if err := srv.Drop(ctx, sp.dbName); err != nil {
				return nil, err
			}
		}
	}

	exp, err := b.baselines(ctx, srv, useDB, rep)
	if err != nil {
		return nil, err
	}
	rep.finish(c, exp)
	return rep, nil
}
