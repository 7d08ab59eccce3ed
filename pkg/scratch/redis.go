package scratch

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The lease protocol: database 0 of the server holds, for each of the
// databases 1–15, a key naming the lease's owner, set only if absent and
// expiring after leaseTTL unless renewed, so that a process that dies never
// blocks the next. Whoever takes a lease empties the database first and
// again when done, and deletes only its own key.
const (
	leaseDatabases = 15
	leaseTTL       = 10 * time.Minute
	leaseRenew     = time.Minute
)

func leaseKey(db int) string { return fmt.Sprintf("bulkd:testenv:lease:%d", db) }

// ErrNoFreeRedis is returned by LeaseRedis when every database 1–15 is
// leased.
var ErrNoFreeRedis = errors.New("no free Redis database among 1-15 at REDIS_URL (tests or other benchmarks hold them all)")

// RedisLease is a Redis logical database that one test or run uses alone.
// A lease built by hand (URL and DB only) names a database the caller
// chose: Close then only empties it.
type RedisLease struct {
	URL string // the database's URL
	DB  int

	admin *redis.Client // database 0, where the lease lives; nil when not leased
	key   string
	owner string
	stop  context.CancelFunc // ends the renewal
}

// LeaseRedis leases one of the databases 1–15 of the Redis server of
// redisURL to owner, empty ones first (a database holding keys may be a
// developer's queue that only happens to be unleased), empties it, and
// renews the lease until Close. When every one is leased it returns
// ErrNoFreeRedis at once: waiting is the caller's choice.
func LeaseRedis(ctx context.Context, redisURL, owner string) (*RedisLease, error) {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	opts.DB = 0
	admin := redis.NewClient(opts)
	// One connection of its own moves between the databases (SELECT), so
	// that none of admin's is left in another database than 0.
	probe := redis.NewClient(opts)
	defer probe.Close()
	conn := probe.Conn()
	defer conn.Close()
	var empty, busy []int
	for db := 1; db <= leaseDatabases; db++ {
		var n int64
		if err = conn.Select(ctx, db).Err(); err == nil {
			n, err = conn.DBSize(ctx).Result()
		}
		if err != nil {
			admin.Close()
			return nil, fmt.Errorf("connect to Redis at REDIS_URL (make services starts one): %w", err)
		}
		if n == 0 {
			empty = append(empty, db)
		} else {
			busy = append(busy, db)
		}
	}
	for _, db := range append(empty, busy...) {
		key := leaseKey(db)
		ok, err := admin.SetNX(ctx, key, owner, leaseTTL).Result()
		if err != nil {
			admin.Close()
			return nil, fmt.Errorf("connect to Redis at REDIS_URL (make services starts one): %w", err)
		}
		if !ok {
			continue
		}
		if err = conn.Select(ctx, db).Err(); err == nil {
			err = conn.FlushDB(ctx).Err()
		}
		if err != nil {
			admin.Eval(ctx, releaseScript, []string{key}, owner)
			admin.Close()
			return nil, fmt.Errorf("flush Redis database %d: %w", db, err)
		}
		u, _ := url.Parse(redisURL)
		u.Path = "/" + strconv.Itoa(db)
		l := &RedisLease{URL: u.String(), DB: db, admin: admin, key: key, owner: owner}
		// A long run (a million-customer benchmark) outlives leaseTTL.
		renewCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
		l.stop = stop
		go l.renew(renewCtx)
		return l, nil
	}
	admin.Close()
	return nil, ErrNoFreeRedis
}

// Only the owner's key is renewed or released: a lease that expired and
// was taken by another is left to it.
const (
	renewScript   = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`
	releaseScript = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`
)

func (l *RedisLease) renew(ctx context.Context) {
	t := time.NewTicker(leaseRenew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.admin.Eval(ctx, renewScript, []string{l.key}, l.owner, leaseTTL.Milliseconds())
		}
	}
}

// Close empties the database and gives the lease back.
func (l *RedisLease) Close(ctx context.Context) {
	if l.stop != nil {
		l.stop()
	}
	if opts, err := redis.ParseURL(l.URL); err == nil {
		c := redis.NewClient(opts)
		c.FlushDB(ctx)
		c.Close()
	}
	if l.admin != nil {
		l.admin.Eval(ctx, releaseScript, []string{l.key}, l.owner)
		l.admin.Close()
	}
}
