// Package store owns every database access of bulkd: the embedded schema
// migrations, organizations and API keys, bulks and their rows, and the
// set-based writes of an import.
//
// Simple reads and writes go through GORM; the import's writes and the
// submission's rows use pgx directly (COPY, arrays), on the same connection
// pool.
package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// ErrNotFound is returned when a record does not exist or belongs to another
// organization: callers cannot tell the two apart, by design.
var ErrNotFound = errors.New("store: not found")

// ErrUnavailable is what every error of the store is as well when Postgres
// could not be reached or the connection broke, as opposed to a query that
// failed: the caller should retry later, not report a bug.
var ErrUnavailable = errors.New("store: the database is unavailable")

// errorf is fmt.Errorf for the store's errors: it names ErrUnavailable where
// the cause is a lost database.
func errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	if connectionLost(err) {
		return unavailableError{err}
	}
	return err
}

type unavailableError struct{ error }

func (e unavailableError) Is(target error) bool { return target == ErrUnavailable }
func (e unavailableError) Unwrap() error        { return e.error }

// connectionLost tells whether err comes from Postgres being out of reach: a
// refused or failed connection, or one that broke.
func connectionLost(err error) bool {
	var connectErr *pgconn.ConnectError
	var netErr *net.OpError
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, driver.ErrBadConn)
}

// Store is the database of bulkd.
type Store struct {
	pool *pgxpool.Pool
	db   *gorm.DB
	// keysTouched is when this process last recorded each API key's use
	// (uuid.UUID → time.Time), so that it writes a key at most once a minute.
	keysTouched sync.Map
}

// Open connects to Postgres. maxConns bounds the pool (0: pgx's default).
func Open(ctx context.Context, databaseURL string, maxConns int32) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, errorf("store: parse database url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, errorf("store: connect: %w", err)
	}
	db, err := gorm.Open(postgres.New(postgres.Config{Conn: stdlib.OpenDBFromPool(pool)}), &gorm.Config{
		Logger:                 logger.Discard, // queries carry personal data; errors are returned, not logged
		SkipDefaultTransaction: true,
		TranslateError:         true,
		DisableAutomaticPing:   true, // connect lazily, as the pool does; Ping and Migrate report an outage
	})
	if err != nil {
		pool.Close()
		return nil, errorf("store: open gorm: %w", err)
	}
	return &Store{pool: pool, db: db}, nil
}

// Close releases the connections.
func (s *Store) Close() {
	if sqlDB, err := s.db.DB(); err == nil {
		_ = sqlDB.Close()
	}
	s.pool.Close()
}

// Ping checks that Postgres answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return errorf("store: ping: %w", err)
	}
	return nil
}

// pgUUID converts an id for pgx; uuid.Nil becomes NULL.
func pgUUID(id uuid.UUID) pgtype.UUID {
	return pgtype.UUID{Bytes: id, Valid: id != uuid.Nil}
}

// nullText converts a string for pgx; "" becomes NULL.
func nullText(s string) pgtype.Text {
	return pgtype.Text{String: s, Valid: s != ""}
}

// nullJSON converts JSON bytes for a jsonb column; nil becomes NULL.
func nullJSON(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}
