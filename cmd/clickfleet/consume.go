package main

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/usercount"
)

func newConsumeCommand(g *globals) *cobra.Command {
	var (
		cfg                                   consumer.Config
		initialPosition, initialTimestamp     string
		redisURL, keyPrefix, httpListen, proc string
		checkpointInterval                    time.Duration
		act                                   actors.Config
		sessionGap                            time.Duration
		crashAfterFlush                       int
	)
	host, _ := os.Hostname()
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Run one worker of the consumer fleet: take shard leases and process the stream",
		Long: `consume is the fleet's worker process; run several side by side. Workers share the stream's shards through
the lease table (KCL-compatible), balance them, take over a crashed worker's shards after --failover-time,
and hand shards over without replay on a clean stop (SIGTERM or SIGINT: processors checkpoint, leases are
released, the process exits 0).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := g.log.Named("consume")
			cfg.InitialPosition = consumer.InitialPosition(initialPosition)
			if initialTimestamp != "" {
				t, err := time.Parse(time.RFC3339, initialTimestamp)
				if err != nil {
					return usagef("--initial-timestamp (CLICKFLEET_INITIAL_TIMESTAMP): %v", err)
				}
				cfg.InitialTimestamp = t
			}
			if proc != "count" && proc != "actors" {
				return usagef("--processor (CLICKFLEET_PROCESSOR) must be \"actors\" or \"count\", not %q", proc)
			}
			opts, err := redis.ParseURL(redisURL)
			if err != nil {
				return usagef("--redis-url (CLICKFLEET_REDIS_URL) %q: %v", redisURL, err)
			}
			rdb := redis.NewClient(opts)
			defer rdb.Close()
			reg := newRegistry()
			cfg.Registerer = reg
			cfg.Logger = log
			awsCfg, err := loadAWS(ctx)
			if err != nil {
				return err
			}
			switch proc {
			case "count":
				factory, err := usercount.Factory(usercount.Config{Redis: rdb, Prefix: keyPrefix, CheckpointInterval: checkpointInterval, Logger: log})
				if err != nil {
					return usageError{err}
				}
				cfg.NewProcessor = factory
			case "actors":
				act.Stream, act.Prefix, act.Logger, act.Registerer = cfg.Stream, keyPrefix, log, reg
				act.Kinesis, act.DynamoDB, act.Redis = kinesis.NewFromConfig(awsCfg), dynamodb.NewFromConfig(awsCfg), rdb
				act.Rules.GapMs = sessionGap.Milliseconds()
				if sessionGap <= 0 || sessionGap%time.Millisecond != 0 {
					return usagef("--session-gap (CLICKFLEET_SESSION_GAP) must be a positive whole number of milliseconds, not %s", sessionGap)
				}
				if crashAfterFlush > 0 {
					// Test only: die like kill -9 after the Nth flush's writes, before its checkpoint.
					var flushes atomic.Int64
					act.AfterFlush = func(actors.FlushInfo) {
						if flushes.Add(1) == int64(crashAfterFlush) {
							log.Warn("test crash point reached: exiting between a flush and its checkpoint", zap.Int("flush", crashAfterFlush))
							os.Exit(137)
						}
					}
				}
				factory, err := actors.New(act)
				if err != nil {
					return usageError{err}
				}
				defer factory.Close()
				cfg.NewProcessor = factory.NewProcessor
			}
			w, err := consumer.New(kinesis.NewFromConfig(awsCfg), dynamodb.NewFromConfig(awsCfg), cfg)
			if err != nil {
				return usageError{err}
			}
			waitOps, err := opsServer(ctx, httpListen, reg, w.Ready, log)
			if err != nil {
				return err
			}
			defer waitOps()
			log.Info("worker", zap.String("worker_id", w.WorkerID()), zap.String("stream", cfg.Stream), zap.String("lease_table", cfg.Lease.Table))
			return w.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Stream, "stream", "clickstream", "Kinesis stream to consume")
	f.StringVar(&cfg.Lease.Table, "lease-table", "clickfleet-leases", "DynamoDB lease table (create it with 'clickfleet setup')")
	f.StringVar(&cfg.Lease.WorkerID, "worker-id", fmt.Sprintf("%s-%d", host, os.Getpid()), "this worker's id in the lease table; unique per process")
	f.DurationVar(&cfg.Lease.FailoverTime, "failover-time", 10*time.Second, "a lease not renewed for this long may be taken by another worker")
	f.DurationVar(&cfg.Lease.RenewInterval, "renew-interval", 0, "how often held leases are renewed (0: failover-time/3 - 25ms)")
	f.DurationVar(&cfg.Lease.TakeInterval, "take-interval", time.Second, "how often the lease table is scanned to take and balance leases (reads only; the Java KCL's 2 x (failover-time + 25ms) makes failover up to 4x slower; 0: that)")
	f.IntVar(&cfg.Lease.MaxLeasesPerWorker, "max-leases", 0, "most leases this worker holds (0: no limit)")
	f.IntVar(&cfg.Lease.MaxLeasesToStealAtOneTime, "max-steals", 1, "most leases taken from other workers per take cycle, for balance")
	f.DurationVar(&cfg.Lease.HandoffTimeout, "handoff-timeout", 0, "how long a balancing steal waits for the old owner's final checkpoint (0: failover-time)")
	f.DurationVar(&cfg.Lease.ShutdownTimeout, "shutdown-timeout", 5*time.Second, "on a clean stop, how long processors get to checkpoint before leases are released anyway")
	f.StringVar(&initialPosition, "initial-position", string(consumer.TrimHorizon), "where shards without a checkpoint start: TRIM_HORIZON, LATEST or AT_TIMESTAMP")
	f.StringVar(&initialTimestamp, "initial-timestamp", "", "RFC 3339 time for --initial-position AT_TIMESTAMP")
	f.Int32Var(&cfg.MaxRecords, "max-records", 10000, "records per GetRecords call (1-10000)")
	f.DurationVar(&cfg.IdleTime, "idle-time", time.Second, "pause between GetRecords calls on a shard that returned nothing")
	f.DurationVar(&cfg.ShardSyncInterval, "shard-sync-interval", 60*time.Second, "how often shards are listed to create and clean up leases")
	f.DurationVar(&cfg.ParentPollInterval, "parent-poll-interval", 10*time.Second, "how often a child shard checks whether its parents are finished")
	f.StringVar(&proc, "processor", "actors", `what to do with records: "actors" (sessions, last access, offers and errors through per-user actors, exactly once) or "count" (per-user counts in Redis, exactly once)`)
	f.StringVar(&act.SessionsTable, "sessions-table", "sessions", "DynamoDB sessions table (actors; create it with 'clickfleet setup')")
	f.StringVar(&act.OffersStream, "offers-stream", "clickstream-offers", "Kinesis stream for high-intent events (actors)")
	f.StringVar(&act.ErrorsStream, "errors-stream", "clickstream-errors", "Kinesis stream for records that fail decoding or validation (actors)")
	f.DurationVar(&sessionGap, "session-gap", 10*time.Second, "a gap between a user's events above this starts a new session (actors)")
	f.StringVar(&act.Rules.OfferEvent, "offer-event", "ViewContent", "event name of high-intent events (actors)")
	f.Float64Var(&act.Rules.OfferMinPercent, "offer-min-percent", 60, "percent_viewed a high-intent event must exceed (actors)")
	f.DurationVar(&act.FlushInterval, "flush-interval", time.Second, "longest time a shard's effects stay unflushed; each flush ends with a checkpoint (actors)")
	f.IntVar(&act.FlushMaxRecords, "flush-max-records", 20000, "flush a shard when this many records are unflushed; reading waits meanwhile (actors)")
	f.DurationVar(&act.PassivateAfter, "passivate-after", 2*time.Minute, "stop a user's actor after this long without records (actors)")
	f.DurationVar(&act.SweepInterval, "sweep-interval", 0, "how often idle users are looked for (0: passivate-after/4, at least 1s) (actors)")
	f.IntVar(&act.WriteConcurrency, "write-concurrency", 4, "concurrent PutRecords and BatchWriteItem calls per flush (actors)")
	f.IntVar(&crashAfterFlush, "test-crash-after-flush", 0, "TEST ONLY: exit 137 after the Nth flush's writes, before its checkpoint")
	_ = f.MarkHidden("test-crash-after-flush")
	f.StringVar(&redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis for the processors' state")
	f.StringVar(&keyPrefix, "key-prefix", "cf:", "prefix of every Redis key")
	f.DurationVar(&checkpointInterval, "checkpoint-interval", 5*time.Second, "least time between two checkpoints of a shard (count)")
	f.StringVar(&httpListen, "http-listen", "127.0.0.1:9090", "address for /metrics, /healthz and /readyz (empty: none)")
	return cmd
}
