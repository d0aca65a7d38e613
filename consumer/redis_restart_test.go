package consumer_test

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

	"github.com/clickfleet/clickfleet/internal/testenv"
)

// startRedis runs a private redis-server with an append-only file, so a restart keeps its data.
func startRedis(t *testing.T, dir, port string) {
	t.Helper()
	t.Cleanup(func() { // stop it even when the test's own shutdown did not reach it
		if b, err := os.ReadFile(filepath.Join(dir, "redis.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGTERM)
			}
		}
	})
	out, err := exec.Command("redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", port,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", dir,
		"--pidfile", filepath.Join(dir, "redis.pid"), "--logfile", filepath.Join(dir, "redis.log")).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-server (needed for this test; deploy/local/stack up installs it): %v\n%s", err, out)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
	defer rdb.Close()
	testenv.WaitFor(t, "the private redis-server", 10*time.Second, func() bool { return rdb.Ping(context.Background()).Err() == nil })
}

// Redis goes away mid-run and comes back: workers retry, checkpoint nothing they have not written, and the
// counts end exact.
func TestRedisRestartMidRun(t *testing.T) {
	kin := testenv.Kinesis(t)
	testenv.Redis(t) // the stack is up, so redis-server is installed
	dir := t.TempDir()
	port := freePort(t)
	startRedis(t, dir, port)
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
	t.Cleanup(func() {
		_ = rdb.Shutdown(context.Background()).Err()
		_ = rdb.Close()
	})
	stream := testenv.Stream(t, kin, 4)
	f := newFleet(t, stream, fmt.Sprintf("redis://127.0.0.1:%s/0", port))
	f.start("w1")
	f.start("w2")
	sink, wait := produce(t, kin, stream, 8000, 100, 2000, 3)
	waitBalanced(t, f.table, 2, 4, 60*time.Second)
	testenv.WaitFor(t, "some records counted", 30*time.Second, func() bool {
		n, _ := rdb.DBSize(context.Background()).Result()
		return n > 10
	})
	// Shut Redis down (it writes its append-only file) and keep it down while records flow.
	_ = rdb.Shutdown(context.Background()).Err() // the connection closes under the command
	testenv.WaitFor(t, "redis to stop", 10*time.Second, func() bool { return rdb.Ping(context.Background()).Err() != nil })
	time.Sleep(3 * time.Second) // an outage of a fixed length: workers must keep retrying through it
	startRedis(t, dir, port)
	wait()
	waitExact(t, rdb, f.pfx, sink.expected(), 90*time.Second)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}
