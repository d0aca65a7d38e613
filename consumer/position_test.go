package consumer

import (
	"testing"

	"github.com/clickfleet/clickfleet/lease"
)

func TestComparePositions(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b lease.Checkpoint
		want int
	}{
		{"equal", lease.Checkpoint{SequenceNumber: "49590"}, lease.Checkpoint{SequenceNumber: "49590"}, 0},
		{"longer is larger", lease.Checkpoint{SequenceNumber: "100"}, lease.Checkpoint{SequenceNumber: "99"}, 1},
		{"same length", lease.Checkpoint{SequenceNumber: "123"}, lease.Checkpoint{SequenceNumber: "124"}, -1},
		{"sub-sequence", lease.Checkpoint{SequenceNumber: "5", SubSequence: 2}, lease.Checkpoint{SequenceNumber: "5", SubSequence: 1}, 1},
		{"leading zeros", lease.Checkpoint{SequenceNumber: "0099"}, lease.Checkpoint{SequenceNumber: "100"}, -1},
		{"56 digits", lease.Checkpoint{SequenceNumber: "49680443354045483280817096675916987317187433174250029058"},
			lease.Checkpoint{SequenceNumber: "49680443354045483280817096675918196243007047803424735234"}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := comparePositions(tc.a, tc.b); got != tc.want {
				t.Fatalf("compare(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
			if got := comparePositions(tc.b, tc.a); got != -tc.want {
				t.Fatalf("compare(%s, %s) = %d, want %d", tc.b, tc.a, got, -tc.want)
			}
		})
	}
}
