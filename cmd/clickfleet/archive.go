package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/lake"
	"github.com/clickfleet/clickfleet/lake/archive"
)

func newArchiveCommand(g *globals) *cobra.Command {
	var (
		cfg                                   consumer.Config
		acfg                                  archive.Config
		initialPosition                       string
		lakeURL, rawURL, eventsURL, errorsURL string
		rawCompression, pathStyle, redisURL   string
		httpListen                            string
		emfInterval                           time.Duration
		gs                                    geoSettings
	)
	host, _ := os.Hostname()
	cmd := &cobra.Command{
		Use:   "archive",
		Short: "Run one worker of the archive: raw JSON and enriched Parquet objects in the S3 lake, exactly once",
		Long: `archive is the seed's Firehose delivery streams as a second KCL application on the input stream (its own
lease table). Per held shard it buffers records and writes, under --lake-url (or --raw-url, --events-url,
--errors-url):

  raw/year=YYYY/month=MM/day=DD/hour=HH/<stream>-<shard>-<first seq>-<first sub>.ndjson.gz   records as they arrived
  events/…/<same name>.parquet                                                              enriched, flat, Snappy
  errors/…/<same name>.ndjson.gz                                                            records that fail validation, with the reason

An object rolls at --buffer-bytes of raw input, after --buffer-interval, or at the hour boundary (hour of the
first record's arrival, UTC). A shard is checkpointed only after its objects are stored, with If-None-Match,
so every record lands in exactly one object. SIGTERM stores what is buffered, checkpoints and releases the
leases. A missing bucket or denied access ends the process (exit 1) naming the setting.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := g.log.Named("archive")
			cfg.InitialPosition = consumer.InitialPosition(initialPosition)
			setting := map[archive.Location]string{}
			locate := func(flag, u, sub string) (archive.Location, error) {
				name := "--" + flag + " (" + envName(flag) + ")"
				if u == "" {
					l, err := archive.ParseURL(lakeURL)
					if err != nil {
						return l, usagef("--lake-url (CLICKFLEET_LAKE_URL): %v", err)
					}
					l.Prefix += sub
					setting[l] = "--lake-url (CLICKFLEET_LAKE_URL)"
					return l, nil
				}
				l, err := archive.ParseURL(u)
				if err != nil {
					return l, usagef("%s: %v", name, err)
				}
				setting[l] = name
				return l, nil
			}
			var err error
			if acfg.Raw, err = locate("raw-url", rawURL, "raw/"); err != nil {
				return err
			}
			if acfg.Events, err = locate("events-url", eventsURL, "events/"); err != nil {
				return err
			}
			if acfg.Errors, err = locate("errors-url", errorsURL, "errors/"); err != nil {
				return err
			}
			acfg.RawCompression = archive.Compression(rawCompression)
			if !acfg.UncheckedInterval && (acfg.BufferInterval < archive.MinBufferInterval || acfg.BufferInterval > archive.MaxBufferInterval) {
				return usagef("--buffer-interval (CLICKFLEET_BUFFER_INTERVAL) must be %s..%s as Firehose allows, not %s (for local runs: --buffer-interval-unchecked)",
					archive.MinBufferInterval, archive.MaxBufferInterval, acfg.BufferInterval)
			}
			reg := newRegistry()
			cfg.Registerer, cfg.Logger = reg, log
			acfg.Stream, acfg.Logger, acfg.Registerer = cfg.Stream, log, reg
			var rdb *redis.Client
			if redisURL != "" {
				if rdb, err = newRedis(redisURL); err != nil {
					return err
				}
				defer rdb.Close()
				acfg.Names = rdb
			}
			resolver, closeGeo, err := newGeoResolver(gs, rdb, acfg.Prefix, reg, log)
			if err != nil {
				return err
			}
			defer closeGeo()
			if resolver != nil {
				acfg.Geo = resolver
			}
			awsCfg, err := loadAWS(ctx)
			if err != nil {
				return err
			}
			s3c, err := newS3(awsCfg, pathStyle)
			if err != nil {
				return err
			}
			arch, err := archive.New(s3c, acfg)
			if err != nil {
				return usageError{err}
			}
			named := func(err error) error {
				var fe *archive.FatalError
				if errors.As(err, &fe) {
					return fmt.Errorf("%w\n  the lake location is set by %s: create the bucket with 'clickfleet setup', or check this process's permissions on it", err, setting[fe.Location])
				}
				return withSettingHint(err, archiveFlags)
			}
			if err := arch.Check(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return named(err)
			}
			cfg.NewProcessor = arch.NewProcessor
			w, err := consumer.New(kinesis.NewFromConfig(awsCfg), dynamodb.NewFromConfig(awsCfg), cfg)
			if err != nil {
				return usageError{err}
			}
			// One run group: the worker, the watch for the archive's permanent S3 errors, the ops server.
			// The first to fail ends the others (exit 1); SIGTERM lets the worker store its buffers,
			// checkpoint and release its leases before the process exits 0.
			parts := []component{{name: "worker", run: w.Run}, {name: "archive", run: func(ctx context.Context) error {
				select {
				case err := <-arch.Fatal():
					return err
				case <-ctx.Done():
					return nil
				}
			}}}
			if c, ok := emfComponent(w, cfg.Stream, cfg.Lease.Table, emfInterval, cmd.OutOrStdout()); ok {
				parts = append(parts, c)
			}
			ops, ok, err := opsServer(httpListen, reg, func() bool { return w.Ready() && arch.Healthy() }, log)
			if err != nil {
				return err
			}
			if ok {
				parts = append(parts, ops)
			}
			log.Info("archive worker", zap.String("worker_id", w.WorkerID()), zap.String("stream", cfg.Stream),
				zap.String("lease_table", cfg.Lease.Table), zap.Stringer("raw", acfg.Raw), zap.Stringer("events", acfg.Events), zap.Stringer("errors", acfg.Errors))
			return named(runGroup(ctx, log, parts...))
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Stream, "stream", "clickstream", "Kinesis stream to archive")
	f.StringVar(&cfg.Lease.Table, "lease-table", lake.DefaultLeaseTable, "the archive's own DynamoDB lease table (create it with 'clickfleet setup')")
	f.StringVar(&cfg.Lease.WorkerID, "worker-id", fmt.Sprintf("%s-%d", host, os.Getpid()), "this worker's id in the lease table; unique per process")
	f.DurationVar(&cfg.Lease.FailoverTime, "failover-time", 10*time.Second, "a lease not renewed for this long may be taken by another worker")
	f.DurationVar(&cfg.Lease.RenewInterval, "renew-interval", 0, "how often held leases are renewed (0: failover-time/3 - 25ms)")
	f.DurationVar(&cfg.Lease.TakeInterval, "take-interval", time.Second, "how often the lease table is scanned to take and balance leases")
	f.IntVar(&cfg.Lease.MaxLeasesPerWorker, "max-leases", 0, "most leases this worker holds (0: no limit)")
	f.IntVar(&cfg.Lease.MaxLeasesToStealAtOneTime, "max-steals", 1, "most leases taken from other workers per take cycle, for balance")
	f.DurationVar(&cfg.Lease.HandoffTimeout, "handoff-timeout", 0, "how long a balancing steal waits for the old owner's final objects and checkpoint (0: failover-time)")
	f.DurationVar(&cfg.Lease.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "on a clean stop, how long shards get to store their buffers and checkpoint before leases are released anyway")
	f.StringVar(&initialPosition, "initial-position", string(consumer.TrimHorizon), "where shards without a checkpoint start: TRIM_HORIZON or LATEST")
	f.Int32Var(&cfg.MaxRecords, "max-records", 10000, "records per GetRecords call (1-10000)")
	f.DurationVar(&cfg.IdleTime, "idle-time", time.Second, "pause between GetRecords calls on a shard that returned nothing")
	f.DurationVar(&cfg.ShardSyncInterval, "shard-sync-interval", 60*time.Second, "how often shards are listed to create and clean up leases")
	f.DurationVar(&cfg.ParentPollInterval, "parent-poll-interval", 10*time.Second, "how often a child shard checks whether its parents are finished")
	f.StringVar(&lakeURL, "lake-url", lake.DefaultURL, "the lake: raw/, events/ and errors/ go under it (create the bucket with 'clickfleet setup')")
	f.StringVar(&rawURL, "raw-url", "", "where raw objects go instead of <lake-url>raw/, e.g. a dedicated bucket s3://raw-bucket/")
	f.StringVar(&eventsURL, "events-url", "", "where Parquet objects go instead of <lake-url>events/")
	f.StringVar(&errorsURL, "errors-url", "", "where errors objects go instead of <lake-url>errors/")
	f.IntVar(&acfg.BufferBytes, "buffer-bytes", archive.DefaultBufferBytes, "roll an object at this many bytes of raw input (1 B - 128 MiB)")
	f.DurationVar(&acfg.BufferInterval, "buffer-interval", archive.DefaultBufferInterval, "roll an object this long after its first record was buffered (60s-900s, as Firehose)")
	f.BoolVar(&acfg.UncheckedInterval, "buffer-interval-unchecked", false, "allow any positive --buffer-interval, e.g. 2s for local runs and demos (not for production: many small objects)")
	f.StringVar(&rawCompression, "raw-compression", string(archive.Gzip), "raw and errors objects: gzip (.ndjson.gz) or none (.ndjson)")
	f.BoolVar(&acfg.UnconditionalPuts, "unconditional-puts", false, "store objects without If-None-Match, for S3 servers without conditional writes (a HEAD first finds replayed objects)")
	f.DurationVar(&acfg.PutTimeout, "put-timeout", 30*time.Second, "bound on one S3 call (also cut to the lease's remaining validity)")
	f.StringVar(&pathStyle, "s3-path-style", "auto", "path-style S3 addressing: auto (on when AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL is set), true or false")
	f.StringVar(&redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis holding users' names (<key-prefix>user:<id>, field name) and the geo cache; empty: no names")
	f.StringVar(&acfg.Prefix, "key-prefix", "cf:", "prefix of every Redis key")
	f.StringVar(&gs.mmdb, "geo-mmdb", geoAuto, "MaxMind DB file that locates events' user_ip; auto: the DB-IP Lite file "+geoDBFile+" where consume's --geo-mmdb auto finds it (location is off, with a warning, when none is found); empty: no database")
	f.StringVar(&gs.ipinfoURL, "geo-ipinfo-url", "", "locate addresses with an HTTP service speaking ipinfo's JSON instead of --geo-mmdb")
	f.StringVar(&gs.ipinfoToken, "geo-ipinfo-token", "", "ipinfo access token, sent as a bearer token")
	f.IntVar(&gs.cacheSize, "geo-cache-size", 100000, "addresses kept in the in-process geo cache")
	f.DurationVar(&gs.ttl, "geo-ttl", 7*24*time.Hour, "how long a located address stays cached, in process and in Redis")
	f.DurationVar(&gs.notFoundTTL, "geo-not-found-ttl", time.Hour, "how long a 'not found' answer stays cached")
	f.DurationVar(&gs.timeout, "geo-lookup-timeout", time.Second, "longest wait for a geo answer; then the row gets geo_status unavailable")
	f.StringVar(&httpListen, "http-listen", "127.0.0.1:9091", "address for /metrics, /healthz and /readyz (empty: none)")
	addEMFFlag(f, &emfInterval)
	return cmd
}

// archiveFlags names the flag of each setting an archive worker's *consumer.ResourceError can carry.
var archiveFlags = map[string]string{"Stream": "stream", "Lease.Table": "lease-table"}
