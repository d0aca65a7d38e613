package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/lake"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/messages"
	"github.com/clickfleet/clickfleet/scale"
)

// scaleFlags names the flag of each setting of scale.Config (and of the settings a *consumer.ResourceError
// could carry).
var scaleFlags = map[string]string{
	"Stream": "stream", "Interval": "scale-interval", "Source": "source",
	"Lock.Table": "lease-table", "Lock.WorkerID": "instance-id", "Lock.FailoverTime": "failover-time", "FailoverTime": "failover-time",
	"Lock.TakeInterval": "take-interval", "Lock.RenewInterval": "failover-time", "RenewInterval": "failover-time",
	"Policy.ShardBytesPerSecond": "shard-bytes-per-second", "Policy.ShardRecordsPerSecond": "shard-records-per-second",
	"Policy.Target": "scale-target", "Target": "scale-target",
	"Policy.UpThreshold": "scale-up-threshold", "Policy.UpAfter": "scale-up-after", "Policy.UpCooldown": "scale-up-cooldown",
	"Policy.DownThreshold": "scale-down-threshold", "Policy.DownAfter": "scale-down-after", "Policy.DownCooldown": "scale-down-cooldown",
	"Policy.MinShards": "min-shards", "MinShards": "min-shards", "Policy.MaxShards": "max-shards",
	"Policy.CallsPerDay": "calls-per-day", "Policy.RefusedHold": "refused-hold",
}

