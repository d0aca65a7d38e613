package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/lake"
	"github.com/clickfleet/clickfleet/lake/archive"
	"github.com/clickfleet/clickfleet/messages"
)

// archiveOptions are archive's flags.
type archiveOptions struct {
	cfg                                   consumer.Config
	acfg                                  archive.Config
	initialPosition                       string
	lakeURL, rawURL, eventsURL, errorsURL string
	rawCompression, pathStyle, redisURL   string
	httpListen                            string
	emfInterval                           time.Duration
	gs                                    geoSettings
	read                                  readFlags
	// setting names the flag (and variable) that set each lake location, for errors.
	setting map[archive.Location]string
}

func newArchiveCommand(g *globals) *cobra.Command {
	var o archiveOptions
	cmd := &cobra.Command{
		Use:   "archive",
		Short: "Run one worker of the archive: raw JSON and enriched Parquet objects in the S3 lake, exactly once",
		Long: `archive is the seed's Firehose delivery streams as a second KCL application on the input stream (its own
lease table). Per held shard it buffers records and writes, under --lake-url (or --raw-url, --events-url,
--errors-url):

  raw/year=YYYY/month=MM/day=DD/hour=HH/<stream>-<shard>-<first seq>-<first sub>.ndjson.gz   records as they arrived
  events/…/<same name>.parquet                                                              enriched, flat, ZSTD
  errors/…/<same name>.ndjson.gz                                                            records that fail validation, with the reason

An object rolls at --buffer-bytes of raw input, after --buffer-interval, or at the hour boundary (hour of the
first record's arrival, UTC). A shard is checkpointed only after its objects are stored, with If-None-Match,
so every record lands in exactly one object. SIGTERM stores what is buffered, checkpoints and releases the
leases. A missing bucket or denied access ends the process (exit 1) naming the setting.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd, g.log.Named("archive"))
		},
	}
	o.register(cmd.Flags())
	return cmd
}

// run checks the flags, builds the archive and the worker, and runs them with the ops server until a
// signal or a failure; then the clients close in teardown's order.
func (o *archiveOptions) run(cmd *cobra.Command, log *zap.Logger) error {
	ctx := cmd.Context()
	if err := o.check(); err != nil {
		return err
	}
	td := teardown{log: log}
	defer td.close()
	reg := newRegistry()
	o.cfg.Registerer, o.cfg.Logger = reg, log
	o.acfg.Stream, o.acfg.Logger, o.acfg.Registerer = o.cfg.Stream, log, reg
	if err := o.enrichment(reg, log, &td); err != nil {
		return err
	}
	awsCfg, err := loadAWS(ctx)
	if err != nil {
		return err
	}
	s3c, err := newS3(awsCfg, o.pathStyle)
	if err != nil {
		return err
	}
	arch, err := archive.New(s3c, o.acfg)
	if err != nil {
		return usageError{err}
	}
	if err := arch.Check(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return o.named(err)
	}
	o.cfg.NewProcessor = arch.NewProcessor
	o.read.apply(&o.cfg, awsCfg)
	w, err := consumer.New(kinesis.NewFromConfig(awsCfg), dynamodb.NewFromConfig(awsCfg), o.cfg)
	if err != nil {
		return settingUsage(err, archiveFlags)
	}
	parts, err := o.components(cmd, w, arch, reg, log)
	if err != nil {
		return err
	}
	log.Info("archive worker", zap.String("worker_id", w.WorkerID()), zap.String("stream", o.cfg.Stream),
		zap.String("lease_table", o.cfg.Lease.Table), zap.Stringer("raw", o.acfg.Raw), zap.Stringer("events", o.acfg.Events), zap.Stringer("errors", o.acfg.Errors))
	return o.named(runGroup(ctx, log, parts...))
}

// check validates every flag that needs no client, before any client is made: a bad setting exits 2
// naming its flag.
func (o *archiveOptions) check() error {
	o.cfg.InitialPosition = consumer.InitialPosition(o.initialPosition)
	o.setting = map[archive.Location]string{}
	var err error
	if o.acfg.Raw, err = o.locate("raw-url", o.rawURL, "raw/"); err != nil {
		return err
	}
	if o.acfg.Events, err = o.locate("events-url", o.eventsURL, "events/"); err != nil {
		return err
	}
	if o.acfg.Errors, err = o.locate("errors-url", o.errorsURL, "errors/"); err != nil {
		return err
	}
	o.acfg.RawCompression = archive.Compression(o.rawCompression)
	if err := o.read.check(); err != nil {
		return err
	}
	if !o.acfg.UncheckedInterval && (o.acfg.BufferInterval < archive.MinBufferInterval || o.acfg.BufferInterval > archive.MaxBufferInterval) {
		return usagef("--buffer-interval (CLICKFLEET_BUFFER_INTERVAL) must be %s..%s as Firehose allows, not %s (for local runs: --buffer-interval-unchecked)",
			archive.MinBufferInterval, archive.MaxBufferInterval, o.acfg.BufferInterval)
	}
	check := o.cfg
	if err := check.Check(); err != nil {
		return settingUsage(err, archiveFlags)
	}
	return nil
}

// locate parses the location flag (its value u) or, when it is empty, --lake-url with sub appended, and
// remembers which flag set it.
func (o *archiveOptions) locate(flag, u, sub string) (archive.Location, error) {
	if u == "" {
		l, err := archive.ParseURL(o.lakeURL)
		if err != nil {
			return l, usagef("--lake-url (CLICKFLEET_LAKE_URL): %v", err)
		}
		l.Prefix += sub
		o.setting[l] = "--lake-url (CLICKFLEET_LAKE_URL)"
		return l, nil
	}
	name := "--" + flag + " (" + envName(flag) + ")"
	l, err := archive.ParseURL(u)
	if err != nil {
		return l, usagef("%s: %v", name, err)
	}
	o.setting[l] = name
	return l, nil
}

// enrichment connects the names (Redis) and the geo resolver the Parquet rows are enriched from.
func (o *archiveOptions) enrichment(reg *prometheus.Registry, log *zap.Logger, td *teardown) error {
	var rdb *redis.Client
	if o.redisURL != "" {
		var err error
		if rdb, err = newRedis(o.redisURL); err != nil {
			return err
		}
		td.add(stageClients, "redis", func() { _ = rdb.Close() })
		o.acfg.Names = rdb
	}
	resolver, closeGeo, err := newGeoResolver(o.gs, rdb, o.acfg.Prefix, reg, log)
	if err != nil {
		return err
	}
	td.add(stageLookups, "geo resolver", closeGeo)
	if resolver != nil {
		o.acfg.Geo = resolver
	}
	return nil
}

// components returns the run group: the worker, the watch for the archive's permanent S3 errors, the EMF
// reporter and the ops server. The first to fail ends the others (exit 1); SIGTERM lets the worker store
// its buffers, checkpoint and release its leases before the process exits 0.
func (o *archiveOptions) components(cmd *cobra.Command, w *consumer.Worker, arch *archive.Archiver, reg *prometheus.Registry, log *zap.Logger) ([]component, error) {
	parts := []component{{name: "worker", run: w.Run, stop: w.ShutdownBound()}, {name: "archive", run: func(ctx context.Context) error {
		select {
		case err := <-arch.Fatal():
			return err
		case <-ctx.Done():
			return nil
		}
	}}}
	if c, ok := emfComponent(w, o.cfg.Stream, o.cfg.Lease.Table, o.emfInterval, cmd.OutOrStdout()); ok {
		parts = append(parts, c)
	}
	ops, ok, err := opsServer(o.httpListen, reg, func() bool { return w.Ready() && arch.Healthy() }, log)
	if err != nil {
		return nil, err
	}
	if ok {
		parts = append(parts, ops)
	}
	return parts, nil
}

// named adds to an error the flag that sets the lake location or the resource it concerns.
func (o *archiveOptions) named(err error) error {
	var fe *archive.FatalError
	if errors.As(err, &fe) {
		return fmt.Errorf("%w\n  the lake location is set by %s: create the bucket with 'clickfleet setup', or check this process's permissions on it", err, o.setting[fe.Location])
	}
	return withSettingHint(err, archiveFlags)
}

// register declares archive's flags.
func (o *archiveOptions) register(f *pflag.FlagSet) {
	addWorkerFlags(f, &o.cfg, &o.initialPosition, &o.read, workerFlagDefaults{
		stream: messages.Stream, table: lake.DefaultLeaseTable, shutdown: archive.DefaultShutdownTimeout,
		handoffWaits: "the old owner's final objects and checkpoint", shutdownWork: "shards get to store their buffers and checkpoint",
		positions: "TRIM_HORIZON or LATEST",
	})
	acfg := &o.acfg
	f.StringVar(&o.lakeURL, "lake-url", lake.DefaultURL, "the lake: raw/, events/ and errors/ go under it (create the bucket with 'clickfleet setup')")
	f.StringVar(&o.rawURL, "raw-url", "", "where raw objects go instead of <lake-url>raw/, e.g. a dedicated bucket s3://raw-bucket/")
	f.StringVar(&o.eventsURL, "events-url", "", "where Parquet objects go instead of <lake-url>events/")
	f.StringVar(&o.errorsURL, "errors-url", "", "where errors objects go instead of <lake-url>errors/")
	f.IntVar(&acfg.BufferBytes, "buffer-bytes", archive.DefaultBufferBytes, "roll an object at this many bytes of raw input (1 B - 128 MiB)")
	f.DurationVar(&acfg.BufferInterval, "buffer-interval", archive.DefaultBufferInterval, "roll an object this long after its first record was buffered (60s-900s, as Firehose)")
	f.BoolVar(&acfg.UncheckedInterval, "buffer-interval-unchecked", false, "allow any positive --buffer-interval, e.g. 2s for local runs and demos (not for production: many small objects)")
	f.StringVar(&o.rawCompression, "raw-compression", string(archive.Gzip), "raw and errors objects: gzip (.ndjson.gz) or none (.ndjson)")
	f.BoolVar(&acfg.UnconditionalPuts, "unconditional-puts", false, "store objects without If-None-Match, for S3 servers without conditional writes (a HEAD first finds replayed objects)")
	f.DurationVar(&acfg.PutTimeout, "put-timeout", archive.DefaultPutTimeout, "bound on one S3 call (also cut to the lease's remaining validity)")
	f.StringVar(&o.pathStyle, "s3-path-style", "auto", "path-style S3 addressing: auto (on when AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL is set), true or false")
	f.StringVar(&o.redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis holding users' names (<key-prefix>user:<id>, field name) and the geo cache; empty: no names")
	f.StringVar(&acfg.Prefix, "key-prefix", session.DefaultPrefix, "prefix of every Redis key")
	addGeoFlags(f, &o.gs, "")
	f.StringVar(&o.httpListen, "http-listen", "127.0.0.1:9091", "address for /metrics, /healthz and /readyz (empty: none)")
	addEMFFlag(f, &o.emfInterval)
}
