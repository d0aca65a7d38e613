// Package local holds the local stack's scripts; this test drives deploy/local/stack itself.
package local

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickfleet/clickfleet/internal/testenv"
)

// waitDead polls until process p is gone or a zombie (nobody may reap it here), for up to 5 s.
func waitDead(t *testing.T, p int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
		if err != nil {
			return
		}
		if s := string(stat); strings.Contains(s[strings.LastIndexByte(s, ')')+1:], " Z ") {
			return
		}
	}
	t.Fatalf("process %d still runs 5 s after SIGKILL", p)
}

// The stack starts, is idempotent, tells the truth about a dead server, restarts it, and stops by PID.
// It runs a second stack on its own ports and directory, so it needs the installed packages but no
// running servers; under `make test` those are installed by the test stack's `up`.
func TestStackLifecycle(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil && os.Getenv("CLICKFLEET_REQUIRE_STACK") != "1" {
		t.Skip("redis-server is not installed; run deploy/local/stack up once (make test does)")
	}
	dir := t.TempDir()
	free := testenv.FreePorts(t, 5) // distinct: the stack refuses one port given to two servers
	ports := map[string]string{
		"CLICKFLEET_KINESIS_PORT": free[0], "CLICKFLEET_DYNAMODB_PORT": free[1],
		"CLICKFLEET_REDIS_PORT": free[2], "CLICKFLEET_PG_PORT": free[3], "CLICKFLEET_S3_PORT": free[4],
	}
	run := stackRunner(t, dir, ports)
	t.Cleanup(func() { _, _ = run("down") })

	for i := 1; i <= 2; i++ {
		if out, err := run("up"); err != nil {
			t.Fatalf("up #%d: %v\n%s", i, err, out)
		}
	}
	out, err := run("status")
	if err != nil || strings.Count(out, " up ") != 5 {
		t.Fatalf("status after up: %v\n%s", err, out)
	}

	// Kill Redis behind the stack's back: status must say so and fail; up must bring it back.
	pid, err := os.ReadFile(filepath.Join(dir, "stack", "redis.pid"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
	if err := syscall.Kill(p, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDead(t, p)
	out, err = run("status")
	if err == nil || !strings.Contains(out, "redis") || !strings.Contains(out, "DOWN") {
		t.Fatalf("status with redis killed: err %v\n%s", err, out)
	}
	if out, err := run("up"); err != nil {
		t.Fatalf("up after a crash: %v\n%s", err, out)
	}
	if out, err := run("status"); err != nil {
		t.Fatalf("status after restart: %v\n%s", err, out)
	}

	// A port taken by someone else is named with the setting to change.
	if out, err := run("down"); err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+ports["CLICKFLEET_DYNAMODB_PORT"])
	if err != nil {
		t.Fatal(err)
	}
	out, err = run("up")
	l.Close()
	if err == nil || !strings.Contains(out, "CLICKFLEET_DYNAMODB_PORT") {
		t.Fatalf("up with a taken port: err %v\n%s", err, out)
	}
	out, err = run("down")
	if err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	if out, err := run("status"); err == nil || strings.Count(out, "DOWN") != 5 {
		t.Fatalf("status after down: err %v\n%s", err, out)
	}
	// And up again after down.
	if out, err := run("up"); err != nil {
		t.Fatalf("up after down: %v\n%s", err, out)
	}
	// A throwaway stack goes with its data, PostgreSQL's files elsewhere included.
	pgHome, _ := os.Readlink(filepath.Join(dir, "stack", "pg"))
	if out, err := run("down", "--purge"); err != nil {
		t.Fatalf("down --purge: %v\n%s", err, out)
	}
	for _, p := range []string{filepath.Join(dir, "stack"), pgHome} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there after down --purge (stat: %v)", p, err)
		}
	}
}

