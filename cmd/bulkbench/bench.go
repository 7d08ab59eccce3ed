package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

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

// run measures, verifies and returns the report. Errors that prevent a
// measure (setup, a client error, a timeout) come back without a report.
func (b *bench) run(ctx context.Context) (*report, error) {
	c := b.cfg
	srv := server{scratch.Postgres{URL: c.databaseURL}}
	rep := newReport(c)
	useDB := c.spawnMode || c.databaseURLSet
	rep.Machine = machine(ctx, srv, useDB)

	var (
		apis  []*api // one per organization: bulk b is submitted with apis[c.orgOf(b)]
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
		a := newAPI(sp.base, sp.keys[0], c.clients)
		for _, k := range sp.keys {
			apis = append(apis, a.withKey(k))
		}
		procs = append(procs, watched{"api", sp.api.cmd.Process.Pid})
		for _, w := range sp.workers {
			procs = append(procs, watched{w.name, w.cmd.Process.Pid})
		}
		rep.Target.Database = sp.dbName
		rep.Target.RedisDB = sp.lease.DB
	} else {
		apis = []*api{newAPI(c.url, c.key, c.clients)}
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
		seed, err := runLoad(ctx, c, apis, seedProg, phase{gen: c.seedOptions})
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
			before, err = snapshot(ctx, db, sp.orgIDs[0])
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
	cpu0, cpuOK := readCPU(procs)
	load, err := runLoad(ctx, c, apis, prog, phase{gen: c.genOptions, query: c.query()})
	stopBg()
	bgDone.Wait()
	if err != nil {
		return nil, err
	}
	if cpu1, ok := readCPU(procs); ok && cpuOK {
		rep.CPU = cpu0.split(cpu1)
	}
	mem.finish(prog.fraction())
	rep.addLoad(c, load)
	rep.addMemory(mem)
	b.say("all %d bulks finished in %.1f s", c.bulks, rep.WallSeconds)
	if c.query() != "" {
		b.say("checking every row's result")
		found, err := checkResults(ctx, c, apis, load)
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
		written, err := db.countRecords(ctx, sp.orgIDs...)
		if err == nil && before != nil {
			b.say("checking the upsert's changes, record by record")
			var found []string
			found, err = checkUpsert(ctx, c, db, sp.orgIDs[0], before)
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
