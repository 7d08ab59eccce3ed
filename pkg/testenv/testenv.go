// Package testenv gives each test its own real Postgres database and its own
// Redis key space, so tests run in parallel, in several packages at once,
// without seeing each other's data.
//
// DATABASE_URL names a server and a database to connect to for
// administration (default postgres://postgres@127.0.0.1:5432/postgres);
// REDIS_URL names the Redis server (default redis://127.0.0.1:6379/0).
package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/bulkd/bulkd/pkg/scratch"
	"github.com/bulkd/bulkd/pkg/store"
)

func adminURL() string {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

func redisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// template creates, once per schema version, a migrated database that test
// databases are cloned from: cloning is much faster than migrating.
func template(ctx context.Context) (string, error) {
	templateOnce.Do(func() {
		h := sha256.New()
		_ = fs.WalkDir(store.Migrations, ".", func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, _ := fs.ReadFile(store.Migrations, path)
				h.Write([]byte(path))
				h.Write(b)
			}
			return nil
		})
		templateName = "bulkd_template_" + hex.EncodeToString(h.Sum(nil))[:16]
		templateErr = createTemplate(ctx, templateName)
	})
	return templateName, templateErr
}

func createTemplate(ctx context.Context, name string) error {
	pg := scratch.Postgres{URL: adminURL()}
	conn, err := pg.Admin(ctx)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	defer conn.Close(ctx)
	// Test binaries of several packages start at once: one creates the template.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(7240999)`); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(7240999)`) //nolint:errcheck
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)`, name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	if err := pg.Drop(ctx, name); err != nil {
		return err
	}
	url, err := pg.Create(ctx, name, "")
	if err != nil {
		return err
	}
	s, err := store.Open(ctx, url, 2)
	if err != nil {
		return err
	}
	err = s.Migrate(ctx)
	s.Close()
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, `ALTER DATABASE `+name+` WITH is_template true`)
	return err
}

// DatabaseURL creates an empty, migrated database for this test, dropped when
// the test ends, and returns its URL.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	tmpl, err := template(ctx)
	if err != nil {
		t.Fatalf("testenv: template database: %v", err)
	}
	return createDatabase(t, tmpl)
}

// EmptyDatabaseURL creates an empty database for this test, with no
// migration applied (for the tests of migrations), dropped when the test
// ends, and returns its URL.
func EmptyDatabaseURL(t testing.TB) string {
	t.Helper()
	return createDatabase(t, "")
}

// createDatabase creates a database for this test as a copy of tmpl (""
// for an empty one), dropped when the test ends, and returns its URL.
func createDatabase(t testing.TB, tmpl string) string {
	t.Helper()
	ctx := context.Background()
	pg := scratch.Postgres{URL: adminURL()}
	name := "bulkd_test_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:20]
	var (
		url string
		err error
	)
	// Cloning fails while another session is connected to the template: retry briefly.
	for attempt := 0; ; attempt++ {
		url, err = pg.Create(ctx, name, tmpl)
		if err == nil || attempt == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := pg.Drop(ctx, name); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return url
}

// RedisURL leases one Redis logical database (1..15) to this test, as
// bulkbench leases one (pkg/scratch), waiting up to 2 minutes for one to be
// free, and returns its URL; the lease ends with the test. Leases live in
// database 0 and expire on their own if a test binary dies, so a crashed
// run never blocks the next.
func RedisURL(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		l, err := scratch.LeaseRedis(ctx, redisURL(), uuid.NewString())
		if err == nil {
			t.Cleanup(func() { l.Close(ctx) })
			return l.URL
		}
		if !errors.Is(err, scratch.ErrNoFreeRedis) {
			t.Fatalf("testenv: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: no free Redis database after 2 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
