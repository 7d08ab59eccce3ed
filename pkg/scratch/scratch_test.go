package scratch_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"

	"github.com/bulkd/bulkd/pkg/scratch"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/scratch_x?sslmode=disable"},
		{"postgres://u:p@db/", "postgres://u:p@db/scratch_x"},
		{"host=db user=postgres dbname=postgres", "host=db user=postgres dbname=postgres dbname=scratch_x"},
	} {
		if got := scratch.WithDatabase(tc.in, "scratch_x"); got != tc.want {
			t.Errorf("WithDatabase(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A scratch database is made empty, reached at the URL returned, and
// dropped with whoever is still connected to it.
func TestPostgresCreateDrop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := scratch.Postgres{URL: env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")}
	name := "scratch_test_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	url, err := pg.Create(ctx, name, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Drop(context.Background(), name) })
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := conn.QueryRow(ctx, `SELECT current_database()`).Scan(&got); err != nil || got != name {
		t.Fatalf("connected to %q, %v; want %q", got, err, name)
	}
	if err := pg.Drop(ctx, name); err != nil { // conn is still open
		t.Fatal(err)
	}
	_, err = pgx.Connect(ctx, url)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" {
		t.Errorf("connect after the drop: %v, want invalid_catalog_name", err)
	}
}

func TestFreeAddr(t *testing.T) {
	t.Parallel()
	addr, err := scratch.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on the free address %s: %v", addr, err)
	}
	l.Close()
}

// Two leases get two databases, each empty; the lease is the key the tests
// and bulkbench agree on, in database 0, naming its owner; Close empties
// the database and gives the lease back, but never one that another owner
// holds now.
func TestLeaseRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	redisURL := env("REDIS_URL", "redis://127.0.0.1:6379/0")
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	opts.DB = 0
	admin := redis.NewClient(opts)
	t.Cleanup(func() { admin.Close() })
	key := func(db int) string { return "bulkd:testenv:lease:" + strconv.Itoa(db) }

	first, err := scratch.LeaseRedis(ctx, redisURL, "first-"+uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	second, err := scratch.LeaseRedis(ctx, redisURL, "second-"+uuid.NewString())
	if err != nil {
		first.Close(ctx)
		t.Fatal(err)
	}
	if first.DB == second.DB || first.DB < 1 || first.DB > 15 || !strings.HasSuffix(first.URL, "/"+strconv.Itoa(first.DB)) {
		t.Errorf("leases %d (%s) and %d (%s)", first.DB, first.URL, second.DB, second.URL)
	}
	if owner, _ := admin.Get(ctx, key(first.DB)).Result(); !strings.HasPrefix(owner, "first-") {
		t.Errorf("lease key of database %d names %q", first.DB, owner)
	}
	leasedOpts, _ := redis.ParseURL(first.URL)
	leased := redis.NewClient(leasedOpts)
	t.Cleanup(func() { leased.Close() })
	if n, err := leased.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Errorf("leased database holds %d keys, %v", n, err)
	}
	if err := leased.Set(ctx, "left-behind", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	first.Close(ctx)
	if owner, _ := admin.Get(ctx, key(first.DB)).Result(); strings.HasPrefix(owner, "first-") {
		t.Error("Close kept the lease")
	}
	if n, _ := leased.Exists(ctx, "left-behind").Result(); n != 0 {
		t.Error("Close left the database's keys")
	}

	// second's lease expired and another owner took the database: second's
	// Close leaves that lease alone.
	other := "other-" + uuid.NewString()
	if err := admin.Set(ctx, key(second.DB), other, 0).Err(); err != nil {
		t.Fatal(err)
	}
	second.Close(ctx)
	if owner, _ := admin.Get(ctx, key(second.DB)).Result(); owner != other {
		t.Errorf("Close of an expired lease took the new owner's: key now %q", owner)
	}
	admin.Eval(ctx, `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`, []string{key(second.DB)}, other)
}
