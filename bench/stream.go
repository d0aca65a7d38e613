package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickfleet/clickfleet/ingest/clickgen"
	"github.com/clickfleet/clickfleet/internal/pace"
	"github.com/clickfleet/clickfleet/internal/provision"
)

// KinesisAPI is the part of the Kinesis client the benchmarks use.
type KinesisAPI interface {
	provision.KinesisAPI
	clickgen.PutRecordsAPI
	DeleteStream(ctx context.Context, in *kinesis.DeleteStreamInput, opts ...func(*kinesis.Options)) (*kinesis.DeleteStreamOutput, error)
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, opts ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, opts ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
	UpdateShardCount(ctx context.Context, in *kinesis.UpdateShardCountInput, opts ...func(*kinesis.Options)) (*kinesis.UpdateShardCountOutput, error)
}

// prefill puts count generated POC events for users on stream with `writers` concurrent PutRecords
// loops, as fast as the stream takes them, and returns the per-user counts stored.
func prefill(ctx context.Context, api KinesisAPI, stream string, count int64, users, writers int, seed int64, progress func(string)) (map[string]int64, time.Duration, error) {
	start := time.Now()
	var (
		mu   sync.Mutex
		want = map[string]int64{}
		sent atomic.Int64
		wg   sync.WaitGroup
		errs = make(chan error, writers)
	)
	per := count / int64(writers)
	for i := range writers {
		n := per
		if i == writers-1 {
			n = count - per*int64(writers-1)
		}
		cfg := clickgen.DefaultConfig(clickgen.ProfilePOC)
		cfg.Count, cfg.Users, cfg.Rate, cfg.TimeScale, cfg.Seed = n, users, 0, 0, seed+int64(i)
		sink := &tallySink{inner: &clickgen.StreamSink{API: api, Stream: stream}, mu: &mu, want: want, sent: &sent}
		wg.Go(func() {
			if _, err := clickgen.Run(ctx, cfg, sink, nil); err != nil {
				errs <- err
			}
		})
	}
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				progress(fmt.Sprintf("pre-fill: %d of %d records", sent.Load(), count))
			}
		}
	}()
	wg.Wait()
	close(stop)
	close(errs)
	if err := <-errs; err != nil {
		return nil, 0, fmt.Errorf("pre-fill %s: %w", stream, err)
	}
	return want, time.Since(start), nil
}

type tallySink struct {
	inner clickgen.Sink
	mu    *sync.Mutex
	want  map[string]int64
	sent  *atomic.Int64
}

func (s *tallySink) Put(ctx context.Context, batch []clickgen.Event) ([]clickgen.Event, error) {
	failed, err := s.inner.Put(ctx, batch)
	if err != nil {
		return failed, err
	}
	s.mu.Lock()
	for _, ev := range batch {
		s.want[ev.UserID]++
	}
	for _, ev := range failed {
		s.want[ev.UserID]--
	}
	s.mu.Unlock()
	s.sent.Add(int64(len(batch) - len(failed)))
	return failed, nil
}

// bareRead reads every shard of stream from TRIM_HORIZON with back-to-back GetRecords calls until total
// records have been read; it is the emulator's ceiling for one reader process. Behind a layer enforcing
// AWS's limits (the stack's --aws-limits) a throttled call is repeated after a jittered pause (100 ms
// doubling to 1 s, reset by a success), so it is the ceiling within those limits.
func bareRead(ctx context.Context, api KinesisAPI, stream string, total int64) (time.Duration, error) {
	out, err := api.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		read atomic.Int64
		wg   sync.WaitGroup
		done = make(chan struct{})
	)
	start := time.Now()
	for _, sh := range out.Shards {
		wg.Go(func() {
			it, err := api.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
				ShardId: sh.ShardId, ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
			if err != nil {
				cancel(err)
				return
			}
			iter := it.ShardIterator
			p := pace.New(0, 0, time.Second)
			for iter != nil && p.Wait(ctx) {
				r, err := api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)}, pace.NoThrottleRetries)
				var throttled *ktypes.ProvisionedThroughputExceededException
				if errors.As(err, &throttled) {
					p.Throttled()
					continue
				}
				if err != nil {
					cancel(err)
					return
				}
				p.Read(len(r.Records))
				if read.Add(int64(len(r.Records))) >= total {
					select {
					case <-done:
					default:
						close(done)
					}
					return
				}
				if len(r.Records) == 0 {
					return // this shard is drained
				}
				iter = r.NextShardIterator
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return took, err
	}
	if n := read.Load(); n < total {
		return took, fmt.Errorf("bare reader read %d of %d records", n, total)
	}
	return took, nil
}
