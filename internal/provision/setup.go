package provision

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/enrich/names"
	"github.com/clickfleet/clickfleet/lake"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/messages"
)

// Resources names everything Setup creates.
type Resources struct {
	Stream        string // input stream. Default: clickstream
	OffersStream  string // high-intent events. Default: clickstream-offers
	ErrorsStream  string // records that cannot be decoded or validated. Default: clickstream-errors
	Shards        int32  // shards of a new input stream. Default: 4
	OutputShards  int32  // shards of a new offers or errors stream. Default: 1
	LeaseTable    string // the KCL-style lease table. Default: clickfleet-leases
	SessionsTable string // session rows. Default: sessions
	// ArchiveLeaseTable is the archive's own lease table (a second KCL application). Default:
	// clickfleet-archive-leases
	ArchiveLeaseTable string
	// ScaleLeaseTable holds the lock of 'clickfleet scale' (one row per stream; never a consumer's lease
	// table, whose workers would take the row for a shard). Default: clickfleet-scale-leases
	ScaleLeaseTable string
	// RouteStreams are the output routes' streams, created with OutputShards (the offers stream may be
	// among them). Default: none
	RouteStreams []string
	// Buckets are the lake's buckets, created when Clients.S3 is set. Default: clickfleet-lake
	Buckets []string
	// FailoverTime is the workers' failover time. A lease table made before the owner index, on a server
	// that cannot add an index (an emulator), is copied offline: its leases are watched this long first,
	// and a renewed one (a worker still running) stops the setup. Default: lease.DefaultFailoverTime (10s)
	FailoverTime time.Duration
}

// DefaultScaleLeaseTable is the lock table of 'clickfleet scale' (package scale's DefaultLockTable; scale
// is not imported here, so that test helpers creating resources stay below it).
const DefaultScaleLeaseTable = "clickfleet-scale-leases"

// DefaultResources returns the names and sizes documented on Resources.
func DefaultResources() Resources {
	return Resources{
		Stream: messages.Stream, OffersStream: messages.OffersStream, ErrorsStream: messages.ErrorStream,
		Shards: 4, OutputShards: 1, LeaseTable: lease.DefaultTable, SessionsTable: messages.SessionsTable,
		ArchiveLeaseTable: lake.DefaultLeaseTable, ScaleLeaseTable: DefaultScaleLeaseTable, Buckets: []string{lake.DefaultBucket},
		FailoverTime: lease.DefaultFailoverTime,
	}
}

// Validate names the first empty or out-of-range setting.
func (r Resources) Validate() error {
	for _, f := range []struct{ name, v string }{
		{"stream", r.Stream}, {"offers-stream", r.OffersStream}, {"errors-stream", r.ErrorsStream},
		{"lease-table", r.LeaseTable}, {"sessions-table", r.SessionsTable}, {"archive-lease-table", r.ArchiveLeaseTable},
		{"scale-lease-table", r.ScaleLeaseTable},
	} {
		if f.v == "" {
			return fmt.Errorf("%s: must not be empty", f.name)
		}
	}
	if r.Shards < 1 {
		return fmt.Errorf("shards: must be at least 1, got %d", r.Shards)
	}
	if r.OutputShards < 1 {
		return fmt.Errorf("output-shards: must be at least 1, got %d", r.OutputShards)
	}
	if r.FailoverTime <= 0 {
		return fmt.Errorf("failover-time: must be positive, got %v", r.FailoverTime)
	}
	return nil
}

// Clients are the servers Setup talks to. Postgres may be nil: the customers schema is then skipped.
type Clients struct {
	Kinesis  KinesisAPI
	DynamoDB interface {
		DynamoDBAPI
		lease.DynamoDBAPI
	}
	Postgres Execer
	// S3 creates the lake's buckets; nil skips them.
	S3 S3API
}

// Setup creates every resource that is missing, in order (streams, tables, PostgreSQL schema), and logs
// what it created and what it found. It stops at the first failure, naming the resource.
func Setup(ctx context.Context, c Clients, r Resources, log *zap.Logger) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if log == nil {
		log = zap.NewNop()
	}
	type want struct {
		name   string
		shards int32
	}
	streams := []want{{r.Stream, r.Shards}, {r.OffersStream, r.OutputShards}, {r.ErrorsStream, r.OutputShards}}
	for _, name := range r.RouteStreams {
		if name != r.Stream && name != r.OffersStream && name != r.ErrorsStream {
			streams = append(streams, want{name, r.OutputShards})
		}
	}
	for _, s := range streams {
		res, err := EnsureStream(ctx, c.Kinesis, s.name, s.shards)
		if err != nil {
			return err
		}
		log.Info("stream ready", zap.String("stream", res.Name), zap.Bool("created", res.Created), zap.Int32("open_shards", res.Shards))
		if !res.Created && res.Shards != s.shards {
			log.Warn("stream exists with another shard count; left as it is", zap.String("stream", res.Name),
				zap.Int32("open_shards", res.Shards), zap.Int32("asked", s.shards))
		}
	}
	if err := ensureLeaseTable(ctx, c, r, r.LeaseTable, "leases", log); err != nil {
		return err
	}
	created, err := EnsureSessionsTable(ctx, c.DynamoDB, r.SessionsTable)
	if err != nil {
		return err
	}
	log.Info("table ready", zap.String("table", r.SessionsTable), zap.String("role", "sessions"), zap.Bool("created", created))
	if err := ensureLeaseTable(ctx, c, r, r.ArchiveLeaseTable, "archive leases", log); err != nil {
		return err
	}
	if err := ensureLeaseTable(ctx, c, r, r.ScaleLeaseTable, "stream autoscaler's lock", log); err != nil {
		return err
	}
	if c.S3 != nil {
		for _, b := range r.Buckets {
			created, err := EnsureBucket(ctx, c.S3, b)
			if err != nil {
				return err
			}
			log.Info("bucket ready", zap.String("bucket", b), zap.Bool("created", created))
		}
	}
	if c.Postgres == nil {
		log.Warn("no PostgreSQL configured (--pg-dsn): customers schema not created")
		return nil
	}
	if err := EnsureCustomersSchema(ctx, c.Postgres); err != nil {
		return err
	}
	log.Info("postgres schema ready", zap.String("table", "customers"), zap.String("notify_channel", names.Channel))
	return nil
}

// ensureLeaseTable creates a lease table and the tables that go with it, or upgrades one made before the
// owner index (lease.Upgrade).
func ensureLeaseTable(ctx context.Context, c Clients, r Resources, table, role string, log *zap.Logger) error {
	if err := lease.Upgrade(ctx, c.DynamoDB, table, lease.UpgradeConfig{FailoverTime: r.FailoverTime, Logger: log}); err != nil {
		return err
	}
	log.Info("table ready", zap.String("table", table), zap.String("role", role),
		zap.Strings("with", []string{lease.OwnerIndex, lease.CoordinatorStateTable(table), lease.WorkerMetricsTable(table)}))
	return nil
}