// stackRunner runs deploy/local/stack with a kinesalite stack in dir on ports, without the limits layer
// unless asked for by a flag.
func stackRunner(t *testing.T, dir string, ports map[string]string) func(args ...string) (string, error) {
	t.Helper()
	env := append(os.Environ(), "CLICKFLEET_STACK_DIR="+filepath.Join(dir, "stack"), "CLICKFLEET_STACK_KINESIS=kinesalite", "CLICKFLEET_AWS_LIMITS=")
	for k, v := range ports {
		env = append(env, k+"="+v)
	}
	return func(args ...string) (string, error) {
		cmd := exec.Command("./stack", args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}

// up --aws-limits serves Kinesis through the limits layer: env points the SDK at it (and names the
// emulator), it answers over a limit with LimitExceededException, the choice holds for the next up, and
// --no-aws-limits stops the layer.
func TestStackAWSLimits(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil && os.Getenv("CLICKFLEET_REQUIRE_STACK") != "1" {
		t.Skip("redis-server is not installed; run deploy/local/stack up once (make test does)")
	}
	dir := t.TempDir()
	free := testenv.FreePorts(t, 6)
	ports := map[string]string{
		"CLICKFLEET_KINESIS_PORT": free[0], "CLICKFLEET_DYNAMODB_PORT": free[1], "CLICKFLEET_REDIS_PORT": free[2],
		"CLICKFLEET_PG_PORT": free[3], "CLICKFLEET_S3_PORT": free[4], "CLICKFLEET_KINESIS_LIMITS_PORT": free[5],
	}
	run := stackRunner(t, dir, ports)
	t.Cleanup(func() { _, _ = run("down", "--purge") })
	if out, err := run("up", "--aws-limits"); err != nil {
		t.Fatalf("up --aws-limits: %v\n%s", err, out)
	}
	status := func(want int) {
		t.Helper()
		out, err := run("status")
		if err != nil || strings.Count(out, " up ") != want || strings.Contains(out, "kinesis-limits") != (want == 6) {
			t.Fatalf("status: %v, want %d servers up\n%s", err, want, out)
		}
	}
	status(6)
	env, err := run("env")
	layer, emulator := "http://127.0.0.1:"+free[5], "http://127.0.0.1:"+free[0]
	if err != nil || !strings.Contains(env, "AWS_ENDPOINT_URL_KINESIS="+layer+"\n") || !strings.Contains(env, "CLICKFLEET_STACK_KINESIS_EMULATOR="+emulator+"\n") {
		t.Fatalf("env with the limits layer: %v\n%s", err, env)
	}
	kin := kinesis.NewFromConfig(testenv.AWSConfig(t), func(o *kinesis.Options) { o.BaseEndpoint, o.RetryMaxAttempts = aws.String(layer), 1 })
	if _, err := kin.ListStreams(context.Background(), &kinesis.ListStreamsInput{}); err != nil {
		t.Fatalf("ListStreams through the layer: %v", err)
	}
	// DescribeLimits: once per second per account. The first call passes (whatever the emulator answers).
	_, _ = kin.DescribeLimits(context.Background(), &kinesis.DescribeLimitsInput{})
	var limit *ktypes.LimitExceededException
	if _, err := kin.DescribeLimits(context.Background(), &kinesis.DescribeLimitsInput{}); !errors.As(err, &limit) {
		t.Fatalf("a second DescribeLimits at once: %v, want LimitExceededException", err)
	}
	if out, err := run("up"); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	status(6)
	if out, err := run("up", "--no-aws-limits"); err != nil {
		t.Fatalf("up --no-aws-limits: %v\n%s", err, out)
	}
	status(5)
	if env, err := run("env"); err != nil || !strings.Contains(env, "AWS_ENDPOINT_URL_KINESIS="+emulator+"\n") || !strings.Contains(env, "unset CLICKFLEET_STACK_KINESIS_EMULATOR") {
		t.Fatalf("env without the limits layer: %v\n%s", err, env)
	}
}
