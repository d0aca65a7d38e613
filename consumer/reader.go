package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/consumer/kpl"
	"github.com/clickfleet/clickfleet/internal/pace"
	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/lease"
)

// errPlannedEndTimedOut cancels a processor that did not finish within the shutdown timeout.
var errPlannedEndTimedOut = errors.New("consumer: processor did not finish within the shutdown timeout")

// shardReader runs one holding period of one shard: wait for parents, read, hand batches to the
// processor, and end the period the way its cause says.
type shardReader struct {
	w     *Worker
	h     *lease.Handle
	shard string
	log   *zap.Logger
	proc  Processor
	cp    *trackingCheckpointer
	hash  *kpl.HashRange
	// last is the position of the last record delivered to the processor (or the checkpoint it resumed
	// from); records at or below it are never delivered again in this period.
	last     lease.Checkpoint
	iterator *string
	// pace spaces the GetRecords calls within the application's share of the shard's read budget.
	pace    *pace.Pacer
	backoff retry.Backoff
}

// run is the lease coordinator's Process callback.
func (w *Worker) run(h *lease.Handle) {
	r := &shardReader{w: w, h: h, shard: h.ShardID(), log: w.log.With(zap.String("shard_id", h.ShardID())),
		pace:    pace.New(w.cfg.MinCallInterval, w.cfg.IdleTime, w.cfg.ThrottleBackoff),
		backoff: retry.Backoff{Initial: w.cfg.RetryBackoff, Max: w.cfg.MaxBackoff}}
	r.cp = &trackingCheckpointer{Checkpointer: h}
	w.metrics.readers.Inc()
	defer w.metrics.readers.Dec()
	defer w.lags.drop(r.shard)
	w.meter.hold(r.shard)
	defer w.meter.release(r.shard)
	r.runPeriod()
}

func (r *shardReader) runPeriod() {
	hctx := r.h.Context()
	// Processing stops at once when the lease is lost; on a planned end (shutdown, handoff) the batch in
	// hand is finished first.
	pctx, cancel := context.WithCancelCause(context.WithoutCancel(hctx))
	defer cancel(nil)
	stop := context.AfterFunc(hctx, func() {
		cause := context.Cause(hctx)
		if errors.Is(cause, lease.ErrLeaseLost) {
			cancel(cause)
			return
		}
		// A planned end gets the lease's shutdown timeout to finish; then the coordinator releases the
		// lease itself, and whatever the processor still does must stop.
		t := time.AfterFunc(r.w.cfg.Lease.ShutdownTimeout, func() { cancel(fmt.Errorf("%w: %w", errPlannedEndTimedOut, cause)) })
		context.AfterFunc(pctx, func() { t.Stop() })
	})
	defer stop()

	l := r.h.Lease()
	if l.Checkpoint.IsShardEnd() {
		// Finished earlier; make sure its children have leases, then let the lease go.
		r.finishedShard(hctx)
		return
	}
	if !r.waitForParents(hctx) {
		r.endBeforeStart(hctx)
		return
	}
	if l.StartingHashKey != "" {
		hr, err := kpl.ParseHashRange(l.StartingHashKey, l.EndingHashKey)
		if err != nil {
			r.log.Warn("lease has an unreadable hash key range; KPL aggregates are not range-checked", zap.Error(err))
		} else {
			r.hash = hr
		}
	}
	r.proc = r.w.cfg.NewProcessor(r.shard)
	r.last = l.Checkpoint
	if err := r.proc.Initialize(pctx, InitInput{ShardID: r.shard, Start: l.Checkpoint, ParentShardIDs: l.ParentShardIDs, ValidFor: r.h.ValidFor, LeaseCounter: l.Counter}); err != nil {
		if r.permanent(err) {
			r.release()
			return
		}
		r.log.Error("processor failed to initialize; releasing the lease so the shard is retried", zap.Error(err))
		r.release()
		return
	}
	r.log.Info("processing shard", zap.Stringer("from", l.Checkpoint))
	ended := r.read(hctx, pctx)
	switch {
	case ended:
		r.shardEnded(hctx, pctx)
	case errors.Is(context.Cause(hctx), lease.ErrLeaseLost):
		r.log.Info("lease lost; processor stops without checkpointing", zap.Error(context.Cause(hctx)))
		r.proc.LeaseLost(pctx)
	default:
		r.shutdownRequested(pctx, context.Cause(hctx))
	}
}

