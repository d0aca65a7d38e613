package usercount

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/replicawait"
	"github.com/clickfleet/clickfleet/internal/settings"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/lease/position"
)

// DefaultCheckpointInterval is Config.CheckpointInterval's default.
const DefaultCheckpointInterval = 5 * time.Second

// Config configures the processors of one worker.
type Config struct {
	// Redis stores the counts. Required.
	Redis redis.UniversalClient
	// Prefix starts every key. Default: "cf:".
	Prefix string
	// CheckpointInterval is the least time between two checkpoints of a shard; a shard's end and a
	// shutdown always checkpoint. Default: 5s.
	CheckpointInterval time.Duration
	// WaitReplicas makes the counts durable on Redis replicas before they are checkpointed past: with
	// N > 0 each batch, after its counts, waits until N replicas acknowledged every write Redis applied
	// before (internal/replicawait); when fewer do within WaitTimeout, or the wait fails, ProcessRecords
	// returns the error and the worker delivers the batch again, whose guarded counts then count on the
	// server that answers what a failed-over primary lost. Every batch waits, not only the one that
	// checkpoints: the processor keeps no batch it has acknowledged, so what a failover loses must be
	// found before. Default: 0, no wait.
	WaitReplicas int
	// WaitTimeout bounds one wait for the replicas. Default: 2s.
	WaitTimeout time.Duration
	// Logger receives structured logs. Default: zap.NewNop().
	Logger *zap.Logger
	// Registerer receives the metrics (clickfleet_count_replica_waits_total). Default: nil (none).
	Registerer prometheus.Registerer
}

// ErrInvalidConfig is wrapped by every error Factory returns for a bad Config, with a *settings.Error
// naming the setting.
var ErrInvalidConfig = errors.New("invalid usercount configuration")

// Key returns the Redis hash holding a user's count (field "count") and, per shard, the position of the
// last record counted (field "pos:<shard id>", "<sequence>:<sub-sequence>").
func Key(prefix, userID string) string { return prefix + "count:" + userID }

// countScript: KEYS[1] the user's hash; ARGV[1] the shard id; then pairs of (sequence, sub-sequence) in
// ascending order. Counts the records beyond the stored position and stores the last one.
var countScript = redis.NewScript(position.LuaBeyond + `
local field = '` + session.PositionFieldStem + `' .. ARGV[1]
local stored = redis.call('HGET', KEYS[1], field)
local n, lseq, lsub = 0, nil, nil
for i = 2, #ARGV, 2 do
  local seq, sub = ARGV[i], tonumber(ARGV[i + 1])
  if beyond(stored, seq, sub) then
    n = n + 1
    lseq, lsub = seq, sub
    stored = seq .. ':' .. sub
  end
end
if n > 0 then
  redis.call('HINCRBY', KEYS[1], 'count', n)
  redis.call('HSET', KEYS[1], field, lseq .. ':' .. lsub)
end
return n
`)

// Factory returns the consumer.ProcessorFactory for cfg, or an error wrapping ErrInvalidConfig and a
// *settings.Error naming the first bad setting (or the metrics' registration error).
func Factory(cfg Config) (consumer.ProcessorFactory, error) {
	bad := func(setting, format string, args ...any) error {
		return fmt.Errorf("usercount: %w: %w", ErrInvalidConfig, settings.Invalid(setting, format, args...))
	}
	switch {
	case cfg.Redis == nil:
		return nil, bad("Redis", "is required")
	case cfg.CheckpointInterval < 0:
		return nil, bad("CheckpointInterval", "must not be negative, got %s", cfg.CheckpointInterval)
	case cfg.WaitReplicas < 0:
		return nil, bad("WaitReplicas", "must not be negative, got %d", cfg.WaitReplicas)
	case cfg.WaitTimeout < 0:
		return nil, bad("WaitTimeout", "must not be negative, got %s", cfg.WaitTimeout)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = session.DefaultPrefix
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	if cfg.WaitTimeout == 0 {
		cfg.WaitTimeout = replicawait.DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	waits := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clickfleet_count_replica_waits_total",
		Help: "Waits for Redis replicas to acknowledge a batch's counts (Config.WaitReplicas), by result: acknowledged, short (fewer replicas within the timeout: the batch is delivered again), failed (the wait's own error)."}, []string{"result"})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(waits); err != nil {
			return nil, fmt.Errorf("usercount: register metrics: %w", err)
		}
	}
	return func(shardID string) consumer.Processor {
		return &processor{cfg: cfg, shard: shardID, log: cfg.Logger.With(zap.String("shard_id", shardID)), waits: waits}
	}, nil
}

