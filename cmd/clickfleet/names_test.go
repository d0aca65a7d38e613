package main

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// lockedLog collects a process's log lines for the test's messages.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(line + "\n")
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// readyStatus returns the status code of GET url, 0 when it does not answer.
func readyStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// names-sync started before 'clickfleet setup' (on AWS the stack starts the service while the schema may
// not exist yet) keeps running, not ready, and says it waits; once the schema appears it becomes ready
// and copies the customers into Redis. It used to exit at once, which on ECS tripped the deployment
// circuit breaker and rolled the stack back.
func TestNamesSyncWaitsForTheTable(t *testing.T) {
	rdb := testenv.Redis(t)
	dsn := testenv.EmptyDatabase(t)
	prefix := testenv.Name(t, "cf") + ":"
	t.Cleanup(func() {
		if keys := rdb.Keys(context.Background(), prefix+"*").Val(); len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	addr := "127.0.0.1:" + testenv.FreePort(t)
	cmd := exec.Command(testenv.Binary(t), "names-sync", "--pg-dsn", dsn, "--redis-url", os.Getenv("CLICKFLEET_REDIS_URL"),
		"--key-prefix", prefix, "--http-listen", addr, "--sync-interval", "1h", "--log-format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	waiting := make(chan struct{})
	var log lockedLog
	go func() {
		sc := bufio.NewScanner(stderr)
		said := false
		for sc.Scan() {
			log.add(sc.Text())
			if !said && strings.Contains(sc.Text(), "waiting for the customers table") {
				said = true
				close(waiting)
			}
		}
		done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	select {
	case <-waiting:
	case err := <-done:
		t.Fatalf("names-sync exited (%v) on a database without the customers table, want it to wait:\n%s", err, tail(log.String()))
	case <-time.After(30 * time.Second):
		t.Fatalf("names-sync did not say within 30 s that it waits for the customers table:\n%s", tail(log.String()))
	}
	// Alive and not ready: /healthz answers, /readyz does not answer 200.
	testenv.WaitFor(t, "/healthz to answer 200", 10*time.Second, func() bool { return readyStatus("http://"+addr+"/healthz") == http.StatusOK })
	if got := readyStatus("http://" + addr + "/readyz"); got == http.StatusOK {
		t.Fatal("/readyz answers 200 while the customers table is missing")
	}

	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx := context.Background()
	if err := provision.EnsureCustomersSchema(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO customers (customer_id, name, price_per_click) VALUES ('42', 'Grace Hopper', 0.75)`); err != nil {
		t.Fatal(err)
	}
	testenv.WaitForState(t, "customer 42 in Redis", 30*time.Second, func() (bool, string) {
		h := rdb.HGetAll(ctx, session.UserKey(prefix, "42")).Val()
		return h[session.FieldName] == "Grace Hopper" && h[session.FieldPricePerClick] == "0.7500", strings.TrimSpace(tail(log.String()))
	})
	testenv.WaitFor(t, "/readyz to answer 200", 10*time.Second, func() bool { return readyStatus("http://"+addr+"/readyz") == http.StatusOK })

	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("names-sync ended with %v after SIGTERM, want a clean stop:\n%s", err, tail(log.String()))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("names-sync did not stop within 30 s of SIGTERM")
	}
}
