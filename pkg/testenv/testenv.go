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
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

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

// withDatabase returns u pointing at database name.
func withDatabase(u, name string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		panic(fmt.Sprintf("testenv: DATABASE_URL: %v", err))
	}
	parsed.Path = "/" + name
	return parsed.String()
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
	conn, err := pgx.Connect(ctx, adminURL())
	if err != nil {
		return fmt.Errorf("testenv: connect to Postgres at DATABASE_URL (run `make test`, which starts it): %w", err)
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
	if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		return err
	}
	s, err := store.Open(ctx, withDatabase(adminURL(), name), 2)
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
	name := "bulkd_test_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:20]
	conn, err := pgx.Connect(ctx, adminURL())
	if err != nil {
		t.Fatalf("testenv: connect: %v", err)
	}
	defer conn.Close(ctx)
	// Cloning fails while another session is connected to the template: retry briefly.
	for attempt := 0; ; attempt++ {
		_, err = conn.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE `+tmpl)
		if err == nil || attempt == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, adminURL())
		if err != nil {
			t.Errorf("testenv: drop database: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("testenv: drop database: %v", err)
		}
	})
	return withDatabase(adminURL(), name)
}

// redisDatabases are the Redis logical databases tests take turns on; 0 is
// left to whatever else uses the server and holds the leases.
const redisDatabases = 15

// RedisURL leases one Redis logical database (1..15) to this test, empties it,
// and returns its URL. Leases live in database 0 and expire on their own if a
// test binary dies, so a crashed run never blocks the next.
func RedisURL(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	opts, err := redis.ParseURL(redisURL())
	if err != nil {
		t.Fatalf("testenv: REDIS_URL: %v", err)
	}
	opts.DB = 0
	admin := redis.NewClient(opts)
	defer admin.Close()
	owner := uuid.NewString()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for db := 1; db <= redisDatabases; db++ {
			key := fmt.Sprintf("bulkd:testenv:lease:%d", db)
			ok, err := admin.SetNX(ctx, key, owner, 10*time.Minute).Result()
			if err != nil {
				t.Fatalf("testenv: Redis at REDIS_URL (run `make test`, which starts it): %v", err)
			}
			if !ok {
				continue
			}
			leased := *opts
			leased.DB = db
			c := redis.NewClient(&leased)
			if err := c.FlushDB(ctx).Err(); err != nil {
				t.Fatalf("testenv: flush redis db %d: %v", db, err)
			}
			c.Close()
			t.Cleanup(func() {
				a := redis.NewClient(opts)
				defer a.Close()
				// Release only our own lease.
				a.Eval(ctx, `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`, []string{key}, owner)
			})
			u, _ := url.Parse(redisURL())
			u.Path = fmt.Sprintf("/%d", db)
			return u.String()
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: no free Redis database after 2 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
