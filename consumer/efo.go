package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/consumer/fanout"
	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/internal/settings"
	"github.com/clickfleet/clickfleet/lease"
)

// ReadMode is how a worker reads its shards.
type ReadMode string

// The read modes.
const (
	// Polling reads each held shard with GetRecords. Every polling application on a stream shares a
	// shard's 5 calls and 2 MiB per second.
	Polling ReadMode = "polling"
	// EFO reads each held shard with enhanced fan-out: SubscribeToShard through a stream consumer
	// registered for the application (Config.ConsumerName), with 2 MiB per second per shard of its own
	// and records pushed as they arrive; Kinesis bills it per consumer-shard hour and per GB read.
	EFO ReadMode = "efo"
)

// FanOutAPI is the part of the Kinesis client the worker uses in the EFO read mode (see fanout.API);
// *kinesis.Client implements it.
type FanOutAPI = fanout.API

// maxConsumerName is the longest stream consumer name Kinesis takes.
const maxConsumerName = 128

// checkReadMode fills in and checks ReadMode and, in the EFO read mode, ConsumerName.
func (c *Config) checkReadMode() error {
	bad := func(setting, format string, args ...any) error {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, settings.Invalid(setting, format, args...))
	}
	switch c.ReadMode {
	case "":
		c.ReadMode = Polling
	case Polling, EFO:
	default:
		return bad("ReadMode", "must be %s or %s, not %q", Polling, EFO, c.ReadMode)
	}
	if c.ReadMode != EFO {
		return nil
	}
	if c.ConsumerName == "" {
		c.ConsumerName = c.Lease.Table
	}
	if len(c.ConsumerName) > maxConsumerName {
		return bad("ConsumerName", "must be at most %d characters (Kinesis' limit), got %d; the default is the lease table's name", maxConsumerName, len(c.ConsumerName))
	}
	return nil
}

// fanOut is a worker's enhanced fan-out: its client, and the stream consumer its readers subscribe
// through (found or registered when Run starts).
type fanOut struct {
	api      FanOutAPI
	sub      fanout.Subscriber
	consumer fanout.Consumer
}

// newFanOut returns the worker's fan-out in the EFO read mode (nil otherwise): through cfg.FanOut, or api
// when it has the fan-out calls.
func newFanOut(api KinesisAPI, cfg Config) (*fanOut, error) {
	if cfg.ReadMode != EFO {
		return nil, nil
	}
	fa := cfg.FanOut
	if fa == nil {
		var ok bool
		if fa, ok = api.(FanOutAPI); !ok {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, settings.Invalid("FanOut", "is required in the %s read mode", EFO))
		}
	}
	return &fanOut{api: fa, sub: fanout.SDK(fa)}, nil
}

