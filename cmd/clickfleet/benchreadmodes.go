package main

import (
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/spf13/cobra"

	"github.com/clickfleet/clickfleet/bench"
)

func newBenchReadModesCommand() *cobra.Command {
	var (
		cfg        bench.ReadModesConfig
		out        string
		workerArgs []string
	)
	lc := &cfg.Load
	cmd := &cobra.Command{
		Use:   "readmodes",
		Short: "consume + archive under a steady load in each read mode, within Kinesis' limits: calls per shard, throttles, latencies",
		Long: `consume + archive under a steady load in each read mode, within Kinesis' limits: calls per shard, throttles, latencies.

For each of --modes in turn, on a fresh stream of --shards: one 'clickfleet consume --processor actors'
worker and one 'clickfleet archive' worker (this binary, objects rolled every --archive-interval), both
reading in that mode — polling-200ms (polling every 200 ms, the pace before the polling budget), polling
(the defaults: the budget) or efo (enhanced fan-out through --efo-endpoint) — while --rate events/s are
produced for --duration with a probe event every 250 ms. From --warmup into the load until its end it
counts each application's GetRecords calls per shard per second (their /metrics) and the read calls the
stack's limits layer refused (--limits-url, its /-/stats); the probes time put → last access in Redis and
put → the archive's checkpoint past them. Each run ends once every session row is verified and the
archive has stored every record. Needs the stack with --aws-limits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if lc.LimitsURL == "" && os.Getenv("CLICKFLEET_STACK_AWS_LIMITS") == "1" {
				lc.LimitsURL = os.Getenv("AWS_ENDPOINT_URL_KINESIS")
			}
			if lc.LimitsURL == "" {
				return usagef("--limits-url (CLICKFLEET_LIMITS_URL) is required: start the stack with 'deploy/local/stack up --aws-limits' and eval its env")
			}
			for _, m := range cfg.Modes {
				switch {
				case m != bench.ReadOldPacing && m != bench.ReadPolling && m != bench.ReadEFO:
					return usagef("--modes (CLICKFLEET_MODES): %q is not one of %s, %s, %s", m, bench.ReadOldPacing, bench.ReadPolling, bench.ReadEFO)
				case m == bench.ReadEFO && cfg.EFOEndpoint == "":
					return usagef("--modes efo needs --efo-endpoint (CLICKFLEET_EFO_ENDPOINT): the stack's fan-out proxy, which 'deploy/local/stack env' exports with kinesis-mock")
				}
			}
			awsCfg, err := loadAWS(ctx)
			if err != nil {
				return err
			}
			if lc.S3, err = newS3(awsCfg, "true"); err != nil {
				return err
			}
			if lc.Redis, err = newRedis(lc.RedisURL); err != nil {
				return err
			}
			defer lc.Redis.Close()
			if lc.Binary, err = os.Executable(); err != nil {
				return err
			}
			if lc.LogDir != "" {
				if err := os.MkdirAll(lc.LogDir, 0o755); err != nil {
					return usagef("--log-dir (CLICKFLEET_LOG_DIR): %v", err)
				}
			}
			lc.WorkerArgs, lc.Processor = workerArgs, "actors"
			lc.Progress = func(s string) { fmt.Fprintln(os.Stderr, "bench:", s) }
			res, err := bench.ReadModes(ctx, kinesis.NewFromConfig(awsCfg), dynamodb.NewFromConfig(awsCfg), cfg)
			if werr := writeReadModes(res, out); werr != nil && err == nil {
				err = werr
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&cfg.Modes, "modes", []string{bench.ReadOldPacing, bench.ReadPolling, bench.ReadEFO}, "read modes to run, in order: polling-200ms, polling, efo")
	f.StringVar(&cfg.EFOEndpoint, "efo-endpoint", "", "the workers' --efo-endpoint in the efo mode (the local stack's fan-out proxy, which its env exports)")
	f.StringVar(&lc.LimitsURL, "limits-url", "", "the stack's Kinesis limits layer, whose /-/stats count the refused calls (default: AWS_ENDPOINT_URL_KINESIS when the stack runs with --aws-limits)")
	f.Int32Var(&lc.Shards, "shards", 8, "shards of each mode's fresh stream")
	f.Float64Var(&lc.Rate, "rate", 1600, "events per second to produce (all shards together)")
	f.DurationVar(&lc.Duration, "duration", 2*time.Minute, "how long to produce in each mode")
	f.DurationVar(&lc.Warmup, "warmup", 15*time.Second, "calls and throttles are counted from this long into the load to its end")
	f.IntVar(&lc.Users, "users", 1000, "distinct users")
	f.DurationVar(&lc.ArchiveInterval, "archive-interval", 5*time.Second, "the archive worker's --buffer-interval (unchecked)")
	f.StringVar(&lc.RedisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis the workers keep state in")
	f.StringArrayVar(&workerArgs, "worker-arg", nil, "extra flag for the consume worker, e.g. --worker-arg=--flush-interval=500ms (repeatable)")
	f.StringArrayVar(&lc.ArchiveArgs, "archive-arg", nil, "extra flag for the archive worker (repeatable)")
	f.StringVar(&lc.LogDir, "log-dir", "", "directory for the workers' logs (default: a temporary one)")
	f.StringVar(&out, "out", "", "also write the results as JSON to this file")
	return cmd
}

// writeReadModes prints the modes' table and writes --out.
func writeReadModes(res []bench.ReadModeResult, out string) error {
	if len(res) == 0 {
		return nil
	}
	for _, rm := range res {
		fmt.Printf("\n== %s %v\n", rm.Mode, rm.Args)
		if err := bench.WriteTable(os.Stdout, rm.Result); err != nil {
			return err
		}
	}
	fmt.Println()
	if err := bench.WriteReadModes(os.Stdout, res); err != nil {
		return err
	}
	return writeJSONOut(out, res)
}
