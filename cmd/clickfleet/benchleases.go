package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/clickfleet/clickfleet/bench"
)

func newBenchLeasesCommand(g *globals) *cobra.Command {
	var (
		cfg bench.LeasesConfig
		out string
	)
	cmd := &cobra.Command{
		Use:   "leases",
		Short: "A fleet's lease coordinators on the local DynamoDB: read and write units, balance by load, recovery",
		Long: `A fleet's lease coordinators on the local DynamoDB: read and write units, balance by load, recovery.

It creates a fresh lease table (and its coordinator-state and worker-metrics tables) with --shards leases
and runs --workers lease coordinators in this process (no Kinesis reads: each worker reports a synthetic
load, --base-rate records/s per shard, --hot-shards of them --hot-factor times that). First the
every-worker-scan assignment runs for --baseline (the design the leader replaces, measured in the same run),
then the leader assignment for --duration: the time until balanced (no worker above 1.2x the mean
throughput), read and write units per second in steady state (as DynamoDB bills them, from item sizes),
then half way 10 % of the workers are stopped dead (their calls fail, as after kill -9) and the time until
every shard is held again, and three quarters of the way the leader is stopped dead (the time until
another leads, and until every shard is held). Results: a table, and --out JSON.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if cfg.Shards < 1 || cfg.Workers < 2 || cfg.HotShards < 0 || cfg.HotShards > cfg.Shards {
				return usagef("--shards must be positive, --workers at least 2, --hot-shards between 0 and --shards")
			}
			if cfg.Duration < 20*time.Second {
				return usagef("--duration (CLICKFLEET_DURATION) must be at least 20s, got %s", cfg.Duration)
			}
			awsCfg, err := loadAWS(ctx)
			if err != nil {
				return err
			}
			cfg.DynamoDB = dynamodb.NewFromConfig(awsCfg)
			cfg.Logger = g.log.Named("bench-leases")
			cfg.Progress = os.Stderr
			res, err := bench.Leases(ctx, cfg)
			if werr := writeJSONOut(out, res); werr != nil && err == nil {
				err = werr
			}
			if err != nil {
				return err
			}
			return writeLeases(res)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Shards, "shards", 200, "leases in the table")
	f.IntVar(&cfg.Workers, "workers", 20, "lease coordinators")
	f.DurationVar(&cfg.Duration, "duration", 90*time.Second, "the leader-mode run (the kill comes half way)")
	f.IntVar(&cfg.HotShards, "hot-shards", 0, "shards --hot-factor times hotter than the others")
	f.Float64Var(&cfg.HotFactor, "hot-factor", 10, "how much hotter the hot shards are")
	f.Float64Var(&cfg.BaseRate, "base-rate", 100, "records/s an ordinary shard reports")
	f.DurationVar(&cfg.FailoverTime, "failover-time", 10*time.Second, "the lease failover time")
	f.DurationVar(&cfg.Baseline, "baseline", 0, "how long the every-worker-scan baseline runs (0: a third of --duration, at least 20s)")
	f.StringVar(&out, "out", "", "also write the result as JSON to this file")
	return cmd
}

func writeLeases(r bench.LeasesResult) error {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "shards × workers\t%d × %d (hot %d ×%v)\n", r.Shards, r.Workers, r.HotShards, r.HotFactor)
	fmt.Fprintf(w, "read units/s\t%.1f (baseline, every worker scans: %.1f; %.1f %%)\n", r.ReadUnitsPerS, r.BaselineReadUnitsPerS, 100*r.ReadRatio)
	fmt.Fprintf(w, "write units/s\t%.1f (baseline %.1f)\n", r.WriteUnitsPerS, r.BaselineWriteUnitsPerS)
	fmt.Fprintf(w, "balanced after\t%.1f s (max/mean load %.2f then, %.2f at the end)\n", r.SecondsToBalance, r.MaxOverMeanLoad, r.MaxOverMeanLoadAtEnd)
	fmt.Fprintf(w, "recovery after killing %v\t%.1f s (failover time %.0f s)\n", r.Killed, r.RecoverySeconds, r.FailoverTimeS)
	fmt.Fprintf(w, "leader failover\t%.1f s, every shard held after %.1f s\n", r.FailoverSeconds, r.LeaderRecoverySeconds)
	fmt.Fprintf(w, "lease moves\t%d\n", r.LeaseMoves)
	fmt.Fprintf(w, "two holders at once\t%d\n", r.Violations)
	return w.Flush()
}
