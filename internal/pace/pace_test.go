package pace_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clickfleet/clickfleet/internal/pace"
)

// outcome is what one scripted GetRecords call returned.
type outcome int

const (
	records outcome = iota
	empty
	throttled
	failed
)

// run paces calls with the given outcomes on a fake clock and returns the gaps between their starts:
// gaps[i] is the wait after call i.
func run(t *testing.T, p *pace.Pacer, outcomes []outcome) []time.Duration {
	t.Helper()
	var starts []time.Time
	for _, o := range outcomes {
		if !p.Wait(context.Background()) {
			t.Fatal("Wait returned false with a live context")
		}
		starts = append(starts, time.Now())
		switch o {
		case records:
			p.Read(100)
		case empty:
			p.Read(0)
		case throttled:
			p.Throttled()
		case failed:
			p.Failed()
		}
	}
	gaps := make([]time.Duration, len(starts)-1)
	for i := range gaps {
		gaps[i] = starts[i+1].Sub(starts[i])
	}
	return gaps
}

// Under continuous traffic calls are a poll interval apart; at the tip, the idle time apart; after
// throttles the pauses grow but never past the cap, and the first success brings the poll interval back.
func TestPacerSpacesCalls(t *testing.T) {
	const interval, idle, maxThrottle = 500 * time.Millisecond, time.Second, 2 * time.Second
	synctest.Test(t, func(t *testing.T) {
		p := pace.New(interval, idle, maxThrottle)
		script := []outcome{records, records, empty, records, throttled, throttled, throttled, throttled, throttled, throttled, records, records, failed, records}
		gaps := run(t, p, script)
		for i, g := range gaps {
			switch o := script[i]; o {
			case records, failed:
				if g != interval {
					t.Errorf("call %d (outcome %d): next call %v later, want the poll interval %v", i, o, g, interval)
				}
			case empty:
				if g != idle {
					t.Errorf("call %d (empty): next call %v later, want the idle time %v", i, g, idle)
				}
			case throttled:
				if g < interval || g > maxThrottle {
					t.Errorf("call %d (throttled): next call %v later, want within [%v, %v]", i, g, interval, maxThrottle)
				}
			}
		}
		// The sixth throttle in a row still pauses at most the cap (a 200ms backoff doubling to 10s would
		// be at 6.4s by then).
		if g := gaps[9]; g > maxThrottle {
			t.Errorf("after six throttles the pause is %v, want at most %v", g, maxThrottle)
		}
	})
}

// Wait gives up when its context ends, without waiting the pause out.
func TestPacerWaitEndsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pace.New(time.Second, time.Second, time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if !p.Wait(ctx) {
			t.Fatal("the first Wait did not return at once")
		}
		p.Read(1)
		start := time.Now()
		if p.Wait(ctx) {
			t.Fatal("Wait returned true after its context ended")
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Fatalf("Wait returned after %v, want when the context ended (100ms)", d)
		}
	})
}
