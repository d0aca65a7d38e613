package session

import (
	"fmt"
	"testing"

	"github.com/clickfleet/clickfleet/lease/position"
	"github.com/clickfleet/clickfleet/messages"
)

// The row triggers as a user's session goes: start, lag, update interval, idle close, reopening by a
// late event within the gap, the close by an event beyond the gap, and the final row at shutdown.
func TestRowTriggers(t *testing.T) {
	p := RowPolicy{UpdateIntervalMs: 60_000, CloseAfterMs: 15_000}
	base := int64(1_626_091_318_000) // event time
	const now0 = int64(2_000_000_000_000)
	u := User{ID: "u1"}
	seq := 0
	apply := func(tsMs int64) Outcome {
		seq++
		return u.Apply(position.At(fmt.Sprintf("%05d", seq), 0), &messages.Event{UserID: "u1", DeviceType: "mobile", EventTimeMs: tsMs}, DefaultRules())
	}
	type step struct {
		name      string
		event     int64 // event time to apply first (0: none)
		now, seen int64 // processing time of the check and of the user's last record
		close     bool
		final     bool
		cause     RowCause
		closes    bool
	}
	steps := []step{
		{"a new session is written at the next flush", base, now0, now0, false, false, RowStart, false},
		{"nothing new: nothing written", 0, now0 + 1000, now0, false, false, RowNone, false},
		{"lagging, inside the update interval", base + 2000, now0 + 2000, now0 + 2000, false, false, RowNone, false},
		{"lagging, update interval reached", base + 4000, now0 + 60_000, now0 + 59_000, false, false, RowUpdate, false},
		{"lagging, idle for gap + delay: closes", base + 6000, now0 + 90_000, now0 + 75_000, false, false, RowClose, true},
		{"closed and up to date: nothing more", 0, now0 + 200_000, now0 + 75_000, false, false, RowNone, false},
		{"a late event within the gap reopens it", base + 9000, now0 + 201_000, now0 + 200_500, false, false, RowReopen, false},
		{"idle again without lag: closes, nothing written", 0, now0 + 216_000, now0 + 200_500, false, false, RowNone, true},
		{"an event beyond the gap starts a session", base + 30_000, now0 + 217_000, now0 + 217_000, false, false, RowStart, false},
		{"lagging at shutdown: the final row", base + 31_000, now0 + 218_000, now0 + 218_000, false, true, RowFinal, false},
		{"lagging before passivation: closed now", base + 32_000, now0 + 219_000, now0 + 219_000, true, false, RowClose, true},
	}
	for _, s := range steps {
		if s.event != 0 {
			apply(s.event)
		}
		cause, closes := u.RowCheck(s.now, s.seen, p, s.close, s.final)
		if cause != s.cause || closes != s.closes {
			t.Fatalf("%s: RowCheck = %s, %v; want %s, %v (row %+v, count %d)", s.name, cause, closes, s.cause, s.closes, u.Row, u.Current.EventCount)
		}
		if cause != RowNone || closes {
			u.RowWritten(s.now, closes)
			if u.RowLags() {
				t.Fatalf("%s: the row lags after it was written", s.name)
			}
		}
	}
}

// Closing a lagging session by an event beyond the gap hands back its final values; an up-to-date one
// is not handed back (its row holds them already).
func TestApplyHandsBackLaggingClosedSessions(t *testing.T) {
	base := int64(1_626_091_318_000)
	ev := func(ts int64) *messages.Event {
		return &messages.Event{UserID: "u1", DeviceType: "mobile", EventTimeMs: ts}
	}
	u := User{ID: "u1"}
	u.Apply(position.At("1", 0), ev(base), DefaultRules())
	u.Apply(position.At("2", 0), ev(base+1000), DefaultRules())
	o := u.Apply(position.At("3", 0), ev(base+20_000), DefaultRules())
	if !o.NewSession || o.Closed.EventCount != 2 || o.Closed.LastEventMs != base+1000 || o.Closed.StartMs != base {
		t.Fatalf("lagging close: %+v", o)
	}
	if u.Row != (Row{}) {
		t.Fatalf("a new session starts without a row: %+v", u.Row)
	}
	u.RowWritten(1, false)
	if o := u.Apply(position.At("4", 0), ev(base+40_000), DefaultRules()); !o.NewSession || o.Closed.SessionID != "" {
		t.Fatalf("up-to-date close: %+v", o)
	}
}

func TestRowRoundTrip(t *testing.T) {
	for _, r := range []Row{{}, {Count: 3, AtMs: 17}, {Count: 12, AtMs: 2_000_000_000_000, Closed: true}} {
		got, err := ParseRow(r.Encode())
		if err != nil || got != r {
			t.Fatalf("%+v → %q → %+v, %v", r, r.Encode(), got, err)
		}
	}
	for _, bad := range []string{"x", "1", "1:2:3", "-1:2", "1:x", "1:2:c:d"} {
		if _, err := ParseRow(bad); err == nil {
			t.Errorf("ParseRow(%q) succeeded", bad)
		}
	}
}
