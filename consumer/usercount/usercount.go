package usercount

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer"
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
	// Logger receives structured logs. Default: zap.NewNop().
	Logger *zap.Logger
}

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

// Factory returns the consumer.ProcessorFactory for cfg.
func Factory(cfg Config) (consumer.ProcessorFactory, error) {
	if cfg.Redis == nil {
		return nil, fmt.Errorf("usercount: Redis is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = session.DefaultPrefix
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	if cfg.CheckpointInterval < 0 {
		return nil, fmt.Errorf("usercount: CheckpointInterval must not be negative")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return func(shardID string) consumer.Processor {
		return &processor{cfg: cfg, shard: shardID, log: cfg.Logger.With(zap.String("shard_id", shardID))}
	}, nil
}

type processor struct {
	cfg   Config
	shard string
	log   *zap.Logger
	// done is the last position whose count Redis acknowledged; checkpointed is what the lease has.
	done, checkpointed *lease.Checkpoint
	lastCheckpoint     time.Time
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
	p.done = &last
	if time.Since(p.lastCheckpoint) >= p.cfg.CheckpointInterval {
		return p.checkpoint(ctx, b.Checkpointer)
	}
	return nil
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
