package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is a capped exponential backoff with equal jitter: each pause is drawn from [d/2, d], where d
// starts at Initial and doubles after every pause up to Max. The zero value pauses 100ms, doubling up to
// 5s. A Backoff is not safe for concurrent use; give each loop its own.
type Backoff struct {
	// Initial is the first pause's upper bound. Default: 100ms.
	Initial time.Duration
	// Max caps the pause. Default: 5s (at least Initial).
	Max time.Duration

	next time.Duration
}

// Next returns the pause to take now and doubles the following one.
func (b *Backoff) Next() time.Duration {
	if b.next == 0 {
		b.next = b.initial()
	}
	d := b.next
	b.next = min(2*b.next, b.max())
	return d/2 + rand.N(d/2+1)
}

// Reset starts the sequence again at Initial; call it after a success.
func (b *Backoff) Reset() { b.next = 0 }

func (b *Backoff) initial() time.Duration {
	if b.Initial > 0 {
		return b.Initial
	}
	return 100 * time.Millisecond
}

func (b *Backoff) max() time.Duration {
	m := b.Max
	if m <= 0 {
		m = 5 * time.Second
	}
	return max(m, b.initial())
}

// Sleep pauses for d or until ctx ends; it returns context.Cause(ctx) when ctx ended first.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// Policy says how Do retries.
type Policy struct {
	// Backoff paces the attempts (Initial and Max; the zero value is 100ms doubling to 5s).
	Backoff Backoff
	// Attempts bounds the calls of the operation; 0: no bound (until success, a permanent error or the
	// context's end).
	Attempts int
	// Stop, when set, reports errors that end the loop at once besides permanent ones (a lost lease, say);
	// Do returns them as they are.
	Stop func(error) bool
	// OnRetry, when set, is called before each pause with the attempt that failed (from 1), the pause and
	// the error: for logs and metrics.
	OnRetry func(attempt int, pause time.Duration, err error)
}

// Do calls op until it returns nil, and returns nil; or until its error is permanent (IsPermanent) or
// stops the policy, and returns that error; or until Attempts calls failed, and returns the last error;
// or until ctx ends, and returns context.Cause(ctx). op gets ctx and should bound its own call with it.
func Do(ctx context.Context, p Policy, op func(ctx context.Context) error) error {
	b := p.Backoff
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		err := op(ctx)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return context.Cause(ctx)
		case IsPermanent(err), p.Stop != nil && p.Stop(err), p.Attempts > 0 && attempt >= p.Attempts:
			return err
		}
		pause := b.Next()
		if p.OnRetry != nil {
			p.OnRetry(attempt, pause, err)
		}
		if err := Sleep(ctx, pause); err != nil {
			return err
		}
	}
}
