// Package countcheck checks that a fleet running `--processor count` counted every record exactly once:
// a producer that tallies what the stream stored per user, the stream's own contents read back (the
// truth when the SDK retried a PutRecords call that had been stored), and a wait until Redis's per-user
// counts equal them, failing at once on a count above.
package countcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/consumer/usercount"
	"github.com/clickfleet/clickfleet/ingest/clickgen"
	"github.com/clickfleet/clickfleet/internal/pace"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// Sink puts events on the stream and tallies what was stored, per user.
type Sink struct {
	inner clickgen.Sink
	mu    sync.Mutex
	want  map[string]int64
}

// Put implements clickgen.Sink. A put under way completes when the producer is stopped (ctx ends), so
// that the tally never misses records the stream stored.
func (c *Sink) Put(ctx context.Context, batch []clickgen.Event) ([]clickgen.Event, error) {
	failed, err := c.inner.Put(context.WithoutCancel(ctx), batch)
	if err != nil {
		return failed, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range batch {
		c.want[ev.UserID]++
	}
	for _, ev := range failed {
		c.want[ev.UserID]--
	}
	return failed, nil
}

// Stored returns how many of each user's events the stream acknowledged.
func (c *Sink) Stored() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.want))
	for k, v := range c.want {
		out[k] = v
	}
	return out
}

// Produce puts count POC events of users at rate events/s (0: as fast as possible) on stream in the
// background; wait returns once they are all stored.
func Produce(t testing.TB, kin *kinesis.Client, stream string, count int64, users int, rate float64, seed int64) (sink *Sink, wait func()) {
	t.Helper()
	cfg := clickgen.DefaultConfig(clickgen.ProfilePOC)
	cfg.Count, cfg.Users, cfg.Rate, cfg.Seed, cfg.TimeScale = count, users, rate, seed, 1
	if rate == 0 {
		cfg.TimeScale = 0
	}
	sink = &Sink{inner: &clickgen.StreamSink{API: kin, Stream: stream}, want: map[string]int64{}}
	done := make(chan error, 1)
	go func() {
		_, err := clickgen.Run(context.Background(), cfg, sink, nil)
		done <- err
	}()
	return sink, func() {
		t.Helper()
		if err := <-done; err != nil {
			t.Fatalf("producer: %v", err)
		}
	}
}

// maxUntil bounds a ProduceUntil producer that is never stopped.
const maxUntil = 10 * time.Minute

// ProduceUntil puts POC events of users at rate events/s on stream in the background until stop is
// called (or for 10 minutes): a load that lasts through whatever a test does meanwhile, however fast or
// slow the machine is. stop returns once the producer has ended; every event whose put was under way
// is stored and tallied by then, so sink.Stored() is final.
func ProduceUntil(t testing.TB, kin *kinesis.Client, stream string, users int, rate float64, seed int64) (sink *Sink, stop func()) {
	t.Helper()
	cfg := clickgen.DefaultConfig(clickgen.ProfilePOC)
	cfg.Count, cfg.Duration, cfg.Users, cfg.Rate, cfg.Seed, cfg.TimeScale = 0, maxUntil, users, rate, seed, 1
	sink = &Sink{inner: &clickgen.StreamSink{API: kin, Stream: stream}, want: map[string]int64{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := clickgen.Run(ctx, cfg, sink, nil)
		done <- err
	}()
	var once sync.Once
	var err error
	stop = func() {
		t.Helper()
		once.Do(func() {
			cancel()
			err = <-done
		})
		// Stopped while it waited for the next event, or with events a throttle had refused (never
		// stored, never tallied): a clean stop.
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("producer: %v", err)
		}
	}
	t.Cleanup(func() {
		cancel()
		once.Do(func() { err = <-done })
	})
	return sink, stop
}

// OnStream returns the per-user count of the records the stream holds, read back from every shard (open
// and closed) from TRIM_HORIZON: what exactly-once counting must end at. It is the producer's tally,
// except that a PutRecords call the SDK retried after the emulator had stored it leaves a second copy on
// the stream (a producer retry, which --processor count does not recognise); such copies are logged.
func OnStream(t testing.TB, kin *kinesis.Client, stream string, produced map[string]int64) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	var shards []ktypes.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := kin.ListShards(ctx, in)
		if err != nil {
			t.Fatalf("list shards of %s: %v", stream, err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	counts := map[string]int64{}
	copies := map[string]int{}
	for _, sh := range shards {
		it, err := kin.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
			ShardId: sh.ShardId, ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatalf("iterator of %s: %v", aws.ToString(sh.ShardId), err)
		}
		next := it.ShardIterator
		// The workers may still read the shard: within AWS's limits (the fleet stack enforces them) this
		// reader takes its share and backs off when throttled.
		p := pace.New(200*time.Millisecond, 0, 2*time.Second)
		for next != nil && p.Wait(ctx) {
			out, err := kin.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: next, Limit: aws.Int32(10000)}, pace.NoThrottleRetries)
			var throttled *ktypes.ProvisionedThroughputExceededException
			if errors.As(err, &throttled) {
				p.Throttled()
				continue
			}
			if err != nil {
				t.Fatalf("read %s: %v", aws.ToString(sh.ShardId), err)
			}
			p.Read(len(out.Records))
			for _, r := range out.Records {
				var ev struct {
					UserID  string `json:"user_id"`
					ClickID string `json:"click_id"`
				}
				if err := json.Unmarshal(r.Data, &ev); err != nil || ev.UserID == "" {
					t.Fatalf("record %s of %s is not a generated event: %q", aws.ToString(r.SequenceNumber), aws.ToString(sh.ShardId), r.Data)
				}
				counts[ev.UserID]++
				copies[ev.ClickID]++
			}
			if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
				break
			}
			next = out.NextShardIterator
		}
	}
	for id, n := range copies {
		if n > 1 {
			t.Logf("click %s is on the stream %d times (a producer retry): counted %d times", id, n, n)
		}
	}
	for u, n := range produced {
		if counts[u] < n {
			t.Fatalf("user %s: %d records on the stream, but the producer had %d stored", u, counts[u], n)
		}
	}
	return counts
}

// WaitExact polls the per-user counts under prefix until they equal want; a count above want fails at once.
func WaitExact(t testing.TB, rdb *redis.Client, prefix string, want map[string]int64, timeout time.Duration) {
	t.Helper()
	testenv.WaitForState(t, "every record counted exactly once", timeout, func() (bool, string) {
		ctx := context.Background()
		pipe := rdb.Pipeline()
		cmds := map[string]*redis.StringCmd{}
		for u := range want {
			cmds[u] = pipe.HGet(ctx, usercount.Key(prefix, u), "count")
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			t.Fatalf("read counts: %v", err)
		}
		var total, wantTotal int64
		short := 0
		for u, c := range cmds {
			n, _ := strconv.ParseInt(c.Val(), 10, 64)
			if n > want[u] {
				t.Fatalf("user %s counted %d times, but the stream holds %d of its records: a record was processed twice", u, n, want[u])
			}
			if n < want[u] {
				short++
			}
			total += n
			wantTotal += want[u]
		}
		return short == 0, fmt.Sprintf("%d of %d records counted, %d users short", total, wantTotal, short)
	})
}
