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
// per shard, so fn must be safe for concurrent use). It returns fn's error, or nil when ctx ended.
func Tail(ctx context.Context, api API, stream string, opts Options, fn func(Record) error) error {
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.RelistInterval <= 0 {
		opts.RelistInterval = 5 * time.Second
	}
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
				if err := readShard(ctx, api, stream, id, latest, opts.PollInterval, fn); err != nil {
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
