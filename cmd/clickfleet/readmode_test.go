package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickfleet/clickfleet/consumer/fanout"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// A bad read-mode setting is refused at start (exit 2), naming the flag and its variable.
func TestReadModeFlagsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"consume --read-mode", []string{"consume", "--read-mode", "push"}, "--read-mode (CLICKFLEET_READ_MODE): must be polling or efo"},
		{"archive --read-mode", []string{"archive", "--read-mode", "push", "--buffer-interval", "60s"}, "--read-mode (CLICKFLEET_READ_MODE): must be polling or efo"},
		{"consume --efo-endpoint", []string{"consume", "--read-mode", "efo", "--efo-endpoint", "127.0.0.1:4573"}, "--efo-endpoint (CLICKFLEET_EFO_ENDPOINT) must be an http:// or https:// URL"},
		{"consume --efo-consumer-name", []string{"consume", "--read-mode", "efo", "--efo-consumer-name", strings.Repeat("c", 129)}, "--efo-consumer-name (CLICKFLEET_EFO_CONSUMER_NAME): must be at most 128 characters"},
		{"tail --read-mode", []string{"tail", "--read-mode", "push"}, "--read-mode (CLICKFLEET_READ_MODE) must be polling or efo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []string{"CLICKFLEET_READ_MODE", "CLICKFLEET_EFO_ENDPOINT", "CLICKFLEET_EFO_CONSUMER_NAME"} {
				t.Setenv(v, "")
			}
			root := newRootCommand()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(append(tc.args, "--http-listen", ""))
			if tc.args[0] == "tail" {
				root.SetArgs(tc.args)
			}
			err := root.Execute()
			var usage usageError
			if !errors.As(err, &usage) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a usage error (exit 2) saying %q", err, tc.want)
			}
		})
	}
}

// A stream consumer deregistered while `consume --read-mode efo` reads through it stops the worker: its
// next subscription is refused (ResourceNotFoundException), and the process exits 1 naming
// --efo-consumer-name. kinesis-mock keeps the open subscriptions going after a deregistration, so the
// stack's proxy ends them, as Kinesis would within five minutes.
func TestConsumeExitsWhenItsStreamConsumerIsDeregistered(t *testing.T) {
	kin, ddb, efo := testenv.Kinesis(t), testenv.DynamoDB(t), testenv.KinesisFanOut(t)
	testenv.Redis(t)
	stream := testenv.Stream(t, kin, 2)
	leases := testenv.LeaseTable(t, ddb)
	consumerName := testenv.Name(t, "efo")
	cmd := exec.Command(testenv.Binary(t), "consume", "--read-mode", "efo", "--efo-consumer-name", consumerName,
		"--processor", "count", "--stream", stream, "--lease-table", leases, "--redis-url", os.Getenv("CLICKFLEET_REDIS_URL"),
		"--key-prefix", testenv.Name(t, "cf")+":", "--worker-id", "w1", "--http-listen", "", "--log-format", "json", "--take-interval", "300ms")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("consume's output:\n%s", tail(stderr.String())) // read once the process is gone
		}
	})
	testenv.WaitForState(t, "both shards subscribed", 60*time.Second, func() (bool, string) {
		_, open := testenv.Subscriptions(t, consumerName)
		return open == 2, fmt.Sprintf("%d open", open)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := fanout.EnsureConsumer(ctx, efo, stream, consumerName, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := efo.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: aws.String(c.ARN)}); err != nil {
		t.Fatal(err)
	}
	if n := testenv.EndSubscriptions(t, consumerName, "clean"); n == 0 {
		t.Fatal("the proxy ended no subscription")
	}
	start := time.Now()
	select {
	case <-exited:
		err = waitErr
	case <-time.After(30 * time.Second):
		t.Fatal("consume still ran 30 s after its stream consumer was deregistered")
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("consume ended with %v, want exit status 1\n%s", err, tail(stderr.String()))
	}
	last := lastLine(stderr.String())
	for _, want := range []string{"stream consumer " + consumerName, "ResourceNotFoundException", "--efo-consumer-name (CLICKFLEET_EFO_CONSUMER_NAME)"} {
		if !strings.Contains(last, want) {
			t.Errorf("the error does not say %q:\n%s", want, last)
		}
	}
	t.Logf("exit 1 %s after the subscriptions ended: %s", time.Since(start).Round(time.Millisecond), last)
}

// --read-mode efo against an endpoint that does not serve enhanced fan-out (kinesis-mock's plain port:
// SubscribeToShard without the initial-response event) exits 1 naming --efo-endpoint, instead of
// retrying for ever.
func TestConsumeExitsWhenTheEfoEndpointServesNoFanOut(t *testing.T) {
	kin, ddb := testenv.Kinesis(t), testenv.DynamoDB(t)
	testenv.KinesisFanOut(t) // kinesis-mock, whose plain port is such an endpoint
	testenv.Redis(t)
	stream := testenv.Stream(t, kin, 1)
	leases := testenv.LeaseTable(t, ddb)
	cmd := exec.Command(testenv.Binary(t), "consume", "--read-mode", "efo", "--efo-endpoint", os.Getenv("AWS_ENDPOINT_URL_KINESIS"),
		"--processor", "count", "--stream", stream, "--lease-table", leases, "--redis-url", os.Getenv("CLICKFLEET_REDIS_URL"),
		"--key-prefix", testenv.Name(t, "cf")+":", "--worker-id", "w1", "--http-listen", "", "--log-format", "json", "--take-interval", "300ms")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("consume still ran 30 s after start with a plain-HTTP --efo-endpoint\n%s", tail(stderr.String()))
	}
	var exit *exec.ExitError
	if !errors.As(waitErr, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("consume ended with %v, want exit status 1\n%s", waitErr, tail(stderr.String()))
	}
	last := lastLine(stderr.String())
	for _, want := range []string{"does not serve enhanced fan-out", "--efo-endpoint (CLICKFLEET_EFO_ENDPOINT)"} {
		if !strings.Contains(last, want) {
			t.Errorf("the error does not say %q:\n%s", want, last)
		}
	}
}
