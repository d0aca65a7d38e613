package main

import (
	"net/http"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/clickfleet/clickfleet/ingest"
)

func newIngestCommand(g *globals) *cobra.Command {
	var (
		cfg                   = ingest.DefaultConfig()
		keysFile, keys, corsS string
	)
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Serve the HTTP ingest API: validate, authenticate, limit and put events on the stream",
		Long: `ingest serves POST /v1/events: one JSON event, a JSON array (Content-Type application/json) or
NDJSON (application/x-ndjson), in either seed schema, authenticated by an x-api-key header. Valid events go
to --stream with PutRecords (partition key user_id), coalesced across requests; the answer (200) comes only
after every event is stored. Invalid events fail the request with 400 and field errors, or with
--invalid-to-errors go to --errors-stream (202). 401/403 for a missing/unknown key, 413 over a size limit,
415 for another content type, 429 with Retry-After over the key's rate, 503 when Kinesis does not take the
events (the answer lists which). Also serves /healthz, /readyz and /metrics.

API keys come from --api-keys (comma-separated) and/or --api-keys-file (one "KEY" or "NAME KEY" per line);
they are never logged.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Keys, err = ingest.NewKeys(strings.Split(keys, ",")); err != nil {
				return usagef("--api-keys (CLICKFLEET_API_KEYS): %v", err)
			}
			if keysFile != "" {
				fk, err := ingest.LoadKeysFile(keysFile)
				if err != nil {
					return usagef("--api-keys-file (CLICKFLEET_API_KEYS_FILE): %v", err)
				}
				cfg.Keys = cfg.Keys.Merge(fk)
			}
			cfg.CORSOrigins = nil
			for _, o := range strings.Split(corsS, ",") {
				if o = strings.TrimSpace(o); o != "" {
					cfg.CORSOrigins = append(cfg.CORSOrigins, o)
				}
			}
			if err := cfg.Validate(); err != nil {
				return settingUsage(err, ingestFlags)
			}
			awsCfg, err := loadAWS(cmd.Context())
			if err != nil {
				return err
			}
			// The ingest retries PutRecords itself (per record, within --put-attempts), so the SDK does not.
			kin := kinesis.NewFromConfig(awsCfg, func(o *kinesis.Options) {
				o.RetryMaxAttempts = 1
				o.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
					t.MaxIdleConnsPerHost = 4 * cfg.PutConcurrency
				})
			})
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			srv, err := ingest.New(cfg, kin, ingest.Options{Logger: g.log, Registerer: reg, Gatherer: reg})
			if err != nil {
				return err
			}
			return runGroup(cmd.Context(), g.log, component{name: "ingest server", run: srv.Run})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "address to serve HTTP on")
	f.StringVar(&cfg.Stream, "stream", cfg.Stream, "Kinesis stream for events")
	f.StringVar(&cfg.ErrorStream, "errors-stream", cfg.ErrorStream, "Kinesis stream for invalid events with --invalid-to-errors")
	f.BoolVar(&cfg.InvalidToErrors, "invalid-to-errors", false, "accept requests with invalid events: store the valid ones, send the invalid ones to --errors-stream, answer 202")
	f.StringVar(&keys, "api-keys", "", "accepted API keys, comma-separated (at least 8 characters each)")
	f.StringVar(&keysFile, "api-keys-file", "", `file of accepted API keys, one "KEY" or "NAME KEY" per line (# comments)`)
	f.BoolVar(&cfg.AllowAnonymous, "allow-anonymous", false, "serve requests without an x-api-key header (local experiments only)")
	f.IntVar(&cfg.MaxEventsPerRequest, "max-events", cfg.MaxEventsPerRequest, "most events per request (413 beyond)")
	f.IntVar(&cfg.MaxEventBytes, "max-event-bytes", cfg.MaxEventBytes, "largest event in bytes, at most 1048576, Kinesis' record limit (413 beyond)")
	f.Int64Var(&cfg.MaxRequestBytes, "max-request-bytes", cfg.MaxRequestBytes, "largest request body in bytes, enforced while reading (413 beyond)")
	f.DurationVar(&cfg.MaxClockSkew, "max-clock-skew", cfg.MaxClockSkew, "how far in the future an event timestamp may be (0: no check)")
	f.DurationVar(&cfg.MaxEventAge, "max-event-age", cfg.MaxEventAge, "reject event timestamps older than this (0: any age)")
	f.Float64Var(&cfg.RateLimit, "rate-limit", cfg.RateLimit, "events per second per API key (0: no limit); 429 with Retry-After beyond")
	f.Float64Var(&cfg.RateBurst, "rate-burst", cfg.RateBurst, "token bucket size per API key, in events")
	f.DurationVar(&cfg.Linger, "linger", cfg.Linger, "how long to wait for more events before a PutRecords call that is not full")
	f.IntVar(&cfg.MaxBatchRecords, "batch-records", cfg.MaxBatchRecords, "most records per PutRecords call (1-500)")
	f.IntVar(&cfg.MaxBatchBytes, "batch-bytes", cfg.MaxBatchBytes, "most bytes per PutRecords call (at most 5 MiB)")
	f.IntVar(&cfg.PutConcurrency, "put-concurrency", cfg.PutConcurrency, "PutRecords calls in flight per stream")
	f.IntVar(&cfg.PutAttempts, "put-attempts", cfg.PutAttempts, "tries per record before it is reported failed (503)")
	f.DurationVar(&cfg.PutBackoff, "put-backoff", cfg.PutBackoff, "first pause before a PutRecords retry (doubles up to 1s)")
	f.DurationVar(&cfg.PutTimeout, "put-timeout", cfg.PutTimeout, "timeout of one PutRecords call")
	f.DurationVar(&cfg.ReadHeaderTimeout, "read-header-timeout", cfg.ReadHeaderTimeout, "time to read a request's headers")
	f.DurationVar(&cfg.ReadTimeout, "read-timeout", cfg.ReadTimeout, "time to read a whole request (408 beyond)")
	f.DurationVar(&cfg.WriteTimeout, "write-timeout", cfg.WriteTimeout, "time from the end of the headers to the end of the answer (at least put-attempts × put-timeout)")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "close keep-alive connections idle this long")
	f.IntVar(&cfg.MaxHeaderBytes, "max-header-bytes", cfg.MaxHeaderBytes, "largest request header block in bytes")
	f.IntVar(&cfg.MaxConnections, "max-connections", cfg.MaxConnections, "most open client connections (0: no limit)")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "time to drain requests in flight on SIGTERM")
	f.StringVar(&corsS, "cors-origins", "", `browser origins allowed by CORS, comma-separated, or "*" (empty: CORS off)`)
	return cmd
}

// ingestFlags names the flag of each ingest.Config field.
var ingestFlags = map[string]string{
	"Listen": "listen", "Stream": "stream", "ErrorStream": "errors-stream", "InvalidToErrors": "invalid-to-errors",
	"Keys": "api-keys", "AllowAnonymous": "allow-anonymous", "MaxEventsPerRequest": "max-events",
	"MaxEventBytes": "max-event-bytes", "MaxRequestBytes": "max-request-bytes", "MaxClockSkew": "max-clock-skew",
	"MaxEventAge": "max-event-age", "RateLimit": "rate-limit", "RateBurst": "rate-burst", "Linger": "linger",
	"MaxBatchRecords": "batch-records", "MaxBatchBytes": "batch-bytes", "PutConcurrency": "put-concurrency",
	"PutAttempts": "put-attempts", "PutBackoff": "put-backoff", "PutTimeout": "put-timeout",
	"ReadHeaderTimeout": "read-header-timeout", "ReadTimeout": "read-timeout", "WriteTimeout": "write-timeout",
	"IdleTimeout": "idle-timeout", "MaxHeaderBytes": "max-header-bytes", "MaxConnections": "max-connections",
	"ShutdownTimeout": "shutdown-timeout", "CORSOrigins": "cors-origins",
}
