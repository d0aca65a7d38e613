package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/spf13/pflag"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/consumer/streamtail"
)

// readFlags are the read mode's flags that are not consumer.Config fields: where the EFO read mode's
// calls go.
type readFlags struct {
	efoEndpoint string
}

// readModeHelp is --read-mode's help, shared by the commands that read a stream.
const readModeHelp = "how shards are read: polling (GetRecords; every polling application shares a shard's 5 calls and 2 MiB per second) or " +
	"efo (enhanced fan-out: SubscribeToShard through a stream consumer of this application's own, 2 MiB per second per shard, records pushed as they arrive; billed per consumer-shard hour)"

// efoEndpointHelp is --efo-endpoint's help.
const efoEndpointHelp = "endpoint of the efo read mode's calls (SubscribeToShard over HTTP/2, the stream consumer's registration); " +
	"empty: the SDK's Kinesis endpoint (AWS's, or AWS_ENDPOINT_URL_KINESIS). The local stack exports its enhanced fan-out proxy here"

// register declares --read-mode, --efo-consumer-name and --efo-endpoint for a worker's configuration.
func (r *readFlags) register(f *pflag.FlagSet, cfg *consumer.Config) {
	f.StringVar((*string)(&cfg.ReadMode), "read-mode", string(consumer.Polling), readModeHelp)
	f.StringVar(&cfg.ConsumerName, "efo-consumer-name", "", "stream consumer of the efo read mode, registered unless it exists (empty: the lease table's name)")
	f.StringVar(&r.efoEndpoint, "efo-endpoint", "", efoEndpointHelp)
}

// check refuses an --efo-endpoint that is not an http(s) URL.
func (r *readFlags) check() error {
	if r.efoEndpoint == "" {
		return nil
	}
	u, err := url.Parse(r.efoEndpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return usagef("--efo-endpoint (%s) must be an http:// or https:// URL, not %q", envName("efo-endpoint"), r.efoEndpoint)
	}
	return nil
}

// apply gives cfg its fan-out client in the efo read mode: a Kinesis client on --efo-endpoint, or on the
// SDK's endpoint when it is empty.
func (r *readFlags) apply(cfg *consumer.Config, awsCfg aws.Config) {
	if cfg.ReadMode != consumer.EFO {
		return
	}
	cfg.FanOut = efoClient(awsCfg, r.efoEndpoint)
}

// efoClient is a Kinesis client for enhanced fan-out's calls on endpoint (the SDK's when empty).
func efoClient(awsCfg aws.Config, endpoint string) *kinesis.Client {
	return kinesis.NewFromConfig(awsCfg, func(o *kinesis.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.HTTPClient = withResponseHeaderTimeout(o.HTTPClient, efoResponseHeaderTimeout)
	})
}

// efoResponseHeaderTimeout bounds the wait for each efo call's response headers (a subscription's come
// with its initial response, before any event): an endpoint that takes the request and never answers
// fails the attempt, which the SDK's retryer and the worker's own retries then repeat, instead of holding
// the worker's start or a shard's resubscription for good.
var efoResponseHeaderTimeout = 10 * time.Second

// withResponseHeaderTimeout returns the SDK's buildable HTTP client c with its transport's response header
// timeout set to d; another client is returned as it is.
func withResponseHeaderTimeout(c aws.HTTPClient, d time.Duration) aws.HTTPClient {
	if c == nil {
		c = awshttp.NewBuildableClient()
	}
	b, ok := c.(*awshttp.BuildableClient)
	if !ok {
		return c
	}
	return b.WithTransportOptions(func(t *http.Transport) { t.ResponseHeaderTimeout = d })
}

// tailReadMode are tail's read-mode flags.
type tailReadMode struct {
	mode, consumerName string
	readFlags
}

func (r *tailReadMode) register(f *pflag.FlagSet) {
	f.StringVar(&r.mode, "read-mode", string(consumer.Polling), readModeHelp)
	f.StringVar(&r.consumerName, "efo-consumer-name", "", "stream consumer of the efo read mode (empty: clickfleet-tail-<host>-<pid>, deregistered at exit)")
	f.StringVar(&r.efoEndpoint, "efo-endpoint", "", efoEndpointHelp)
}

func (r *tailReadMode) check() error { return checkReadMode(r.mode, &r.readFlags) }

// options are the tail's streamtail.Options.
func (r *tailReadMode) options(awsCfg aws.Config, latest bool) streamtail.Options {
	o := streamtail.Options{Latest: latest}
	if r.mode != string(consumer.EFO) {
		return o
	}
	o.FanOut, o.ConsumerName = efoClient(awsCfg, r.efoEndpoint), r.consumerName
	if o.ConsumerName == "" {
		host, _ := os.Hostname()
		o.ConsumerName = fmt.Sprintf("clickfleet-tail-%s-%d", host, os.Getpid())
	}
	return o
}

// checkReadMode checks the --read-mode and --efo-endpoint of a command without a consumer.Config (setup,
// tail).
func checkReadMode(mode string, r *readFlags) error {
	if mode != string(consumer.Polling) && mode != string(consumer.EFO) {
		return usagef("--read-mode (%s) must be polling or efo, not %q", envName("read-mode"), mode)
	}
	return r.check()
}
