package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1. It holds every listener open until all are
// chosen: calling FreePort n times can give one port twice, since the kernel may hand a just-closed
// port out again.
func FreePorts(t testing.TB, n int) []string {
	t.Helper()
	ports := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, fmt.Sprint(l.Addr().(*net.TCPAddr).Port))
	}
	return ports
}

// StartRedis runs a redis-server of the test's own on 127.0.0.1:port (the stack's redis-server binary),
// keeping its data in an append-only file under dir, so that starting it again on the same dir and port
// after a shutdown brings the data back. extra are more arguments of redis-server (say "--replicaof",
// host, port). It returns a client, closed when the test ends, and kills the server then, whatever
// happened to it meanwhile, waiting until it is gone (so that no server outlives its directory: one
// still shutting down when a temporary directory is removed may fail to and keep running).
func StartRedis(t testing.TB, dir, port string, extra ...string) *redis.Client {
	t.Helper()
	pidfile := filepath.Join(dir, "redis.pid")
	t.Cleanup(func() { killRedis(pidfile, port) })
	args := append([]string{"--daemonize", "yes", "--bind", "127.0.0.1", "--port", port,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", dir,
		"--pidfile", pidfile, "--logfile", filepath.Join(dir, "redis.log")}, extra...)
	out, err := exec.Command("redis-server", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-server (needed for this test; deploy/local/stack up installs it): %v\n%s", err, out)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
	t.Cleanup(func() { _ = rdb.Close() })
	WaitFor(t, "the private redis-server on port "+port, 10*time.Second, func() bool { return rdb.Ping(context.Background()).Err() == nil })
	return rdb
}

// killRedis kills (SIGKILL) the redis-server on port whose id the pid file holds, if that process still
// is one, and waits up to 10 s until it is gone. It reports whether the process is gone. Checking the
// process's command line first keeps it from killing an unrelated process that reused the id.
func killRedis(pidfile, port string) bool {
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return true
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !redisRunning(pid, port) {
		return true
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if !redisRunning(pid, port) {
			return true
		}
	}
	return false
}

// redisRunning reports whether process pid runs redis-server on port (a zombie's command line is empty).
func redisRunning(pid int, port string) bool {
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(cmd), "redis-server") && strings.Contains(string(cmd), ":"+port)
}

// KillRedis kills the redis-server StartRedis started on dir with SIGKILL, as a crashed host would (no
// shutdown, no final write), and waits until it is gone and rdb, a client of it, no longer reaches it.
func KillRedis(t testing.TB, dir string, rdb *redis.Client) {
	t.Helper()
	_, port, err := net.SplitHostPort(rdb.Options().Addr)
	if err != nil {
		t.Fatal(err)
	}
	if !killRedis(filepath.Join(dir, "redis.pid"), port) {
		t.Fatalf("the redis-server of %s on port %s still runs 10 s after kill -9", dir, port)
	}
	WaitFor(t, "the killed redis-server to stop answering", 10*time.Second, func() bool { return rdb.Ping(context.Background()).Err() != nil })
}

// WaitReplicated waits until each replica's link to its primary is up and it has processed the
// primary's replication stream up to the primary's current offset (INFO replication), and fails the
// test when that takes longer than timeout.
func WaitReplicated(t testing.TB, primary *redis.Client, timeout time.Duration, replicas ...*redis.Client) {
	t.Helper()
	ctx := context.Background()
	WaitForState(t, "the replicas to catch up with the primary", timeout, func() (bool, string) {
		want := replicationField(ctx, primary, "master_repl_offset")
		for _, r := range replicas {
			link, got := replicationField(ctx, r, "master_link_status"), replicationField(ctx, r, "slave_repl_offset")
			if want == "" || link != "up" || got != want {
				return false, fmt.Sprintf("primary at offset %q, replica %s: link %q, offset %q", want, r.Options().Addr, link, got)
			}
		}
		return true, ""
	})
}

// replicationField returns a field of INFO replication, or "" when it cannot be read.
func replicationField(ctx context.Context, rdb *redis.Client, field string) string {
	info, err := rdb.Info(ctx, "replication").Result()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	return ""
}

// StartReplicatedRedis starts a primary redis-server of the test's own (StartRedis, data in dir/primary)
// and a replica of it (dir/replica) that replicates from via(the primary's address) — the address of a
// proxy the test put in front of the primary, say, or the primary's own — and waits until the replica
// is in sync. Ports are picked free. The primary syncs replicas without delay (repl-diskless-sync-delay 0).
func StartReplicatedRedis(t testing.TB, dir string, via func(primary string) string) (primary, replica *redis.Client) {
	t.Helper()
	ports := FreePorts(t, 2)
	pdir, rdir := filepath.Join(dir, "primary"), filepath.Join(dir, "replica")
	for _, d := range []string{pdir, rdir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	primary = StartRedis(t, pdir, ports[0], "--repl-diskless-sync-delay", "0")
	host, port, err := net.SplitHostPort(via(primary.Options().Addr))
	if err != nil {
		t.Fatal(err)
	}
	replica = StartRedis(t, rdir, ports[1], "--replicaof", host, port)
	WaitReplicated(t, primary, 30*time.Second, replica)
	return primary, replica
}

// FailOver promotes replica to primary (REPLICAOF NO ONE), as a managed Redis does when the primary
// fails, and starts a new replica of it (StartRedis, data in dir), so that writes after the failover are
// replicated too. It returns the new replica's client once that is in sync.
func FailOver(t testing.TB, replica *redis.Client, dir string) *redis.Client {
	t.Helper()
	ctx := context.Background()
	if err := replica.SlaveOf(ctx, "NO", "ONE").Err(); err != nil {
		t.Fatalf("REPLICAOF NO ONE on %s: %v", replica.Options().Addr, err)
	}
	if err := replica.ConfigSet(ctx, "repl-diskless-sync-delay", "0").Err(); err != nil { // sync the new replica at once
		t.Fatal(err)
	}
	WaitFor(t, "the promoted replica to take writes", 10*time.Second, func() bool { return replicationField(ctx, replica, "role") == "master" })
	host, port, err := net.SplitHostPort(replica.Options().Addr)
	if err != nil {
		t.Fatal(err)
	}
	next := StartRedis(t, dir, FreePort(t), "--replicaof", host, port)
	WaitReplicated(t, replica, 30*time.Second, next)
	return next
}
