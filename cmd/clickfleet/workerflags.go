package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/lease"
)

// workerFlagDefaults are what differs between the two fleet applications' worker flags.
type workerFlagDefaults struct {
	stream, table string        // the input stream, the application's lease table
	shutdown      time.Duration // --shutdown-timeout
	handoffWaits  string        // what a balancing steal waits for, in --handoff-timeout's help
	shutdownWork  string        // what happens within --shutdown-timeout, in its help
	positions     string        // --initial-position's choices
}

// addWorkerFlags declares the flags of consumer.Config and its lease.Config that consume and archive share,
// with the libraries' defaults, and the read mode's (rf).
func addWorkerFlags(f *pflag.FlagSet, cfg *consumer.Config, initialPosition *string, rf *readFlags, d workerFlagDefaults) {
	host, _ := os.Hostname()
	f.StringVar(&cfg.Stream, "stream", d.stream, "Kinesis stream to read")
	f.StringVar(&cfg.Lease.Table, "lease-table", d.table, "DynamoDB lease table (create it with 'clickfleet setup')")
	f.StringVar(&cfg.Lease.WorkerID, "worker-id", fmt.Sprintf("%s-%d", host, os.Getpid()), "this worker's id in the lease table; unique per process")
	f.DurationVar(&cfg.Lease.FailoverTime, "failover-time", lease.DefaultFailoverTime, "a lease not renewed for this long may be taken by another worker")
	f.DurationVar(&cfg.Lease.RenewInterval, "renew-interval", 0, "how often held leases are renewed (0: failover-time/3 - 25ms; at most failover-time/2)")
	f.StringVar(&cfg.Lease.Assignment, "lease-assignment", lease.AssignByLeader, "how leases find workers: leader (one elected worker assigns by the load workers report; each worker reads only its own leases, through the table's owner index) or scan (every worker scans the whole table and takes for itself, by lease count: reads grow as workers x shards)")
	f.DurationVar(&cfg.Lease.TakeInterval, "take-interval", consumer.DefaultTakeInterval, "how often the leader assigns and each worker reads its own leases (scan: how often each worker scans the table; 0 there: the Java KCL's 2 x (failover-time + 25ms))")
	f.IntVar(&cfg.Lease.MaxLeasesPerWorker, "max-leases", 0, "most leases this worker holds (0: no limit)")
	f.IntVar(&cfg.Lease.MaxLeasesToStealAtOneTime, "max-steals", lease.DefaultMaxLeasesToStealAtOneTime, "most leases taken from other workers per take cycle, for balance")
	f.DurationVar(&cfg.Lease.HandoffTimeout, "handoff-timeout", 0, "how long a balancing steal waits for "+d.handoffWaits+" (0: failover-time; at least failover-time)")
	f.DurationVar(&cfg.Lease.ShutdownTimeout, "shutdown-timeout", d.shutdown, "on a clean stop, how long "+d.shutdownWork+" before leases are released anyway")
	f.StringVar(initialPosition, "initial-position", string(consumer.TrimHorizon), "where shards without a checkpoint start: "+d.positions)
	f.Int32Var(&cfg.MaxRecords, "max-records", consumer.DefaultMaxRecords, "records per GetRecords call (1-10000)")
	f.DurationVar(&cfg.MinCallInterval, "poll-interval", consumer.DefaultMinCallInterval, "least time between two GetRecords calls on one shard by this worker. "+
		"Kinesis allows 5 calls/s per shard for every application reading the stream together: at the default, consume and archive make 2 + 2 = 4 calls/s per shard "+
		"under continuous traffic, leaving 1/s for tail and probes; a shorter interval lowers latency, not throughput (each call returns what arrived meanwhile)")
	f.DurationVar(&cfg.IdleTime, "idle-time", consumer.DefaultIdleTime, "pause between GetRecords calls on a shard that returned nothing (at least --poll-interval)")
	f.DurationVar(&cfg.ShardSyncInterval, "shard-sync-interval", consumer.DefaultShardSyncInterval, "how often shards are listed to create and clean up leases")
	f.DurationVar(&cfg.ParentPollInterval, "parent-poll-interval", consumer.DefaultParentPollInterval, "how often a child shard checks whether its parents are finished")
	rf.register(f, cfg)
}

// geoLookupTimeout is --geo-lookup-timeout's default, shorter than the resolver's own (geo.DefaultLookupTimeout,
// 5s): a flush waits for pending lookups, and a worker would rather emit an event without location than hold
// a shard's checkpoint for seconds.
const geoLookupTimeout = time.Second

// addGeoFlags declares the geo enrichment flags; suffix ends each help text (e.g. " (actors)").
func addGeoFlags(f *pflag.FlagSet, gs *geoSettings, suffix string) {
	f.StringVar(&gs.mmdb, "geo-mmdb", geoAuto, "MaxMind DB file (GeoIP2/GeoLite2 City, or DB-IP's flat layout) that locates events' user_ip"+suffix+"; "+
		"auto: the DB-IP Lite file "+geoDBFile+" beside the binary, in its ../share/clickfleet (the image's), /usr/share/clickfleet, or the local stack of the source tree (enrichment is off, with a warning, when none is found); empty: no database")
	f.StringVar(&gs.ipinfoURL, "geo-ipinfo-url", "", "locate addresses with an HTTP service speaking ipinfo's JSON (GET <url>/<ip>/json), e.g. https://ipinfo.io, instead of --geo-mmdb"+suffix)
	f.StringVar(&gs.ipinfoToken, "geo-ipinfo-token", "", "ipinfo access token, sent as a bearer token"+suffix)
	f.IntVar(&gs.cacheSize, "geo-cache-size", geo.DefaultCacheSize, "addresses kept in the in-process geo cache"+suffix)
	f.DurationVar(&gs.ttl, "geo-ttl", geo.DefaultTTL, "how long a located address stays cached, in process and in Redis <key-prefix>geo:<ip>"+suffix)
	f.DurationVar(&gs.notFoundTTL, "geo-not-found-ttl", geo.DefaultNotFoundTTL, "how long a 'not found' answer stays cached"+suffix)
	f.DurationVar(&gs.timeout, "geo-lookup-timeout", geoLookupTimeout, "longest wait for a geo answer; then the event is emitted without location, marked geo_status unavailable"+suffix)
}
