package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/lake"
	"github.com/clickfleet/clickfleet/lease"
)

// Object metadata (x-amz-meta-*) naming the records an object set holds.
const (
	metaFirstSeq = "first-sequence"
	metaFirstSub = "first-sub-sequence"
	metaLastSeq  = "last-sequence"
	metaLastSub  = "last-sub-sequence"
	metaRecords  = "records"
)

// processor archives one holding period of one shard. The worker calls its lifecycle methods from one
// goroutine; its interval ticker runs on another, and mu serializes both.
type processor struct {
	a     *Archiver
	cfg   *Config
	shard string
	log   *zap.Logger

	ctx      context.Context // the holding period's, from Initialize
	validFor func() time.Duration
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	mu      sync.Mutex
	cp      consumer.Checkpointer
	recs    []consumer.Record // buffered, in shard order
	bytes   int               // raw bytes of recs
	started time.Time         // when recs[0] was buffered (Config.Now)
	hour    time.Time         // UTC hour of recs[0]'s arrival
	last    lease.Checkpoint  // position of the last record buffered (or the start)
	pinned  *lease.Checkpoint // an earlier holder's object set ends here: roll exactly at it
	flight  *flight           // the object set being stored in the background, if any

	failing atomic.Bool // counted in Archiver.failing
}

// flight is an object set stored in the background while the next one buffers: at most one per shard,
// and the next is sealed only after this one is stored and checkpointed.
type flight struct {
	recs    []consumer.Record
	started time.Time
	done    chan flightResult
}

type flightResult struct {
	n   int
	pin *lease.Checkpoint
	err error
}

// Initialize starts the interval ticker.
func (p *processor) Initialize(ctx context.Context, in consumer.InitInput) error {
	p.ctx, p.last, p.validFor = ctx, in.Start, in.ValidFor
	if p.validFor == nil {
		p.validFor = func() time.Duration { return p.cfg.PutTimeout }
	}
	p.wg.Go(p.tick)
	return nil
}

func (p *processor) tick() {
	t := time.NewTicker(p.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		if err := p.landedLocked(false); err != nil && p.ctx.Err() == nil {
			p.log.Warn("background store failed; its records wait for the next roll", zap.Error(err))
		}
		if p.due() {
			if err := p.flushLocked(p.ctx, "interval", false); err != nil && p.ctx.Err() == nil {
				p.log.Warn("interval roll failed; the next batch or tick tries again", zap.Error(err))
			}
		}
		p.mu.Unlock()
	}
}

// due says the buffer is older than BufferInterval (and may roll: not pinned to a longer object).
func (p *processor) due() bool {
	return len(p.recs) > 0 && p.pinned == nil && p.flight == nil && p.cp != nil && p.cfg.Now().Sub(p.started) >= p.cfg.BufferInterval
}

func (p *processor) stopTicker() {
	p.stopOnce.Do(func() { close(p.stop) })
	p.wg.Wait()
}

// ProcessRecords buffers the batch, rolling objects on the way. A record already buffered (the worker
// delivers a batch again after an error) is skipped.
func (p *processor) ProcessRecords(ctx context.Context, b consumer.Batch) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cp = b.Checkpointer
	if err := p.landedLocked(false); err != nil {
		return err
	}
	if p.pinReached() {
		if err := p.flushLocked(ctx, "adopted", false); err != nil {
			return err
		}
	}
	for _, r := range b.Records {
		if !p.last.IsSentinel() && r.Position().Compare(p.last) <= 0 {
			continue
		}
		if len(p.recs) > 0 && p.pinned == nil {
			reason := ""
			switch {
			case hourOf(r.ArrivedAt) != p.hour:
				reason = "hour"
			case p.bytes+len(r.Data) > p.cfg.BufferBytes:
				reason = "size"
			}
			if reason != "" {
				if err := p.rollLocked(reason); err != nil {
					return err
				}
			}
		}
		p.add(r)
		if p.pinned != nil && r.Position().Compare(*p.pinned) >= 0 {
			if err := p.flushLocked(ctx, "adopted", false); err != nil {
				return err
			}
		}
	}
	if len(p.recs) > 0 && p.pinned == nil && p.bytes >= p.cfg.BufferBytes {
		return p.rollLocked("size")
	}
	if p.due() {
		return p.rollLocked("interval")
	}
	return nil
}

