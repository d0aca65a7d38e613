package ingest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/internal/retry"
)

// record is one record on its way to a stream, and where its outcome goes.
type record struct {
	data []byte
	key  string
	// filled by the batcher before done is called:
	shardID, seq string
	failure      string // empty when stored
	done         *sync.WaitGroup
}

// batcher coalesces the records of concurrent requests into PutRecords calls of up to MaxBatchRecords
// records and MaxBatchBytes bytes, waiting at most Linger for a call to fill, with up to PutConcurrency
// calls in flight. Each record ends stored or failed after at most PutAttempts tries.
type batcher struct {
	api    PutRecordsAPI
	stream string
	role   string
	cfg    *Config
	m      *metrics
	log    *zap.Logger

	in      chan []*record
	stopped chan struct{} // closed when the loop has ended; later submits fail at once
}

func newBatcher(api PutRecordsAPI, stream, role string, cfg *Config, m *metrics, log *zap.Logger) *batcher {
	return &batcher{api: api, stream: stream, role: role, cfg: cfg, m: m, log: log,
		in: make(chan []*record), stopped: make(chan struct{})}
}

// reasonStopping is what a client is told of a record the server took while it was stopping.
const reasonStopping = "server is stopping"

// submit hands recs to the batcher; each one's done is called exactly once when its outcome is known.
func (b *batcher) submit(recs []*record) {
	select {
	case b.in <- recs:
	case <-b.stopped:
		for _, r := range recs {
			r.failure = reasonStopping
			r.done.Done()
		}
	}
}

// run batches until stop is closed, then sends what it holds and waits for every call in flight. sendCtx
// bounds the calls: cancelling it makes pending calls fail fast (a hard stop).
func (b *batcher) run(stop <-chan struct{}, sendCtx context.Context) {
	var (
		wg      sync.WaitGroup
		sem     = make(chan struct{}, b.cfg.PutConcurrency)
		batch   []*record
		size    int
		timer   = time.NewTimer(time.Hour)
		timerOn bool
	)
	timer.Stop()
	defer func() {
		close(b.stopped)
		wg.Wait()
	}()
	flush := func() {
		if len(batch) == 0 {
			return
		}
		out := batch
		batch, size = nil, 0
		if timerOn {
			timer.Stop()
			timerOn = false
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			b.send(sendCtx, out)
		}()
	}
	for {
		select {
		case recs := <-b.in:
			for _, r := range recs {
				n := len(r.data) + len(r.key)
				if len(batch) > 0 && (len(batch) >= b.cfg.MaxBatchRecords || size+n > b.cfg.MaxBatchBytes) {
					flush()
				}
				batch = append(batch, r)
				size += n
			}
			if len(batch) >= b.cfg.MaxBatchRecords {
				flush()
			} else if len(batch) > 0 && !timerOn {
				if b.cfg.Linger == 0 {
					flush()
				} else {
					timer.Reset(b.cfg.Linger)
					timerOn = true
				}
			}
		case <-timer.C:
			timerOn = false
			flush()
		case <-stop:
			flush()
			return
		}
	}
}

// send puts recs, retrying what fails with jittered exponential backoff (retry.Do, at most PutAttempts
// calls, permanent errors not retried), and settles every record: stored, or failed with a reason — also
// when ctx has already ended and no call is made.
func (b *batcher) send(ctx context.Context, recs []*record) {
	b.m.batchSize.WithLabelValues(b.role).Observe(float64(len(recs)))
	pending := recs
	reason := ""
	attempt := 0
	err := retry.Do(ctx, retry.Policy{
		Backoff:  retry.Backoff{Initial: b.cfg.PutBackoff, Max: time.Second},
		Attempts: b.cfg.PutAttempts,
		OnRetry:  func(int, time.Duration, error) { b.m.putRetries.WithLabelValues(b.role).Add(float64(len(pending))) },
	}, func(ctx context.Context) error {
		attempt++
		failed, why, err := b.put(ctx, pending, attempt)
		pending, reason = failed, why
		return err
	})
	if err == nil {
		return
	}
	if attempt == 0 { // the send context had ended before the first call (the hard stop): nothing was sent
		reason = reasonStopping
	}
	for _, r := range pending {
		r.failure = reason
		r.done.Done()
	}
	b.log.Warn("records not stored after retries", zap.String("stream", b.stream), zap.Int("records", len(pending)),
		zap.Int("attempts", attempt), zap.String("reason", reason))
}

// errSomeFailed is put's error when Kinesis refused some records of a call (throttling, an internal
// failure): they are tried again.
var errSomeFailed = errors.New("ingest: kinesis refused some records")

// put makes one PutRecords call of pending, settles the records it stored and returns the others with the
// reason to tell their clients and the error that decides whether to try again (nil when none failed).
func (b *batcher) put(ctx context.Context, pending []*record, attempt int) (failed []*record, reason string, err error) {
	entries := make([]ktypes.PutRecordsRequestEntry, len(pending))
	for i, r := range pending {
		entries[i] = ktypes.PutRecordsRequestEntry{Data: r.data, PartitionKey: aws.String(r.key)}
	}
	callCtx, cancel := context.WithTimeout(ctx, b.cfg.PutTimeout)
	began := time.Now()
	out, err := b.api.PutRecords(callCtx, &kinesis.PutRecordsInput{StreamName: aws.String(b.stream), Records: entries})
	cancel()
	b.m.putDuration.WithLabelValues(b.role).Observe(time.Since(began).Seconds())
	switch {
	case err != nil:
		b.m.putCalls.WithLabelValues(b.role, "error").Inc()
		b.log.Warn("PutRecords failed", zap.String("stream", b.stream), zap.Int("records", len(pending)),
			zap.Int("attempt", attempt), zap.Error(err))
		return pending, failureReason(err), err
	case len(out.Records) != len(pending):
		b.m.putCalls.WithLabelValues(b.role, "error").Inc()
		b.log.Error("PutRecords answer has the wrong number of results", zap.String("stream", b.stream),
			zap.Int("records", len(pending)), zap.Int("results", len(out.Records)))
		return pending, "kinesis returned a malformed answer", errors.New("PutRecords: malformed answer")
	}
	for i, res := range out.Records {
		r := pending[i]
		if res.ErrorCode != nil {
			failed = append(failed, r)
			reason = "kinesis: " + aws.ToString(res.ErrorCode)
			continue
		}
		r.shardID, r.seq = aws.ToString(res.ShardId), aws.ToString(res.SequenceNumber)
		r.done.Done()
	}
	if len(failed) > 0 {
		b.m.putCalls.WithLabelValues(b.role, "partial").Inc()
		return failed, reason, errSomeFailed
	}
	b.m.putCalls.WithLabelValues(b.role, "ok").Inc()
	return nil, "", nil
}

// failureReason is what a client is told about a failed call: the Kinesis error code, never addresses.
func failureReason(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return "kinesis: " + api.ErrorCode()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "kinesis: timeout"
	}
	if errors.Is(err, context.Canceled) {
		return "kinesis: cancelled (server stopping)"
	}
	return "kinesis unreachable"
}
