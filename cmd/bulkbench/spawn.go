package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/bulkd/bulkd/pkg/scratch"
)

// server is the Postgres server that the run's scratch databases are made
// on (DATABASE_URL's).
type server struct {
	scratch.Postgres
}

// version is the server's version, for the report.
func (s server) version(ctx context.Context) string {
	conn, err := s.Admin(ctx)
	if err != nil {
		return "unknown"
	}
	defer conn.Close(ctx)
	var v string
	if conn.QueryRow(ctx, `SHOW server_version`).Scan(&v) != nil {
		return "unknown"
	}
	return v
}

// checkpoint flushes dirty pages before a timed phase, so that one phase does
// not pay for another's writes. It needs a superuser or pg_checkpoint; without
// the right it does nothing.
func (s server) checkpoint(ctx context.Context) {
	if conn, err := s.Admin(ctx); err == nil {
		_, _ = conn.Exec(ctx, `CHECKPOINT`)
		conn.Close(ctx)
	}
}

// leaseRedis picks the Redis database for the spawned bulkd. A URL naming a
// database other than 0 is used as it is, if empty. Otherwise one of 1–15 is
// leased as the tests lease theirs, so that a benchmark and tests running
// at once never share a queue.
func leaseRedis(ctx context.Context, redisURL, owner string) (*scratch.RedisLease, error) {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	if opts.DB == 0 {
		return scratch.LeaseRedis(ctx, redisURL, owner)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	n, err := c.DBSize(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("connect to Redis at REDIS_URL: %w", err)
	}
	if n != 0 {
		return nil, fmt.Errorf("the Redis database %d at REDIS_URL holds %d keys: bulkbench needs an empty one of its own (name database 0 to lease a free one)", opts.DB, n)
	}
	return &scratch.RedisLease{URL: redisURL, DB: opts.DB}, nil
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
	orgIDs  []uuid.UUID // --orgs organizations, each with a key
	keys    []string
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
	for i := range max(c.orgs, 1) {
		name := "bulkbench"
		if i > 0 {
			name = fmt.Sprintf("bulkbench %d", i+1)
		}
		org, err := runCommand(ctx, bin, env, "org", "create", "--name", name, "--notify-email", "bench@example.com")
		if err != nil {
			return sp, err
		}
		id, err := uuid.Parse(org)
		if err != nil {
			return sp, fmt.Errorf("bulkd org create printed %q, not an organization id", org)
		}
		key, err := runCommand(ctx, bin, env, "apikey", "create", "--org", org)
		if err != nil {
			return sp, err
		}
		sp.orgIDs, sp.keys = append(sp.orgIDs, id), append(sp.keys, key)
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

// process is a running bulkd.
type process struct {
	name    string // "api", "worker 1"
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error // once exited is closed
}

// startProcess starts `bulkd args...` with env added to this process's
// environment, its output going to a log file in dir.
func startProcess(bin, dir, name string, env []string, args ...string) (*process, error) {
	logPath := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".log")
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...) // later entries win
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start bulkd %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.exited)
	}()
	return p, nil
}

// stop sends SIGTERM, as an orchestrator would, and kills the process if it
// has not shut down within timeout.
func (p *process) stop(timeout time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// logTail is the end of the process's log, to explain a failure.
func (p *process) logTail(lines int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// runCommand runs a one-off bulkd command and returns its standard output.
func runCommand(ctx context.Context, bin string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("bulkd %s: %w: %s", strings.Join(args[:min(2, len(args))], " "), err, strings.TrimSpace(errOut.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// buildBulkd builds cmd/bulkd of this module into dir.
func buildBulkd(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "bulkd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/bulkd/bulkd/cmd/bulkd")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/bulkd (run from the repository, or pass --bulkd PATH): %w\n%s", err, out)
	}
	return bin, nil
}

// waitReady waits until the API answers /readyz, or its process exits.
func waitReady(ctx context.Context, base string, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("bulkd %s exited at start (%v):\n%s", p.name, p.err, p.logTail(20))
		case <-ctx.Done():
			return fmt.Errorf("bulkd %s not ready after a minute:\n%s", p.name, p.logTail(20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
