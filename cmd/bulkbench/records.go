package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/bulkd/bulkd/pkg/bulk"
	"github.com/bulkd/bulkd/pkg/store"
)

// database is a database bulkbench reads or writes itself, beside bulkd:
// the spawned bulkd's, to count and compare what it wrote, and the
// baselines' own. GORM is set up as pkg/store sets it up (no logger, no
// transaction of its own around each write), so that the GORM baseline
// measures the writes alone.
type database struct {
	pool *pgxpool.Pool
	gorm *gorm.DB
}

func openDatabase(ctx context.Context, url string) (*database, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	g, err := gorm.Open(postgres.New(postgres.Config{Conn: stdlib.OpenDBFromPool(pool)}), &gorm.Config{
		Logger: logger.Discard, SkipDefaultTransaction: true, DisableAutomaticPing: true,
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open gorm: %w", err)
	}
	return &database{pool: pool, gorm: g}, nil
}

func (d *database) close() {
	if sqlDB, err := d.gorm.DB(); err == nil {
		_ = sqlDB.Close()
	}
	d.pool.Close()
}

// recordCounts counts the records an organization's imports wrote.
type recordCounts struct {
	Locations    int64 `json:"locations"`
	Customers    int64 `json:"customers"`
	DebtAccounts int64 `json:"debt_accounts"`
}

// Total is every record of the three tables.
func (c recordCounts) Total() int64 { return c.Locations + c.Customers + c.DebtAccounts }

// Add sums two counts.
func (c recordCounts) Add(o recordCounts) recordCounts {
	return recordCounts{Locations: c.Locations + o.Locations, Customers: c.Customers + o.Customers, DebtAccounts: c.DebtAccounts + o.DebtAccounts}
}

// planCounts counts the records a plan writes.
func planCounts(p *bulk.Plan) recordCounts {
	return recordCounts{Locations: int64(len(p.Locations)), Customers: int64(len(p.Customers)), DebtAccounts: int64(len(p.DebtAccounts))}
}

// countRecords counts the organizations' locations, customers and debt
// accounts, in one round trip.
func (d *database) countRecords(ctx context.Context, orgIDs ...uuid.UUID) (recordCounts, error) {
	return d.countIn(ctx, "", orgIDs)
}

// countIn counts the records of the organizations in the tables of schema
// ("": the search path's, bulkd's own).
func (d *database) countIn(ctx context.Context, schema string, orgIDs []uuid.UUID) (recordCounts, error) {
	if schema != "" {
		schema += "."
	}
	var c recordCounts
	err := d.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM `+schema+`locations WHERE organization_id = ANY($1)),
		(SELECT count(*) FROM `+schema+`customers WHERE organization_id = ANY($1)),
		(SELECT count(*) FROM `+schema+`debt_accounts WHERE organization_id = ANY($1))`, orgIDs).
		Scan(&c.Locations, &c.Customers, &c.DebtAccounts)
	if err != nil {
		return recordCounts{}, fmt.Errorf("count records: %w", err)
	}
	return c, nil
}

// recordState is one stored record as the upsert check compares it before
// and after an upsert: its version, the value of the field an upsert run
// plants a change in (a customer's name, a debt account's current_balance
// in cents, a location's name), and a digest of the other columns the
// import writes, but for those a change moves (version, updated_at,
// last_bulk_id, last_bulk_row), with created_at.
type recordState struct {
	Table      string // locations, customers or debt_accounts
	ExternalID string
	Version    int
	Planted    string
	Rest       string
}

// plantedColumns is, by table, the column an upsert run plants a change in and
// the text it is compared as.
var plantedColumns = map[string]struct{ column, text string }{
	"locations":     {"name", "coalesce(name, '')"},
	"customers":     {"name", "name"},
	"debt_accounts": {"current_balance", "(current_balance * 100)::bigint::text"},
}

// recordStates calls f with every record of the organization, table by
// table, streamed: a run's records need not fit in memory twice. The
// tables and their columns are those the import writes.
func (d *database) recordStates(ctx context.Context, orgID uuid.UUID, f func(recordState) error) error {
	for _, t := range store.PlanInserts(orgID, &bulk.Plan{}) {
		var rest []string
		for _, col := range t.Columns {
			switch col {
			case plantedColumns[t.Table].column, "organization_id", "last_bulk_id", "last_bulk_row":
			default:
				rest = append(rest, col)
			}
		}
		rest = append(rest, "created_at")
		rows, err := d.pool.Query(ctx, `SELECT external_id, version, `+plantedColumns[t.Table].text+`, md5(row(`+
			strings.Join(rest, ", ")+`)::text) FROM `+t.Table+` WHERE organization_id = $1`, orgID)
		if err != nil {
			return fmt.Errorf("record states: %w", err)
		}
		st := recordState{Table: t.Table}
		if _, err := pgx.ForEachRow(rows, []any{&st.ExternalID, &st.Version, &st.Planted, &st.Rest}, func() error {
			return f(st)
		}); err != nil {
			return fmt.Errorf("record states: %w", err)
		}
	}
	return nil
}
