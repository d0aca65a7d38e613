package scale

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/clickfleet/clickfleet/internal/settings"
)

// ErrInvalidPolicy is wrapped by every error Policy.Validate returns.
var ErrInvalidPolicy = errors.New("scale: invalid scaling policy")

// Kinesis limits that bound the policy (provisioned mode).
const (
	// ShardBytesPerSecond is what one shard takes in: 1 MiB/s (data plus partition key).
	ShardBytesPerSecond = 1 << 20
	// ShardRecordsPerSecond is what one shard takes in: 1,000 records/s.
	ShardRecordsPerSecond = 1000
	// APICallsPerDay is how many UpdateShardCount calls a stream allows per rolling 24 hours.
	APICallsPerDay = 10
	// APIMaxShards is the most shards UpdateShardCount scales a stream to.
	APIMaxShards = 10000
	// Day is the API's rolling window for APICallsPerDay.
	Day = 24 * time.Hour
)

// Defaults of Policy's fields: the thresholds, windows and cool-downs are those the
// amazon-kinesis-scaling-utils documentation configures (scale up above 75 % for 5 minutes with a 15-minute
// cool-off, scale down below 25 % for 15 minutes with a 60-minute cool-off, 1 to 16 shards); the target
// of 50 % sits between the two thresholds with a factor of 1.5 on either side, so that a resize never
// lands beyond the opposite threshold.
const (
	DefaultTarget        = 0.50
	DefaultUpThreshold   = 0.75
	DefaultUpAfter       = 5 * time.Minute
	DefaultUpCooldown    = 15 * time.Minute
	DefaultDownThreshold = 0.25
	DefaultDownAfter     = 15 * time.Minute
	DefaultDownCooldown  = 60 * time.Minute
	DefaultMinShards     = 1
	DefaultMaxShards     = 16
	DefaultRefusedHold   = time.Hour
)

// Policy says when and how far to resize. Zero values take the defaults; Validate fills them in.
type Policy struct {
	// ShardBytesPerSecond and ShardRecordsPerSecond are one open shard's capacity. Defaults: 1 MiB/s and
	// 1,000 records/s, the Kinesis limits (lower them to exercise scaling with a small load).
	ShardBytesPerSecond   float64
	ShardRecordsPerSecond float64
	// Target is the utilisation a resize aims for. Default: 0.5.
	Target float64
	// UpThreshold and UpAfter: scale up when utilisation stays above UpThreshold for UpAfter.
	// Defaults: 0.75, 5m.
	UpThreshold float64
	UpAfter     time.Duration
	// UpCooldown is the least time between two scale-ups. Default: 15m.
	UpCooldown time.Duration
	// DownThreshold and DownAfter: scale down when utilisation stays below DownThreshold for DownAfter.
	// Defaults: 0.25, 15m.
	DownThreshold float64
	DownAfter     time.Duration
	// DownCooldown is the least time between two scale-downs. Default: 60m.
	DownCooldown time.Duration
	// MinShards and MaxShards bound the open shard count. Defaults: 1 and 16.
	MinShards, MaxShards int
	// CallsPerDay is the most UpdateShardCount calls in any 24 hours. Default and maximum: 10, the API's.
	CallsPerDay int
	// RefusedHold is how long a direction is not tried again after the API refused a resize in it.
	// Default: 1h.
	RefusedHold time.Duration
}

