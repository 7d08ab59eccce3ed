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
	"errors"
	"fmt"

	"github.com/google/uuid"
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

// Store is the database of bulkd.
type Store struct {
	pool *pgxpool.Pool
	db   *gorm.DB
}

// Open connects to Postgres. maxConns bounds the pool (0: pgx's default).
func Open(ctx context.Context, databaseURL string, maxConns int32) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("store: parse database url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	db, err := gorm.Open(postgres.New(postgres.Config{Conn: stdlib.OpenDBFromPool(pool)}), &gorm.Config{
		Logger:                 logger.Discard, // queries carry personal data; errors are returned, not logged
		SkipDefaultTransaction: true,
		TranslateError:         true,
		DisableAutomaticPing:   true, // connect lazily, as the pool does; Ping and Migrate report an outage
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: open gorm: %w", err)
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
		return fmt.Errorf("store: ping: %w", err)
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
