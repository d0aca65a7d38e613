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
// after a shutdown brings the data back. It returns a client, closed when the test ends, and stops the
// server then whatever happened to it meanwhile.
func StartRedis(t testing.TB, dir, port string) *redis.Client {
	t.Helper()
	pidfile := filepath.Join(dir, "redis.pid")
	t.Cleanup(func() { stopByPIDFile(pidfile) })
	out, err := exec.Command("redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", port,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", dir,
		"--pidfile", pidfile, "--logfile", filepath.Join(dir, "redis.log")).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-server (needed for this test; deploy/local/stack up installs it): %v\n%s", err, out)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
	t.Cleanup(func() { _ = rdb.Close() })
	WaitFor(t, "the private redis-server on port "+port, 10*time.Second, func() bool { return rdb.Ping(context.Background()).Err() == nil })
	return rdb
}

// stopByPIDFile sends SIGTERM to the process whose id the file holds, if any.
func stopByPIDFile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
}