// Validate fills in defaults and returns an error wrapping ErrInvalidPolicy and a *settings.Error naming
// the first bad field.
func (p *Policy) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %w", ErrInvalidPolicy, settings.Invalid(field, format, args...))
	}
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&p.ShardBytesPerSecond, ShardBytesPerSecond)
	def(&p.ShardRecordsPerSecond, ShardRecordsPerSecond)
	def(&p.Target, DefaultTarget)
	def(&p.UpThreshold, DefaultUpThreshold)
	def(&p.DownThreshold, DefaultDownThreshold)
	defD(&p.UpAfter, DefaultUpAfter)
	defD(&p.UpCooldown, DefaultUpCooldown)
	defD(&p.DownAfter, DefaultDownAfter)
	defD(&p.DownCooldown, DefaultDownCooldown)
	defD(&p.RefusedHold, DefaultRefusedHold)
	if p.MinShards == 0 {
		p.MinShards = DefaultMinShards
	}
	if p.MaxShards == 0 {
		p.MaxShards = DefaultMaxShards
	}
	if p.CallsPerDay == 0 {
		p.CallsPerDay = APICallsPerDay
	}
	switch {
	case p.ShardBytesPerSecond < 0:
		return bad("ShardBytesPerSecond", "must be positive, got %g", p.ShardBytesPerSecond)
	case p.ShardRecordsPerSecond < 0:
		return bad("ShardRecordsPerSecond", "must be positive, got %g", p.ShardRecordsPerSecond)
	case p.Target <= 0 || p.Target >= 1:
		return bad("Target", "must be between 0 and 1 (a fraction of capacity), got %g", p.Target)
	case p.UpThreshold <= p.Target || p.UpThreshold > 1:
		return bad("UpThreshold", "must be above Target (%g) and at most 1, got %g", p.Target, p.UpThreshold)
	case p.DownThreshold <= 0 || p.DownThreshold >= p.Target:
		return bad("DownThreshold", "must be above 0 and below Target (%g), got %g", p.Target, p.DownThreshold)
	case p.UpAfter < 0:
		return bad("UpAfter", "must be positive, got %s", p.UpAfter)
	case p.DownAfter < 0:
		return bad("DownAfter", "must be positive, got %s", p.DownAfter)
	case p.UpCooldown < 0:
		return bad("UpCooldown", "must not be negative, got %s", p.UpCooldown)
	case p.DownCooldown < 0:
		return bad("DownCooldown", "must not be negative, got %s", p.DownCooldown)
	case p.RefusedHold < 0:
		return bad("RefusedHold", "must not be negative, got %s", p.RefusedHold)
	case p.MinShards < 1:
		return bad("MinShards", "must be at least 1, got %d", p.MinShards)
	case p.MaxShards < p.MinShards || p.MaxShards > APIMaxShards:
		return bad("MaxShards", "must be between MinShards (%d) and %d, got %d", p.MinShards, APIMaxShards, p.MaxShards)
	case p.CallsPerDay < 1 || p.CallsPerDay > APICallsPerDay:
		return bad("CallsPerDay", "must be 1..%d (the API allows %d UpdateShardCount calls per rolling 24 hours), got %d", APICallsPerDay, APICallsPerDay, p.CallsPerDay)
	}
	return nil
}

// Sample is the stream's incoming rate over one period (End-Period, End].
type Sample struct {
	End              time.Time
	Period           time.Duration
	BytesPerSecond   float64
	RecordsPerSecond float64
}

// Start is when the sample's period began.
func (s Sample) Start() time.Time { return s.End.Add(-s.Period) }

// shardsNeeded is how many shards' worth of capacity the sample's rate fills (the higher of bytes and
// records).
func (s Sample) shardsNeeded(p Policy) float64 {
	return max(s.BytesPerSecond/p.ShardBytesPerSecond, s.RecordsPerSecond/p.ShardRecordsPerSecond)
}

// StreamState is what the stream looks like now.
type StreamState struct {
	// Status is the StreamStatus: ACTIVE, UPDATING, CREATING or DELETING.
	Status string
	// OnDemand is true for a stream in on-demand capacity mode.
	OnDemand bool
	// OpenShards is the number of open shards.
	OpenShards int
}

// History is what earlier evaluations did, carried from one to the next (and from one holder of the lock
// to the next).
type History struct {
	// Calls are the times of the UpdateShardCount calls the API accepted, oldest first.
	Calls []time.Time
	// LastUp and LastDown are the times of the last accepted scale-up and scale-down.
	LastUp, LastDown time.Time
	// RefusedUp and RefusedDown are the times the API last refused a scale-up or scale-down.
	RefusedUp, RefusedDown time.Time
}

// callsSince returns the calls after t.
func (h History) callsSince(t time.Time) []time.Time {
	i, _ := slices.BinarySearchFunc(h.Calls, t, func(c, t time.Time) int {
		if c.After(t) {
			return 1
		}
		return -1
	})
	return h.Calls[i:]
}

// lastResize is the time of the last accepted call, or zero.
func (h History) lastResize() time.Time {
	if len(h.Calls) == 0 {
		return time.Time{}
	}
	return h.Calls[len(h.Calls)-1]
}

