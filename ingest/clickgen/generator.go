package clickgen

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/internal/retry"
)

// Config describes a generation run. The zero value is not valid; start from DefaultConfig.
type Config struct {
	// Profile is the event shape and pacing. Default: ProfilePOC.
	Profile Profile
	// Users is how many distinct user ids to draw from. Default: 100 (poc), 3 (lab).
	Users int
	// Count stops the run after this many events; 0 means no count limit. Default: 1000.
	Count int64
	// Duration stops the run after this much real time; 0 means no time limit. Count or Duration must be set.
	Duration time.Duration
	// Rate is events per second of simulated time for the poc profile; 0 means as fast as possible.
	// Default: 100.
	Rate float64
	// ClickInterval, Pause and PauseEvery pace the lab profile in simulated time: one click every
	// ClickInterval, and a Pause instead after every PauseEvery clicks. Defaults: 2s, 15s, 60.
	ClickInterval time.Duration
	Pause         time.Duration
	PauseEvery    int
	// DeviceType is the lab profile's device_type. Default: "desktop".
	DeviceType string
	// TimeScale is real time per unit of simulated time: 1 sends in real time, 0.01 a hundred times faster
	// (timestamps keep their simulated gaps), 0 as fast as the sink takes them. Default: 1.
	TimeScale float64
	// Seed makes the sequence of events reproducible. Default: 1.
	Seed int64
	// Start is the timestamp of the first event. Default: the time Run starts.
	Start time.Time
	// BatchSize is the most events per Put (Kinesis PutRecords takes up to 500). Default: 500.
	BatchSize int
	// RetryBackoff is the first pause before sending rejected events again; it doubles on each failure
	// without progress, up to 5 s. Default: 100ms.
	RetryBackoff time.Duration
	// ProgressInterval is how often OnProgress is called. Default: 1s.
	ProgressInterval time.Duration
	// OnProgress, if set, receives the running totals every ProgressInterval and once at the end. It runs
	// on the generator's goroutine.
	OnProgress func(Stats)
}

// DefaultConfig returns the defaults documented on Config for the given profile.
func DefaultConfig(p Profile) Config {
	c := Config{
		Profile: p, Users: 100, Count: 1000, Rate: 100,
		ClickInterval: 2 * time.Second, Pause: 15 * time.Second, PauseEvery: 60,
		DeviceType: "desktop", TimeScale: 1, Seed: 1, BatchSize: 500, RetryBackoff: 100 * time.Millisecond,
		ProgressInterval: time.Second,
	}
	if p == ProfileLab {
		c.Users = 3
	}
	return c
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("clickgen: invalid configuration")

// Validate reports the first setting that is out of range, naming it.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Profile != ProfilePOC && c.Profile != ProfileLab:
		return bad("profile must be %q or %q, not %q", ProfilePOC, ProfileLab, c.Profile)
	case c.Users < 1:
		return bad("users must be at least 1, got %d", c.Users)
	case c.Count < 0:
		return bad("count must not be negative, got %d", c.Count)
	case c.Duration < 0:
		return bad("duration must not be negative, got %s", c.Duration)
	case c.Count == 0 && c.Duration == 0:
		return bad("set count or duration (or both): with neither the run would never end")
	case c.Rate < 0:
		return bad("rate must not be negative, got %g", c.Rate)
	case c.TimeScale < 0:
		return bad("time-scale must not be negative, got %g", c.TimeScale)
	case c.Profile == ProfileLab && c.ClickInterval < 0:
		return bad("click-interval must not be negative, got %s", c.ClickInterval)
	case c.Profile == ProfileLab && c.Pause < 0:
		return bad("pause must not be negative, got %s", c.Pause)
	case c.PauseEvery < 0:
		return bad("pause-every must not be negative, got %d", c.PauseEvery)
	case c.BatchSize < 1 || c.BatchSize > 500:
		return bad("batch size must be 1..500, got %d", c.BatchSize)
	case c.RetryBackoff <= 0:
		return bad("retry backoff must be positive, got %s", c.RetryBackoff)
	case c.ProgressInterval <= 0:
		return bad("progress interval must be positive, got %s", c.ProgressInterval)
	}
	return nil
}

// Stats are the running totals of a run.
type Stats struct {
	Generated int64         // events made
	Sent      int64         // events the sink acknowledged
	Retried   int64         // event sends that failed and were tried again
	Failures  int64         // failed Put calls (whole call) and failed entries
	Bytes     int64         // payload bytes acknowledged
	Elapsed   time.Duration // real time since the run started
}

// Rate is acknowledged events per second of real time.
func (s Stats) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Sent) / s.Elapsed.Seconds()
}

// Sink takes batches of events. Put returns the events it did not store (for instance a PutRecords
// partial failure) to be sent again; an error means none of the batch is known to be stored.
type Sink interface {
	Put(ctx context.Context, batch []Event) (failed []Event, err error)
}

