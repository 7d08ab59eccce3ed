package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulkd/bulkd/pkg/scratch"
)

// A redisNode is one redis-server process of a test's own, as a data node
// or a sentinel, on a loopback port; it is killed when the test ends.
type redisNode struct {
	t    testing.TB
	Port int
	cmd  *exec.Cmd
	logf string
}

// startRedisNode starts redis-server with args (after the port, bind and
// no-persistence ones) in a folder of its own, and waits until it answers.
func startRedisNode(t testing.TB, port int, args ...string) *redisNode {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("testenv: redis-server is not installed (scripts/services.sh installs it): %v", err)
	}
	dir := t.TempDir()
	n := &redisNode{t: t, Port: port, logf: filepath.Join(dir, "redis.log")}
	base := []string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", n.logf}
	if len(args) > 0 && strings.HasSuffix(args[0], ".conf") {
		base = append([]string{args[0]}, base...) // a config file comes first
		args = args[1:]
	}
	n.cmd = exec.Command("redis-server", append(base, args...)...)
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("testenv: start redis-server: %v", err)
	}
	t.Cleanup(n.Kill)
	c := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
	defer c.Close()
	Eventually(t, 10*time.Second, func() error {
		if err := c.Ping(context.Background()).Err(); err != nil {
			log, _ := os.ReadFile(n.logf)
			return fmt.Errorf("redis-server on port %d to answer: %v\n%s", port, err, log)
		}
		return nil
	})
	return n
}

// Addr is the node's host:port.
func (n *redisNode) Addr() string { return fmt.Sprintf("127.0.0.1:%d", n.Port) }

// Kill stops the node at once (SIGKILL), losing what it held.
func (n *redisNode) Kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
	n.cmd = nil
}

// client is a plain client of the node.
func (n *redisNode) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
}

// freePort is a loopback port no listener holds at the moment.
func freePort(t testing.TB) int {
	t.Helper()
	addr, err := scratch.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	return n
}

// eventuallyTrue is Eventually for a condition that is true or not yet,
// what waiting names.
func eventuallyTrue(t testing.TB, within time.Duration, waiting string, cond func() bool) {
	t.Helper()
	Eventually(t, within, func() error {
		if cond() {
			return nil
		}
		return errors.New(waiting)
	})
}

// SentinelMaster is the name the sentinels of StartSentinel watch.
const SentinelMaster = "bulkd"

// SentinelSetup is a Redis master with one replica, watched by three
// sentinels (a quorum of two), all on loopback ports of the test's own: the
// smallest setup in which killing the master promotes the replica.
type SentinelSetup struct {
	t         testing.TB
	Master    *redisNode
	Replica   *redisNode
	Sentinels []*redisNode
}

// StartSentinel starts a SentinelSetup and waits until the replica is in
// sync and every sentinel knows the replica and the other sentinels, so
// that a failover can happen at once.
func StartSentinel(t testing.TB) *SentinelSetup {
	t.Helper()
	s := &SentinelSetup{t: t}
	s.Master = startRedisNode(t, freePort(t))
	s.Replica = startRedisNode(t, freePort(t), "--replicaof", "127.0.0.1", fmt.Sprint(s.Master.Port))
	for i := 0; i < 3; i++ {
		// A sentinel rewrites its configuration file, so each has its own.
		conf := filepath.Join(t.TempDir(), "sentinel.conf")
		cfg := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds %[1]s 1000\n"+
			"sentinel failover-timeout %[1]s 10000\n"+
			"sentinel parallel-syncs %[1]s 1\n", SentinelMaster, s.Master.Port)
		if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		s.Sentinels = append(s.Sentinels, startRedisNode(t, freePort(t), conf, "--sentinel"))
	}
	ctx := context.Background()
	m := s.Master.client()
	defer m.Close()
	eventuallyTrue(t, 20*time.Second, "the replica in sync with the master", func() bool {
		info, err := m.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "connected_slaves:1") && strings.Contains(info, ",state=online,")
	})
	for _, sn := range s.Sentinels {
		c := sn.client()
		eventuallyTrue(t, 30*time.Second, "each sentinel knows the replica and the two other sentinels", func() bool {
			others, err1 := c.Do(ctx, "SENTINEL", "SENTINELS", SentinelMaster).Slice()
			replicas, err2 := c.Do(ctx, "SENTINEL", "REPLICAS", SentinelMaster).Slice()
			return err1 == nil && err2 == nil && len(others) == 2 && len(replicas) == 1
		})
		c.Close()
	}
	return s
}

// URL is the REDIS_URL of the setup: its sentinels and the master's name.
func (s *SentinelSetup) URL() string {
	addrs := make([]string, len(s.Sentinels))
	for i, sn := range s.Sentinels {
		addrs[i] = sn.Addr()
	}
	return "redis-sentinel://" + strings.Join(addrs, ",") + "/0?master=" + SentinelMaster
}

// MasterAddr is the master's host:port as the first sentinel that answers
// tells it, "" if none does.
func (s *SentinelSetup) MasterAddr() string {
	for _, sn := range s.Sentinels {
		if sn.cmd == nil {
			continue
		}
		c := sn.client()
		addr, err := c.Do(context.Background(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SentinelMaster).StringSlice()
		c.Close()
		if err == nil && len(addr) == 2 {
			return addr[0] + ":" + addr[1]
		}
	}
	return ""
}

// KillMaster kills the master (SIGKILL) and returns once the sentinels name
// the replica as the new master, with how long that took.
func (s *SentinelSetup) KillMaster() time.Duration {
	s.t.Helper()
	old := s.Master.Addr()
	killed := time.Now()
	s.Master.Kill()
	eventuallyTrue(s.t, time.Minute, "the sentinels promote the replica", func() bool {
		return s.MasterAddr() == s.Replica.Addr()
	})
	s.t.Logf("testenv: master %s killed; sentinels named %s master after %s", old, s.Replica.Addr(), time.Since(killed).Round(time.Millisecond))
	return time.Since(killed)
}

// ClusterSetup is a Redis Cluster of three masters (no replicas) on
// loopback ports of the test's own.
type ClusterSetup struct {
	Nodes []*redisNode
}

// StartCluster starts a three-node Redis Cluster, assigns its slots and
// waits until every node reports the cluster ok.
func StartCluster(t testing.TB) *ClusterSetup {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatalf("testenv: redis-cli is not installed (scripts/services.sh installs it): %v", err)
	}
	c := &ClusterSetup{}
	addrs := make([]string, 3)
	for i := range addrs {
		// The cluster bus gets a free port of its own rather than port+10000,
		// which may be taken or out of range.
		n := startRedisNode(t, freePort(t), "--cluster-enabled", "yes", "--cluster-port", fmt.Sprint(freePort(t)),
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
		c.Nodes = append(c.Nodes, n)
		addrs[i] = n.Addr()
	}
	out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...),
		"--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: redis-cli --cluster create: %v\n%s", err, out)
	}
	ctx := context.Background()
	for _, n := range c.Nodes {
		cl := n.client()
		eventuallyTrue(t, 30*time.Second, "cluster_state:ok on "+n.Addr(), func() bool {
			info, err := cl.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
		cl.Close()
	}
	return c
}

// URL is the REDIS_URL of the cluster: its nodes as the seed list.
func (c *ClusterSetup) URL() string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	return "redis-cluster://" + strings.Join(addrs, ",")
}