// Record returns h with the outcome of a resize at now: accepted (refused false) or refused by the API.
// Calls older than a day are dropped.
func (h History) Record(d Decision, refused bool, now time.Time) History {
	out := History{Calls: slices.Clone(h.callsSince(now.Add(-Day))), LastUp: h.LastUp, LastDown: h.LastDown,
		RefusedUp: h.RefusedUp, RefusedDown: h.RefusedDown}
	up := d.Wanted > d.Shards
	switch {
	case refused && up:
		out.RefusedUp = now
	case refused:
		out.RefusedDown = now
	case up:
		out.Calls, out.LastUp = append(out.Calls, now), now
	default:
		out.Calls, out.LastDown = append(out.Calls, now), now
	}
	return out
}

// Action is what a decision does.
type Action string

// The actions.
const (
	// None: the shard count is right (or nothing can be judged yet).
	None Action = "none"
	// Resize: call UpdateShardCount to Decision.Wanted.
	Resize Action = "resize"
	// Hold: a resize is wanted but not allowed now (cool-down, budget, an earlier refusal, the stream
	// not ACTIVE); Decision.Wanted is what it would be.
	Hold Action = "hold"
	// Skip: the stream is not scaled at all (on-demand).
	Skip Action = "skip"
)

// Decision is one evaluation's outcome.
type Decision struct {
	Time   time.Time
	Action Action
	// Utilisation is the latest sample's rate as a fraction of the open shards' capacity (the higher of
	// bytes and records); -1 when there is no sample.
	Utilisation float64
	// Shards is the open shard count now; Wanted the count a resize goes (or would go) to.
	Shards, Wanted int
	// Reason says why, in a sentence.
	Reason string
}

// String is the decision as one line: time, utilisation, shards now → wanted, action and why.
func (d Decision) String() string {
	u := "n/a"
	if d.Utilisation >= 0 {
		u = fmt.Sprintf("%.0f%%", 100*d.Utilisation)
	}
	return fmt.Sprintf("%s utilisation=%s shards=%d→%d %s: %s", d.Time.UTC().Format(time.RFC3339), u, d.Shards, d.Wanted, d.Action, d.Reason)
}

// Window returns how far back Decide looks: the longer of UpAfter and DownAfter.
func (p Policy) Window() time.Duration { return max(p.UpAfter, p.DownAfter) }

