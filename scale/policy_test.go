package scale

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/internal/settings"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// minutes returns one-minute samples ending at t0 - (len(util)-1-i) minutes, each at util[i] of n shards'
// records capacity (bytes at a tenth of it), oldest first.
func minutes(n int, util ...float64) []Sample {
	out := make([]Sample, len(util))
	for i, u := range util {
		out[i] = Sample{End: t0.Add(-time.Duration(len(util)-1-i) * time.Minute), Period: time.Minute,
			RecordsPerSecond: u * float64(n) * ShardRecordsPerSecond, BytesPerSecond: u * float64(n) * ShardBytesPerSecond / 10}
	}
	return out
}

func repeat(u float64, k int) []float64 {
	out := make([]float64, k)
	for i := range out {
		out[i] = u
	}
	return out
}

func defaults(t *testing.T, edit func(*Policy)) Policy {
	t.Helper()
	var p Policy
	if edit != nil {
		edit(&p)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return p
}

func active(n int) StreamState { return StreamState{Status: "ACTIVE", OpenShards: n} }

func TestDecide(t *testing.T) {
	calls := func(k int, last time.Time) History {
		var h History
		for i := k - 1; i >= 0; i-- {
			h.Calls = append(h.Calls, last.Add(-time.Duration(i)*time.Hour))
		}
		return h
	}
	cases := []struct {
		name    string
		policy  func(*Policy)
		st      StreamState
		samples []Sample
		h       History
		action  Action
		wanted  int
		reason  string
	}{
		{name: "no samples", st: active(2), action: None, wanted: 2, reason: "no rate measured"},
		{name: "within the band", st: active(2), samples: minutes(2, repeat(0.5, 20)...), action: None, wanted: 2, reason: "within 25%..75%"},
		{name: "above 75% for 5 minutes doubles", st: active(2), samples: minutes(2, repeat(0.9, 6)...), action: Resize, wanted: 4, reason: "above 75% for 5m0s"},
		{name: "above 75% toward 50%: 80% of 4 wants 7", st: active(4), samples: minutes(4, repeat(0.8, 6)...), action: Resize, wanted: 7},
		{name: "far above: capped at twice", st: active(3), samples: minutes(3, repeat(5, 6)...), action: Resize, wanted: 6},
		{name: "peak of the window decides", st: active(4), samples: minutes(4, 0.8, 0.8, 0.95, 0.8, 0.8, 0.8), action: Resize, wanted: 8},
		{name: "above for only 4 minutes", st: active(2), samples: minutes(2, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9), action: None, wanted: 2, reason: "above 75%, not yet for 5m0s"},
		{name: "samples do not reach back 5 minutes", st: active(2), samples: minutes(2, repeat(0.9, 4)...), action: None, wanted: 2},
		{name: "one dip below the threshold resets", st: active(2), samples: minutes(2, 0.9, 0.9, 0.7, 0.9, 0.9, 0.9), action: None, wanted: 2},
		{name: "bytes count too", st: active(1), samples: []Sample{{End: t0, Period: 6 * time.Minute, BytesPerSecond: 0.9 * ShardBytesPerSecond}}, action: Resize, wanted: 2},
		{name: "below 25% for 15 minutes halves", st: active(8), samples: minutes(8, repeat(0.05, 16)...), action: Resize, wanted: 4},
		{name: "below 25% toward 50%: 20% of 10 wants 4, bounded to 5", st: active(10), samples: minutes(10, repeat(0.2, 16)...), action: Resize, wanted: 5},
		{name: "below 25% of 5: 24% wants 3", st: active(5), samples: minutes(5, repeat(0.24, 16)...), action: Resize, wanted: 3},
		{name: "odd count halves rounding up", st: active(3), samples: minutes(3, repeat(0, 16)...), action: Resize, wanted: 2},
		{name: "below for only 14 minutes", st: active(4), samples: minutes(4, append([]float64{0.4, 0.4}, repeat(0.1, 14)...)...), action: None, wanted: 4, reason: "below 25%, not yet for 15m0s"},
		{name: "already at the minimum", st: active(1), samples: minutes(1, repeat(0, 16)...), action: None, wanted: 1, reason: "but 1 is the minimum"},
		{name: "already at the maximum", policy: func(p *Policy) { p.MaxShards = 4 }, st: active(4), samples: minutes(4, repeat(0.9, 6)...), action: None, wanted: 4, reason: "but 4 is the maximum"},
		{name: "up bounded by the maximum", policy: func(p *Policy) { p.MaxShards = 5 }, st: active(4), samples: minutes(4, repeat(0.9, 6)...), action: Resize, wanted: 5},
		{name: "down bounded by the minimum", policy: func(p *Policy) { p.MinShards = 6 }, st: active(8), samples: minutes(8, repeat(0, 16)...), action: Resize, wanted: 6},
		{name: "below the minimum grows without load", policy: func(p *Policy) { p.MinShards = 3 }, st: active(1), action: Resize, wanted: 2, reason: "below the minimum of 3"},
		{name: "above the maximum shrinks whatever the load", policy: func(p *Policy) { p.MaxShards = 2 }, st: active(8), samples: minutes(8, repeat(0.9, 6)...), action: Resize, wanted: 4, reason: "above the maximum of 2"},
		{name: "on-demand is skipped", st: StreamState{Status: "ACTIVE", OnDemand: true, OpenShards: 4}, samples: minutes(4, repeat(0.9, 6)...), action: Skip, wanted: 4, reason: "on-demand"},
		{name: "updating is held", st: StreamState{Status: "UPDATING", OpenShards: 2}, samples: minutes(2, repeat(0.9, 6)...), action: Hold, wanted: 2, reason: "UPDATING"},
		{name: "up cool-down", st: active(2), samples: minutes(2, repeat(0.9, 6)...), h: History{Calls: []time.Time{t0.Add(-10 * time.Minute)}, LastUp: t0.Add(-10 * time.Minute)},
			action: Hold, wanted: 4, reason: "cooling down until 2026-12-01T12:05:00Z"},
		{name: "nothing measured since the last resize", st: active(4), samples: minutes(2, repeat(0.9, 6)...), h: History{Calls: []time.Time{t0.Add(-30 * time.Second)}, LastUp: t0.Add(-30 * time.Second)},
			action: None, wanted: 4, reason: "no rate measured yet"},
		{name: "up cool-down holds once the window is measured", policy: func(p *Policy) { p.UpCooldown = 30 * time.Minute }, st: active(2), samples: minutes(2, repeat(0.9, 20)...),
			h: History{Calls: []time.Time{t0.Add(-20 * time.Minute)}, LastUp: t0.Add(-20 * time.Minute)}, action: Hold, wanted: 4, reason: "cooling down until 2026-12-01T12:10:00Z"},
		{name: "up cool-down over", st: active(2), samples: minutes(2, repeat(0.9, 20)...),
			h: History{Calls: []time.Time{t0.Add(-20 * time.Minute)}, LastUp: t0.Add(-20 * time.Minute)}, action: Resize, wanted: 4},
		{name: "down cool-down holds", st: active(4), samples: minutes(4, repeat(0.1, 16)...),
			h: History{Calls: []time.Time{t0.Add(-time.Hour)}, LastDown: t0.Add(-59 * time.Minute)}, action: Hold, wanted: 2, reason: "cooling down"},
		{name: "a scale-down's cool-down does not hold a scale-up", st: active(4), samples: minutes(4, repeat(0.9, 16)...),
			h: History{Calls: []time.Time{t0.Add(-20 * time.Minute)}, LastDown: t0.Add(-20 * time.Minute)}, action: Resize, wanted: 8},
		{name: "samples from before the last resize are ignored", st: active(4), samples: minutes(4, repeat(0.9, 10)...),
			h: History{Calls: []time.Time{t0.Add(-3 * time.Minute)}, LastDown: t0.Add(-3 * time.Minute)}, action: None, wanted: 4},
		{name: "budget: 10 calls in 24 hours hold", st: active(2), samples: minutes(2, repeat(0.9, 6)...), h: calls(10, t0.Add(-time.Hour)),
			action: Hold, wanted: 4, reason: "10 UpdateShardCount calls in the last 24 hours (the budget is 10): the next is possible at 2026-12-02T02:00:00Z"},
		{name: "budget: the oldest call left the window", st: active(2), samples: minutes(2, repeat(0.9, 6)...), h: calls(10, t0.Add(-16*time.Hour)),
			action: Resize, wanted: 4},
		{name: "budget: a smaller budget", policy: func(p *Policy) { p.CallsPerDay = 3 }, st: active(2), samples: minutes(2, repeat(0.9, 6)...), h: calls(3, t0.Add(-time.Hour)),
			action: Hold, wanted: 4, reason: "budget is 3"},
		{name: "refused up holds up", st: active(2), samples: minutes(2, repeat(0.9, 6)...), h: History{RefusedUp: t0.Add(-30 * time.Minute)},
			action: Hold, wanted: 4, reason: "the API refused a resize this way"},
		{name: "refused up is asked again after the hold", st: active(2), samples: minutes(2, repeat(0.9, 6)...), h: History{RefusedUp: t0.Add(-61 * time.Minute)},
			action: Resize, wanted: 4},
		{name: "refused down does not hold up", st: active(2), samples: minutes(2, repeat(0.9, 6)...), h: History{RefusedDown: t0.Add(-time.Minute)},
			action: Resize, wanted: 4},
		{name: "shrunk capacity", policy: func(p *Policy) { p.ShardRecordsPerSecond = 10 }, st: active(1),
			samples: []Sample{{End: t0, Period: 6 * time.Minute, RecordsPerSecond: 12}}, action: Resize, wanted: 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := defaults(t, c.policy)
			d := Decide(p, c.st, c.samples, c.h, t0)
			if d.Action != c.action || d.Wanted != c.wanted || !strings.Contains(d.Reason, c.reason) {
				t.Fatalf("got %s\nwant action %s, wanted %d, reason containing %q", d, c.action, c.wanted, c.reason)
			}
			if d.Shards != c.st.OpenShards {
				t.Fatalf("shards %d, want %d", d.Shards, c.st.OpenShards)
			}
		})
	}
}

