package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
)

// server is the Postgres server that scratch databases are made on, through
// an administrative connection to the database DATABASE_URL names.
type server struct {
	url string // DATABASE_URL, as given
}

// admin connects for administration: to the database the URL names, or to
// "postgres" when that one does not exist yet (a fresh machine's bulkd).
func (s server) admin(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, s.url)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name
		conn, err = pgx.Connect(ctx, withDatabase(s.url, "postgres"))
	}
	if err != nil {
		return nil, fmt.Errorf("connect to Postgres at DATABASE_URL (make services starts one): %w", err)
	}
	return conn, nil
}

// create makes an empty database and returns its URL.
func (s server) create(ctx context.Context, name string) (string, error) {
	conn, err := s.admin(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return withDatabase(s.url, name), nil
}

// drop removes a scratch database, closing whatever is still connected.
func (s server) drop(ctx context.Context, name string) error {
	conn, err := s.admin(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// version is the server's version, for the report.
func (s server) version(ctx context.Context) string {
	conn, err := s.admin(ctx)
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
	if conn, err := s.admin(ctx); err == nil {
		_, _ = conn.Exec(ctx, `CHECKPOINT`)
		conn.Close(ctx)
	}
}

// withDatabase returns the connection string u pointing at database name, in
// either of the forms pgx accepts.
func withDatabase(u, name string) string {
	if !strings.Contains(u, "://") { // keyword/value: a later dbname wins
		return u + " dbname=" + name
	}
	parsed, err := url.Parse(u)
	if err != nil {
		return u
	}
	parsed.Path = "/" + name
	return parsed.String()
}

// redisLease is a Redis logical database this run uses alone.
type redisLease struct {
	url     string
	db      int
	admin   *redis.Client // database 0, where leases live; nil when not leased
	key     string
	owner   string
	release context.CancelFunc
}

// leaseRedis picks the Redis database for the spawned bulkd. A URL naming a
// database other than 0 is used as it is, if empty. Otherwise one of 1–15 is
// leased with the keys pkg/testenv uses, so that a benchmark and tests running
// at once never share a queue, and flushed.
func leaseRedis(ctx context.Context, redisURL, owner string) (*redisLease, error) {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	if opts.DB != 0 {
		c := redis.NewClient(opts)
		defer c.Close()
		n, err := c.DBSize(ctx).Result()
		if err != nil {
			return nil, fmt.Errorf("connect to Redis at REDIS_URL: %w", err)
		}
		if n != 0 {
			return nil, fmt.Errorf("the Redis database %d at REDIS_URL holds %d keys: bulkbench needs an empty one of its own (name database 0 to lease a free one)", opts.DB, n)
		}
		return &redisLease{url: redisURL, db: opts.DB, release: func() {}}, nil
	}
	admin := redis.NewClient(opts)
	// Empty databases first: one holding keys may be a developer's queue
	// that only happens to be unleased.
	var order, busy []int
	for db := 1; db <= 15; db++ {
		leased := *opts
		leased.DB = db
		c := redis.NewClient(&leased)
		n, err := c.DBSize(ctx).Result()
		c.Close()
		if err != nil {
			admin.Close()
			return nil, fmt.Errorf("connect to Redis at REDIS_URL (make services starts one): %w", err)
		}
		if n == 0 {
			order = append(order, db)
		} else {
			busy = append(busy, db)
		}
	}
	for _, db := range append(order, busy...) {
		key := fmt.Sprintf("bulkd:testenv:lease:%d", db)
		ok, err := admin.SetNX(ctx, key, owner, 10*time.Minute).Result()
		if err != nil {
			admin.Close()
			return nil, fmt.Errorf("connect to Redis at REDIS_URL (make services starts one): %w", err)
		}
		if !ok {
			continue
		}
		leased := *opts
		leased.DB = db
		c := redis.NewClient(&leased)
		err = c.FlushDB(ctx).Err()
		c.Close()
		if err != nil {
			admin.Close()
			return nil, fmt.Errorf("flush Redis database %d: %w", db, err)
		}
		u, _ := url.Parse(redisURL)
		u.Path = "/" + strconv.Itoa(db)
		l := &redisLease{url: u.String(), db: db, admin: admin, key: key, owner: owner}
		// A million-customer run outlives the lease's 10 minutes: renew it.
		renewCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		go func() {
			t := time.NewTicker(time.Minute)
			defer t.Stop()
			for {
				select {
				case <-renewCtx.Done():
					return
				case <-t.C:
					admin.Eval(renewCtx, `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], 600000) end return 0`, []string{key}, owner)
				}
			}
		}()
		l.release = cancel
		return l, nil
	}
	admin.Close()
	return nil, errors.New("no free Redis database among 1-15 at REDIS_URL (tests or other benchmarks hold them all)")
}

// close empties the database and gives the lease back.
func (l *redisLease) close(ctx context.Context) {
	l.release()
	opts, err := redis.ParseURL(l.url)
	if err == nil {
		c := redis.NewClient(opts)
		c.FlushDB(ctx)
		c.Close()
	}
	if l.admin != nil {
		l.admin.Eval(ctx, `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`, []string{l.key}, l.owner)
		l.admin.Close()
	}
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

// freeAddr finds a local port nobody listens on.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
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

// memStatus reads a process's resident set size and its peak (high water
// mark) from /proc, in bytes; ok is false when the process is gone or the
// system has no /proc.
func memStatus(pid int) (rss, peak int64, ok bool) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, found := strings.Cut(sc.Text(), ":")
		if !found || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			continue
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	return rss, peak, rss > 0
}
