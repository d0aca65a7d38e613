package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickfleet/clickfleet/internal/faults"
	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// consume exits 1 within 15 s when what it needs does not exist or may not be used — with the default --http-listen, whose
// server used to keep a failed process alive — and the message names the resource and its setting.
func TestConsumeExitsOnAMissingResource(t *testing.T) {
	kin, ddb := testenv.Kinesis(t), testenv.DynamoDB(t)
	testenv.Redis(t)
	if l, err := net.Listen("tcp", "127.0.0.1:9090"); err != nil {
		t.Fatalf("the default --http-listen 127.0.0.1:9090 is taken (stop the process using it): %v", err)
	} else {
		l.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream := testenv.Stream(t, kin, 1)
	leases := testenv.LeaseTable(t, ddb)
	sessions := testenv.Name(t, "sessions")
	if _, err := provision.EnsureSessionsTable(ctx, ddb, sessions); err != nil {
		t.Fatal(err)
	}
	offers, errs := testenv.Stream(t, kin, 1), testenv.Stream(t, kin, 1)
	t.Cleanup(func() {
		_, _ = ddb.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(sessions)})
	})
	// A record, so that the actors have a session to write.
	_, err := kin.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: []ktypes.PutRecordsRequestEntry{{
		Data: []byte(`{"user_id":"u1","event_timestamp":1626091318000,"event_name":"search","event_type":"click"}`), PartitionKey: aws.String("u1")}}})
	if err != nil {
		t.Fatal(err)
	}
	missing := testenv.Name(t, "missing")
	// A DynamoDB endpoint that denies UpdateItem: a task role without dynamodb:UpdateItem on the lease table.
	layer, deniedEndpoint := testenv.AWSFaultLayer(t, os.Getenv("AWS_ENDPOINT_URL_DYNAMODB"), 1)
	if err := layer.Set(faults.Fault{Kind: faults.AccessDenied, Fraction: 1, Operations: []string{"UpdateItem"}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		args        []string
		env         []string
		wantInError []string
	}{
		{"stream", []string{"--stream", missing}, nil, []string{"stream " + missing, "--stream (CLICKFLEET_STREAM)", "clickfleet setup"}},
		{"lease table", []string{"--lease-table", missing}, nil, []string{"lease table " + missing, "--lease-table (CLICKFLEET_LEASE_TABLE)", "clickfleet setup"}},
		{"sessions table", []string{"--sessions-table", missing}, nil, []string{"sessions table " + missing, "--sessions-table (CLICKFLEET_SESSIONS_TABLE)", "clickfleet setup"}},
		{"lease table denied", nil, []string{"AWS_ENDPOINT_URL_DYNAMODB=" + deniedEndpoint},
			[]string{"lease table " + leases, "AccessDeniedException", "--lease-table (CLICKFLEET_LEASE_TABLE)", "may use it"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"consume", "--stream", stream, "--lease-table", leases, "--sessions-table", sessions,
				"--offers-stream", offers, "--errors-stream", errs, "--redis-url", os.Getenv("CLICKFLEET_REDIS_URL"),
				"--key-prefix", testenv.Name(t, "cf") + ":", "--worker-id", "w1", "--flush-interval", "200ms", "--log-format", "json",
				"--geo-mmdb", ""}, tc.args...)
			cmd := exec.Command(testenv.Binary(t), args...)
			cmd.Env = append(os.Environ(), tc.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			start := time.Now()
			var err error
			select {
			case err = <-done:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("consume still ran 15 s after start with a missing %s\n%s", tc.name, tail(stderr.String()))
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("consume ended with %v after %s, want exit status 1\n%s", err, time.Since(start).Round(time.Millisecond), tail(stderr.String()))
			}
			last := lastLine(stderr.String())
			for _, want := range tc.wantInError {
				if !strings.Contains(last, want) {
					t.Errorf("the error does not say %q:\n%s", want, last)
				}
			}
			t.Logf("exit 1 after %s: %s", time.Since(start).Round(time.Millisecond), last)
		})
	}
}

// lastLine returns what the process printed after its last JSON log line: the error main prints.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	var out []string
	for i := len(lines) - 1; i >= 0 && !strings.HasPrefix(lines[i], "{"); i-- {
		out = append([]string{lines[i]}, out...)
	}
	return strings.Join(out, "\n")
}

func tail(s string) string {
	if len(s) > 3000 {
		return fmt.Sprint("…", s[len(s)-3000:])
	}
	return s
}
