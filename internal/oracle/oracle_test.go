package oracle_test

import (
	"context"
	"testing"

	"github.com/clickfleet/clickfleet/internal/oracle"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// A gap of exactly 10 s continues a session, one above it starts the next; stream order, not timestamp
// order, decides (a late timestamp does not reorder), and users are independent.
func TestSessions(t *testing.T) {
	ctx := context.Background()
	conn, err := testenv.Postgres(t).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	const t0 = 1764547200000 // 2025-12-01T00:00:00Z
	evs := []oracle.Event{
		{"u1", t0, "desktop", "shardId-000000000000", "100"},
		{"u1", t0 + 10_000, "desktop", "shardId-000000000000", "200"}, // gap 10 s: same session
		{"u1", t0 + 20_001, "desktop", "shardId-000000000000", "300"}, // gap 10.001 s: a new one
		{"u1", t0 + 15_000, "desktop", "shardId-000000000000", "400"}, // late, gap negative: continues it
		{"u2", t0 + 500, "mobile", "shardId-000000000001", "150"},
	}
	got, err := oracle.Sessions(ctx, conn.Conn(), evs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][3]int64{ // start, last event, count
		"u1_desktop_20251201T000000.000Z": {t0, t0 + 10_000, 2},
		"u1_desktop_20251201T000020.001Z": {t0 + 20_001, t0 + 20_001, 2},
		"u2_mobile_20251201T000000.500Z":  {t0 + 500, t0 + 500, 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d sessions %v, want %d", len(got), got, len(want))
	}
	for id, w := range want {
		s, ok := got[id]
		if !ok {
			t.Fatalf("no session %s in %v", id, got)
		}
		if s.StartMs != w[0] || s.LastEventMs != w[1] || int64(s.EventCount) != w[2] {
			t.Errorf("%s: start %d last %d count %d, want %v", id, s.StartMs, s.LastEventMs, s.EventCount, w)
		}
	}
	// The table is temporary and dropped: a second call on the same connection works.
	if _, err := oracle.Sessions(ctx, conn.Conn(), evs[:1]); err != nil {
		t.Fatalf("second call: %v", err)
	}
}