func newScaleCommand(g *globals) *cobra.Command {
	var (
		cfg                         scale.Config
		source, workers, httpListen string
		cloudWatchDelay, emfEvery   time.Duration
	)
	host, _ := os.Hostname()
	cmd := &cobra.Command{
		Use:   "scale",
		Short: "Resize the stream to its incoming rate with UpdateShardCount (the stream autoscaler)",
		Long: `scale is the stream autoscaler (the seed's CloudWatch alarm and Lambda calling UpdateShardCount). Every
--scale-interval it reads the stream's incoming rate — CloudWatch's IncomingBytes and IncomingRecords
(--source cloudwatch, on AWS) or the consume workers' read counters on their /metrics (--source metrics
--workers URL,…, for the local stack) — and compares it with what the open shards take (1 MiB/s and 1,000
records/s each). Above --scale-up-threshold for --scale-up-after it scales up, below
--scale-down-threshold for --scale-down-after down, toward --scale-target, with UpdateShardCount
(UNIFORM_SCALING): at most twice or half the open shards per call, within --min-shards..--max-shards,
at most --calls-per-day calls in any 24 hours, after each direction's cool-down. A call the API refuses
is recorded and not asked again for --refused-hold. An on-demand stream is left alone.

One instance acts at a time: it holds a lease on a row of its own table (--lease-table, created by
'clickfleet setup'; never the consumers' lease table), where it also keeps its call history, so a second
instance takes over after --failover-time when the first dies, with the same budget and cool-downs.
--dry-run prints each decision and changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := g.log.Named("scale")
			if t := cfg.Lock.Table; t == lease.DefaultTable || t == lake.DefaultLeaseTable {
				return usagef("--lease-table (CLICKFLEET_LEASE_TABLE) %s is a consumer's lease table, whose workers would take the lock's row for a shard: give scale a table of its own (default %s, created by 'clickfleet setup')", t, scale.DefaultLockTable)
			}
			awsCfg, err := loadAWS(ctx)
			if err != nil {
				return err
			}
			switch source {
			case "cloudwatch":
				if workers != "" {
					return usagef("--workers (CLICKFLEET_WORKERS) is for --source metrics; with --source cloudwatch leave it empty")
				}
				if cloudWatchDelay < 0 {
					return usagef("--cloudwatch-delay (CLICKFLEET_CLOUDWATCH_DELAY) must not be negative, got %s", cloudWatchDelay)
				}
				cfg.Source = &scale.CloudWatch{API: cloudwatch.NewFromConfig(awsCfg), Stream: cfg.Stream, Delay: cloudWatchDelay}
			case "metrics":
				urls, err := workerURLs(workers)
				if err != nil {
					return err
				}
				cfg.Source = &scale.Workers{URLs: urls}
			default:
				return usagef("--source (CLICKFLEET_SOURCE) must be cloudwatch or metrics, not %q", source)
			}
			reg := newRegistry()
			cfg.Kinesis, cfg.Logger, cfg.Registerer = kinesis.NewFromConfig(awsCfg), log, reg
			cfg.Decisions = cmd.OutOrStdout()
			if !cfg.DryRun {
				cfg.DynamoDB = dynamodb.NewFromConfig(awsCfg)
			}
			s, err := scale.New(cfg)
			if err != nil {
				return settingUsage(err, scaleFlags)
			}
			parts := []component{{name: "scaler", run: s.Run}}
			if c, ok := scaleEMFComponent(s.OpenShards, cfg.Stream, emfEvery, cmd.OutOrStdout()); ok {
				parts = append(parts, c)
			}
			ops, ok, err := opsServer(httpListen, reg, s.Ready, log)
			if err != nil {
				return err
			}
			if ok {
				parts = append(parts, ops)
			}
			log.Info("stream autoscaler", zap.String("stream", cfg.Stream), zap.String("source", source), zap.Bool("dry_run", cfg.DryRun),
				zap.String("lease_table", cfg.Lock.Table), zap.String("instance_id", s.InstanceID()))
			return scaleError(runGroup(ctx, log, parts...))
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Stream, "stream", messages.Stream, "Kinesis stream to scale (provisioned mode; an on-demand stream is left alone)")
	f.StringVar(&cfg.Lock.Table, "lease-table", scale.DefaultLockTable, "DynamoDB table of the lock that lets one instance act at a time, and of its call history (create it with 'clickfleet setup'; not the consumers' lease table)")
	f.StringVar(&cfg.Lock.WorkerID, "instance-id", fmt.Sprintf("%s-%d", host, os.Getpid()), "this instance's id as the lock's owner; unique per process")
	f.DurationVar(&cfg.Lock.FailoverTime, "failover-time", lease.DefaultFailoverTime, "a lock not renewed for this long may be taken by another instance")
	f.DurationVar(&cfg.Lock.TakeInterval, "take-interval", 0, "how often a waiting instance reads the lock table (0: 2 x (failover-time + 25ms))")
	f.DurationVar(&cfg.Interval, "scale-interval", scale.DefaultInterval, "how often the rate is read and a decision made")
	f.StringVar(&source, "source", "cloudwatch", "where the incoming rate comes from: cloudwatch (IncomingBytes and IncomingRecords of AWS/Kinesis) or metrics (the consume workers' /metrics, --workers)")
	f.StringVar(&workers, "workers", "", "comma-separated base URLs of the consume workers' ops servers, e.g. http://127.0.0.1:9090 (--source metrics)")
	f.DurationVar(&cloudWatchDelay, "cloudwatch-delay", scale.DefaultCloudWatchDelay, "a minute's CloudWatch datapoint is read this long after the minute ends, so a minute not yet published is not taken for one without traffic (--source cloudwatch)")
	f.IntVar(&cfg.Policy.MinShards, "min-shards", scale.DefaultMinShards, "fewest open shards")
	f.IntVar(&cfg.Policy.MaxShards, "max-shards", scale.DefaultMaxShards, "most open shards")
	f.BoolVar(&cfg.DryRun, "dry-run", false, "print each decision (time, utilisation, shards now → wanted, why) and change nothing; takes no lock")
	f.Float64Var(&cfg.Policy.Target, "scale-target", scale.DefaultTarget, "utilisation a resize aims for, as a fraction of the shards' capacity")
	f.Float64Var(&cfg.Policy.UpThreshold, "scale-up-threshold", scale.DefaultUpThreshold, "scale up when utilisation stays above this fraction of the shards' capacity for --scale-up-after")
	f.DurationVar(&cfg.Policy.UpAfter, "scale-up-after", scale.DefaultUpAfter, "how long utilisation must stay above --scale-up-threshold before a scale-up")
	f.DurationVar(&cfg.Policy.UpCooldown, "scale-up-cooldown", scale.DefaultUpCooldown, "least time between two scale-ups")
	f.Float64Var(&cfg.Policy.DownThreshold, "scale-down-threshold", scale.DefaultDownThreshold, "scale down when utilisation stays below this fraction of the shards' capacity for --scale-down-after")
	f.DurationVar(&cfg.Policy.DownAfter, "scale-down-after", scale.DefaultDownAfter, "how long utilisation must stay below --scale-down-threshold before a scale-down")
	f.DurationVar(&cfg.Policy.DownCooldown, "scale-down-cooldown", scale.DefaultDownCooldown, "least time between two scale-downs")
	f.IntVar(&cfg.Policy.CallsPerDay, "calls-per-day", scale.APICallsPerDay, "most UpdateShardCount calls in any 24 hours (the API allows 10)")
	f.DurationVar(&cfg.Policy.RefusedHold, "refused-hold", scale.DefaultRefusedHold, "after the API refused a resize, do not ask again in that direction for this long")
	f.Float64Var(&cfg.Policy.ShardBytesPerSecond, "shard-bytes-per-second", scale.ShardBytesPerSecond, "one shard's write capacity in bytes/s (the Kinesis limit; lower it only to try scaling with a small load)")
	f.Float64Var(&cfg.Policy.ShardRecordsPerSecond, "shard-records-per-second", scale.ShardRecordsPerSecond, "one shard's write capacity in records/s (the Kinesis limit; lower it only to try scaling with a small load)")
	f.StringVar(&httpListen, "http-listen", "127.0.0.1:9093", "address for /metrics, /healthz and /readyz (empty: none)")
	f.DurationVar(&emfEvery, "emf-interval", defaultEMFInterval, "how often the leading instance writes a CloudWatch Embedded Metric Format line "+
		"(namespace clickfleet, metric OpenShards, dimension stream) to standard output, for capping the workers' task count on ECS/EC2 (0: none)")
	return cmd
}

// workerURLs parses --workers.
func workerURLs(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		u, err := url.Parse(part)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, usagef("--workers (CLICKFLEET_WORKERS): %q is not an http:// or https:// base URL of a worker's ops server", part)
		}
		out = append(out, strings.TrimSuffix(part, "/"))
	}
	if len(out) == 0 {
		return nil, usagef("--source metrics needs --workers (CLICKFLEET_WORKERS): the consume workers' base URLs, comma-separated")
	}
	return out, nil
}

// scaleError adds to a failure the flag that names the lock table or the stream, as consume does.
func scaleError(err error) error {
	var noTable *dtypes.ResourceNotFoundException
	var noStream *ktypes.ResourceNotFoundException
	switch {
	case err == nil:
		return nil
	case errors.Is(err, scale.ErrSharedLeaseTable):
		return usagef("%v\n  the lock table is set by --lease-table (CLICKFLEET_LEASE_TABLE): give scale a table of its own (default %s, created by 'clickfleet setup')", err, scale.DefaultLockTable)
	case errors.As(err, &noTable):
		return fmt.Errorf("%w\n  the lock table is set by --lease-table (CLICKFLEET_LEASE_TABLE): create it with 'clickfleet setup', or point the setting at one that exists", err)
	case errors.As(err, &noStream):
		return fmt.Errorf("%w\n  the stream is set by --stream (CLICKFLEET_STREAM): create it with 'clickfleet setup', or point the setting at one that exists", err)
	}
	return err
}