// rollLocked seals the buffer's first object set and stores it in the background, after the set before
// it has landed (at most one in flight). A set pinned to an earlier holder's range is stored in place.
func (p *processor) rollLocked(reason string) error {
	if err := p.landedLocked(true); err != nil {
		return err
	}
	if p.pinReached() {
		return p.flushLocked(p.ctx, "adopted", false)
	}
	if len(p.recs) == 0 || p.pinned != nil {
		return nil
	}
	if p.cp == nil {
		return errNoHolder
	}
	k := p.setEnd()
	f := &flight{recs: p.recs[:k:k], started: p.started, done: make(chan flightResult, 1)}
	p.setBuffer(p.recs[k:], p.cfg.Now())
	p.flight = f
	cp, ctx := p.cp, p.ctx
	go func() {
		n, pin, err := p.storeSet(ctx, f.recs, cp, reason, f.started)
		f.done <- flightResult{n, pin, err}
	}()
	return nil
}

// landedLocked takes the result of the set in flight (waiting for it when wait is set): what it did not
// store goes back to the front of the buffer. It returns the flight's error.
func (p *processor) landedLocked(wait bool) error {
	f := p.flight
	if f == nil {
		return nil
	}
	var res flightResult
	if wait {
		res = <-f.done
	} else {
		select {
		case res = <-f.done:
		default:
			return nil
		}
	}
	p.flight = nil
	if res.err != nil {
		res.n = 0
	}
	if res.n < len(f.recs) {
		back := append(append([]consumer.Record(nil), f.recs[res.n:]...), p.recs...)
		p.setBuffer(back, f.started)
	}
	if res.pin != nil {
		p.pinned = res.pin
	}
	return res.err
}

// pinReached says the buffer is pinned to an earlier holder's range and holds its end.
func (p *processor) pinReached() bool {
	return p.pinned != nil && len(p.recs) > 0 && p.recs[len(p.recs)-1].Position().Compare(*p.pinned) >= 0
}

// setBuffer makes recs the buffer, first buffered at started.
func (p *processor) setBuffer(recs []consumer.Record, started time.Time) {
	p.recs, p.bytes = recs, 0
	for _, r := range recs {
		p.bytes += len(r.Data)
	}
	if len(recs) > 0 {
		p.started, p.hour = started, hourOf(recs[0].ArrivedAt)
	}
	if len(recs) == 0 {
		p.recs = nil
	}
}

// setEnd returns how many buffered records the next object set takes: up to the pinned end when pinned,
// else the records in the first record's hour, within BufferBytes (at least one record).
func (p *processor) setEnd() int {
	if p.pinned != nil {
		for i, r := range p.recs {
			if r.Position().Compare(*p.pinned) >= 0 {
				return i + 1
			}
		}
		return len(p.recs)
	}
	h, size := hourOf(p.recs[0].ArrivedAt), 0
	for i, r := range p.recs {
		size += len(r.Data)
		if i > 0 && (hourOf(r.ArrivedAt) != h || size > p.cfg.BufferBytes) {
			return i
		}
	}
	return len(p.recs)
}

func (p *processor) add(r consumer.Record) {
	if len(p.recs) == 0 {
		p.started, p.hour = p.cfg.Now(), hourOf(r.ArrivedAt)
	}
	p.recs = append(p.recs, r)
	p.bytes += len(r.Data)
	p.last = r.Position()
}

