package testenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// KinesisFanOut returns a Kinesis client for enhanced fan-out (SubscribeToShard over HTTP/2): the
// stack's proxy in front of kinesis-mock, named by CLICKFLEET_EFO_ENDPOINT, whose certificate the SDK
// trusts through AWS_CA_BUNDLE (both exported by the stack's env). On kinesalite, which has no
// SubscribeToShard, the test is skipped.
func KinesisFanOut(t testing.TB) *kinesis.Client {
	t.Helper()
	if os.Getenv("CLICKFLEET_STACK_KINESIS") == "kinesalite" {
		t.Skip("kinesalite has no enhanced fan-out (SubscribeToShard); the stack's kinesis-mock has")
	}
	endpoint := need(t, "CLICKFLEET_EFO_ENDPOINT", "enhanced fan-out proxy")
	c := kinesis.NewFromConfig(AWSConfig(t), func(o *kinesis.Options) { o.BaseEndpoint = aws.String(endpoint) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.ListStreams(ctx, &kinesis.ListStreamsInput{}); err != nil {
		t.Fatalf("the enhanced fan-out proxy at %s (CLICKFLEET_EFO_ENDPOINT, trusted through AWS_CA_BUNDLE=%s) does not answer: %v; %s",
			endpoint, os.Getenv("AWS_CA_BUNDLE"), err, startHint)
	}
	return c
}

// EndSubscriptions asks the stack's enhanced fan-out proxy to end the open subscriptions of the stream
// consumer named consumer — how "clean" (as Kinesis does after five minutes) or "reset" (a broken
// stream) — and returns how many it ended.
func EndSubscriptions(t testing.TB, consumer, how string) int {
	t.Helper()
	var out struct{ Ended int }
	proxyCall(t, http.MethodPost, "/-/end?"+url.Values{"consumer": {consumer}, "how": {how}}.Encode(), &out)
	return out.Ended
}

// Subscriptions returns how many subscriptions of the stream consumer named consumer the stack's enhanced
// fan-out proxy has opened so far, and how many are open now.
func Subscriptions(t testing.TB, consumer string) (opened, open int) {
	t.Helper()
	var out struct{ Opened, Open int }
	proxyCall(t, http.MethodGet, "/-/subscriptions?"+url.Values{"consumer": {consumer}}.Encode(), &out)
	return out.Opened, out.Open
}

// proxyCall calls a control path of the enhanced fan-out proxy and decodes its JSON answer into out.
func proxyCall(t testing.TB, method, path string, out any) {
	t.Helper()
	endpoint := need(t, "CLICKFLEET_EFO_ENDPOINT", "enhanced fan-out proxy")
	bundle := need(t, "AWS_CA_BUNDLE", "certificate of the enhanced fan-out proxy")
	pem, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatalf("AWS_CA_BUNDLE: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("AWS_CA_BUNDLE=%s holds no certificate", bundle)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequest(method, endpoint+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("enhanced fan-out proxy at %s (CLICKFLEET_EFO_ENDPOINT): %v; %s", endpoint, err, startHint)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("enhanced fan-out proxy %s %s: %s", method, path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("enhanced fan-out proxy %s %s: %v", method, path, fmt.Errorf("decode: %w", err))
	}
}
