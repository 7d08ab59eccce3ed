package store

import (
	"context"
	"embed"
	"io/fs"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Migrations are the schema migrations, applied in file name order.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// migrateLockID is the advisory lock that keeps two processes starting at
// once from applying the same migration twice.
const migrateLockID = 7_240_001

// Migrate applies the embedded migrations that the database has not seen, each
// in its own transaction, in file name order.
func (s *Store) Migrate(ctx context.Context) error {
	return s.migrate(ctx, "")
}

// migrate applies the migrations up to and including the version last (its
// file name without ".sql"), or all of them when last is "".
func (s *Store) migrate(ctx context.Context, last string) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return errorf("store: migrate: acquire: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLockID); err != nil {
		return errorf("store: migrate: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLockID) //nolint:errcheck // the session ends the lock anyway

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return errorf("store: migrate: create schema_migrations: %w", err)
	}
	names, err := fs.Glob(Migrations, "migrations/*.sql")
	if err != nil {
		return errorf("store: migrate: list: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		version := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
		if last != "" && version > last {
			break
		}
		sql, err := Migrations.ReadFile(name)
		if err != nil {
			return errorf("store: migrate: read %s: %w", name, err)
		}
		err = withTx(ctx, conn.Begin, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1) ON CONFLICT DO NOTHING`, version)
			if err != nil || tag.RowsAffected() == 0 {
				return err // applied already, or failed
			}
			_, err = tx.Exec(ctx, string(sql))
			return err
		})
		if err != nil {
			return errorf("store: migrate: apply %s: %w", version, err)
		}
	}
	return nil
}