// ensureStreamConsumer finds or registers the stream consumer in the EFO read mode, retrying transient
// failures until ctx ends (then it returns nil). A permanent failure is returned as a *ResourceError
// naming the stream (a missing stream) or ConsumerName.
func (w *Worker) ensureStreamConsumer(ctx context.Context) error {
	if w.fan == nil {
		return nil
	}
	b := retry.Backoff{Initial: w.cfg.RetryBackoff, Max: w.cfg.MaxBackoff}
	for {
		c, created, err := fanout.EnsureConsumer(ctx, w.fan.api, w.cfg.Stream, w.cfg.ConsumerName, 0)
		if err == nil {
			w.fan.consumer = c
			w.log.Info("reading with enhanced fan-out", zap.String("consumer", c.Name), zap.String("consumer_arn", c.ARN), zap.Bool("registered", created))
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		if retry.IsPermanent(err) || errors.Is(err, fanout.ErrNotActive) {
			return w.consumerError(err)
		}
		w.log.Warn("cannot find or register the stream consumer; retrying", zap.String("consumer", w.cfg.ConsumerName), zap.Error(err))
		if !sleepCtx(ctx, b.Next()) {
			return nil
		}
	}
}

// consumerError names the resource a permanent failure of the stream consumer's calls concerns: the stream
// when describing it failed, the fan-out endpoint (FanOut) when it does not serve enhanced fan-out, else
// the stream consumer (ConsumerName).
func (w *Worker) consumerError(err error) error {
	var op *smithy.OperationError
	switch {
	case errors.Is(err, fanout.ErrUnsupported):
		return w.endpointError(err)
	case errors.As(err, &op) && op.Operation() == "DescribeStreamSummary":
		return w.resourceError(err)
	}
	return &ResourceError{Setting: "ConsumerName", Kind: "stream consumer", Name: w.cfg.ConsumerName, Err: err}
}

// endpointError is a *ResourceError naming FanOut, the client whose endpoint does not serve enhanced fan-out.
func (w *Worker) endpointError(err error) error {
	return &ResourceError{Setting: "FanOut", Kind: "enhanced fan-out endpoint of stream consumer", Name: w.cfg.ConsumerName, Err: err}
}

// errPeriodOver ends a subscription whose holding period is over (lost, handed off, shutting down) or
// whose processor failed for good.
var errPeriodOver = errors.New("consumer: holding period over")

// errEndReached ends a subscription of a closed shard read to its end (see efoShard.atClosedEnd).
var errEndReached = errors.New("consumer: closed shard read to its end")

// efoShard is one holding period's read of a shard through subscriptions.
type efoShard struct {
	r          *shardReader
	s          *fanout.Shard
	hctx, pctx context.Context
	lastProbe  time.Time
}

// readFanOut reads the shard through subscriptions until it ends (true) or the holding period ends
// (false): readLoop's counterpart in the EFO read mode. A permanent failure (the stream consumer
// deregistered, the stream deleted, a denied call) stops the worker, naming the setting.
func (r *shardReader) readFanOut(hctx, pctx context.Context) bool {
	f := r.w.fan
	e := &efoShard{r: r, hctx: hctx, pctx: pctx, s: &fanout.Shard{
		Subscriber: f.sub, ConsumerARN: f.consumer.ARN, ShardID: r.shard, Logger: r.log,
		Backoff: retry.Backoff{Initial: r.w.cfg.RetryBackoff, Max: r.w.cfg.MaxBackoff},
		OnSubscribe: func(err error) {
			r.w.metrics.calls.WithLabelValues("subscribe_to_shard", outcome(err)).Inc()
		},
	}}
	ended, err := e.s.Read(hctx, r.startPosition(), e.handle)
	switch {
	case ended || errors.Is(err, errEndReached):
		return true
	case err == nil || errors.Is(err, errPeriodOver) || hctx.Err() != nil:
		return false
	}
	r.fanOutFailed(err)
	return false
}

// read reads the shard in the worker's read mode until it ends (true) or the holding period ends (false).
func (r *shardReader) read(hctx, pctx context.Context) bool {
	if r.w.fan != nil {
		return r.readFanOut(hctx, pctx)
	}
	return r.readLoop(hctx, pctx)
}

// startPosition is where the period's first subscription starts: the initial position, or AT the
// checkpoint's sequence number, so that the rest of a partly processed KPL aggregate is delivered again
// (a checkpoint at sub-record 0 of an aggregate cannot be told from one at a plain record); convert drops
// what is at or below the checkpoint, as for GetRecords.
func (r *shardReader) startPosition() fanout.Position {
	switch r.last.SequenceNumber {
	case lease.TrimHorizon.SequenceNumber:
		return fanout.Position{Type: ktypes.ShardIteratorTypeTrimHorizon}
	case lease.Latest.SequenceNumber:
		return fanout.Position{Type: ktypes.ShardIteratorTypeLatest}
	case lease.AtTimestamp.SequenceNumber:
		return fanout.Position{Type: ktypes.ShardIteratorTypeAtTimestamp, Timestamp: r.w.cfg.InitialTimestamp}
	}
	return fanout.Position{Type: ktypes.ShardIteratorTypeAtSequenceNumber, SequenceNumber: r.last.SequenceNumber}
}

// handle delivers one event's records to the processor (the next event is taken only then), reports the
// shard's lag, and ends the subscription at a closed shard's end.
func (e *efoShard) handle(ev *ktypes.SubscribeToShardEvent) error {
	r := e.r
	r.countRead(ev.Records)
	recs := r.convert(ev.Records)
	arrival := sinceLastArrival(ev.Records)
	r.w.lags.set(r.shard, aws.ToInt64(ev.MillisBehindLatest), arrival)
	if len(recs) > 0 {
		b := Batch{Records: recs, MillisBehindLatest: aws.ToInt64(ev.MillisBehindLatest), Checkpointer: r.cp, Lag: arrival}
		if !r.deliver(e.hctx, e.pctx, b) {
			return errPeriodOver
		}
	}
	if len(ev.Records) == 0 && ev.ContinuationSequenceNumber != nil && e.atClosedEnd() {
		return errEndReached
	}
	return nil
}

// sinceLastArrival is the time since the last record's arrival; 0 without records.
func sinceLastArrival(recs []ktypes.Record) time.Duration {
	if n := len(recs); n > 0 {
		if at := recs[n-1].ApproximateArrivalTimestamp; at != nil {
			return time.Since(*at)
		}
	}
	return 0
}

// atClosedEnd says whether a shard that the last shard sync listed as closed has been read to its end,
// when a subscription has nothing more to deliver. Kinesis itself says so (an event without a
// continuation, with the children), but kinesis-mock keeps a closed shard's subscription open until its
// five minutes end, and kinesalite has none: so, at most every ParentPollInterval, one GetRecords after
// the last event's continuation tells whether anything is left (no records and no next iterator: the
// end). Open shards are never probed.
func (e *efoShard) atClosedEnd() bool {
	r := e.r
	if !r.w.syncer.closed.has(r.shard) || time.Since(e.lastProbe) < r.w.cfg.ParentPollInterval {
		return false
	}
	e.lastProbe = time.Now()
	end, err := r.readToEnd(e.hctx, e.s.Next())
	if err != nil {
		if e.hctx.Err() == nil {
			r.log.Warn("cannot tell whether the closed shard is read to its end; will ask again", zap.Error(err))
		}
		return false
	}
	return end
}

// readToEnd reports whether a GetRecords from `from` finds the shard closed with nothing left.
func (r *shardReader) readToEnd(ctx context.Context, from fanout.Position) (bool, error) {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(r.w.cfg.Stream), ShardId: aws.String(r.shard), ShardIteratorType: from.Type}
	if from.SequenceNumber != "" {
		in.StartingSequenceNumber = aws.String(from.SequenceNumber)
	}
	if !from.Timestamp.IsZero() {
		in.Timestamp = aws.Time(from.Timestamp)
	}
	it, err := r.w.api.GetShardIterator(ctx, in)
	r.w.metrics.calls.WithLabelValues("get_shard_iterator", outcome(err)).Inc()
	if err != nil {
		return false, fmt.Errorf("shard iterator for %s/%s at %s: %w", r.w.cfg.Stream, r.shard, from, err)
	}
	out, err := r.w.api.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(1)})
	r.w.metrics.calls.WithLabelValues("get_records", outcome(err)).Inc()
	if err != nil {
		return false, fmt.Errorf("records of %s/%s at %s: %w", r.w.cfg.Stream, r.shard, from, err)
	}
	return len(out.Records) == 0 && out.NextShardIterator == nil, nil
}