// maxBatchBytes is PutRecords' limit on one request's data and partition keys.
const maxBatchBytes = 5 << 20

// Run generates events and writes them to sink until the count or duration is reached or ctx ends.
// Events the sink rejects are sent again with exponential backoff (RetryBackoff up to 5 s, jittered) until they
// are stored or ctx ends: an event is never dropped silently. It returns the totals, and an error when ctx
// ended with events generated but not stored (the error says how many).
func Run(ctx context.Context, cfg Config, sink Sink, log *zap.Logger) (Stats, error) {
	if err := cfg.Validate(); err != nil {
		return Stats{}, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	began := time.Now()
	if cfg.Start.IsZero() {
		cfg.Start = began
	}
	src := newSource(cfg)
	r := &run{cfg: cfg, sink: sink, log: log, began: began, nextProgress: began.Add(cfg.ProgressInterval)}
	// The duration ends generation; what was generated is still stored.
	genCtx := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		genCtx, cancel = context.WithDeadlineCause(ctx, began.Add(cfg.Duration), errDurationReached)
		defer cancel()
	}
	err := r.loop(ctx, genCtx, src)
	r.stats.Elapsed = time.Since(began)
	if cfg.OnProgress != nil {
		cfg.OnProgress(r.stats)
	}
	if err != nil && len(r.pending) > 0 {
		return r.stats, fmt.Errorf("%d generated events not stored: %w", len(r.pending), err)
	}
	return r.stats, err
}

var errDurationReached = errors.New("clickgen: duration reached")

type run struct {
	cfg          Config
	sink         Sink
	log          *zap.Logger
	began        time.Time
	stats        Stats
	pending      []Event // generated, not yet stored, in order
	nextProgress time.Time
}

func (r *run) loop(ctx, genCtx context.Context, src *source) error {
	var next *Event
	generating := true
	for {
		// Fill the batch with every event that is due, up to the batch limits.
		for generating && len(r.pending) < r.cfg.BatchSize && (r.cfg.Count == 0 || r.stats.Generated < r.cfg.Count) {
			if genCtx.Err() != nil {
				generating = false
				break
			}
			if next == nil {
				ev, err := src.next()
				if err != nil {
					return err
				}
				next = &ev
			}
			due := r.began.Add(time.Duration(float64(next.At) * r.cfg.TimeScale))
			if len(r.pending) > 0 && time.Now().Before(due) {
				break // send what is due first
			}
			if len(r.pending) == 0 {
				if err := retry.Sleep(genCtx, time.Until(due)); err != nil {
					if ctx.Err() != nil {
						return err
					}
					generating = false // duration reached
					break
				}
			}
			r.pending = append(r.pending, *next)
			r.stats.Generated++
			next = nil
		}
		if len(r.pending) == 0 {
			return nil // count reached and everything stored
		}
		if err := r.flush(ctx); err != nil {
			return err
		}
		r.progress()
	}
}

// flush sends the pending events until all are stored, backing off between failures.
func (r *run) flush(ctx context.Context) error {
	backoff := retry.Backoff{Initial: r.cfg.RetryBackoff, Max: 5 * time.Second}
	for len(r.pending) > 0 {
		batch := r.pending
		size := 0
		for i, ev := range batch {
			size += len(ev.Data) + len(ev.UserID)
			if size > maxBatchBytes && i > 0 {
				batch = batch[:i]
				break
			}
		}
		failed, err := r.sink.Put(ctx, batch)
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			r.stats.Failures++
			r.stats.Retried += int64(len(batch))
			r.log.Warn("put failed; retrying", zap.Int("events", len(batch)), zap.Error(err))
		} else {
			stored := len(batch) - len(failed)
			for _, ev := range batch {
				r.stats.Bytes += int64(len(ev.Data))
			}
			for _, ev := range failed {
				r.stats.Bytes -= int64(len(ev.Data))
			}
			r.stats.Sent += int64(stored)
			rest := append(append([]Event(nil), failed...), r.pending[len(batch):]...)
			r.pending = append(r.pending[:0], rest...)
			if stored > 0 {
				backoff.Reset() // progress: retry the rest soon
			}
			if len(failed) == 0 {
				continue
			}
			r.stats.Failures += int64(len(failed))
			r.stats.Retried += int64(len(failed))
		}
		r.progress()
		if err := retry.Sleep(ctx, backoff.Next()); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) progress() {
	if r.cfg.OnProgress == nil || time.Now().Before(r.nextProgress) {
		return
	}
	r.nextProgress = time.Now().Add(r.cfg.ProgressInterval)
	r.stats.Elapsed = time.Since(r.began)
	r.cfg.OnProgress(r.stats)
}
