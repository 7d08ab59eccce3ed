package redisconn_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hibiken/asynq"

	"github.com/bulkd/bulkd/pkg/redisconn"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url   string
		want  redisconn.Options
		asynq asynq.RedisConnOpt
	}{
		{
			url:   "redis://127.0.0.1:6379/3",
			want:  redisconn.Options{Kind: redisconn.Single, Addrs: []string{"127.0.0.1:6379"}, DB: 3},
			asynq: asynq.RedisClientOpt{Network: "tcp", Addr: "127.0.0.1:6379", DB: 3},
		},
		{
			url:  "redis://:s3cret@redis.internal:6380",
			want: redisconn.Options{Kind: redisconn.Single, Addrs: []string{"redis.internal:6380"}, Password: "s3cret"},
		},
		{
			url: "redis-sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/2?master=bulkd",
			want: redisconn.Options{Kind: redisconn.Sentinel, Addrs: []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"},
				MasterName: "bulkd", Password: "s3cret", DB: 2},
			asynq: asynq.RedisFailoverClientOpt{MasterName: "bulkd", SentinelAddrs: []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"},
				Password: "s3cret", DB: 2},
		},
		{
			url:   "redis-sentinel://s1:26379?master=m&sentinel_password=sp",
			want:  redisconn.Options{Kind: redisconn.Sentinel, Addrs: []string{"s1:26379"}, MasterName: "m", SentinelPassword: "sp"},
			asynq: asynq.RedisFailoverClientOpt{MasterName: "m", SentinelAddrs: []string{"s1:26379"}, SentinelPassword: "sp"},
		},
		{
			url:   "redis-cluster://:pw@n1:7000,n2:7001,n3:7002",
			want:  redisconn.Options{Kind: redisconn.Cluster, Addrs: []string{"n1:7000", "n2:7001", "n3:7002"}, Password: "pw"},
			asynq: asynq.RedisClusterClientOpt{Addrs: []string{"n1:7000", "n2:7001", "n3:7002"}, Password: "pw"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := redisconn.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreUnexported(redisconn.Options{})); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
			if tt.asynq != nil {
				if diff := cmp.Diff(tt.asynq, got.Asynq()); diff != "" {
					t.Errorf("Asynq (-want +got):\n%s", diff)
				}
			}
			if c := got.NewClient(); c == nil {
				t.Error("NewClient is nil")
			} else {
				c.Close()
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"http://127.0.0.1:6379":                      "must start with redis://",
		"127.0.0.1:6379":                             "must start with redis://",
		"redis-sentinel://s1:26379,s2:26379/0":       "?master=NAME",
		"redis-sentinel://s1:26379,s2/0?master=m":    `"s2" where a host:port belongs`,
		"redis-sentinel://s1:26379/x?master=m":       "database number as its path",
		"redis-sentinel://s1:26379?master=m&mastr=n": `does not take: "mastr"`,
		"redis-cluster://n1:7000,n2:7001/1":          "other than 0",
		"redis-cluster://n1:7000,,n3:7002":           `"" where a host:port belongs`,
		"redis-cluster://n1:7000?master=m":           `does not take: "master"`,
		"redis://127.0.0.1:6379/notanumber":          "invalid database",
	}
	for url, want := range tests {
		t.Run(url, func(t *testing.T) {
			_, err := redisconn.Parse(url)
			if !errors.Is(err, redisconn.ErrURL) || !strings.Contains(err.Error(), want) {
				t.Errorf("Parse(%q) = %v, want ErrURL saying %q", url, err, want)
			}
			if err != nil && strings.Contains(err.Error(), "word") {
				t.Errorf("Parse's error shows the password: %v", err)
			}
		})
	}
}

func TestSecretsAndString(t *testing.T) {
	t.Parallel()
	o, err := redisconn.Parse("redis-sentinel://:pw@s1:26379,s2:26379/1?master=m&sentinel_password=sp")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"pw", "sp"}, o.Secrets()); diff != "" {
		t.Errorf("Secrets (-want +got):\n%s", diff)
	}
	s := o.String()
	if strings.Contains(s, "pw") || strings.Contains(s, "sp") || s != "sentinel s1:26379,s2:26379 master m db 1" {
		t.Errorf("String() = %q", s)
	}
}