func TestDecisionLine(t *testing.T) {
	p := defaults(t, nil)
	d := Decide(p, active(2), minutes(2, repeat(0.9, 6)...), History{}, t0)
	want := "2026-12-01T12:00:00Z utilisation=90% shards=2→4 resize: above 75% for 5m0s (peak 90%); 4 shards at 50% would take it"
	if d.String() != want {
		t.Fatalf("got  %q\nwant %q", d.String(), want)
	}
	if got := Decide(p, active(2), nil, History{}, t0).String(); !strings.Contains(got, "utilisation=n/a") {
		t.Fatalf("no samples: %q", got)
	}
}

func TestHistoryRecord(t *testing.T) {
	var h History
	up := Decision{Shards: 1, Wanted: 2}
	down := Decision{Shards: 2, Wanted: 1}
	h = h.Record(up, false, t0.Add(-25*time.Hour))
	h = h.Record(down, false, t0.Add(-time.Hour))
	h = h.Record(up, true, t0)
	if len(h.Calls) != 1 || !h.Calls[0].Equal(t0.Add(-time.Hour)) {
		t.Fatalf("calls older than a day must go, refusals are not calls: %v", h.Calls)
	}
	if !h.LastUp.Equal(t0.Add(-25*time.Hour)) || !h.LastDown.Equal(t0.Add(-time.Hour)) || !h.RefusedUp.Equal(t0) || !h.RefusedDown.IsZero() {
		t.Fatalf("history %+v", h)
	}
}