func hourOf(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// LeaseLost drops the buffer: the next holder reads those records again from the checkpoint.
func (p *processor) LeaseLost(context.Context) {
	p.stopTicker()
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.landedLocked(true) // its context is cancelled: it ends at once
	p.recs = nil
	p.setFailing(false)
}

// ShutdownRequested stores what is buffered (as far as it may: a set pinned to a longer earlier object
// waits for its next holder) and checkpoints it.
func (p *processor) ShutdownRequested(ctx context.Context, cp consumer.Checkpointer) error {
	p.stopTicker()
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.setFailing(false)
	p.cp = cp
	if err := p.landedLocked(true); err != nil && errors.Is(err, lease.ErrLeaseLost) {
		return err
	}
	return p.flushLocked(ctx, "shutdown", true)
}

// ShardEnded stores everything buffered and checkpoints SHARD_END.
func (p *processor) ShardEnded(ctx context.Context, cp consumer.Checkpointer) error {
	p.stopTicker()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cp = cp
	if err := p.landedLocked(true); err != nil && errors.Is(err, lease.ErrLeaseLost) {
		return err
	}
	if err := p.flushLocked(ctx, "shard_end", true); err != nil {
		return err
	}
	if len(p.recs) > 0 {
		return fmt.Errorf("shard %s ended with %d records short of an earlier holder's object ending at %s", p.shard, len(p.recs), p.pinned)
	}
	err := retry.Do(ctx, p.policy("checkpoint"), func(ctx context.Context) error { return cp.CheckpointShardEnd(ctx) })
	if err == nil {
		p.setFailing(false)
	}
	return err
}

// flushLocked stores the buffer's object sets in place and checkpoints each (after the set in flight, if
// any, has landed); with all it goes on until the buffer is empty (or pinned short of an earlier holder's
// object), otherwise it stores one set.
func (p *processor) flushLocked(ctx context.Context, reason string, all bool) error {
	if err := p.landedLocked(true); err != nil {
		return err
	}
	for len(p.recs) > 0 {
		if p.cp == nil {
			return errNoHolder
		}
		k := p.setEnd()
		if p.pinned != nil && p.recs[k-1].Position().Compare(*p.pinned) < 0 {
			return nil // pinned to a longer object: keep buffering up to its end
		}
		n, pin, err := p.storeSet(ctx, p.recs[:k:k], p.cp, reason, p.started)
		if err != nil {
			return err
		}
		p.pinned = pin
		if n == 0 {
			return nil
		}
		p.setBuffer(p.recs[n:], p.cfg.Now())
		if !all {
			return nil
		}
	}
	return nil
}

// storeSet stores the object set of recs, then checkpoints its last stored record through cp. It returns
// how many of recs the stored set holds (see store) and, when 0, the end of the earlier holder's longer
// set. It touches no buffer state, so it runs in the background too.
func (p *processor) storeSet(ctx context.Context, recs []consumer.Record, cp consumer.Checkpointer, reason string, started time.Time) (int, *lease.Checkpoint, error) {
	n, pin, err := p.store(ctx, recs)
	if err != nil || n == 0 {
		return 0, pin, err
	}
	if p.a.crash != nil {
		p.a.crash()
	}
	end := recs[n-1]
	err = retry.Do(ctx, p.policy("checkpoint"), func(ctx context.Context) error {
		err := cp.Checkpoint(ctx, end.SequenceNumber, end.SubSequence)
		if errors.Is(err, lease.ErrInvalidCheckpoint) {
			return retry.Permanent(err)
		}
		return err
	})
	if err != nil {
		return 0, nil, fmt.Errorf("checkpoint shard %s at %s: %w", p.shard, end.Position(), err)
	}
	p.setFailing(false)
	m := p.a.m
	if n < len(recs) {
		reason = "adopted"
	}
	m.rolls.WithLabelValues(reason).Inc()
	m.bufferAge.Observe(p.cfg.Now().Sub(started).Seconds())
	m.lag.Observe(time.Since(end.ArrivedAt).Seconds())
	p.log.Debug("object stored and checkpointed", zap.Int("records", n), zap.String("reason", reason), zap.Stringer("checkpoint", end.Position()))
	return n, nil, nil
}

// store writes the object set of recs, raw object first, and returns how many of recs the stored set
// holds: all of them; fewer when an earlier holder stored a shorter set from the same first record (its
// missing siblings are stored now); or 0 when an earlier holder's set is longer, with that set's end.
func (p *processor) store(ctx context.Context, recs []consumer.Record) (int, *lease.Checkpoint, error) {
	set, err := p.encode(ctx, recs)
	if err != nil {
		return 0, nil, err
	}
	first, last := recs[0], recs[len(recs)-1]
	name := lake.ObjectName(p.cfg.Stream, p.shard, first.SequenceNumber, first.SubSequence)
	hour := lake.HourPrefix(first.ArrivedAt)
	meta := map[string]string{
		metaFirstSeq: first.SequenceNumber, metaFirstSub: strconv.FormatInt(first.SubSequence, 10),
		metaLastSeq: last.SequenceNumber, metaLastSub: strconv.FormatInt(last.SubSequence, 10),
		metaRecords: strconv.Itoa(len(recs)),
	}
	rawKey := p.cfg.Raw.Prefix + hour + name + p.cfg.rawExt()
	existing, err := p.put(ctx, "raw", p.cfg.Raw, rawKey, set.raw, "application/x-ndjson", meta)
	if err != nil {
		return 0, nil, err
	}
	n := len(recs)
	if existing != nil {
		end, err := endOf(existing)
		if err != nil {
			return 0, nil, retry.Permanent(fmt.Errorf("raw object %s: %w", rawKey, err))
		}
		switch c := end.Compare(last.Position()); {
		case c > 0:
			p.log.Info("an earlier holder stored a longer object from this record; buffering up to its end",
				zap.String("key", rawKey), zap.Stringer("ends_at", end))
			return 0, &end, nil
		case c < 0:
			n = 0
			for i, r := range recs {
				if r.Position() == end {
					n = i + 1
					break
				}
			}
			if n == 0 {
				return 0, nil, retry.Permanent(fmt.Errorf("raw object %s ends at %s, not a buffered record", rawKey, end))
			}
			p.log.Info("an earlier holder stored a shorter object from this record; completing it", zap.String("key", rawKey), zap.Int("records", n))
			if set, err = p.encode(ctx, recs[:n]); err != nil {
				return 0, nil, err
			}
			meta[metaLastSeq], meta[metaLastSub], meta[metaRecords] = end.SequenceNumber, strconv.FormatInt(end.SubSequence, 10), strconv.Itoa(n)
		}
	} else {
		p.count("raw", len(set.raw), n)
		p.a.m.inputBytes.Add(float64(set.inputBytes))
	}
	if set.events != nil {
		key := p.cfg.Events.Prefix + hour + name + lake.ExtParquet
		ex, err := p.put(ctx, "events", p.cfg.Events, key, set.events, "application/vnd.apache.parquet", meta)
		if err != nil {
			return 0, nil, err
		}
		if ex == nil {
			p.count("events", len(set.events), set.nEvents)
		}
	}
	if set.errors != nil {
		key := p.cfg.Errors.Prefix + hour + name + p.cfg.rawExt()
		ex, err := p.put(ctx, "errors", p.cfg.Errors, key, set.errors, "application/x-ndjson", meta)
		if err != nil {
			return 0, nil, err
		}
		if ex == nil {
			p.count("errors", len(set.errors), set.nErrors)
		}
	}
	return n, nil, nil
}

func (p *processor) count(kind string, size, records int) {
	m := p.a.m
	m.objects.WithLabelValues(kind).Inc()
	m.bytes.WithLabelValues(kind).Add(float64(size))
	m.records.WithLabelValues(kind).Add(float64(records))
}

// endOf reads an object set's last position from its metadata.
func endOf(meta map[string]string) (lease.Checkpoint, error) {
	seq := meta[metaLastSeq]
	sub, err := strconv.ParseInt(meta[metaLastSub], 10, 64)
	if seq == "" || err != nil {
		return lease.Checkpoint{}, fmt.Errorf("no %s/%s metadata", metaLastSeq, metaLastSub)
	}
	return lease.Checkpoint{SequenceNumber: seq, SubSequence: sub}, nil
}

// errDeposed stops a write because the lease is no longer provably ours.
var errDeposed = fmt.Errorf("%w: lease validity ran out by this worker's clock", lease.ErrLeaseLost)

// put stores one object unless it exists; for an existing object it returns that object's metadata (nil
// when this call stored it). It retries transient failures with backoff until ctx ends; a permanent one
// is reported to the Archiver.
func (p *processor) put(ctx context.Context, kind string, loc Location, key string, body []byte, contentType string, meta map[string]string) (map[string]string, error) {
	var existing map[string]string
	err := retry.Do(ctx, p.policy(kind), func(ctx context.Context) error {
		vf := p.validFor()
		if vf <= 0 {
			return errDeposed
		}
		cctx, cancel := context.WithTimeout(ctx, min(p.cfg.PutTimeout, vf))
		defer cancel()
		if p.cfg.UnconditionalPuts {
			m, found, err := p.head(cctx, loc, key)
			if err != nil || found {
				existing = m
				return err
			}
		}
		in := &s3.PutObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
			ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String(contentType), Metadata: meta}
		if !p.cfg.UnconditionalPuts {
			in.IfNoneMatch = aws.String("*")
		}
		start := time.Now()
		_, err := p.a.api.PutObject(cctx, in)
		if err == nil {
			p.a.m.putSeconds.WithLabelValues(kind).Observe(time.Since(start).Seconds())
			existing = nil
			return nil
		}
		if !isPreconditionFailed(err) {
			return err
		}
		m, found, err := p.head(cctx, loc, key)
		if err == nil && !found {
			return fmt.Errorf("PUT %s answered 412 but the object is not there", key)
		}
		existing = m
		return err
	})
	if err != nil {
		if retry.IsPermanent(err) && !errors.Is(err, lease.ErrLeaseLost) {
			p.a.reportFatal(&FatalError{Location: loc, Err: err})
		}
		return nil, fmt.Errorf("store %s object s3://%s/%s: %w", kind, loc.Bucket, key, err)
	}
	if existing != nil {
		p.a.m.existing.WithLabelValues(kind).Inc()
	}
	return existing, nil
}