// Decide is the scaling decision at now for a stream in state st, from the samples measured (oldest
// first; those that began before the last accepted resize are ignored, since they measured another shard
// layout) and the history of earlier calls. p must be validated. It is a pure function.
//
// The rules: an on-demand stream is skipped; a stream that is not ACTIVE is held. The utilisation of a
// sample is its rate over the open shards' capacity, the higher of bytes and records. Scale up when every
// sample of the last UpAfter is above UpThreshold (and the samples reach back that far); scale down when
// every sample of the last DownAfter is below DownThreshold. The windows end at the newest sample (a
// source such as CloudWatch publishes with a delay); the caller keeps only fresh samples. The wanted count is what the highest rate of
// that window needs at Target utilisation, bounded by one call's limits (at most twice, at least half the
// open shards, rounded up) and by MinShards and MaxShards; a count outside MinShards..MaxShards is brought
// back within whatever the load. A resize is held during its direction's cool-down, for RefusedHold after
// the API refused that direction, and when CallsPerDay calls were accepted in the last 24 hours.
func Decide(p Policy, st StreamState, samples []Sample, h History, now time.Time) Decision {
	d := Decision{Time: now, Action: None, Utilisation: -1, Shards: st.OpenShards, Wanted: st.OpenShards}
	if st.OnDemand {
		d.Action, d.Reason = Skip, "on-demand stream: Kinesis manages its capacity, UpdateShardCount is for provisioned streams"
		return d
	}
	n := st.OpenShards
	since := h.lastResize()
	var usable []Sample
	for _, s := range samples {
		if !s.Start().Before(since) && !s.End.After(now) {
			usable = append(usable, s)
		}
	}
	if len(usable) > 0 && n > 0 {
		d.Utilisation = usable[len(usable)-1].shardsNeeded(p) / float64(n)
	}
	if st.Status != "ACTIVE" {
		d.Action, d.Reason = Hold, fmt.Sprintf("stream is %s, not ACTIVE: no resize until it is", st.Status)
		return d
	}
	if n < 1 {
		d.Reason = "no open shards"
		return d
	}

	lo, hi := (n+1)/2, min(2*n, APIMaxShards) // one call's bounds
	clamp := func(w int) int { return min(max(w, lo, p.MinShards), hi, p.MaxShards) }
	var newest time.Time
	if len(usable) > 0 {
		newest = usable[len(usable)-1].End
	}
	up, upPeak := sustained(usable, newest, p.UpAfter, func(u float64) bool { return u > p.UpThreshold*float64(n) }, p)
	down, downPeak := sustained(usable, newest, p.DownAfter, func(u float64) bool { return u < p.DownThreshold*float64(n) }, p)
	switch {
	case n < p.MinShards:
		d.Wanted = min(p.MinShards, hi)
		d.Reason = fmt.Sprintf("below the minimum of %d shards", p.MinShards)
	case n > p.MaxShards:
		d.Wanted = max(p.MaxShards, lo)
		d.Reason = fmt.Sprintf("above the maximum of %d shards", p.MaxShards)
	case up:
		d.Wanted = clamp(int(math.Ceil(upPeak / p.Target)))
		d.Reason = fmt.Sprintf("above %.0f%% for %s (peak %.0f%%); %d shards at %.0f%% would take it", 100*p.UpThreshold, p.UpAfter,
			100*upPeak/float64(n), int(math.Ceil(upPeak/p.Target)), 100*p.Target)
		if d.Wanted == n {
			d.Reason += fmt.Sprintf(", but %d is the maximum", p.MaxShards)
		}
	case down:
		d.Wanted = clamp(int(math.Ceil(downPeak / p.Target)))
		d.Reason = fmt.Sprintf("below %.0f%% for %s (peak %.0f%%)", 100*p.DownThreshold, p.DownAfter, 100*downPeak/float64(n))
		if d.Wanted == n {
			d.Reason += fmt.Sprintf(", but %d is the minimum", p.MinShards)
		}
	case len(usable) == 0:
		d.Reason = "no rate measured yet (since the start or the last resize)"
		return d
	case d.Utilisation > p.UpThreshold:
		d.Reason = fmt.Sprintf("above %.0f%%, not yet for %s", 100*p.UpThreshold, p.UpAfter)
		return d
	case d.Utilisation < p.DownThreshold:
		d.Reason = fmt.Sprintf("below %.0f%%, not yet for %s", 100*p.DownThreshold, p.DownAfter)
		return d
	default:
		d.Reason = fmt.Sprintf("within %.0f%%..%.0f%%", 100*p.DownThreshold, 100*p.UpThreshold)
		return d
	}
	if d.Wanted == n {
		return d
	}
	growing := d.Wanted > n
	last, cool, refused := h.LastDown, p.DownCooldown, h.RefusedDown
	if growing {
		last, cool, refused = h.LastUp, p.UpCooldown, h.RefusedUp
	}
	calls := h.callsSince(now.Add(-Day))
	switch {
	case !last.IsZero() && now.Sub(last) < cool:
		d.Action = Hold
		d.Reason += fmt.Sprintf("; cooling down until %s (%s after the last resize this way)", last.Add(cool).UTC().Format(time.RFC3339), cool)
	case !refused.IsZero() && now.Sub(refused) < p.RefusedHold:
		d.Action = Hold
		d.Reason += fmt.Sprintf("; the API refused a resize this way at %s: not asked again before %s", refused.UTC().Format(time.RFC3339),
			refused.Add(p.RefusedHold).UTC().Format(time.RFC3339))
	case len(calls) >= p.CallsPerDay:
		d.Action = Hold
		d.Reason += fmt.Sprintf("; %d UpdateShardCount calls in the last 24 hours (the budget is %d): the next is possible at %s",
			len(calls), p.CallsPerDay, calls[len(calls)-p.CallsPerDay].Add(Day).UTC().Format(time.RFC3339))
	default:
		d.Action = Resize
	}
	return d
}

// sustained reports whether every sample ending in the window (end-after, end] satisfies ok (applied to
// the shards' worth of capacity it fills), and whether the samples reach back to the window's start; peak
// is the highest shards' worth in the window.
func sustained(samples []Sample, end time.Time, after time.Duration, ok func(float64) bool, p Policy) (bool, float64) {
	start := end.Add(-after)
	var peak float64
	var earliest time.Time
	var slack time.Duration
	seen := false
	for _, s := range samples {
		if !s.End.After(start) {
			continue
		}
		need := s.shardsNeeded(p)
		if !ok(need) {
			return false, 0
		}
		peak = max(peak, need)
		if !seen || s.Start().Before(earliest) {
			earliest = s.Start()
		}
		if !seen || s.Period/10 < slack {
			slack = s.Period / 10
		}
		seen = true
	}
	if !seen || earliest.After(start.Add(slack)) {
		return false, 0
	}
	return true, peak
}
