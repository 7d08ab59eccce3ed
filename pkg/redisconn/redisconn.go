// Package redisconn reads REDIS_URL, in the three forms bulkd takes (one
// server, Redis Sentinel, Redis Cluster), into the one connection option
// that every Redis user of bulkd is built from: asynq's client, server and
// inspector, the queue UI, the queue metrics and bulkd's own readiness ping.
// One parse for all of them, so that they never disagree about where Redis
// is.
package redisconn

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Kind is how bulkd finds its Redis.
type Kind string

// The forms of REDIS_URL.
const (
	// Single is one server: redis://[[user]:password@]host:port[/db], or
	// rediss:// for TLS.
	Single Kind = "single"
	// Sentinel is a master found through Redis Sentinel, which follows it
	// when a replica takes over:
	// redis-sentinel://[[user]:password@]host:port[,host:port…][/db]?master=NAME[&sentinel_password=P].
	Sentinel Kind = "sentinel"
	// Cluster is a Redis Cluster, given by a seed list of its nodes:
	// redis-cluster://[[user]:password@]host:port[,host:port…].
	Cluster Kind = "cluster"
)

// Options is a parsed REDIS_URL.
type Options struct {
	Kind Kind
	// Addrs are the server (Single), the sentinels (Sentinel) or the seed
	// nodes (Cluster).
	Addrs []string
	// MasterName is the name the sentinels monitor the master by.
	MasterName string
	// Username and Password authenticate to the Redis servers that hold the
	// data; SentinelPassword to the sentinels, which often have none.
	Username         string
	Password         string
	SentinelPassword string
	DB               int

	asynq asynq.RedisConnOpt
}

// ErrURL is what every error of Parse is; its text is the subject of the
// sentence that says what is wrong with the URL.
var ErrURL = errors.New("redisconn: the URL")

// errNotURL names no part of the URL: a password may be any of them.
var errNotURL = fmt.Errorf("%w does not parse (check the %%-escapes of its password)", ErrURL)

// Parse reads a REDIS_URL. The password in a sentinel URL is the one of the
// master and its replicas (the one every command needs); the sentinels' own
// is sentinel_password, since sentinels are often left without one and
// refuse a password they do not have. (asynq's ParseRedisURI reads that
// password as the sentinels'; bulkd's reading is the one that works with a
// master that requires a password.)
func Parse(raw string) (Options, error) {
	scheme, _, _ := strings.Cut(raw, "://")
	switch scheme {
	case "redis", "rediss":
		return parseSingle(raw)
	case "redis-sentinel", "redis-cluster":
		return parseMany(scheme, raw)
	}
	return Options{}, fmt.Errorf("%w must start with redis://, rediss://, redis-sentinel:// or redis-cluster://", ErrURL)
}

func parseSingle(raw string) (Options, error) {
	// go-redis' own reading takes its query options too (dial_timeout,
	// pool_size…), and so does bulkd's client; asynq's are set from it.
	ro, err := redis.ParseURL(raw)
	var urlErr *url.Error
	switch {
	case errors.As(err, &urlErr):
		return Options{}, errNotURL // its text would repeat the URL, password and all
	case err != nil:
		return Options{}, fmt.Errorf("%w is refused by go-redis: %s", ErrURL, strings.TrimPrefix(err.Error(), "redis: "))
	}
	o := Options{Kind: Single, Addrs: []string{ro.Addr}, Username: ro.Username, Password: ro.Password, DB: ro.DB}
	o.asynq = asynq.RedisClientOpt{
		Network: ro.Network, Addr: ro.Addr, Username: ro.Username, Password: ro.Password, DB: ro.DB,
		DialTimeout: ro.DialTimeout, ReadTimeout: ro.ReadTimeout, WriteTimeout: ro.WriteTimeout,
		PoolSize: ro.PoolSize, TLSConfig: ro.TLSConfig,
	}
	return o, nil
}

// parseMany reads the sentinel and cluster forms, whose host part is a
// comma-separated list that net/url does not take apart.
func parseMany(scheme, raw string) (Options, error) {
	rest := strings.TrimPrefix(raw, scheme+"://")
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	userinfo, hosts := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hosts = authority[:i+1], authority[i+1:]
	}
	// What is left once the host list is out is an ordinary URL.
	u, err := url.Parse(scheme + "://" + userinfo + "hosts" + tail)
	if err != nil {
		return Options{}, errNotURL
	}
	o := Options{Kind: Sentinel}
	if scheme == "redis-cluster" {
		o.Kind = Cluster
	}
	if u.User != nil {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}
	for _, a := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return Options{}, fmt.Errorf("%w has %q where a host:port belongs; list the %s as host:port,host:port", ErrURL, a, addrsName(o.Kind))
		}
		o.Addrs = append(o.Addrs, a)
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 {
			return Options{}, fmt.Errorf("%w must have a database number as its path, such as /0", ErrURL)
		}
		if o.Kind == Cluster && n != 0 {
			return Options{}, fmt.Errorf("%w names a database other than 0, which a Redis Cluster does not have", ErrURL)
		}
		o.DB = n
	}
	q := u.Query()
	known := []string{"master", "sentinel_password"}
	if o.Kind == Cluster {
		known = nil
	}
	for name := range q {
		if !slices.Contains(known, name) {
			return Options{}, fmt.Errorf("%w has a parameter a %s URL does not take: %q", ErrURL, scheme, name)
		}
	}
	switch o.Kind {
	case Sentinel:
		o.MasterName, o.SentinelPassword = q.Get("master"), q.Get("sentinel_password")
		if o.MasterName == "" {
			return Options{}, fmt.Errorf("%w must name the master the sentinels watch: ?master=NAME", ErrURL)
		}
		o.asynq = asynq.RedisFailoverClientOpt{
			MasterName: o.MasterName, SentinelAddrs: o.Addrs, SentinelPassword: o.SentinelPassword,
			Username: o.Username, Password: o.Password, DB: o.DB,
		}
	case Cluster:
		o.asynq = asynq.RedisClusterClientOpt{Addrs: o.Addrs, Username: o.Username, Password: o.Password}
	}
	return o, nil
}

func addrsName(k Kind) string {
	if k == Cluster {
		return "cluster's nodes"
	}
	return "sentinels"
}

// Asynq is the connection option asynq's server, client, inspector and the
// queue UI are made from.
func (o Options) Asynq() asynq.RedisConnOpt { return o.asynq }

// NewClient returns a go-redis client of the form: a plain client, a
// failover client that asks the sentinels for the master, or a cluster
// client. asynq's client and inspector can share it.
func (o Options) NewClient() redis.UniversalClient {
	return o.asynq.MakeRedisClient().(redis.UniversalClient)
}

// Secrets are the passwords in the URL, for logs to mask.
func (o Options) Secrets() []string {
	var s []string
	for _, p := range []string{o.Password, o.SentinelPassword} {
		if p != "" {
			s = append(s, p)
		}
	}
	return s
}

// String describes the connection without its passwords, for the start-up
// log line.
func (o Options) String() string {
	s := string(o.Kind) + " " + strings.Join(o.Addrs, ",")
	if o.MasterName != "" {
		s += " master " + o.MasterName
	}
	return s + " db " + strconv.Itoa(o.DB)
}