// head returns an object's metadata, or found false when it does not exist.
func (p *processor) head(ctx context.Context, loc Location, key string) (map[string]string, bool, error) {
	out, err := p.a.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String(key)})
	if err != nil {
		if isNotFound(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	m := out.Metadata
	if m == nil {
		m = map[string]string{}
	}
	return m, true, nil
}

// policy is the retry policy of S3 calls and checkpoints: back off until ctx ends; a lost lease stops.
func (p *processor) policy(what string) retry.Policy {
	return retry.Policy{
		Backoff: p.cfg.Backoff,
		Stop:    func(err error) bool { return errors.Is(err, lease.ErrLeaseLost) },
		OnRetry: func(attempt int, pause time.Duration, err error) {
			p.a.m.putErrors.WithLabelValues(what).Inc()
			p.setFailing(true)
			p.log.Warn("archive call failed; retrying", zap.String("call", what), zap.Int("attempt", attempt), zap.Duration("pause", pause), zap.Error(err))
		},
	}
}

func (p *processor) setFailing(f bool) {
	if !p.failing.CompareAndSwap(!f, f) {
		return
	}
	if f {
		p.a.failing.Add(1)
	} else {
		p.a.failing.Add(-1)
	}
}

func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func isPreconditionFailed(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "PreconditionFailed" {
		return true
	}
	return httpStatus(err) == http.StatusPreconditionFailed
}

func isNotFound(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) && (api.ErrorCode() == "NotFound" || api.ErrorCode() == "NoSuchKey") {
		return true
	}
	return httpStatus(err) == http.StatusNotFound && !isNoSuchBucket(err)
}

func isNoSuchBucket(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "NoSuchBucket"
}
