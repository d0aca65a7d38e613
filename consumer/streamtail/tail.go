package streamtail

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickfleet/clickfleet/consumer/fanout"
	"github.com/clickfleet/clickfleet/internal/pace"
)

// API is the part of the Kinesis client a tail uses.
type API interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, opts ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, opts ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// Options tune a tail. The zero value reads from the oldest record, polling each shard once a second.
type Options struct {
	// Latest starts at the tip of each shard open at start instead of its oldest record.
	Latest bool
	// PollInterval is the least time between two GetRecords calls on one shard, whatever they return.
	// Kinesis allows 5 calls per second per shard for every application reading the stream together; the
	// fleet's consume and archive take 4 of them at their defaults (consumer.Config.MinCallInterval), so a
	// tail beside them keeps to the fifth. A throttled call is paused after with a jittered backoff that
	// starts at PollInterval and doubles up to twice it. Default: 1s.
	PollInterval time.Duration
	// RelistInterval is how often shards are listed again to find children. Default: 5s.
	RelistInterval time.Duration
	// FanOut, when set, reads every shard with enhanced fan-out (SubscribeToShard) through the stream
	// consumer ConsumerName instead of GetRecords: the tail then takes nothing from the shards' polling
	// budget of 5 calls per second that the stream's polling applications share. Tail registers the
	// consumer unless it exists, and deregisters it when it returns if it registered it. Default: nil,
	// GetRecords.
	FanOut fanout.API
	// ConsumerName names the stream consumer with FanOut. Required with FanOut.
	ConsumerName string
}

// DefaultPollInterval is Options.PollInterval's default: a tail's share of a shard's 5 GetRecords calls per
// second beside consume and archive at their defaults.
const DefaultPollInterval = time.Second

// Record is a record read from one shard.
type Record struct {
	ShardID string
	ktypes.Record
}

// Tail reads stream until ctx ends or fn returns an error, calling fn for each record (from one goroutine
// per shard, so fn must be safe for concurrent use). It returns fn's error, or nil when ctx ended. With
// Options.FanOut it reads through a stream consumer (see Options) and fails, naming it, when it cannot be
// registered or is deregistered meanwhile.
func Tail(ctx context.Context, api API, stream string, opts Options, fn func(Record) error) error {
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.RelistInterval <= 0 {
		opts.RelistInterval = 5 * time.Second
	}
	read, done, err := opts.reader(ctx, stream, fn)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer done()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	started := map[string]bool{}
	first := true
	for {
		shards, err := listShards(ctx, api, stream)
		if err != nil {
			if ctx.Err() != nil {
				return userError(ctx)
			}
			return err
		}
		for _, sh := range shards {
			id := aws.ToString(sh.ShardId)
			if started[id] {
				continue
			}
			started[id] = true
			// Shards that appear after the start are children: read them from their beginning.
			latest := opts.Latest && first
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := read(ctx, api, id, latest); err != nil {
					cancel(err)
				}
			}()
		}
		first = false
		select {
		case <-ctx.Done():
			wg.Wait()
			return userError(ctx)
		case <-time.After(opts.RelistInterval):
		}
	}
}

// userError is the error a reader or fn ended the tail with, or nil when the caller's ctx ended it.
func userError(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

func listShards(ctx context.Context, api API, stream string) ([]ktypes.Shard, error) {
	var shards []ktypes.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := api.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", stream, err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			return shards, nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

func readShard(ctx context.Context, api API, stream, shard string, latest bool, poll time.Duration, fn func(Record) error) error {
	typ := ktypes.ShardIteratorTypeTrimHorizon
	if latest {
		typ = ktypes.ShardIteratorTypeLatest
	}
	it, err := api.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: aws.String(shard), ShardIteratorType: typ})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("shard iterator for %s/%s: %w", stream, shard, err)
	}
	iter := it.ShardIterator
	p := pace.New(poll, poll, 2*poll)
	for iter != nil {
		if !p.Wait(ctx) {
			return nil
		}
		out, err := api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)}, pace.NoThrottleRetries)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var limit *ktypes.ProvisionedThroughputExceededException
			if errors.As(err, &limit) {
				p.Throttled()
				continue
			}
			return fmt.Errorf("get records from %s/%s: %w", stream, shard, err)
		}
		p.Read(len(out.Records))
		for _, r := range out.Records {
			if err := fn(Record{ShardID: shard, Record: r}); err != nil {
				return err
			}
		}
		iter = out.NextShardIterator
	}
	return nil // the shard is closed and read to its end
}

// shardReader reads one shard from its oldest record, or its newest with latest, calling fn per record.
type shardReader func(ctx context.Context, api API, shard string, latest bool) error

// reader returns the tail's shard reader — GetRecords, or enhanced fan-out with FanOut set — and what to
// do when the tail ends (deregister the stream consumer it registered).
func (o Options) reader(ctx context.Context, stream string, fn func(Record) error) (shardReader, func(), error) {
	if o.FanOut == nil {
		return func(ctx context.Context, api API, shard string, latest bool) error {
			return readShard(ctx, api, stream, shard, latest, o.PollInterval, fn)
		}, func() {}, nil
	}
	if o.ConsumerName == "" {
		return nil, nil, errors.New("streamtail: ConsumerName is required with FanOut")
	}
	c, created, err := fanout.EnsureConsumer(ctx, o.FanOut, stream, o.ConsumerName, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("stream consumer of the tail: %w", err)
	}
	done := func() {}
	if created {
		done = func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_ = fanout.Deregister(dctx, o.FanOut, c.ARN) // a consumer left behind costs, but changes nothing read
		}
	}
	sub := fanout.SDK(o.FanOut)
	return func(ctx context.Context, _ API, shard string, latest bool) error {
		return subscribeShard(ctx, sub, c.ARN, shard, latest, fn)
	}, done, nil
}

// subscribeShard reads a shard through subscriptions until ctx ends, the shard ends, or fn fails.
func subscribeShard(ctx context.Context, sub fanout.Subscriber, consumerARN, shard string, latest bool, fn func(Record) error) error {
	from := fanout.Position{Type: ktypes.ShardIteratorTypeTrimHorizon}
	if latest {
		from.Type = ktypes.ShardIteratorTypeLatest
	}
	s := &fanout.Shard{Subscriber: sub, ConsumerARN: consumerARN, ShardID: shard}
	_, err := s.Read(ctx, from, func(e *ktypes.SubscribeToShardEvent) error {
		for _, r := range e.Records {
			if err := fn(Record{ShardID: shard, Record: r}); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}