type processor struct {
	cfg   Config
	shard string
	log   *zap.Logger
	// done is the last position whose count Redis acknowledged; checkpointed is what the lease has.
	done, checkpointed *lease.Checkpoint
	lastCheckpoint     time.Time
	waits              *prometheus.CounterVec // by result
}

func (p *processor) Initialize(context.Context, consumer.InitInput) error {
	p.lastCheckpoint = time.Now()
	return nil
}

func (p *processor) ProcessRecords(ctx context.Context, b consumer.Batch) error {
	order := []string{}
	byUser := map[string][]any{}
	for _, r := range b.Records {
		args, ok := byUser[r.PartitionKey]
		if !ok {
			order = append(order, r.PartitionKey)
			args = []any{p.shard}
		}
		byUser[r.PartitionKey] = append(args, r.SequenceNumber, strconv.FormatInt(r.SubSequence, 10))
	}
	run := func() error {
		pipe := p.cfg.Redis.Pipeline()
		for _, u := range order {
			countScript.EvalSha(ctx, pipe, []string{Key(p.cfg.Prefix, u)}, byUser[u]...)
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	err := run()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// A new or restarted Redis does not know the script yet; the counts that did run are guarded.
		if err = countScript.Load(ctx, p.cfg.Redis).Err(); err == nil {
			err = run()
		}
	}
	if err != nil {
		return fmt.Errorf("count %d records of shard %s in Redis: %w", len(b.Records), p.shard, err)
	}
	last := b.Records[len(b.Records)-1].Position()
	if err := p.waitReplicas(ctx, last); err != nil {
		return fmt.Errorf("count %d records of shard %s: %w", len(b.Records), p.shard, err)
	}
	p.done = &last
	if time.Since(p.lastCheckpoint) >= p.cfg.CheckpointInterval {
		return p.checkpoint(ctx, b.Checkpointer)
	}
	return nil
}

// waitReplicas waits, with Config.WaitReplicas set, until that many replicas acknowledged every write
// before it, the batch's counts among them (replicawait.Wait, writing last at the shard's ack key). It
// counts the result and warns when fewer replicas acknowledged.
func (p *processor) waitReplicas(ctx context.Context, last lease.Checkpoint) error {
	if p.cfg.WaitReplicas == 0 {
		return nil
	}
	acked, err := replicawait.Wait(ctx, p.cfg.Redis, replicawait.Key(p.cfg.Prefix, p.shard), last.String(), p.cfg.WaitReplicas, p.cfg.WaitTimeout)
	switch {
	case err == nil:
		p.waits.WithLabelValues("acknowledged").Inc()
	case errors.Is(err, replicawait.ErrNotAcknowledged):
		p.waits.WithLabelValues("short").Inc()
		p.log.Warn("fewer Redis replicas than required acknowledged the batch's counts in time: the batch is delivered again",
			zap.Int("replicas", p.cfg.WaitReplicas), zap.Int("acknowledged", acked), zap.Duration("timeout", p.cfg.WaitTimeout), zap.Stringer("last", last))
	default:
		p.waits.WithLabelValues("failed").Inc()
	}
	return err
}

func (p *processor) checkpoint(ctx context.Context, cp consumer.Checkpointer) error {
	if p.done == nil || (p.checkpointed != nil && *p.checkpointed == *p.done) {
		return nil
	}
	if err := cp.Checkpoint(ctx, p.done.SequenceNumber, p.done.SubSequence); err != nil {
		return fmt.Errorf("checkpoint shard %s at %s: %w", p.shard, p.done, err)
	}
	c := *p.done
	p.checkpointed, p.lastCheckpoint = &c, time.Now()
	return nil
}

func (p *processor) LeaseLost(context.Context) {}

func (p *processor) ShardEnded(ctx context.Context, cp consumer.Checkpointer) error {
	return cp.CheckpointShardEnd(ctx)
}

func (p *processor) ShutdownRequested(ctx context.Context, cp consumer.Checkpointer) error {
	return p.checkpoint(ctx, cp)
}