// fanOutFailed stops the worker on a permanent failure of the shard's subscriptions, naming the stream
// consumer when it is gone (deregistered) and the stream otherwise.
func (r *shardReader) fanOutFailed(err error) {
	if errors.Is(err, fanout.ErrUnsupported) {
		r.w.fail(fmt.Errorf("shard %s: %w", r.shard, r.w.endpointError(err)))
		return
	}
	var notFound *ktypes.ResourceNotFoundException
	if errors.As(err, &notFound) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		exists, derr := fanout.Exists(ctx, r.w.fan.api, r.w.fan.consumer.ARN)
		if derr == nil && !exists {
			r.w.fail(fmt.Errorf("shard %s: %w", r.shard, &ResourceError{Setting: "ConsumerName", Kind: "stream consumer", Name: r.w.cfg.ConsumerName, Err: err}))
			return
		}
	}
	r.w.fail(fmt.Errorf("shard %s: %w", r.shard, r.w.resourceError(err)))
}

// closedShards is the set of shards the last shard sync listed as closed. Safe for concurrent use.
type closedShards struct {
	mu  sync.Mutex
	ids map[string]bool
}

// note replaces the set with the closed shards of a listing.
func (c *closedShards) note(shards []shardInfo) {
	ids := map[string]bool{}
	for _, sh := range shards {
		if sh.closed {
			ids[sh.id] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids = ids
}

func (c *closedShards) has(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[id]
}
