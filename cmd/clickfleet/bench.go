package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/spf13/cobra"

	"github.com/clickfleet/clickfleet/bench"
)

func newBenchCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load tests against real shards (the local stack or AWS), each beside a baseline from the same run",
	}
	cmd.AddCommand(newBenchDrainCommand(g))
	cmd.AddCommand(newBenchChaosCommand())
	cmd.AddCommand(newBenchLeasesCommand(g))
	cmd.AddCommand(newBenchReadModesCommand())
	for _, sc := range []struct{ name, short string }{
		{bench.Steady, "A fixed rate through worker processes: throughput, put → counted latency, CPU and RSS"},
		{bench.Failover, "kill -9 one of the workers under load: the stall and the time until every shard is held again"},
		{bench.Reshard, "Double the shards (UpdateShardCount) under load: the stall and the recovery, counts verified"},
		{bench.ScaleOut, "Start with one worker and add the others under load: throughput as the leases spread"},
	} {
		cmd.AddCommand(newBenchLoadCommand(g, sc.name, sc.short))
	}
	return cmd
}

func newBenchLoadCommand(g *globals, scenario, short string) *cobra.Command {
	var (
		cfg        = bench.LoadConfig{Scenario: scenario}
		out, html  string
		workerArgs []string
	)
	cmd := &cobra.Command{
		Use:   scenario,
		Short: short,
		Long: short + `.

It creates a fresh stream, lease table (and, for the actors, sessions table and output streams), starts
'clickfleet consume' worker processes (this binary), produces at --rate with a probe event every 250 ms
for a fresh user to time put → user state in Redis and put → session row in DynamoDB, samples every
worker's /metrics and resource use each second, and after the load waits until every record is accounted
for exactly once (verified). Results: a table, --out JSON, --html a page with charts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			awsCfg, err := loadAWS(ctx)
			if err != nil {
				return err
			}
			cfg.Redis, err = newRedis(cfg.RedisURL)
			if err != nil {
				return err
			}
			defer cfg.Redis.Close()
			if cfg.Binary, err = os.Executable(); err != nil {
				return err
			}
			cfg.WorkerArgs = workerArgs
			cfg.Progress = func(s string) { fmt.Fprintln(os.Stderr, "bench:", s) }
			res, err := bench.Load(ctx, kinesis.NewFromConfig(awsCfg), dynamodb.NewFromConfig(awsCfg), cfg)
			if err != nil {
				return err
			}
			if err := bench.WriteTable(os.Stdout, res); err != nil {
				return err
			}
			return writeOutputs(res, out, html)
		},
	}
	f := cmd.Flags()
	f.Int32Var(&cfg.Shards, "shards", 4, "shards of the fresh stream")
	f.IntVar(&cfg.Workers, "workers", 2, "worker processes")
	f.Float64Var(&cfg.Rate, "rate", 1000, "events per second to produce")
	f.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long to produce")
	f.IntVar(&cfg.Users, "users", 1000, "distinct users")
	f.StringVar(&cfg.Processor, "processor", "actors", `the workers' processor: "actors" (sessions and user state; verified by each user's session event counts) or "count"`)
	f.StringVar(&cfg.RedisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis the workers keep state in")
	f.StringArrayVar(&workerArgs, "worker-arg", []string{"--failover-time=10s"}, "extra flag for every worker, e.g. --worker-arg=--failover-time=5s (repeatable)")
	f.StringVar(&cfg.LogDir, "log-dir", "", "directory for the workers' logs (default: a temporary one)")
	f.StringVar(&out, "out", "", "also write the result as JSON to this file")
	f.StringVar(&html, "html", "", "also write an HTML page with charts to this file")
	return cmd
}

// writeJSONOut writes v as indented JSON to out, a bench command's --out file; "" writes nothing.
func writeJSONOut(out string, v any) error {
	if out == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("--out %s: %w", out, err)
	}
	return nil
}

func writeOutputs(res bench.LoadResult, out, html string) error {
	if err := writeJSONOut(out, res); err != nil {
		return err
	}
	if html != "" {
		f, err := os.Create(html)
		if err != nil {
			return fmt.Errorf("--html %s: %w", html, err)
		}
		if err := bench.WriteHTML(f, res); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	return nil
}

func newBenchDrainCommand(g *globals) *cobra.Command {
	var (
		cfg                bench.DrainConfig
		redisURL           string
		out                string
		pathStyle, geoMMDB string
		stackDir, profile  string
	)
	cmd := &cobra.Command{
		Use:   "drain",
		Short: "Pre-fill a fresh stream, then time consumer workers draining it beside a bare GetRecords loop",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if stackDir != "" {
				servers, err := bench.StackServers(stackDir)
				if err != nil {
					return usagef("--stack-dir (%s): %v", envName("stack-dir"), err)
				}
				cfg.Servers = servers
			}
			awsCfg, err := loadAWS(ctx)
			if err != nil {
				return err
			}
			if cfg.Processor != "noop" {
				cfg.Redis, err = newRedis(redisURL)
				if err != nil {
					return err
				}
				defer cfg.Redis.Close()
			}
			cfg.Logger = g.log.Named("bench")
			if cfg.Processor == "archive" {
				s3c, err := newS3(awsCfg, pathStyle)
				if err != nil {
					return err
				}
				cfg.S3 = s3c
				if geoMMDB != "" {
					gs := geoSettings{mmdb: geoMMDB, cacheSize: 100000, ttl: 7 * 24 * time.Hour, notFoundTTL: time.Hour, timeout: time.Second}
					resolver, closeGeo, err := newGeoResolver(gs, cfg.Redis, "bench:", nil, cfg.Logger)
					if err != nil {
						return err
					}
					defer closeGeo()
					if resolver != nil {
						cfg.ArchiveGeo = resolver
					}
				}
			}
			if profile != "" {
				pf, err := os.Create(profile)
				if err != nil {
					return usagef("--cpu-profile (%s): %v", envName("cpu-profile"), err)
				}
				defer pf.Close() // on failure; closed and checked below otherwise
				cfg.CPUProfile = pf
			}
			cfg.Progress = func(s string) { fmt.Fprintln(os.Stderr, "bench:", s) }
			res, err := bench.Drain(ctx, kinesis.NewFromConfig(awsCfg), dynamodb.NewFromConfig(awsCfg), cfg)
			if err != nil {
				return err
			}
			if pf, ok := cfg.CPUProfile.(*os.File); ok {
				if err := pf.Close(); err != nil {
					return fmt.Errorf("--cpu-profile %s: %w", profile, err)
				}
			}
			if err := writeDrainTable(os.Stdout, res); err != nil {
				return err
			}
			return writeJSONOut(out, res)
		},
	}
	f := cmd.Flags()
	f.Int32Var(&cfg.Shards, "shards", 8, "shards of the fresh stream")
	f.Int64Var(&cfg.Records, "records", 100000, "records to pre-fill")
	f.IntVar(&cfg.Users, "users", 10000, "distinct users")
	f.IntVar(&cfg.Writers, "writers", 4, "concurrent PutRecords loops for the pre-fill")
	f.IntVar(&cfg.Workers, "workers", 1, "consumer workers (in this process)")
	f.StringVar(&cfg.Processor, "processor", "noop", `"noop" (the consumer alone), "count" (per-user counts in Redis, verified), "actors" (sessions and user state, verified), "lambda" (the seeds' per-record writes, a baseline) or "archive" (raw and enriched Parquet objects in S3, read back and verified)`)
	f.IntVar(&cfg.ArchiveBufferBytes, "buffer-bytes", 0, "archive: roll objects at this many raw bytes (0: the archive's default, 3 MiB)")
	f.StringVar(&pathStyle, "s3-path-style", "auto", "archive: path-style S3 addressing: auto (on when AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL is set), true or false")
	f.StringVar(&geoMMDB, "geo-mmdb", geoAuto, "archive: geo database for the Parquet rows' location (auto as for consume; empty: none)")
	f.StringVar(&redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis for the count processor")
	f.StringVar(&stackDir, "stack-dir", "", "the local stack's directory (deploy/local/stack's): report its servers' CPU in each phase, from their PID files; empty: none")
	f.StringVar(&profile, "cpu-profile", "", "write a CPU profile (pprof) of the workers' phase to this file")
	f.StringVar(&out, "out", "", "also write the result as JSON to this file")
	return cmd
}

// writeDrainTable writes a drain's result as a table.
func writeDrainTable(w io.Writer, res bench.DrainResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "drain\t%d records\t%d shards\t%d users\t%d CPUs\n", res.Records, res.Shards, res.Users, res.CPUs)
	fmt.Fprintf(tw, "pre-fill (PutRecords)\t%.2f s\t%.0f records/s\t\n", res.PrefillSeconds, res.PrefillRate)
	fmt.Fprintf(tw, "bare GetRecords loop\t%.2f s\t%.0f records/s\t(baseline)\n", res.BareSeconds, res.BareRate)
	fmt.Fprintf(tw, "%d worker(s), %s\t%.2f s\t%.0f records/s\t%.0f%% of baseline\n", res.Workers, res.Processor, res.WorkerSeconds, res.WorkerRate, 100*res.Ratio)
	fmt.Fprintf(tw, "CPU, bare loop\t%.2f s\t%.1f µs/record\t(baseline)\n", res.BareCPUSeconds, res.BareCPUPerRecord/1e3)
	fmt.Fprintf(tw, "CPU, worker(s)\t%.2f s\t%.1f µs/record\t%.2f× baseline\n", res.WorkersCPUSeconds, res.WorkersCPUPerRecord/1e3, res.CPURatio)
	for _, s := range res.Servers {
		fmt.Fprintf(tw, "CPU, %s (PID %d)\tbare loop %.2f s\tworkers %.2f s\t%.1f µs/record\n", s.Name, s.PID, s.BareCPUSeconds, s.WorkersCPUSeconds, s.WorkersCPUPerRecord/1e3)
	}
	if res.Sessions > 0 {
		fmt.Fprintf(tw, "session rows (DynamoDB)\t%d writes\t%d sessions\t%.2f writes per session\n", res.SessionWrites, res.Sessions, res.SessionWritesPerSession)
	}
	if a := res.Archive; a != nil {
		fmt.Fprintf(tw, "lake (s3://%s)\t%d objects\t%.1f PUTs/min/shard\t\n", a.Bucket, a.Objects, a.PutsPerMinShard)
		fmt.Fprintf(tw, "raw JSON input\t%d bytes\tgzip %d bytes\t%.1f%%\n", a.InputBytes, a.RawBytes, 100*float64(a.RawBytes)/float64(a.InputBytes))
		fmt.Fprintf(tw, "enriched Parquet\t%d bytes\t%d rows\t%.1f%% of the raw JSON\n", a.ParquetBytes, a.ParquetRows, 100*a.ParquetVsRaw)
	}
	verified := "yes"
	if !res.Verified {
		verified = "no (the " + res.Processor + " processor's results are not checked)"
	}
	fmt.Fprintf(tw, "counts verified\t%s\n", verified) // the last cell: it sets no column's width
	return tw.Flush()
}

func newBenchChaosCommand() *cobra.Command {
	var (
		cfg           bench.ChaosConfig
		out, schedule string
	)
	cmd := &cobra.Command{
		Use:   "chaos",
		Short: "Consume and archive workers under load while seeded faults hit them and every server; results checked against an oracle",
		Long: `Consume and archive workers under load while seeded faults hit them and every server; results checked against an oracle.

It creates a fresh stream, lease tables, sessions table, bucket, a PostgreSQL database of customers and a
Redis of its own, puts fault proxies (Toxiproxy, and an HTTP layer answering AWS's throttling and 5xx
errors) in front of Kinesis, DynamoDB, S3, Redis and PostgreSQL, and runs --consume-workers
'clickfleet consume --processor actors' (the first also syncs names from PostgreSQL) and
--archive-workers 'clickfleet archive' processes (this binary) through them while producing --rate
events/s for --duration. Faults drawn from --seed: kill -9, SIGTERM and SIGSTOP (past the failover time)
of workers, a Redis restart, throttling bursts on Kinesis and DynamoDB, other errors, latency, resets
and stalls on each server. With --read-mode efo both applications read with enhanced fan-out, through
a fault proxy of their own in front of --efo-endpoint that takes the latency, resets and stalls aimed
at Kinesis (the same seed draws the same faults in either mode). Then every worker is stopped with SIGTERM and the results are compared: each
session row with the sessions PostgreSQL computes from the produced events (the lab's LAG over each
user's events, gap 10 s), per-user counts, last access and names in Redis, and each produced click_id
exactly once in the lake's raw objects and once in its Parquet rows. Any difference fails the run,
printing it and the fault schedule. The AWS endpoints come from AWS_ENDPOINT_URL_KINESIS,
AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (the local stack; chaos does not run against AWS).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			for _, v := range []struct {
				env string
				dst *string
			}{{"AWS_ENDPOINT_URL_KINESIS", &cfg.KinesisURL}, {"AWS_ENDPOINT_URL_DYNAMODB", &cfg.DynamoDBURL}, {"AWS_ENDPOINT_URL_S3", &cfg.S3URL}} {
				if *v.dst = os.Getenv(v.env); *v.dst == "" {
					return usagef("bench chaos puts fault proxies in front of local servers: set %s (eval \"$(deploy/local/stack env)\")", v.env)
				}
			}
			if cfg.PostgresDSN == "" {
				return usagef("--pg-dsn (CLICKFLEET_PG_DSN) is required: the oracle runs in PostgreSQL")
			}
			if cfg.Duration < 20*time.Second {
				return usagef("--duration (CLICKFLEET_DURATION) must be at least 20s, got %s", cfg.Duration)
			}
			if cfg.Rate <= 0 || cfg.Users <= 0 || cfg.Shards <= 0 {
				return usagef("--rate, --users and --shards must be positive")
			}
			if cfg.ConsumeWorkers < 2 || cfg.ArchiveWorkers < 1 {
				return usagef("--consume-workers must be at least 2 and --archive-workers at least 1")
			}
			switch {
			case cfg.ReadMode != "polling" && cfg.ReadMode != "efo":
				return usagef("--read-mode (CLICKFLEET_READ_MODE) must be polling or efo, not %q", cfg.ReadMode)
			case cfg.ReadMode == "efo" && cfg.EFOURL == "":
				return usagef("--read-mode efo needs --efo-endpoint (CLICKFLEET_EFO_ENDPOINT): the stack's fan-out proxy, which 'deploy/local/stack env' exports with kinesis-mock")
			}
			if schedule != "" {
				b, err := os.ReadFile(schedule)
				if err != nil {
					return usagef("--schedule (CLICKFLEET_SCHEDULE): %v", err)
				}
				var prev struct {
					Faults []bench.ChaosFault `json:"faults"`
				}
				if err := json.Unmarshal(b, &prev); err != nil || len(prev.Faults) == 0 {
					return usagef("--schedule (CLICKFLEET_SCHEDULE) %s: not a chaos result with faults (%v)", schedule, err)
				}
				cfg.Schedule = prev.Faults
			}
			awsCfg, err := loadAWS(ctx)
			if err != nil {
				return err
			}
			s3c, err := newS3(awsCfg, "true")
			if err != nil {
				return err
			}
			cfg.S3 = s3c
			if cfg.Binary, err = os.Executable(); err != nil {
				return err
			}
			cfg.Progress = func(s string) { fmt.Fprintln(os.Stderr, "chaos:", s) }
			res, err := bench.Chaos(ctx, kinesis.NewFromConfig(awsCfg), dynamodb.NewFromConfig(awsCfg), cfg)
			if res.Seed != 0 {
				_ = writeJSONOut(out, res) // best effort: the run's own error, if any, is what is returned
			}
			if err != nil {
				return err
			}
			return bench.WriteChaos(os.Stdout, res)
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed of the fault schedule and the load (the same seed draws the same faults)")
	f.DurationVar(&cfg.Duration, "duration", 60*time.Second, "how long to produce (at least 20s); one round of faults per started minute")
	f.Float64Var(&cfg.Rate, "rate", 100, "events per second to produce")
	f.IntVar(&cfg.Users, "users", 200, "distinct users")
	f.Int32Var(&cfg.Shards, "shards", 4, "shards of the fresh stream")
	f.IntVar(&cfg.ConsumeWorkers, "consume-workers", 3, "consume worker processes (at least 2)")
	f.IntVar(&cfg.ArchiveWorkers, "archive-workers", 2, "archive worker processes (at least 1)")
	f.DurationVar(&cfg.FailoverTime, "failover-time", 3*time.Second, "the workers' --failover-time; SIGSTOP lasts longer")
	f.StringVar(&cfg.RedisServer, "redis-server", "redis-server", "redis-server executable for the run's own Redis (restarted by the schedule)")
	f.StringVar(&cfg.PostgresDSN, "pg-dsn", "", "PostgreSQL server (URL form) for the oracle and the run's customers database")
	f.StringVar(&cfg.ListenHost, "listen-host", "127.0.0.1", "address the fault proxies listen on (ports picked free)")
	f.StringVar(&cfg.ReadMode, "read-mode", "polling", "how the workers read the stream: polling (GetRecords) or efo (enhanced fan-out through --efo-endpoint, behind a fault proxy that takes Kinesis' latency, resets and stalls)")
	f.StringVar(&cfg.EFOURL, "efo-endpoint", "", "the enhanced fan-out endpoint for --read-mode efo (the local stack's fan-out proxy, https://127.0.0.1:port)")
	f.StringVar(&cfg.LogDir, "log-dir", "", "directory for the workers' logs and the run's Redis (default: a temporary one)")
	f.StringVar(&out, "out", "", "also write the result (schedule, notes, throttling figures) as JSON to this file")
	f.StringVar(&schedule, "schedule", "", "replay the faults of an earlier run's --out file instead of drawing them from --seed")
	return cmd
}