// waitForParents holds the lease without processing until every parent is at SHARD_END (or gone).
func (r *shardReader) waitForParents(ctx context.Context) bool {
	logged := false
	for {
		ok, err := r.w.table.MayStart(ctx, r.shard)
		if ctx.Err() != nil {
			return false
		}
		if err != nil {
			r.log.Warn("cannot tell whether the parents are finished; will ask again", zap.Error(err))
		} else if ok {
			return true
		} else if !logged {
			r.log.Info("waiting for parent shards to finish", zap.Strings("parent_shard_ids", r.h.Lease().ParentShardIDs))
			logged = true
		}
		if !sleepCtx(ctx, r.w.cfg.ParentPollInterval) {
			return false
		}
	}
}

// endBeforeStart ends a period in which no processor ran.
func (r *shardReader) endBeforeStart(ctx context.Context) {
	if !errors.Is(context.Cause(ctx), lease.ErrLeaseLost) {
		r.release()
	}
}

// readLoop reads until the shard ends (true) or the holding period ends (false).
func (r *shardReader) readLoop(hctx, pctx context.Context) bool {
	for hctx.Err() == nil {
		if r.iterator == nil {
			if err := r.newIterator(pctx); err != nil {
				if hctx.Err() != nil || r.permanentRead(err) {
					return false
				}
				r.log.Warn("cannot get a shard iterator; backing off", zap.Error(err))
				r.pause(hctx)
				continue
			}
		}
		if !r.pace.Wait(hctx) {
			return false
		}
		out, err := r.w.api.GetRecords(pctx, &kinesis.GetRecordsInput{ShardIterator: r.iterator, Limit: aws.Int32(r.w.cfg.MaxRecords)}, pace.NoThrottleRetries)
		r.w.metrics.calls.WithLabelValues("get_records", outcome(err)).Inc()
		if err != nil {
			if hctx.Err() != nil {
				return false
			}
			var expired *ktypes.ExpiredIteratorException
			var throttled *ktypes.ProvisionedThroughputExceededException
			switch {
			case errors.As(err, &expired):
				r.log.Info("shard iterator expired; getting a new one after the last delivered record")
				r.pace.Failed()
				r.iterator = nil
				continue
			case errors.As(err, &throttled):
				// Others read the shard too: the pacer's capped backoff is the pause.
				r.w.metrics.throttled.Inc()
				r.pace.Throttled()
				continue
			case r.permanentRead(err):
				return false
			default:
				r.log.Warn("GetRecords failed; backing off", zap.Error(err))
			}
			r.pace.Failed()
			r.pause(hctx)
			continue
		}
		r.backoff.Reset()
		r.pace.Read(len(out.Records))
		r.countRead(out.Records)
		recs := r.convert(out.Records)
		var arrival time.Duration
		if n := len(out.Records); n > 0 {
			if at := out.Records[n-1].ApproximateArrivalTimestamp; at != nil {
				arrival = time.Since(*at)
			}
		}
		r.w.lags.set(r.shard, aws.ToInt64(out.MillisBehindLatest), arrival)
		if len(recs) > 0 {
			b := Batch{Records: recs, MillisBehindLatest: aws.ToInt64(out.MillisBehindLatest), Checkpointer: r.cp, Lag: arrival}
			if !r.deliver(hctx, pctx, b) {
				return false
			}
		}
		if out.NextShardIterator == nil {
			return true
		}
		r.iterator = out.NextShardIterator
	}
	return false
}

// deliver hands a batch to the processor, again after a backoff while it fails. It returns false when the
// lease was lost meanwhile; a planned end of the period (shutdown, handoff) waits for the batch.
func (r *shardReader) deliver(hctx, pctx context.Context, b Batch) bool {
	for {
		start := time.Now()
		err := r.proc.ProcessRecords(pctx, b)
		r.w.metrics.processSeconds.Observe(time.Since(start).Seconds())
		if err == nil {
			r.w.metrics.records.Add(float64(len(b.Records)))
			r.w.processed.Add(int64(len(b.Records)))
			r.last = b.Records[len(b.Records)-1].Position()
			return true
		}
		r.w.metrics.processErrors.Inc()
		if pctx.Err() != nil || errors.Is(err, lease.ErrLeaseLost) || hctx.Err() != nil || r.permanent(err) {
			// Lost, a planned end, or a failure that repeats: the batch is not done, its records stay
			// beyond the checkpoint and the next holder reads them again.
			return false
		}
		r.log.Warn("processor failed a batch; delivering it again after a backoff", zap.Int("records", len(b.Records)), zap.Error(err))
		if !r.pause(hctx) {
			return false
		}
	}
}

