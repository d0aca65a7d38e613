package consumer

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/internal/settings"
	"github.com/clickfleet/clickfleet/lease"
)

// ErrInvalidConfig is wrapped by every error Config.Validate returns.
var ErrInvalidConfig = errors.New("consumer: invalid configuration")

// InitialPosition is where a shard without a checkpoint and without parents is read from.
type InitialPosition string

// The initial positions.
const (
	TrimHorizon InitialPosition = "TRIM_HORIZON" // the oldest record kept
	Latest      InitialPosition = "LATEST"       // records put after the lease is created
	AtTimestamp InitialPosition = "AT_TIMESTAMP" // records that arrived at or after Config.InitialTimestamp
)

// Config configures a Worker. Zero values take the documented defaults; Validate fills them in.
type Config struct {
	// Stream is the Kinesis stream to consume. Required.
	Stream string
	// Lease configures the lease coordinator (table, worker id, failover time …); its Process field is
	// set by the worker. Lease.Table is required.
	Lease lease.Config
	// NewProcessor makes the processor of each holding period. Required.
	NewProcessor ProcessorFactory
	// ReadMode is how held shards are read: Polling (GetRecords) or EFO (enhanced fan-out, SubscribeToShard).
	// Default: polling.
	ReadMode ReadMode
	// ConsumerName names the stream consumer the EFO read mode reads through; Run registers it unless it
	// exists. Default: Lease.Table (one consumer per application, as the KCL does).
	ConsumerName string
	// FanOut is the client of the EFO read mode's calls (RegisterStreamConsumer, DescribeStreamConsumer,
	// SubscribeToShard over HTTP/2). Default: the worker's Kinesis client.
	FanOut FanOutAPI
	// InitialPosition applies to shards without parents when their lease is created. Default: TRIM_HORIZON.
	InitialPosition InitialPosition
	// InitialTimestamp is the start for AtTimestamp.
	InitialTimestamp time.Time
	// MaxRecords is the GetRecords limit. Default: 10000 (the Kinesis maximum).
	MaxRecords int32
	// IdleTime is the pause between GetRecords calls on a shard when a call returned nothing, counted from
	// the previous call's start (never less than MinCallInterval). Default: 1s.
	IdleTime time.Duration
	// MinCallInterval is the poll interval (the commands' --poll-interval): the least time between the
	// starts of two GetRecords calls on one shard by this worker, whatever they return. Kinesis allows 5
	// calls per second per shard, shared by every application reading the stream (each application's
	// workers share a shard's lease, so one worker reads it at a time). At the default 500ms, consume and
	// archive make 2 + 2 = 4 calls/s per shard together under continuous traffic, leaving 1/s for `clickfleet
	// tail` (which polls each shard once a second) and probes; each call returns what arrived since the
	// previous one (up to MaxRecords), so a shorter interval buys latency, not throughput. Default: 500ms.
	MinCallInterval time.Duration
	// ThrottleBackoff caps the pause after a GetRecords call refused with
	// ProvisionedThroughputExceededException (other readers used the shard's budget): the pause starts at
	// MinCallInterval, doubles with jitter up to ThrottleBackoff, and starts over after a success, so a
	// shard is read again within ThrottleBackoff once the throttling ends. Throttles are not retried
	// within the SDK call. Default: 2s.
	ThrottleBackoff time.Duration
	// ShardSyncInterval is how often shards are listed to create leases for new ones and delete finished
	// ones; a shard's end triggers a sync too. Default: 60s.
	ShardSyncInterval time.Duration
	// ParentPollInterval is how often a held child shard checks whether its parents are finished.
	// Default: 10s.
	ParentPollInterval time.Duration
	// RetryBackoff is the first pause after a failed call (other than a throttled GetRecords, see
	// ThrottleBackoff) or processor error, doubled up to MaxBackoff with jitter. Defaults: 200ms and 10s.
	RetryBackoff time.Duration
	MaxBackoff   time.Duration
	// Logger receives structured logs. Default: zap.NewNop().
	Logger *zap.Logger
	// Registerer receives the consumer's and the lease coordinator's metrics. Default: nil (none).
	Registerer prometheus.Registerer
}

