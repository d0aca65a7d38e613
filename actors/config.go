package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors/route"
	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/internal/replicawait"
	"github.com/clickfleet/clickfleet/internal/settings"
	"github.com/clickfleet/clickfleet/messages"
)

// ErrInvalidConfig is wrapped by every error Config.Validate returns.
var ErrInvalidConfig = errors.New("actors: invalid configuration")

// KinesisAPI is the part of the Kinesis client the writer uses.
type KinesisAPI interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// DynamoDBAPI is the part of the DynamoDB client the writer uses.
type DynamoDBAPI interface {
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

// RedisAPI is the part of the Redis client the processor uses: pipelines (HGETALL, GET, EVALSHA), script
// loading, and transactions watching the shard's fence (the state writes).
type RedisAPI interface {
	Pipeline() redis.Pipeliner
	ScriptLoad(ctx context.Context, script string) *redis.StringCmd
	Watch(ctx context.Context, fn func(*redis.Tx) error, keys ...string) error
}

// GeoResolver is the part of *geo.Resolver the UserActor uses: Cached answers from memory without I/O;
// Resolve returns at once and calls fn exactly once, on another goroutine, within the resolver's lookup
// timeout (fn only sends a message to the actor).
type GeoResolver interface {
	Cached(ip string) (geo.Location, bool)
	Resolve(ip string, fn func(geo.Location))
}

// FlushInfo describes one flush of one shard, given to Config.AfterFlush.
type FlushInfo struct {
	ShardID string
	// N counts the flushes of this holding period, from 1.
	N int
	// UpTo is the position the flush covers; the checkpoint that follows is at it.
	UpTo session.Position
	// Users and Records are how many users were asked and how many records were routed since the
	// previous barrier.
	Users, Records int
	// Barrier is the time from the request to the last user's reply; Write the time the writer took.
	Barrier, Write time.Duration
}

// Config configures the processors of one worker process.
type Config struct {
	// Stream is the input stream's name, recorded in error records. Required.
	Stream string
	// Kinesis, DynamoDB and Redis are the sinks. Required.
	Kinesis  KinesisAPI
	DynamoDB DynamoDBAPI
	Redis    RedisAPI
	// SessionsTable is the DynamoDB sessions table. Default: "sessions".
	SessionsTable string
	// OffersStream receives high-intent events: the default route's stream. Default: "clickstream-offers".
	OffersStream string
	// Routes are the filtered outputs: each applied event is written to the stream of every route whose
	// predicate it matches, inside the flush barrier (at least once, with its click_id). They are
	// compiled once, by Validate. Default: the one route route.Offers(OffersStream, Rules.OfferEvent,
	// Rules.OfferMinPercent), today's offers byte for byte; when Routes is set, OffersStream and the
	// offer rules are not used for outputs.
	Routes []route.Route
	// ErrorsStream receives records that fail decoding or validation. Default: "clickstream-errors".
	ErrorsStream string
	// Prefix starts every Redis key (cf:user:<id>). Default: "cf:".
	Prefix string
	// Geo locates events' user_ip for enrichment (offers carry country, region and city; the user's hash
	// keeps the latest location). Its lookup timeout bounds how long a flush barrier waits for a user's
	// pending lookups (see the package doc). Default: nil, no geo enrichment (events are emitted without
	// location and without a geo_status mark; the name is added either way).
	Geo GeoResolver
	// Rules are the per-user rules (session gap, offer filter). Default: session.DefaultRules().
	Rules session.Rules
	// SessionUpdateInterval is the longest time an open session's row in the sessions table lags the
	// session: a row is written when its session starts (at the next flush), when it closes, and while
	// it stays open at most this often. Default: 60s.
	SessionUpdateInterval time.Duration
	// SessionCloseDelay is how long, beyond the session gap, the shard waits (processing time) without an
	// event of a user before it closes the user's session and writes its final row. Default: 5s.
	SessionCloseDelay time.Duration
	// FlushInterval is the longest time records stay unflushed. Default: 1s.
	FlushInterval time.Duration
	// FlushMaxRecords starts a flush when this many records of a shard are unflushed; ProcessRecords
	// waits while they are. Default: 20000.
	FlushMaxRecords int
	// PassivateAfter stops a user's actor when it has had no record for this long (its state is in
	// Redis). Default: 2m.
	PassivateAfter time.Duration
	// SweepInterval is how often each shard looks for idle users. Default: PassivateAfter/4, at least 1s
	// unless set explicitly.
	SweepInterval time.Duration
	// RetryBackoff is the first pause after a failed write or load, doubled up to MaxBackoff. Defaults:
	// 100ms and 5s.
	RetryBackoff, MaxBackoff time.Duration
	// WriteConcurrency bounds the concurrent BatchWriteItem and PutRecords calls of one flush. Default: 4.
	WriteConcurrency int
	// WaitReplicas makes the users' state durable on Redis replicas before it is checkpointed past: with
	// N > 0 a flush, after its state writes, waits until N replicas acknowledged every write Redis
	// applied before (internal/replicawait), and checkpoints only then. When fewer acknowledge within
	// WaitTimeout, or the wait fails, the flush writes its state again and waits again, after a backoff
	// (clickfleet_actors_replica_waits_total{result="short"|"failed"} and a warning), until acknowledged
	// or the holding period ends: the checkpoint never moves past state the replicas lack. A holding
	// period also waits once after raising the shard's fence, before it reads any state. Use it where
	// replication is asynchronous and a failover promotes a replica (ElastiCache with ≥ 1 replica: N up to
	// the replicas there are); not needed where an acknowledged write is durable (MemoryDB). Default: 0,
	// no wait.
	WaitReplicas int
	// WaitTimeout bounds one wait for the replicas; each wait is also cut at the lease's remaining
	// validity (so a timeout beyond the lease's failover time acts as that). Default: 2s.
	WaitTimeout time.Duration
	// StopTimeout bounds the wait for a shard's actors to stop. Default: 10s.
	StopTimeout time.Duration
	// Now is the clock (passivation, updated_ms). Default: time.Now.
	Now func() time.Time
	// AfterFlush, when set, is called after a flush's writes and before its checkpoint, from the
	// writer's goroutine. For tests and measurements.
	AfterFlush func(FlushInfo)
	// Logger receives structured logs, protoactor's too. Default: zap.NewNop().
	Logger *zap.Logger
	// Registerer receives the metrics. Default: nil (none).
	Registerer prometheus.Registerer

	// routes is Routes compiled by Validate; shared read-only by every actor.
	routes *route.Set
	// rows is the session row policy Validate derives from the session settings and the gap.
	rows session.RowPolicy
}

// Defaults of Config's fields.
const (
	DefaultSessionsTable    = messages.SessionsTable
	DefaultOffersStream     = messages.OffersStream
	DefaultErrorsStream     = messages.ErrorStream
	DefaultPrefix           = session.DefaultPrefix
	DefaultFlushInterval    = time.Second
	DefaultFlushMaxRecords  = 20000
	DefaultPassivateAfter   = 2 * time.Minute
	DefaultWriteConcurrency = 4
	// DefaultSessionUpdateInterval and DefaultSessionCloseDelay are the defaults of Config's fields.
	DefaultSessionUpdateInterval = time.Minute
	DefaultSessionCloseDelay     = 5 * time.Second
)

// Validate fills in defaults and returns an error wrapping ErrInvalidConfig and a *settings.Error naming
// the first bad setting.
func (c *Config) Validate() error {
	bad := func(setting, format string, args ...any) error {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, settings.Invalid(setting, format, args...))
	}
	switch {
	case c.Stream == "":
		return bad("Stream", "is required")
	case c.Kinesis == nil:
		return bad("Kinesis", "is required")
	case c.DynamoDB == nil:
		return bad("DynamoDB", "is required")
	case c.Redis == nil:
		return bad("Redis", "is required")
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.SessionsTable, DefaultSessionsTable)
	def(&c.OffersStream, DefaultOffersStream)
	def(&c.ErrorsStream, DefaultErrorsStream)
	def(&c.Prefix, DefaultPrefix)
	if c.Rules == (session.Rules{}) {
		c.Rules = session.DefaultRules()
	}
	if err := c.Rules.Validate(); err != nil {
		return bad("Rules", "%v", err)
	}
	rs := c.Routes
	if len(rs) == 0 {
		rs = []route.Route{route.Offers(c.OffersStream, c.Rules.OfferEvent, c.Rules.OfferMinPercent)}
	}
	set, err := route.Compile(rs)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	c.routes = set
	if c.SweepInterval == 0 && c.PassivateAfter >= 0 {
		p := c.PassivateAfter
		if p == 0 {
			p = DefaultPassivateAfter
		}
		c.SweepInterval = max(p/4, time.Second)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"FlushInterval", &c.FlushInterval, DefaultFlushInterval},
		{"PassivateAfter", &c.PassivateAfter, DefaultPassivateAfter},
		{"SweepInterval", &c.SweepInterval, 30 * time.Second},
		{"RetryBackoff", &c.RetryBackoff, 100 * time.Millisecond},
		{"MaxBackoff", &c.MaxBackoff, 5 * time.Second},
		{"StopTimeout", &c.StopTimeout, 10 * time.Second},
		{"SessionUpdateInterval", &c.SessionUpdateInterval, DefaultSessionUpdateInterval},
		{"SessionCloseDelay", &c.SessionCloseDelay, DefaultSessionCloseDelay},
		{"WaitTimeout", &c.WaitTimeout, replicawait.DefaultTimeout},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
		if *d.v < 0 {
			return bad(d.name, "must not be negative, got %s", *d.v)
		}
	}
	if c.SessionUpdateInterval < time.Millisecond {
		return bad("SessionUpdateInterval", "must be at least 1ms, got %s", c.SessionUpdateInterval)
	}
	c.rows = session.RowPolicy{UpdateIntervalMs: c.SessionUpdateInterval.Milliseconds(),
		CloseAfterMs: c.Rules.GapMs + c.SessionCloseDelay.Milliseconds()}
	if c.FlushMaxRecords == 0 {
		c.FlushMaxRecords = DefaultFlushMaxRecords
	}
	if c.FlushMaxRecords < 0 {
		return bad("FlushMaxRecords", "must not be negative, got %d", c.FlushMaxRecords)
	}
	if c.WriteConcurrency == 0 {
		c.WriteConcurrency = DefaultWriteConcurrency
	}
	if c.WriteConcurrency < 0 {
		return bad("WriteConcurrency", "must not be negative, got %d", c.WriteConcurrency)
	}
	if c.WaitReplicas < 0 {
		return bad("WaitReplicas", "must not be negative, got %d", c.WaitReplicas)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return nil
}
