package ingest

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"go.uber.org/zap"
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

var errStopping = errors.New("server is stopping")

// submit hands recs to the batcher; each one's done is called exactly once when its outcome is known.
func (b *batcher) submit(recs []*record) {
	select {
	case b.in <- recs:
	case <-b.stopped:
		for _, r := range recs {
			r.failure = errStopping.Error()
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

// send puts recs, retrying what fails with jittered exponential backoff, and settles every record.
func (b *batcher) send(ctx context.Context, recs []*record) {
	b.m.batchSize.WithLabelValues(b.role).Observe(float64(len(recs)))
	backoff := b.cfg.PutBackoff
	pending := recs
	for attempt := 1; ; attempt++ {
		entries := make([]ktypes.PutRecordsRequestEntry, len(pending))
		for i, r := range pending {
			entries[i] = ktypes.PutRecordsRequestEntry{Data: r.data, PartitionKey: aws.String(r.key)}
		}
		callCtx, cancel := context.WithTimeout(ctx, b.cfg.PutTimeout)
		began := time.Now()
		out, err := b.api.PutRecords(callCtx, &kinesis.PutRecordsInput{StreamName: aws.String(b.stream), Records: entries})
		cancel()
		b.m.putDuration.WithLabelValues(b.role).Observe(time.Since(began).Seconds())
		var failed []*record
		reason := ""
		retryable := true
		switch {
		case err != nil:
			b.m.putCalls.WithLabelValues(b.role, "error").Inc()
			failed, reason, retryable = pending, failureReason(err), isRetryable(err)
			b.log.Warn("PutRecords failed", zap.String("stream", b.stream), zap.Int("records", len(pending)),
				zap.Int("attempt", attempt), zap.Error(err))
		case len(out.Records) != len(pending):
			b.m.putCalls.WithLabelValues(b.role, "error").Inc()
			failed, reason = pending, "kinesis returned a malformed answer"
			b.log.Error("PutRecords answer has the wrong number of results", zap.String("stream", b.stream),
				zap.Int("records", len(pending)), zap.Int("results", len(out.Records)))
		default:
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
			} else {
				b.m.putCalls.WithLabelValues(b.role, "ok").Inc()
			}
		}
		if len(failed) == 0 {
			return
		}
		if attempt >= b.cfg.PutAttempts || !retryable || ctx.Err() != nil {
			for _, r := range failed {
				r.failure = reason
				r.done.Done()
			}
			b.log.Warn("records not stored after retries", zap.String("stream", b.stream), zap.Int("records", len(failed)),
				zap.Int("attempts", attempt), zap.String("reason", reason))
			return
		}
		b.m.putRetries.WithLabelValues(b.role).Add(float64(len(failed)))
		pending = failed
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		backoff = min(backoff*2, time.Second)
	}
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

// isRetryable tells errors worth another try (throttling, outages, timeouts) from ones that will repeat
// (a missing stream, a rejected request).
func isRetryable(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch code := api.ErrorCode(); {
		case code == "ResourceNotFoundException", code == "ValidationException", code == "InvalidArgumentException",
			code == "AccessDeniedException", strings.HasPrefix(code, "KMS"):
			return false
		}
	}
	return !errors.Is(err, context.Canceled)
}