// Defaults of Config's fields.
const (
	DefaultMaxRecords         = 10000
	DefaultIdleTime           = time.Second
	DefaultMinCallInterval    = 500 * time.Millisecond
	DefaultThrottleBackoff    = 2 * time.Second
	DefaultShardSyncInterval  = 60 * time.Second
	DefaultParentPollInterval = 10 * time.Second
	DefaultRetryBackoff       = 200 * time.Millisecond
	DefaultMaxBackoff         = 10 * time.Second
)

// DefaultTakeInterval is the take interval the fleet's commands (consume, archive) give Lease.TakeInterval
// in either assignment mode: the lease package's own default in AssignByLeader mode (the leader's rounds
// and each worker's read of its own leases), and in AssignByScan mode a scan every second (reads only)
// instead of the Java KCL's 2 × (failover time + 25ms), so that a crashed worker's shards move within about
// the failover time + 2s rather than up to four failover times. Config leaves a zero Lease.TakeInterval to
// the lease package's default.
const DefaultTakeInterval = time.Second

// Validate fills in defaults and returns an error wrapping ErrInvalidConfig and a *settings.Error naming
// the first bad setting (a lease setting as "Lease.<field>").
func (c *Config) Validate() error {
	if err := c.Check(); err != nil {
		return err
	}
	if c.NewProcessor == nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, settings.Invalid("NewProcessor", "is required"))
	}
	return nil
}

// Check is Validate for every setting but NewProcessor: a command checks its flags with it before it makes
// any client or processor, so that a bad setting is refused before anything starts.
func (c *Config) Check() error {
	bad := func(setting, format string, args ...any) error {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, settings.Invalid(setting, format, args...))
	}
	if c.Stream == "" {
		return bad("Stream", "is required")
	}
	if c.InitialPosition == "" {
		c.InitialPosition = TrimHorizon
	}
	switch c.InitialPosition {
	case TrimHorizon, Latest:
	case AtTimestamp:
		if c.InitialTimestamp.IsZero() {
			return bad("InitialTimestamp", "is required with AT_TIMESTAMP")
		}
	default:
		return bad("InitialPosition", "must be TRIM_HORIZON, LATEST or AT_TIMESTAMP, not %q", c.InitialPosition)
	}
	defaults := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"IdleTime", &c.IdleTime, DefaultIdleTime},
		{"MinCallInterval", &c.MinCallInterval, DefaultMinCallInterval},
		{"ThrottleBackoff", &c.ThrottleBackoff, DefaultThrottleBackoff},
		{"ShardSyncInterval", &c.ShardSyncInterval, DefaultShardSyncInterval},
		{"ParentPollInterval", &c.ParentPollInterval, DefaultParentPollInterval},
		{"RetryBackoff", &c.RetryBackoff, DefaultRetryBackoff},
		{"MaxBackoff", &c.MaxBackoff, DefaultMaxBackoff},
	}
	for _, d := range defaults {
		if *d.v == 0 {
			*d.v = d.def
		}
		if *d.v < 0 {
			return bad(d.name, "must not be negative, got %s", *d.v)
		}
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = DefaultMaxRecords
	}
	if c.MaxRecords < 1 || c.MaxRecords > 10000 {
		return bad("MaxRecords", "must be 1..10000, got %d", c.MaxRecords)
	}
	if err := c.checkReadMode(); err != nil {
		return err
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Lease.Registerer == nil {
		c.Lease.Registerer = c.Registerer
	}
	if c.Lease.Logger == nil {
		c.Lease.Logger = c.Logger
	}
	if err := c.Lease.Check(); err != nil { // Process is the worker's own
		return fmt.Errorf("%w: %w", ErrInvalidConfig, settings.Within("Lease", err))
	}
	return nil
}
