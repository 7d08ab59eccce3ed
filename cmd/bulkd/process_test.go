package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkd/bulkd/pkg/testenv"
)

// runAsBulkd makes the test binary run main instead of the tests, so that
// the fault tests can start bulkd as processes of its own, to kill.
const runAsBulkd = "BULKD_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsBulkd) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// process is `bulkd <mode>` running as an operating-system process.
type process struct {
	t      testing.TB
	mode   string
	cmd    *exec.Cmd
	logs   *syncBuffer
	exited chan struct{}
	err    error // how it exited, once exited is closed
}

// spawn starts `bulkd <mode>` as a process with the service's environment
// plus overrides ("NAME=value"). It is killed, if still running, when the
// test ends.
func (s *service) spawn(mode string, overrides ...string) *process {
	s.t.Helper()
	cmd := exec.Command(os.Args[0], mode)
	cmd.Env = append(os.Environ(), runAsBulkd+"=1")
	for k, v := range s.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, overrides...) // the last value of a name wins
	p := &process{t: s.t, mode: mode, cmd: cmd, logs: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = io.Discard, p.logs
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start bulkd %s: %v", mode, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	s.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
		assertNoPersonalData(s.t, p.logs.String())
	})
	return p
}

// kill sends SIGKILL and waits for the process to die: no shutdown code runs.
func (p *process) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		p.t.Fatalf("kill bulkd %s: %v", p.mode, err)
	}
	<-p.exited
}

// terminate sends SIGTERM, as an orchestrator does, and returns how long the
// process took to exit and how it exited.
func (p *process) terminate(within time.Duration) (time.Duration, error) {
	p.t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM bulkd %s: %v", p.mode, err)
	}
	select {
	case <-p.exited:
		return time.Since(start), p.err
	case <-time.After(within):
		p.t.Fatalf("bulkd %s still running %v after SIGTERM\n%s", p.mode, within, p.logs)
		return 0, nil
	}
}

// tableLock holds a lock that makes every write to a table wait: an import
// that reaches the table stops there, in the middle of its transaction, for
// the test to crash or stop its worker.
type tableLock struct {
	tx pgx.Tx
}

func lockTable(t testing.TB, db testenv.Database, table string) *tableLock {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	tx, err := conn.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), `LOCK TABLE `+pgx.Identifier{table}.Sanitize()+` IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	return &tableLock{tx: tx}
}

func (l *tableLock) release() { _ = l.tx.Rollback(context.Background()) }

// waitForWriteBlockedOn waits until a session of db waits to write into table.
func waitForWriteBlockedOn(t testing.TB, db testenv.Database, table string) {
	t.Helper()
	if !writeBlockedOn(t, db, table, time.Minute) {
		t.Fatalf("no import reached %s within a minute", table)
	}
}

// writeBlockedOn tells whether a session of db comes to wait to write into
// table (COPY, DELETE, UPDATE) within the given time.
func writeBlockedOn(t testing.TB, db testenv.Database, table string, within time.Duration) bool {
	t.Helper()
	for start := time.Now(); time.Since(start) < within; time.Sleep(20 * time.Millisecond) {
		n := db.Count(t, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ~* ('^\s*(copy|delete from|update)\s+"?' || $1 || '\M')`, table)
		if n > 0 {
			return true
		}
	}
	return false
}