// permanent reports whether err, a processor's error, is a permanent failure (retry.IsPermanent) and,
// when it is, stops the worker with it: the shard is not read further, nothing more is checkpointed past
// what is durable.
func (r *shardReader) permanent(err error) bool {
	if !retry.IsPermanent(err) {
		return false
	}
	r.w.fail(fmt.Errorf("shard %s: %w", r.shard, err))
	return true
}

// permanentRead is permanent for the reader's own Kinesis calls: the error names the stream.
func (r *shardReader) permanentRead(err error) bool {
	if !retry.IsPermanent(err) {
		return false
	}
	r.w.fail(fmt.Errorf("shard %s: %w", r.shard, r.w.resourceError(err)))
	return true
}

// convert turns Kinesis records into user records: KPL aggregates are expanded, and records at or below
// the resume position are dropped.
func (r *shardReader) convert(in []ktypes.Record) []Record {
	out := make([]Record, 0, len(in))
	for _, kr := range in {
		base := Record{
			ShardID: r.shard, SequenceNumber: aws.ToString(kr.SequenceNumber), PartitionKey: aws.ToString(kr.PartitionKey),
			Data: kr.Data, ArrivedAt: aws.ToTime(kr.ApproximateArrivalTimestamp),
		}
		subs, aggregated, err := kpl.Deaggregate(kr.Data, base.PartitionKey, r.hash)
		switch {
		case errors.Is(err, kpl.ErrOutOfShardRange):
			r.w.metrics.droppedAggregates.Inc()
			r.log.Warn("dropped a KPL aggregate with a sub-record outside the shard's hash range (a duplicate after a reshard)",
				zap.String("sequence_number", base.SequenceNumber))
			continue
		case !aggregated:
			if r.after(base) {
				out = append(out, base)
			}
			continue
		}
		for _, s := range subs {
			rec := base
			rec.Aggregated, rec.SubSequence, rec.PartitionKey, rec.ExplicitHashKey, rec.Data = true, s.SubSequence, s.PartitionKey, s.ExplicitHashKey, s.Data
			if r.after(rec) {
				out = append(out, rec)
			}
		}
	}
	return out
}

// countRead adds records, as GetRecords returned them, to the read counters.
func (r *shardReader) countRead(recs []ktypes.Record) {
	if len(recs) == 0 {
		return
	}
	var n int
	for _, kr := range recs {
		n += len(kr.Data) + len(aws.ToString(kr.PartitionKey))
	}
	r.w.metrics.readRecords.Add(float64(len(recs)))
	r.w.metrics.readBytes.Add(float64(n))
	r.w.meter.read(r.shard, len(recs), n)
}

// after says rec lies beyond the last delivered position (always true for sentinel positions).
func (r *shardReader) after(rec Record) bool {
	if r.last.IsSentinel() {
		return true
	}
	return rec.Position().Compare(r.last) > 0
}

func (r *shardReader) newIterator(ctx context.Context) error {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(r.w.cfg.Stream), ShardId: aws.String(r.shard)}
	switch r.last.SequenceNumber {
	case lease.TrimHorizon.SequenceNumber:
		in.ShardIteratorType = ktypes.ShardIteratorTypeTrimHorizon
	case lease.Latest.SequenceNumber:
		in.ShardIteratorType = ktypes.ShardIteratorTypeLatest
	case lease.AtTimestamp.SequenceNumber:
		in.ShardIteratorType = ktypes.ShardIteratorTypeAtTimestamp
		in.Timestamp = aws.Time(r.w.cfg.InitialTimestamp)
	default:
		// AT the sequence number, so the rest of a partly processed aggregate is read again; convert drops
		// what was already delivered.
		in.ShardIteratorType = ktypes.ShardIteratorTypeAtSequenceNumber
		in.StartingSequenceNumber = aws.String(r.last.SequenceNumber)
	}
	out, err := r.w.api.GetShardIterator(ctx, in)
	r.w.metrics.calls.WithLabelValues("get_shard_iterator", outcome(err)).Inc()
	if err != nil {
		return fmt.Errorf("shard iterator for %s/%s at %s: %w", r.w.cfg.Stream, r.shard, r.last, err)
	}
	r.iterator = out.ShardIterator
	return nil
}

