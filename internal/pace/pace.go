package pace

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickfleet/clickfleet/internal/retry"
)

// Pacer paces one shard's GetRecords calls. Call Wait before each call, then Read, Throttled or Failed
// with its outcome. Not safe for concurrent use: one per shard reader.
type Pacer struct {
	interval, idle time.Duration
	throttle       retry.Backoff
	last           time.Time // the previous call's start
	next           time.Time // the next call's earliest start
}

// New returns a pacer keeping calls at least interval apart, idle apart after a call that returned no
// records, and pausing between interval/2 and maxThrottle (jittered, doubling) after throttles.
func New(interval, idle, maxThrottle time.Duration) *Pacer {
	return &Pacer{interval: interval, idle: idle, throttle: retry.Backoff{Initial: interval, Max: maxThrottle}}
}

// Wait sleeps until the next call may start and notes its start; false when ctx ended first.
func (p *Pacer) Wait(ctx context.Context) bool {
	if d := time.Until(p.next); d > 0 && retry.Sleep(ctx, d) != nil {
		return false
	}
	if ctx.Err() != nil {
		return false
	}
	p.last = time.Now()
	return true
}

// Read records a call that returned records (none: the reader is at the tip and waits its idle time).
func (p *Pacer) Read(records int) {
	p.throttle.Reset()
	gap := p.interval
	if records == 0 {
		gap = max(p.idle, p.interval)
	}
	p.next = p.last.Add(gap)
}

// Throttled records a call refused for the shard's limits: the next one waits the throttle backoff from
// now, and at least the poll interval from the refused call's start.
func (p *Pacer) Throttled() {
	p.next = later(time.Now().Add(p.throttle.Next()), p.last.Add(p.interval))
}

// Failed records a call that failed otherwise; the caller's own backoff applies on top.
func (p *Pacer) Failed() {
	p.next = p.last.Add(p.interval)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// NoThrottleRetries is the per-call option of a paced GetRecords: a throttled call comes back from the
// SDK at once (retry.NoThrottleRetries) for the Pacer to pause, rather than being retried within the call
// — the SDK's waits would hide the throttle, and its extra attempts spend the shard's budget.
func NoThrottleRetries(o *kinesis.Options) { o.Retryer = retry.NoThrottleRetries(o.Retryer) }
