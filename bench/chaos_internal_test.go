package bench

import (
	"strings"
	"testing"

	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/messages"
)

// The comparison names the first session that is missing, extra or different, and nothing when equal.
func TestFirstSessionDiff(t *testing.T) {
	s := func(id string, n int64) messages.Session {
		return messages.Session{SessionID: id, UserID: "u1", DeviceType: "unknown", StartMs: 1, LastEventMs: 2, EventCount: n}
	}
	want := map[string]messages.Session{"a": s("a", 2), "b": s("b", 1)}
	for _, tc := range []struct {
		name string
		got  map[string]messages.Session
		diff string // substring; "" means equal
	}{
		{"equal", map[string]messages.Session{"a": s("a", 2), "b": s("b", 1)}, ""},
		{"missing", map[string]messages.Session{"a": s("a", 2)}, "session b is missing"},
		{"extra", map[string]messages.Session{"a": s("a", 2), "b": s("b", 1), "c": s("c", 1)}, "session c is not in the oracle"},
		{"doubled count", map[string]messages.Session{"a": s("a", 4), "b": s("b", 1)}, "session a (row written at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := firstSessionDiff(tc.got, want)
			if (tc.diff == "") != (d == "") || !strings.Contains(d, tc.diff) {
				t.Fatalf("firstSessionDiff = %q, want %q", d, tc.diff)
			}
		})
	}
}

// Sequence numbers compare as numbers, whatever their length.
func TestSeqLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		less bool
	}{
		{"", "1", true}, {"1", "", false}, {"9", "10", true}, {"10", "9", false},
		{"49590338271490256608559692538361571095921575989136588898", "49590338271490256608559692538361571095921575989136588899", true},
		{"5", "5", false},
	} {
		if got := seqLess(tc.a, tc.b); got != tc.less {
			t.Errorf("seqLess(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

// A shard is caught up when its checkpoint is at or past the last record put: a checkpoint still at a
// starting sentinel (TRIM_HORIZON: nothing processed yet) or missing is behind every record, SHARD_END
// past all of them.
func TestCaughtUp(t *testing.T) {
	const seq = "49660000000000000000000000000000000000000000000000000002"
	at := func(s string) lease.Checkpoint { return lease.Checkpoint{SequenceNumber: s} }
	for _, tc := range []struct {
		name string
		got  lease.Checkpoint
		want bool
	}{
		{"at the record", at(seq), true},
		{"past it", at("49660000000000000000000000000000000000000000000000000003"), true},
		{"a longer number", at("496600000000000000000000000000000000000000000000000000000"), true},
		{"behind it", at("49660000000000000000000000000000000000000000000000000001"), false},
		{"TRIM_HORIZON", lease.TrimHorizon, false},
		{"LATEST", lease.Latest, false},
		{"no lease", lease.Checkpoint{}, false},
		{"SHARD_END", lease.ShardEnd, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]lease.Checkpoint{"shardId-0": tc.got, "shardId-1": at(seq)}
			if tc.got == (lease.Checkpoint{}) {
				delete(got, "shardId-0")
			}
			if c := caughtUp(got, map[string]string{"shardId-0": seq, "shardId-1": seq}); c != tc.want {
				t.Fatalf("caughtUp with shardId-0 at %q = %v, want %v", tc.got.SequenceNumber, c, tc.want)
			}
		})
	}
}
