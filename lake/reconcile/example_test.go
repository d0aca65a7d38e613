package reconcile_test

import (
	"os"
	"time"

	"github.com/clickfleet/clickfleet/lake/reconcile"
	"github.com/clickfleet/clickfleet/messages"
)

// The lake's sessions against the table's rows: a row whose count differs, and a session the lake sees
// still open at the range's end (apart, whatever its row says).
func ExampleCompare() {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s := messages.NewSession("user1", "mobile", start.UnixMilli())
	s.LastEventMs, s.EventCount = s.StartMs+8000, 5
	open := messages.NewSession("user2", "mobile", start.UnixMilli()+60_000)
	open.LastEventMs, open.EventCount = open.StartMs, 1

	row := s
	row.EventCount = 4
	res := reconcile.Compare(reconcile.Range{From: start, To: start.Add(time.Hour)},
		reconcile.Lake{Sessions: []messages.Session{s}, Open: []messages.Session{open}}, []messages.Session{row})
	res.LakeURL, res.Table = "s3://clickfleet-lake/", "sessions"
	_ = res.WriteText(os.Stdout)
	// Output:
	// reconcile DIFFERENT: lake s3://clickfleet-lake/ against table sessions, sessions starting in [2026-12-01T10:00:00Z, 2026-12-01T11:00:00Z)
	//   lake: 1 sessions compared, 1 open at the range's end (apart); table: 1 rows in the range
	//   equal 0 · missing from the table 0 · extra in the table 0 · differing 1
	// differences (1):
	//   differs  user1_mobile_20261201T100000.000Z: event_count lake 5, table 4
	// open at the range's end, not compared (1):
	//   open     user2_mobile_20261201T100100.000Z: lake events 1, last 2026-12-01T10:01:00.000Z; no row yet
}
