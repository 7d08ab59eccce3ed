// Package scratch makes throwaway resources on shared servers, for bulkd's
// tests (pkg/testenv) and its benchmark tool (cmd/bulkbench): a database of
// one's own on a Postgres server, a Redis logical database leased on a
// Redis server, a free local port. Tests and bulkbench lease Redis
// databases by the one protocol written here, so that when they run at once
// they never share a queue.
package scratch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Postgres is a Postgres server that scratch databases are made on,
// through an administrative connection to the database URL names
// (DATABASE_URL).
type Postgres struct {
	URL string
}

// Admin connects for administration: to the database the URL names, or to
// "postgres" when that one does not exist yet (on a fresh machine).
func (s Postgres) Admin(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, s.URL)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name
		conn, err = pgx.Connect(ctx, WithDatabase(s.URL, "postgres"))
	}
	if err != nil {
		return nil, fmt.Errorf("connect to Postgres at DATABASE_URL (make services starts one): %w", err)
	}
	return conn, nil
}

// Create makes a database, empty or a copy of template when it is not "",
// and returns its URL.
func (s Postgres) Create(ctx context.Context, name, template string) (string, error) {
	conn, err := s.Admin(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	sql := `CREATE DATABASE ` + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += ` TEMPLATE ` + pgx.Identifier{template}.Sanitize()
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return WithDatabase(s.URL, name), nil
}

// Drop removes a database if it exists, closing whatever is still
// connected to it.
func (s Postgres) Drop(ctx context.Context, name string) error {
	conn, err := s.Admin(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// WithDatabase returns the connection string u pointing at database name,
// in either of the forms pgx accepts.
func WithDatabase(u, name string) string {
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

// FreeAddr is a loopback address ("127.0.0.1:port") that no listener
// holds at the moment, for a server to listen on.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
