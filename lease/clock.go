package lease

import "time"

// Clock is the time source of a Coordinator. Only differences between two of
// one worker's own Now readings are ever used (Go's time.Time carries a
// monotonic reading, which Sub prefers), so the wall-clock offset of a worker
// never matters. Implementations must be safe for concurrent use.
type Clock interface {
	// Now returns the current time, with a monotonic reading if possible.
	Now() time.Time
	// NewTicker returns a ticker firing every d.
	NewTicker(d time.Duration) Ticker
	// AfterFunc calls f in its own goroutine after d, unless stopped first.
	AfterFunc(d time.Duration, f func()) Timer
	// After returns a channel that receives once after d.
	After(d time.Duration) <-chan time.Time
}

// Ticker is the part of *time.Ticker a Coordinator uses.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// Timer is the part of *time.Timer a Coordinator uses.
type Timer interface {
	// Stop prevents the timer from firing; it reports whether it did so.
	Stop() bool
}

// SystemClock is the Clock of the time package. Its zero value is ready to use.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// NewTicker returns time.NewTicker(d).
func (SystemClock) NewTicker(d time.Duration) Ticker { return systemTicker{time.NewTicker(d)} }

// AfterFunc returns time.AfterFunc(d, f).
func (SystemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// After returns time.After(d).
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

type systemTicker struct{ t *time.Ticker }

func (s systemTicker) C() <-chan time.Time { return s.t.C }
func (s systemTicker) Stop()               { s.t.Stop() }

// OffsetClock is a SystemClock whose wall time is shifted by Offset; its
// monotonic readings advance exactly as the system's. It exists to show that
// wall-clock skew between workers changes nothing.
type OffsetClock struct {
	SystemClock
	Offset time.Duration
}

// Now returns time.Now() shifted by Offset.
func (o OffsetClock) Now() time.Time { return time.Now().Add(o.Offset) }
