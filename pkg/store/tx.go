package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
)

// Every transaction of the store runs through withTx, and every one that
// must not overlap an import of the same organization begins with
// lockOrganization: the rules of both are written here once.

// transaction is what withTx needs of a transaction, pgx's (the import, the
// bulks, the outbox) and GORM's (the records API) alike: GORM's runs on
// database/sql, so a pgx transaction cannot carry its statements, nor the
// other way round.
type transaction interface {
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// withTx runs fn in a transaction that begin opens, in the manner of
// river's dbutil.WithTx: committed when fn returns nil, rolled back when fn
// returns an error (which withTx returns as it is) or panics. begin is
// s.pool.Begin for pgx, a connection's Begin, or s.beginGORM.
func withTx[T transaction](ctx context.Context, begin func(context.Context) (T, error), fn func(T) error) error {
	tx, err := begin(ctx)
	if err != nil {
		return err
	}
	defer rollback(ctx, tx)
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// rollback ends tx if it is still open, even when ctx has ended (a request
// timed out, a worker shuts down), so that its connection goes back to the
// pool clean. After a commit it does nothing; its error has nothing to add
// to the one being returned.
func rollback(ctx context.Context, tx transaction) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = tx.Rollback(ctx)
}

// gormTx is a GORM transaction as withTx runs it; db is bound to it.
type gormTx struct{ db *gorm.DB }

// beginGORM begins a GORM transaction, for withTx.
func (s *Store) beginGORM(ctx context.Context) (gormTx, error) {
	db := s.db.WithContext(ctx).Begin()
	return gormTx{db: db}, db.Error
}

func (t gormTx) Commit(context.Context) error   { return t.db.Commit().Error }
func (t gormTx) Rollback(context.Context) error { return t.db.Rollback().Error }

// QueryRow runs a query of one row in the transaction, with pgx's $n
// placeholders, as pgx.Tx.QueryRow does.
func (t gormTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return t.db.Statement.ConnPool.QueryRowContext(ctx, sql, args...)
}

// rowQuerier is a transaction that lockOrganization can take a lock in:
// pgx.Tx or gormTx.
type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// importLockClass namespaces the organization's import lock among the
// advisory locks.
const importLockClass = 7_240_002

// lockOrganization takes the organization's import lock for the rest of
// tx, waiting for the transaction that holds it to end. Imports of one
// organization take turns on it, and so do the records API's writes that
// change what an import finds (creates, deletes, changes of an external id,
// a location or a parent); other organizations' run in parallel. The
// records API waits for the lock (a request is bounded by its timeout); an
// import never does (tryLockOrganization), so that a worker's slot is never
// held by an import waiting for another.
func lockOrganization(ctx context.Context, tx rowQuerier, orgID uuid.UUID) error {
	var locked bool
	err := tx.QueryRow(ctx, `SELECT true FROM pg_advisory_xact_lock($1, hashtext($2))`, importLockClass, orgID.String()).Scan(&locked)
	if err != nil {
		return fmt.Errorf("lock organization: %w", err)
	}
	return nil
}

// tryLockOrganization takes the organization's import lock for the rest of
// tx if no transaction holds it, and is ErrNotItsTurn if one does.
func tryLockOrganization(ctx context.Context, tx rowQuerier, orgID uuid.UUID) error {
	var locked bool
	err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1, hashtext($2))`, importLockClass, orgID.String()).Scan(&locked)
	if err != nil {
		return fmt.Errorf("lock organization: %w", err)
	}
	if !locked {
		return ErrNotItsTurn
	}
	return nil
}

// ErrNotItsTurn is the answer to an import of a bulk whose organization is
// importing another: one organization's bulks import one at a time.
var ErrNotItsTurn = errors.New("store: another bulk of the organization is importing")