// shardEnded creates the children's leases, records them on this lease, lets the processor checkpoint
// SHARD_END, and releases the lease. However it ends, the processor is ended too: LeaseLost when the
// lease is lost or the worker stops on a permanent failure of ShardEnded, ShutdownRequested when the
// holding period ends (shutdown, handoff) while ShardEnded is being retried.
func (r *shardReader) shardEnded(hctx, pctx context.Context) {
	r.log.Info("reached the end of the shard")
	kids := r.ensureChildren(hctx)
	if hctx.Err() != nil && errors.Is(context.Cause(hctx), lease.ErrLeaseLost) {
		r.proc.LeaseLost(pctx)
		return
	}
	if len(kids) > 0 {
		if err := r.h.RecordChildShards(pctx, kids); err != nil {
			if errors.Is(err, lease.ErrLeaseLost) {
				r.proc.LeaseLost(pctx)
				return
			}
			r.log.Warn("could not record child shards on the lease", zap.Error(err))
		}
	}
	if !r.checkpointShardEnd(hctx, pctx) {
		return
	}
	r.w.metrics.shardsEnded.Inc()
	r.release()
	r.w.triggerSync()
}

// checkpointShardEnd asks the processor to checkpoint SHARD_END until it has. When it cannot — the lease
// is lost, ShardEnded fails permanently, or the holding period ends first — it ends the processor the
// way the cause says and returns false.
func (r *shardReader) checkpointShardEnd(hctx, pctx context.Context) bool {
	for {
		err := r.proc.ShardEnded(pctx, r.cp)
		if err == nil && r.cp.shardEnd.Load() {
			return true
		}
		switch {
		case errors.Is(err, lease.ErrLeaseLost) || pctx.Err() != nil:
			r.proc.LeaseLost(pctx)
			return false
		case err == nil:
			err = errors.New("processor returned without checkpointing SHARD_END")
		case r.permanent(err):
			r.proc.LeaseLost(pctx) // the worker stops: nothing more is written for the shard
			return false
		}
		r.log.Warn("shard end not checkpointed; asking the processor again", zap.Error(err))
		if retry.Sleep(hctx, r.backoff.Next()) != nil {
			if errors.Is(context.Cause(hctx), lease.ErrLeaseLost) {
				r.proc.LeaseLost(pctx)
			} else {
				r.shutdownRequested(pctx, context.Cause(hctx))
			}
			return false
		}
	}
}

// finishedShard handles a lease already at SHARD_END: its children get leases, and it is released.
func (r *shardReader) finishedShard(ctx context.Context) {
	r.ensureChildren(ctx)
	if ctx.Err() == nil || !errors.Is(context.Cause(ctx), lease.ErrLeaseLost) {
		r.release()
	}
}

// ensureChildren syncs shards until the children of this closed shard are listed (they appear shortly
// after a reshard) and returns their ids; it gives up after a while, leaving the periodic sync to it.
func (r *shardReader) ensureChildren(ctx context.Context) []string {
	deadline := time.Now().Add(r.w.cfg.ParentPollInterval * 3)
	for {
		kids, err := r.w.syncer.childrenOf(ctx, r.shard)
		if err == nil && len(kids) > 0 {
			ids := make([]string, len(kids))
			for i, k := range kids {
				ids[i] = k.id
			}
			return ids
		}
		if err != nil {
			r.log.Warn("shard sync failed at the end of the shard", zap.Error(err))
		}
		if time.Now().After(deadline) {
			r.log.Warn("no child shards listed for the closed shard; the periodic shard sync will create them")
			return nil
		}
		if !r.pause(ctx) {
			return nil
		}
	}
}

// shutdownRequested lets the processor checkpoint what it finished, then releases (or hands over) the
// lease. cause is ErrShutdownRequested or ErrHandoffRequested.
func (r *shardReader) shutdownRequested(pctx context.Context, cause error) {
	r.log.Info("holding period ends; processor checkpoints and the lease is released", zap.NamedError("cause", cause))
	if err := r.proc.ShutdownRequested(pctx, r.cp); err != nil {
		if errors.Is(err, lease.ErrLeaseLost) {
			return
		}
		r.log.Warn("processor failed its final checkpoint; the next holder replays from the last checkpoint", zap.Error(err))
	}
	r.release()
}

func (r *shardReader) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.h.Release(ctx); err != nil && !errors.Is(err, lease.ErrLeaseLost) {
		r.log.Warn("releasing the lease failed; it expires after the failover time", zap.Error(err))
	}
}

// pause sleeps the next backoff (capped, with jitter); false when ctx ended.
func (r *shardReader) pause(ctx context.Context) bool {
	return retry.Sleep(ctx, r.backoff.Next()) == nil
}

// sleepCtx sleeps d or until ctx ends; false when ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	return retry.Sleep(ctx, d) == nil
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return "error"
}
