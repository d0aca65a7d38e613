package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/clickfleet/clickfleet/bench"
)

func newBenchCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load tests against real shards (the local stack or AWS), each beside a baseline from the same run",
	}
	cmd.AddCommand(newBenchDrainCommand(g))
	return cmd
}

func newBenchDrainCommand(g *globals) *cobra.Command {
	var (
		cfg      bench.DrainConfig
		redisURL string
		out      string
	)
	cmd := &cobra.Command{
		Use:   "drain",
		Short: "Pre-fill a fresh stream, then time consumer workers draining it beside a bare GetRecords loop",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			awsCfg, err := loadAWS(ctx)
			if err != nil {
				return err
			}
			if cfg.Processor == "count" {
				opts, err := redis.ParseURL(redisURL)
				if err != nil {
					return usagef("--redis-url (CLICKFLEET_REDIS_URL) %q: %v", redisURL, err)
				}
				cfg.Redis = redis.NewClient(opts)
				defer cfg.Redis.Close()
			}
			cfg.Logger = g.log.Named("bench")
			cfg.Progress = func(s string) { fmt.Fprintln(os.Stderr, "bench:", s) }
			res, err := bench.Drain(ctx, kinesis.NewFromConfig(awsCfg), dynamodb.NewFromConfig(awsCfg), cfg)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "drain\t%d records\t%d shards\t%d users\t%d CPUs\n", res.Records, res.Shards, res.Users, res.CPUs)
			fmt.Fprintf(tw, "pre-fill (PutRecords)\t%.2f s\t%.0f records/s\t\n", res.PrefillSeconds, res.PrefillRate)
			fmt.Fprintf(tw, "bare GetRecords loop\t%.2f s\t%.0f records/s\t(baseline)\n", res.BareSeconds, res.BareRate)
			fmt.Fprintf(tw, "%d worker(s), %s\t%.2f s\t%.0f records/s\t%.0f%% of baseline\n", res.Workers, res.Processor, res.WorkerSeconds, res.WorkerRate, 100*res.Ratio)
			if err := tw.Flush(); err != nil {
				return err
			}
			if out != "" {
				b, err := json.MarshalIndent(res, "", "  ")
				if err != nil {
					return err
				}
				if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
					return fmt.Errorf("--out %s: %w", out, err)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Int32Var(&cfg.Shards, "shards", 8, "shards of the fresh stream")
	f.Int64Var(&cfg.Records, "records", 100000, "records to pre-fill")
	f.IntVar(&cfg.Users, "users", 10000, "distinct users")
	f.IntVar(&cfg.Writers, "writers", 4, "concurrent PutRecords loops for the pre-fill")
	f.IntVar(&cfg.Workers, "workers", 1, "consumer workers (in this process)")
	f.StringVar(&cfg.Processor, "processor", "noop", `"noop" (the consumer alone) or "count" (per-user counts in Redis, verified)`)
	f.StringVar(&redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis for the count processor")
	f.StringVar(&out, "out", "", "also write the result as JSON to this file")
	return cmd
}
