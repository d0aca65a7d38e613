package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/lake"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/retry"
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
	failing bool              // counted in Archiver.failing
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
	return len(p.recs) > 0 && p.pinned == nil && p.cp != nil && p.cfg.Now().Sub(p.started) >= p.cfg.BufferInterval
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
	for _, r := range b.Records {
		if !p.last.IsSentinel() && comparePositions(r.Position(), p.last) <= 0 {
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
				if err := p.flushLocked(ctx, reason, false); err != nil {
					return err
				}
			}
		}
		p.add(r)
		if p.pinned != nil && comparePositions(r.Position(), *p.pinned) >= 0 {
			if err := p.flushLocked(ctx, "adopted", false); err != nil {
				return err
			}
		}
	}
	if len(p.recs) > 0 && p.pinned == nil && p.bytes >= p.cfg.BufferBytes {
		return p.flushLocked(ctx, "size", false)
	}
	if p.due() {
		return p.flushLocked(ctx, "interval", false)
	}
	return nil
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
	return p.flushLocked(ctx, "shutdown", true)
}

// ShardEnded stores everything buffered and checkpoints SHARD_END.
func (p *processor) ShardEnded(ctx context.Context, cp consumer.Checkpointer) error {
	p.stopTicker()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cp = cp
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

// flushLocked stores the buffer as object sets and checkpoints each; with all it goes on until the buffer
// is empty (or pinned short of an earlier holder's object), otherwise it stores one set.
func (p *processor) flushLocked(ctx context.Context, reason string, all bool) error {
	for len(p.recs) > 0 {
		if p.cp == nil {
			return errNoHolder
		}
		n, err := p.store(ctx)
		if err != nil {
			return err
		}
		if n == 0 { // pinned to a longer object: keep buffering up to its end
			return nil
		}
		if p.a.crash != nil {
			p.a.crash()
		}
		end := p.recs[n-1]
		err = retry.Do(ctx, p.policy("checkpoint"), func(ctx context.Context) error {
			err := p.cp.Checkpoint(ctx, end.SequenceNumber, end.SubSequence)
			if errors.Is(err, lease.ErrInvalidCheckpoint) {
				return retry.Permanent(err)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("checkpoint shard %s at %s: %w", p.shard, end.Position(), err)
		}
		p.setFailing(false)
		m := p.a.m
		if n < len(p.recs) {
			reason = "adopted"
		}
		m.rolls.WithLabelValues(reason).Inc()
		now := p.cfg.Now()
		m.bufferAge.Observe(now.Sub(p.started).Seconds())
		m.lag.Observe(time.Since(end.ArrivedAt).Seconds())
		p.log.Debug("object stored and checkpointed", zap.Int("records", n), zap.String("reason", reason), zap.Stringer("checkpoint", end.Position()))
		p.pinned = nil
		rest := p.recs[n:]
		p.recs, p.bytes = nil, 0
		for _, r := range rest {
			p.recs = append(p.recs, r)
			p.bytes += len(r.Data)
		}
		if len(p.recs) > 0 {
			p.started, p.hour = now, hourOf(p.recs[0].ArrivedAt)
		}
		if !all {
			return nil
		}
	}
	return nil
}

// store writes the buffer's object set, raw object first, and returns how many buffered records the
// stored set holds: all of them; fewer when an earlier holder stored a shorter set from the same first
// record (its missing siblings are stored now); or 0 when an earlier holder's set is longer (p.pinned is
// set to its end).
func (p *processor) store(ctx context.Context) (int, error) {
	recs := p.recs
	set, err := p.encode(ctx, recs)
	if err != nil {
		return 0, err
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
		return 0, err
	}
	n := len(recs)
	if existing != nil {
		end, err := endOf(existing)
		if err != nil {
			return 0, retry.Permanent(fmt.Errorf("raw object %s: %w", rawKey, err))
		}
		switch c := comparePositions(end, last.Position()); {
		case c > 0:
			p.log.Info("an earlier holder stored a longer object from this record; buffering up to its end",
				zap.String("key", rawKey), zap.Stringer("ends_at", end))
			p.pinned = &end
			return 0, nil
		case c < 0:
			n = 0
			for i, r := range recs {
				if r.Position() == end {
					n = i + 1
					break
				}
			}
			if n == 0 {
				return 0, retry.Permanent(fmt.Errorf("raw object %s ends at %s, not a buffered record", rawKey, end))
			}
			p.log.Info("an earlier holder stored a shorter object from this record; completing it", zap.String("key", rawKey), zap.Int("records", n))
			if set, err = p.encode(ctx, recs[:n]); err != nil {
				return 0, err
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
			return 0, err
		}
		if ex == nil {
			p.count("events", len(set.events), set.nEvents)
		}
	}
	if set.errors != nil {
		key := p.cfg.Errors.Prefix + hour + name + p.cfg.rawExt()
		ex, err := p.put(ctx, "errors", p.cfg.Errors, key, set.errors, "application/x-ndjson", meta)
		if err != nil {
			return 0, err
		}
		if ex == nil {
			p.count("errors", len(set.errors), set.nErrors)
		}
	}
	return n, nil
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
	if p.failing == f {
		return
	}
	p.failing = f
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

// comparePositions orders two positions in one shard: sequence numbers (decimal, up to 128 bits) by
// value, then sub-sequences.
func comparePositions(a, b lease.Checkpoint) int {
	if c := compareSequences(a.SequenceNumber, b.SequenceNumber); c != 0 {
		return c
	}
	switch {
	case a.SubSequence < b.SubSequence:
		return -1
	case a.SubSequence > b.SubSequence:
		return 1
	}
	return 0
}

func compareSequences(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