func TestPolicyValidate(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(*Policy)
		field string
	}{
		{"target above 1", func(p *Policy) { p.Target = 1.5 }, "Target"},
		{"up threshold below target", func(p *Policy) { p.UpThreshold = 0.4 }, "UpThreshold"},
		{"down threshold above target", func(p *Policy) { p.DownThreshold = 0.6 }, "DownThreshold"},
		{"max below min", func(p *Policy) { p.MinShards, p.MaxShards = 4, 2 }, "MaxShards"},
		{"budget above the API's", func(p *Policy) { p.CallsPerDay = 11 }, "CallsPerDay"},
		{"negative cool-down", func(p *Policy) { p.UpCooldown = -time.Second }, "UpCooldown"},
		{"negative capacity", func(p *Policy) { p.ShardRecordsPerSecond = -1 }, "ShardRecordsPerSecond"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Policy
			c.edit(&p)
			err := p.Validate()
			var se *settings.Error
			if !errors.Is(err, ErrInvalidPolicy) || !errors.As(err, &se) || se.Field != c.field {
				t.Fatalf("got %v, want an error on %s", err, c.field)
			}
		})
	}
	p := defaults(t, nil)
	if p.UpThreshold != 0.75 || p.UpAfter != 5*time.Minute || p.DownThreshold != 0.25 || p.DownAfter != 15*time.Minute ||
		p.UpCooldown != 15*time.Minute || p.DownCooldown != time.Hour || p.CallsPerDay != 10 || p.Target != 0.5 {
		t.Fatalf("defaults: %+v", p)
	}
}

// CloudWatch's newest minute ends a few minutes before now: the windows end at the newest sample.
func TestDecideWindowsEndAtTheNewestSample(t *testing.T) {
	p := defaults(t, nil)
	d := Decide(p, active(2), minutes(2, repeat(0.9, 6)...), History{}, t0.Add(3*time.Minute))
	if d.Action != Resize || d.Wanted != 4 {
		t.Fatalf("got %s", d)
	}
}
